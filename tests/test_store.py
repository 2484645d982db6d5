"""The resumable kernel store (``store_kernel``) and its Dask path.

Reference values come from :func:`sknngp.kernel_matrix`, itself checked
against neural-tangents and Monte Carlo elsewhere; the store must reproduce
it to round-off (tiles are summed in another order).
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from sknngp._optional import MissingDependencyError
from sknngp.kernels import KernelStore, kernel_matrix, store_kernel

rng = np.random.default_rng(3)
X = rng.normal(size=(300, 6))
Z = rng.normal(size=(130, 6))
IMG = rng.normal(size=(40, 4, 4, 2))
FC = dict(depth=2, verbose=0)


def _seal_files(path, kind):
    return sorted(os.listdir(os.path.join(path, "seals", kind)))


def test_symmetric_store_equals_kernel_matrix_and_streams(tmp_path):
    store = store_kernel(X, path=tmp_path / "s", block_size=128, **FC)
    want = kernel_matrix(X, get=("nngp", "ntk"), depth=2)
    # 3 x 3 blocks, the 6 on and above the diagonal computed once
    assert (store.tiles_total, store.tiles_done, store.tiles_computed) == (6, 6, 6)
    assert len(_seal_files(store.path, "ntk")) == 6
    for kind in ("nngp", "ntk"):
        k = getattr(store, kind)
        np.testing.assert_allclose(np.asarray(k), getattr(want, kind), rtol=1e-13, atol=1e-14)
        assert k.shape == (300, 300) and k.dtype == np.float64
        np.testing.assert_allclose(k[100:290], getattr(want, kind)[100:290], rtol=1e-13)
        V = rng.normal(size=(300, 3))
        np.testing.assert_allclose(k.matmul(V), getattr(want, kind) @ V, rtol=1e-12)
        np.testing.assert_allclose(k @ V[:, 0], getattr(want, kind) @ V[:, 0], rtol=1e-12)
        np.testing.assert_allclose(k.diagonal(), np.diag(getattr(want, kind)), rtol=1e-13)
        cols = [0, 299, 128, 5]
        np.testing.assert_allclose(k.columns(cols), getattr(want, kind)[:, cols], rtol=1e-13)


def test_rectangular_and_image_stores(tmp_path):
    store = store_kernel(X, Z, path=tmp_path / "r", get="ntk", block_size=128, **FC)
    assert store.shape == (300, 130) and not store.symmetric and store.tiles_total == 6
    np.testing.assert_allclose(np.asarray(store.ntk), kernel_matrix(X, Z, get="ntk", depth=2),
                               rtol=1e-13)
    with pytest.raises(AttributeError, match=r"holds \('ntk',\), not 'nngp'"):
        store.nngp
    with pytest.raises(ValueError, match="needs a symmetric store"):
        store.ntk.diagonal()
    arch = dict(architecture="cnn-gap", depth=1, verbose=0)
    img = store_kernel(IMG, path=tmp_path / "i", get="nngp", block_size=16, **arch)
    np.testing.assert_allclose(np.asarray(img.nngp), kernel_matrix(IMG, **arch), rtol=1e-12)


def test_resume_computes_only_missing_or_bad_tiles(tmp_path, monkeypatch):
    path = str(tmp_path / "s")
    first = store_kernel(X, path=path, block_size=128, **FC)
    want = np.asarray(first.ntk)
    # one tile never written, one with flipped bytes, one torn, one misplaced
    os.remove(os.path.join(path, "seals", "nngp", "0.0"))
    chunk = lambda kind, i, j: os.path.join(path, kind, "c", str(i), str(j))  # noqa: E731
    raw = bytearray(open(chunk("ntk", 0, 1), "rb").read())
    raw[100] ^= 0xFF
    open(chunk("ntk", 0, 1), "wb").write(bytes(raw))
    open(chunk("nngp", 1, 2), "r+b").truncate(64)
    open(chunk("ntk", 2, 2), "wb").write(open(chunk("ntk", 1, 1), "rb").read())
    again = store_kernel(X, path=path, **FC)
    assert again.tiles_computed == 4 and again.tiles_done == 6
    np.testing.assert_allclose(np.asarray(again.ntk), want, rtol=1e-13)
    assert store_kernel(X, path=path, **FC).tiles_computed == 0


def test_a_bad_tile_is_never_read(tmp_path):
    path = str(tmp_path / "s")
    store = store_kernel(X, path=path, block_size=128, **FC)
    open(os.path.join(path, "nngp", "c", "1", "1"), "r+b").truncate(64)
    with pytest.raises(ValueError, match=r"Block \(1, 1\) of the nngp kernel .* failed its "
                                         r"checksum; call store_kernel again"):
        np.asarray(store.nngp)


def test_other_inputs_at_the_same_path_are_refused(tmp_path):
    path = str(tmp_path / "s")
    store_kernel(X, path=path, block_size=128, **FC)
    with pytest.raises(ValueError, match=r"holds another kernel \(inputs \(x1, x2\): different; "
                                         r"shape: stored \(300, 300\), asked \(299, 299\)\)"):
        store_kernel(X[:-1], path=path, **FC)
    with pytest.raises(ValueError, match=r"holds another kernel \(architecture: different\)"):
        store_kernel(X, path=path, depth=3, verbose=0)
    with pytest.raises(ValueError, match=r"kernel dtype: stored float64, asked float32"):
        store_kernel(X, path=path, dtype="float32", **FC)
    with pytest.raises(ValueError, match=r"kernels \(get\): stored \('nngp', 'ntk'\), asked"):
        store_kernel(X, path=path, get="nngp", **FC)
    with pytest.raises(ValueError, match=r"block_size=256 differs from the 128 of the store"):
        store_kernel(X, path=path, block_size=256, **FC)
    Xc = X.copy()
    Xc[7, 2] += 1e-12
    with pytest.raises(ValueError, match=r"inputs \(x1, x2\): different\)\. Pass another path"):
        store_kernel(Xc, path=path, **FC)


def test_bad_paths_and_arguments(tmp_path):
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is an existing file; pass a directory"):
        store_kernel(X, path=a_file, **FC)
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="exists and is not an sknngp kernel store"):
        store_kernel(X, path=other, **FC)
    with pytest.raises(ValueError, match="parent folder .* does not exist"):
        store_kernel(X, path=tmp_path / "no" / "s", **FC)
    with pytest.raises(TypeError, match="path must be a directory path"):
        store_kernel(X, path=3, **FC)
    with pytest.raises(ValueError, match="block_size must be a positive integer or None; got 0"):
        store_kernel(X, path=tmp_path / "b", block_size=0, **FC)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        store_kernel(X, path=tmp_path / "b", batch_size=-1, **FC)
    with pytest.raises(ValueError, match="is not an sknngp kernel store"):
        KernelStore(other)
    with pytest.raises(TypeError, match="client must be None, a dask.distributed.Client or a "
                                        "scheduler address"):
        store_kernel(X, path=tmp_path / "c", client=42, **FC)


def test_missing_dask_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "sknngp\[dask\]"'):
        store_kernel(X, path=tmp_path / "s", client="tcp://127.0.0.1:1", **FC)


def test_progress_bar_counts_tiles(tmp_path, capsys):
    store_kernel(X, path=tmp_path / "s", block_size=128, depth=2, verbose=2)
    err = capsys.readouterr().err
    assert "kernel store 300x300" in err and "0/6 " in err and "tile" in err


_KILLED = textwrap.dedent("""
    import sys
    import numpy as np
    from sknngp.kernels import store_kernel
    X = np.random.default_rng(0).normal(size=(1200, 20))
    store_kernel(X, path=sys.argv[1], block_size=128, depth=6, batch_size=32, verbose=0)
