"""Hardening: every refusal and its message, the verified disk cache, bounded
work, and property-based checks over shapes, dtypes and magnitudes.

The cheap cases of the fuzz corpus (``tests/fuzz_corpus.py``; the full run,
with counts, is ``python tools/fuzz_api.py``) run here one test each.
"""

from __future__ import annotations

import math
import glob
import os
import pickle
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import fuzz_corpus
from sknngp import (
    NNGPClassifier,
    NNGPRegressor,
    NTKRegressor,
    PerImageStandardizer,
    ZCAWhitener,
    _bank,
    _rowstore,
    kernel_matrix,
)
from sknngp.architecture import MAX_LAYERS, Dense, Relu, serial
from sknngp.kernels import _blocks as kernel_blocks, _engine, _tiles, kernel_diagonal

rng = np.random.default_rng(0)
X = rng.normal(size=(8, 4))
Y = X[:, 0] - X[:, 1]
XT = rng.normal(size=(3, 4))
SETTINGS = settings(max_examples=25, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ----------------------------------------------------------- fuzz corpus
_CHEAP = [c for c in fuzz_corpus.all_cases() if c.cheap]


@pytest.mark.parametrize("case", _CHEAP, ids=[c.name for c in _CHEAP])
def test_fuzz_case_is_clean(case):
    _bank.clear()
    try:
        result = case.fn()
    except Exception as exc:  # noqa: BLE001 - the classification is the test
        outcome, detail = fuzz_corpus.classify(case, error=exc)
    else:
        outcome, detail = fuzz_corpus.classify(case, result=result)
    assert outcome == "clean", detail


# ------------------------------------------------ parameters set after fit
def test_changed_architecture_asks_for_refit():
    reg = NNGPRegressor(depth=1).fit(X, Y)
    reg.set_params(depth=2, W_std=2.0)
    with pytest.raises(ValueError, match=r"changed since fit \(depth: 1 -> 2, W_std: "
                                         r"1.41\d* -> 2.0\).*Call fit again \(refit\)"):
        reg.predict(XT)
    reg.set_params(depth=1, W_std=2**0.5)  # set back: usable again
    assert np.all(np.isfinite(reg.predict(XT)))


def test_invalid_parameter_after_fit_gets_the_fit_error():
    reg = NTKRegressor(depth=1).fit(X, Y)
    for param, value in (("t", -5.0), ("t", math.nan), ("learning_rate", 0.0)):
        reg.set_params(**{param: value})
        with pytest.raises(ValueError, match=f"The '{param}' parameter of NTKRegressor"):
            reg.predict(XT, return_std=True)
        reg.set_params(t=None, learning_rate=1.0)
    clf = NNGPClassifier(depth=1).fit(X, Y > 0)
    clf.set_params(diag_reg=-1.0)
    with pytest.raises(ValueError, match="The 'diag_reg' parameter of NNGPClassifier"):
        clf.decision_function(XT)


@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_diag_reg_after_fit_valid_or_refused(value):
    """Any float: a finite value >= 0 keeps the fitted predictions (parameters
    take effect at the next fit); anything else is refused by name."""
    reg = _fitted_regressor()
    expected = reg.predict(XT)
    reg.set_params(diag_reg=value)
    if math.isfinite(value) and value >= 0:
        np.testing.assert_array_equal(reg.predict(XT), expected)
    else:
        with pytest.raises(ValueError, match="diag_reg"):
            reg.predict(XT)


_FITTED = {}


def _fitted_regressor():
    if "reg" not in _FITTED:
        _FITTED["reg"] = NNGPRegressor(depth=1).fit(X, Y)
    return pickle.loads(pickle.dumps(_FITTED["reg"]))


def test_predict_time_messages():
    reg = NNGPRegressor(depth=1).fit(X, Y)
    with pytest.raises(ValueError, match="n_samples must be a positive integer; got -1"):
        reg.sample_y(XT, n_samples=-1)
    with pytest.raises(ValueError, match="diag_reg must be a finite number >= 0; got True"):
        reg.log_marginal_likelihood(diag_reg=True)
    with pytest.raises(ValueError, match=r"fitted on 2-D rows \(no input_shape\)"):
        reg.predict(XT.reshape(3, 2, 2, 1))
    reg.set_params(device=[])
    with pytest.raises(ValueError, match=r"device=\[\] names no device"):
        reg.predict(XT)


def test_regressor_refuses_string_targets():
    with pytest.raises(ValueError, match="y must be numeric.*use NNGPClassifier"):
        NNGPRegressor().fit(X, np.array(list("abababab")))


def test_overflowing_targets_are_refused():
    y = Y / np.abs(Y).max() * 1.5e308
    with pytest.raises(ValueError, match="dual coefficients overflowed.*rescale y"):
        NNGPRegressor(depth=1, diag_reg=1e-12).fit(X, y)


# ------------------------------------------------------- kernel overflow
def test_kernel_overflow_is_refused_and_not_banked():
    _bank.clear()
    with pytest.raises(ValueError, match=r"NNGP kernel overflowed to inf or NaN in float64: "
                                         r"the inputs \(X1\)"):
        kernel_matrix(X * 1e300)
    with pytest.raises(ValueError, match=r"in float32.*or dtype='float64'"):
        kernel_matrix(X * 1e20, dtype="float32")
    bad = np.vstack([X, X[:1] * 1e300])
    with pytest.raises(ValueError, match=r"overflowed.*\(X\)"):
        NNGPRegressor(depth=1).fit(bad, np.r_[Y, 0.0])
    assert _bank._total_bytes() == 0  # the failed fit left nothing behind
    with pytest.raises(ValueError, match=r"overflowed.*\(X\)"):
        kernel_diagonal(X * 1e300)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(np.float64, hnp.array_shapes(min_dims=2, max_dims=2, min_side=1, max_side=3),
               elements=st.floats(-1e3, 1e3)),
    st.integers(-320, 308),
    st.sampled_from(["float32", "float64"]),
)
def test_kernel_matrix_finite_or_refused(X_, exponent, dtype):
    """Whatever the magnitude, a kernel is finite and symmetric, or refused by name."""
    try:
        with np.errstate(over="ignore", under="ignore"):
            data = X_ * 10.0**exponent
        K = kernel_matrix(data, depth=2, dtype=dtype)
    except ValueError as exc:
        assert "X1" in str(exc)
        return
    assert np.all(np.isfinite(K))
    np.testing.assert_allclose(K, K.T, rtol=1e-6)


