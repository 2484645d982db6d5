"""Several devices without hardware: fake CPU devices in a subprocess, and
the solves of :mod:`sknngp._device_solve` on CPU devices against SciPy."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest
import scipy.linalg

from sknngp import _device_solve
from sknngp.kernels import _memory

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs with 4 fake CPU devices; records the device of every tile's inputs
# and of its result, and compares with the 1-device result.
_FOUR_DEVICES = textwrap.dedent("""
    import json, sys
    import jax, numpy as np
    from sknngp import kernel_matrix
    from sknngp.kernels import _tiles, kernel_diagonal

    seen = []
    real = _tiles.pipeline

    class Spy:
        def __init__(self, pipe):
            self.pipe = pipe

        def run(self, x1, x2, **kw):
            out = self.pipe.run(x1, x2, **kw)
            seen.append([str(next(iter(x1.devices()))), str(next(iter(out[0][0].devices())))])
            return out

    _tiles.pipeline = lambda plan, want: Spy(real(plan, want))
    x = np.random.default_rng(0).normal(size=(19, 5, 4, 2))
    kw = dict(architecture="cnn-vec", depth=2, get=("nngp", "ntk"))
    devices = [str(d) for d in jax.local_devices()]
    result = {"devices": devices}
    for dtype in ("float64", "float32"):
        many = kernel_matrix(x, batch_size=4, dtype=dtype, **kw)
        tiles = list(seen)
        seen.clear()
        one = kernel_matrix(x, batch_size=4, dtype=dtype, device="cpu:2", **kw)
        on_one = seen[:]
        cross = kernel_matrix(x[:7], x, batch_size=3, dtype=dtype, **kw)
        diag = kernel_diagonal(x, batch_size=2, dtype=dtype, **kw)
        result[dtype] = {
            "tiles": tiles, "one_device": on_one,
            "max_diff": max(float(np.max(np.abs(a - b))) for a, b in zip(many, one)),
            "cross_diff": max(float(np.max(np.abs(a - b[:7]))) for a, b in zip(cross, one)),
            "diag_diff": max(float(np.max(np.abs(a - np.diag(b)))) for a, b in zip(diag, one)),
        }
        seen.clear()
    json.dump(result, sys.stdout)