""")


def test_resume_after_sigkill(tmp_path):
    """A store killed mid-run (SIGKILL: no cleanup) resumes with exactly the
    missing tiles; the result equals the kernel."""
    path = str(tmp_path / "s")
    proc = subprocess.Popen([sys.executable, "-c", _KILLED, path])
    seals = os.path.join(path, "seals", "ntk")
    deadline = time.time() + 120
    while time.time() < deadline:
        if os.path.isdir(seals) and len(os.listdir(seals)) >= 5:
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    X = np.random.default_rng(0).normal(size=(1200, 20))
    before = KernelStore(path)
    assert 0 < before.tiles_done < before.tiles_total == 55
    missing = before.tiles_total - before.tiles_done
    after = store_kernel(X, path=path, depth=6, verbose=0)
    # a tile interrupted between its two kinds counts as missing: both are redone
    assert after.tiles_computed == missing
    np.testing.assert_allclose(np.asarray(after.nngp), kernel_matrix(X, depth=6), rtol=1e-12)


def test_dask_local_cluster_writes_the_same_store(tmp_path):
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster) as client:
            store = store_kernel(X, path=tmp_path / "d", block_size=128, client=client, **FC)
        assert store.tiles_computed == 6
        # a scheduler address works too; the resumed store has nothing left to do
        again = store_kernel(X, path=tmp_path / "d", client=cluster.scheduler_address, **FC)
        assert again.tiles_computed == 0
    np.testing.assert_allclose(np.asarray(store.ntk), kernel_matrix(X, get="ntk", depth=2),
                               rtol=1e-13)


def test_grid_search_on_dask_shares_the_kernel_cache(tmp_path):
    """GridSearchCV through joblib's dask backend, the fits on the cluster's
    worker processes, all sharing one kernel_cache directory: same scores as
    in this process, and the kernel is stored once (one rows block, one
    kernel block for these 90 rows)."""
    distributed = pytest.importorskip("distributed")
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.model_selection import GridSearchCV

    from sknngp import NNGPClassifier

    X, y = load_digits(return_X_y=True)
    X, y = X[:90] / 16, y[:90]
    grid = {"diag_reg": [1e-4, 1e-2, 1.0]}
    arch = dict(depth=2)
    seq = GridSearchCV(NNGPClassifier(kernel_cache="off", **arch), grid, cv=3).fit(X, y)
    cache = str(tmp_path / "kcache")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        with distributed.Client(cluster), joblib.parallel_backend("dask"):
            par = GridSearchCV(NNGPClassifier(kernel_cache=cache, **arch), grid, cv=3,
                               n_jobs=-1).fit(X, y)
    np.testing.assert_allclose(par.cv_results_["mean_test_score"],
                               seq.cv_results_["mean_test_score"])
    stored = [p for p in (tmp_path / "kcache").rglob("*") if p.parent.parent.name == "c"]
    assert sorted(p.parts[-4] for p in stored) == ["nngp", "x"]


def test_row_kernel_streams_the_cache_without_the_matrix(tmp_path, monkeypatch):
    """The operator the CG solver uses on kernel_cache=<directory>: products,
    diagonal and columns of the kernel of rows registered in any order, some
    before others, equal the kernel matrix's."""
    from sknngp import _rowstore
    from sknngp._disk_cache import row_store
    from sknngp.architecture import build_architecture
    from sknngp.kernels import _engine

    monkeypatch.setattr(_rowstore, "ROW_BLOCK", 128)
    plan, _ = _engine.plan_for(build_architecture(architecture="fc", depth=2), (6,))
    store = row_store(str(tmp_path / "kc"), plan, "float64", (6,))
    store.indices(X[200:])  # other rows first: the fit rows are not in order
    perm = np.random.default_rng(0).permutation(300)[:250]
    op = _rowstore.RowKernel(store, "ntk", store.indices(X[perm]))
    K = kernel_matrix(X[perm], get="ntk", depth=2)
    V = rng.normal(size=(250, 4))
    np.testing.assert_allclose(op.matmul(V), K @ V, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(op.diagonal(), np.diag(K), rtol=1e-13)
    cols = [3, 249, 100, 3]
    np.testing.assert_allclose(op.columns(cols), K[:, cols], rtol=1e-13)


def test_a_store_the_disk_cannot_hold_is_refused_before_work(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage(10**6, 0, 10**5))
    with pytest.raises(MemoryError, match=r"the kernel store needs about 0\.0 GiB on disk \(6 "
                                          r"tiles of 128 x 128 float64 x 2 kind\(s\)\)"):
        store_kernel(X, path=tmp_path / "s", block_size=128, **FC)
    assert not (tmp_path / "s").exists()