@SETTINGS
@given(hnp.arrays(np.float64, (3, 2), elements=st.floats(0.1, 10)), st.integers(-120, 120))
def test_relu_kernel_is_homogeneous_without_bias(X_, k):
    """With b_std=0 the ReLU NNGP scales as c**2 (c a power of two: exact)."""
    c = 2.0**k
    np.testing.assert_allclose(kernel_matrix(X_ * c, b_std=0.0, depth=2) / c**2,
                               kernel_matrix(X_, b_std=0.0, depth=2), rtol=1e-12)


@SETTINGS
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_dense_std_accepted_iff_in_range(value):
    if 0 <= value <= 1e150:
        assert Dense(W_std=value).W_std == value
    else:
        with pytest.raises(ValueError, match=r"W_std must be a number in \[0, 1e\+150\]"):
            Dense(W_std=value)


# ---------------------------------------------------------- preprocessing
_ROWS = st.integers(2, 5).flatmap(lambda n: hnp.arrays(
    np.float64, (n, 8), elements=st.floats(-10, 10).filter(lambda v: abs(v) > 1e-3)))


@SETTINGS
@given(_ROWS, st.integers(-300, 300))
def test_per_image_standardizer_ignores_scale(rows, k):
    c = 2.0**k
    np.testing.assert_allclose(PerImageStandardizer().fit_transform(rows * c),
                               PerImageStandardizer().fit_transform(rows), atol=1e-12)