""")


def test_tiles_go_to_all_four_devices_and_match_one_device():
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4",
               JAX_PLATFORMS="cpu", PYTHONPATH=ROOT)
    done = subprocess.run([sys.executable, "-c", _FOUR_DEVICES], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert len(result["devices"]) == 4
    for dtype, tol in (("float64", 1e-13), ("float32", 1e-5)):
        r = result[dtype]
        # 19 rows in tiles of 4: 5 row tiles, 15 on or above the diagonal
        assert len(r["tiles"]) == 15
        inputs = [a for a, _ in r["tiles"]]
        assert sorted(set(inputs)) == sorted(result["devices"])  # all four used
        assert all(a == b for a, b in r["tiles"])  # computed where the inputs are
        # round robin: tile k on device k % 4, so the counts differ by at most one
        counts = [inputs.count(d) for d in result["devices"]]
        assert max(counts) - min(counts) <= 1
        assert {a for a, _ in r["one_device"]} == {"cpu:2"}
        assert r["max_diff"] <= tol and r["cross_diff"] <= tol * 10 and r["diag_diff"] <= tol * 10


# ------------------------------------------------------------------ device solves


def _spd(n, seed=0):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(n, n + 5))
    return A @ A.T / n


@pytest.mark.parametrize("device", [None, "cpu:1", jax.devices("cpu")[0]])
def test_device_solve_equals_scipy(device):
    K = _spd(60)
    B = np.random.default_rng(1).normal(size=(60, 3))
    lam = 1e-3
    X = _device_solve.solve(K, B, lam, device=device)
    ref = scipy.linalg.solve(K + lam * np.eye(60), B, assume_a="pos")
    assert X.dtype == np.float64 and X.shape == (60, 3)
    np.testing.assert_allclose(X, ref, rtol=1e-10, atol=1e-12)
    x1 = _device_solve.solve(K, B[:, 0], lam, device=device)  # one right-hand side
    assert x1.shape == (60,)
    np.testing.assert_allclose(x1, ref[:, 0], rtol=1e-10, atol=1e-12)
    assert not jax.config.jax_enable_x64  # the caller's setting is left alone


def test_device_factor_equals_scipy_and_leaves_k_alone():
    K = _spd(40, seed=2)
    before = K.copy()
    U = _device_solve.factor(K, 0.5, device="cpu:1")
    ref = scipy.linalg.cholesky(K + 0.5 * np.eye(40), lower=False)
    np.testing.assert_allclose(U, ref, rtol=1e-12, atol=1e-13)
    assert U.flags.f_contiguous and np.all(np.tril(U, -1) == 0)
    np.testing.assert_array_equal(K, before)
    # the factor serves SciPy's solves unchanged, as _solvers' factor does
    B = np.ones((40, 2))
    np.testing.assert_allclose(scipy.linalg.cho_solve((U, False), B),
                               np.linalg.solve(K + 0.5 * np.eye(40), B), rtol=1e-10)


def test_device_solve_not_positive_definite():
    K = -np.eye(5)
    with pytest.raises(np.linalg.LinAlgError,
                       match=r"K \+ lam I \(n=5, lam=0.1\) is not positive definite on cpu:0"):
        _device_solve.solve(K, np.ones(5), 0.1, device="cpu:0")


@pytest.mark.parametrize("bad, pattern", [
    (dict(K=np.ones((3, 4))), r"K must be a square 2-D array; got shape \(3, 4\)"),
    (dict(B=np.ones((4, 2))), r"B must have 3 rows, as K; got shape \(4, 2\)"),
    (dict(lam=-1.0), r"lam must be a finite number >= 0; got -1.0"),
    (dict(device="tpu"), r"device='tpu' is not available to JAX"),
])
def test_device_solve_errors(bad, pattern):
    kw = dict(K=np.eye(3), B=np.ones(3), lam=0.0, device=None) | bad
    with pytest.raises(ValueError, match=pattern):
        _device_solve.solve(kw["K"], kw["B"], kw["lam"], device=kw["device"])


def test_fits_reads_device_memory(monkeypatch):
    gpu = type("FakeGPU", (), {"platform": "gpu", "id": 0,
                               "memory_stats": lambda self: {"bytes_limit": 10 * 2**30,
                                                             "bytes_in_use": 2**30}})()
    need = _device_solve.bytes_needed(20_000, 10)
    assert need == 8 * (3 * 20_000**2 + 3 * 20_000 * 10)
    # 9 GiB free, of which SOLVE_SHARE usable: n = 20,000 needs 9.6 GB
    assert _device_solve.fits(20_000, 10, device=gpu) == (need <= _device_solve.SOLVE_SHARE * 9 * 2**30)
    assert _device_solve.fits(10_000, 10, device=gpu)
    assert not _device_solve.fits(40_000, 10, device=gpu)
    # CPU devices: the host's memory
    monkeypatch.setattr(_memory, "host_available", lambda: _device_solve.bytes_needed(100, 1) * 2)
    assert _device_solve.fits(100, 1, device="cpu")
    assert not _device_solve.fits(1000, 1, device="cpu")
    monkeypatch.setattr(_memory, "host_available", lambda: None)
    assert _device_solve.fits(1000, 1, device="cpu")


def test_accelerator_is_the_first_non_cpu_device(monkeypatch):
    cpu = jax.devices("cpu")[0]
    gpu = type("FakeGPU", (), {"platform": "gpu", "id": 3})()
    monkeypatch.setattr(jax, "local_devices", lambda: [cpu, gpu])
    assert _device_solve.accelerator() is gpu
    monkeypatch.setattr(jax, "local_devices", lambda: [cpu])
    assert _device_solve.accelerator() is None