@SETTINGS
@given(_ROWS, st.integers(-300, 300))
def test_zca_ignores_scale(rows, k):
    c = 2.0**k
    np.testing.assert_allclose(ZCAWhitener(zca_reg=0.1).fit_transform(rows * c),
                               ZCAWhitener(zca_reg=0.1).fit_transform(rows),
                               rtol=1e-7, atol=1e-9)


# ------------------------------------------------------------- disk cache
def _blocks(folder):
    """The stored kernel blocks (chunk files) in a kernel_cache directory."""
    return [p for p in fuzz_corpus.block_files(folder) if "/nngp/" in p]


def test_disk_cache_entries_are_verified_and_rewritten(tmp_path):
    """Flipped bytes, a changed value with a valid CRC, and another store's
    block under this block's name are all recomputed and rewritten."""
    folder = str(tmp_path / "cache")
    reference = NNGPRegressor(depth=1, kernel_cache="off").fit(X, Y).predict(XT)
    NNGPRegressor(depth=1, kernel_cache=folder).fit(X, Y)
    (path,) = _blocks(folder)
    good = open(path, "rb").read()
    for corrupt in (fuzz_corpus._flip, fuzz_corpus._flip_values,
                    lambda p: _copy_block(_other_block(tmp_path), p)):
        corrupt(path)
        assert open(path, "rb").read() != good
        pred = NNGPRegressor(depth=1, kernel_cache=folder).fit(X, Y).predict(XT)
        np.testing.assert_allclose(pred, reference, rtol=1e-12)
        assert _rewritten_and_verified(path, folder)


def _rewritten_and_verified(path, folder):
    """The block at ``path`` was rewritten: a new fit + predict reads it back
    (checksum and seal pass) without computing anything."""
    calls = []
    compute = _rowstore.compute
    _rowstore.compute = lambda *a, **k: calls.append(1) or compute(*a, **k)
    try:
        NNGPRegressor(depth=1, kernel_cache=folder).fit(X, Y).predict(XT)
    finally:
        _rowstore.compute = compute
    return os.path.exists(path) and calls == []


def _copy_block(donor, path):
    """Copy a block's chunk and seal over another block's."""
    shutil.copyfile(donor, path)
    seal = lambda p: os.path.join(p.split("/data/")[0], "seals", "nngp",  # noqa: E731
                                  ".".join(p.split("/")[-2:]))
    shutil.copyfile(seal(donor), seal(path))


def _other_block(tmp_path):
    other = tmp_path / "other"
    if not other.exists():
        other.mkdir()
        NNGPRegressor(depth=1, kernel_cache=str(other)).fit(X + 1.0, Y)
    return _blocks(str(other))[0]


def test_disk_cache_never_unpickles(tmp_path):
    folder = str(tmp_path)
    NNGPRegressor(depth=1, kernel_cache=folder).fit(X, Y)
    fuzz_corpus._remove(fuzz_corpus.MARKER)
    for path in _blocks(folder):
        fuzz_corpus._plant_pickle(path)
    NNGPRegressor(depth=1, kernel_cache=folder).fit(X, Y).predict(XT)
    assert not os.path.exists(fuzz_corpus.MARKER)


def test_disk_cache_directory_deleted_mid_run(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    compute = _engine.compute

    def compute_then_delete(*args, **kwargs):
        out = compute(*args, **kwargs)
        shutil.rmtree(folder, ignore_errors=True)
        return out

    monkeypatch.setattr(_rowstore, "compute", compute_then_delete)
    reference = NNGPRegressor(depth=1, kernel_cache="off").fit(X, Y).predict(XT)
    pred = NNGPRegressor(depth=1, kernel_cache=str(folder)).fit(X, Y).predict(XT)
    np.testing.assert_allclose(pred, reference, rtol=1e-12)
    monkeypatch.undo()
    NNGPRegressor(depth=1, kernel_cache=str(folder)).fit(X, Y)
    assert len(_blocks(str(folder))) == 1  # recreated and written


@pytest.mark.parametrize("value, message", [
    ("MEMORY", r"Did you mean 'memory'\?"),
    ("Off", r"Did you mean 'off'\?"),
    ("off ", "surrounding spaces"),
    ("", "surrounding spaces"),
    ("/nonexistent-sknngp-parent/cache", "parent folder '/nonexistent-sknngp-parent' does not"),
    ("/proc/sknngp-cache", "cannot create the cache directory"),
])
def test_kernel_cache_paths_refused(value, message):
    assert not os.path.exists("/nonexistent-sknngp-parent")
    with pytest.raises(ValueError, match=message):
        NNGPRegressor(kernel_cache=value).fit(X, Y)
    assert not os.path.exists("MEMORY") and not os.path.exists("Off")


def test_kernel_cache_file_refused(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(ValueError, match="which is an existing file"):
        NNGPRegressor(kernel_cache=str(a_file)).fit(X, Y)


# ------------------------------------------------------------ bounded work
def test_identical_steps_compile_once():
    """A deep stack compiles one function per distinct step, not per layer."""
    _tiles.jitted_step.cache_clear()
    _tiles.pipeline.cache_clear()
    kernel_matrix(X[:3], depth=40)
    # hidden steps [Dense, Relu] are identical; the first (with Flatten, the
    # input width) and the readout are compiled on their own paths
    assert _tiles.jitted_step.cache_info().currsize == 2


def test_deep_stack_matches_a_numpy_recursion():
    """depth=40 through the shared compiled steps against the ReLU arc-cosine
    recursion written out in NumPy (an independent implementation)."""
    W2, b2, depth = 2.0, 0.01, 40
    K = X[:3] @ X[:3].T / X.shape[1]
    for _ in range(depth):
        K = W2 * K + b2
        d = np.sqrt(np.diag(K))
        cos = np.clip(K / np.outer(d, d), -1, 1)
        theta = np.arccos(cos)
        K = np.outer(d, d) * (np.sin(theta) + (np.pi - theta) * cos) / (2 * np.pi)
    K = W2 * K + b2
    np.testing.assert_allclose(kernel_matrix(X[:3], depth=depth, b_std=0.1), K, rtol=1e-9)


def test_absurd_stacks_are_refused():
    with pytest.raises(ValueError, match=f"at most {MAX_LAYERS} layers; got 10001 layers"):
        serial(*([Dense(), Relu()] * 5000), Dense())
    with pytest.raises(ValueError, match=r"'depth' parameter .* Got 1000000"):
        NNGPRegressor(depth=10**6).fit(X, Y)


def test_plan_pickles_without_its_cached_hash():
    plan, _ = _engine.plan_for(serial(Dense(), Relu(), Dense()), (4,))
    hash(plan)
    assert "_hash" not in pickle.loads(pickle.dumps(plan)).__dict__
    assert pickle.loads(pickle.dumps(plan)) == plan


def test_disk_cache_write_failure_is_clear_and_leaves_no_temp_file(tmp_path, monkeypatch):
    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(kernel_blocks.Blocks, "write", disk_full)
    with pytest.raises(ValueError, match=r"kernel_cache=.*cannot write the cache "
                                         r"\(\[Errno 28\] No space left on device\)"):
        NNGPRegressor(depth=1, kernel_cache=str(tmp_path)).fit(X, Y)
    leftovers = [p for p in glob.glob(str(tmp_path / "**"), recursive=True)
                 if p.endswith((".tmp", ".partial"))]
    assert leftovers == []


def test_depth_family_is_bounded():
    """One pass reads off at most MAX_MEMBERS shallower depths (finding each
    costs a plan: all 999 of a depth-1000 stack cost O(depth**2))."""
    from sknngp.architecture import build_architecture
    from sknngp.kernels import _family

    plan, _ = _engine.plan_for(build_architecture("fc", depth=200), (4,))
    found = _family.members(plan)
    assert len(found) == _family.MAX_MEMBERS
    # the nearest ones: depths 136..199
    assert [len(p.layers) for _, p in found] == [2 * d + 2 for d in range(136, 200)]
