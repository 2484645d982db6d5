"""The kernel bank, depth families and the solvers, against direct computations."""

import pickle
import warnings

import numpy as np
import pytest
from sklearn.base import RegressorMixin
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from sknngp import (
    NNGPClassifier,
    NNGPRegressor,
    NTKClassifier,
    NTKRegressor,
    _bank,
    kernel_matrix,
)

CNN = dict(architecture="cnn-vec", input_shape=(8, 8, 1))


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:120] / 16, y[:120]


@pytest.fixture(autouse=True)
def empty_bank():
    _bank.clear()
    yield
    _bank.clear()


@pytest.mark.parametrize("order", [(2, 4, 1, 3), (4, 3, 2, 1), (1, 2, 3, 4)])
def test_every_depth_equals_its_direct_kernel_in_any_order(digits, order):
    """Depths read off a deeper pass, or continued from a shallower state,
    are the kernels kernel_matrix computes from the inputs (float64 round-off)."""
    X, y = digits
    for depth in order:
        est = NTKClassifier(depth=depth, **CNN).fit(X, y)
        got = est._train_kernels(("nngp", "ntk"))
        ref = kernel_matrix(X, get=("nngp", "ntk"), depth=depth, **CNN)
        np.testing.assert_allclose(got["ntk"], ref.ntk, rtol=1e-13, atol=0)
        np.testing.assert_allclose(got["nngp"], ref.nngp, rtol=1e-13, atol=0)


def test_descending_depths_are_read_off_one_pass(digits):
    X, y = digits
    n = len(X)
    NNGPClassifier(depth=4, **CNN).fit(X, y)
    before = _bank.stats["entries_computed"]
    for depth in (3, 2, 1):
        NNGPClassifier(depth=depth, **CNN).fit(X, y)
    assert before == n * n and _bank.stats["entries_computed"] == n * n


def test_ascending_depths_continue_the_recursion(digits):
    X, y = digits
    for depth in (1, 2, 3, 4):
        NNGPClassifier(depth=depth, **CNN).fit(X, y)
    # convolutional states are kept (they fit the memory plan), so depths 2, 3
    # and 4 each start from the previous one
    assert _bank.stats["resumed"] == 3


def test_grid_search_over_depth_matches_an_uncached_search(digits):
    X, y = digits
    grid = {"depth": [1, 2, 3], "diag_reg": [1e-4, 1e-2]}
    cached = GridSearchCV(NTKClassifier(**CNN), grid, cv=3).fit(X, y)
    assert _bank.stats["resumed"] >= 2
    off = GridSearchCV(NTKClassifier(kernel_cache="off", **CNN), grid, cv=3).fit(X, y)
    np.testing.assert_array_equal(cached.cv_results_["mean_test_score"],
                                  off.cv_results_["mean_test_score"])


def test_execution_settings_do_not_leak_between_estimators(digits):
    """A failed fit leaves nothing behind; batch_size/device are not part of the key."""
    X, y = digits
    with pytest.raises(ValueError, match="batch_size"):
        NNGPClassifier(depth=2, batch_size=True, **CNN).fit(X, y)
    assert _bank.stats["entries_computed"] == 0
    a = NNGPClassifier(depth=2, **CNN).fit(X, y).decision_function(X)
    b = NNGPClassifier(depth=2, batch_size=7, **CNN).fit(X, y).decision_function(X)
    np.testing.assert_array_equal(a, b)  # second fit served from the bank
    assert _bank.stats["entries_computed"] == len(X) ** 2


def test_test_rows_add_cross_pages_only():
    rng = np.random.default_rng(0)
    X, Xt = rng.normal(size=(600, 5)), rng.normal(size=(700, 5))
    NNGPRegressor(depth=1).fit(X, X[:, 0]).predict(Xt)
    pages = next(iter(_bank._banks.values())).stores
    store = next(s for k, s in pages.items() if k[0] == "kernel")["nngp"]
    # train slots 0..599 (pages 0, 1), test slots 600..1299 (pages 1, 2): no (2, 2) page
    assert (2, 2) not in store.values
    assert store.known_mask(np.arange(600), np.arange(600)).all()


def test_rows_are_hashed_once_per_fit(monkeypatch, digits):
    X, y = digits
    calls = []
    real = _bank.row_keys
    monkeypatch.setattr(_bank, "row_keys", lambda A: calls.append(len(A)) or real(A))
    est = NNGPClassifier(depth=1).fit(X, y)
    est.predict(X[:10])
    assert calls == [len(X), 10]


@pytest.mark.parametrize("cls", [NNGPRegressor, NTKRegressor])
def test_cholesky_and_eigh_solvers_agree(cls):
    rng = np.random.default_rng(1)
    X, Xt = rng.normal(size=(40, 3)), rng.normal(size=(9, 3))
    Y = np.stack([np.sin(X[:, 0]), X[:, 1]], axis=1)
    a = cls(depth=2, solver="cholesky").fit(X, Y)
    b = cls(depth=2, solver="eigh").fit(X, Y)
    for ra, rb in zip(a.predict(Xt, return_std=True), b.predict(Xt, return_std=True)):
        np.testing.assert_allclose(ra, rb, rtol=1e-8, atol=1e-10)
    assert _bank.stats["eigh_computed"] == 1  # auto/cholesky never decompose


def test_fitted_state_holds_no_kernel_matrix():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(400, 6))
    for cls in (NNGPRegressor, NTKRegressor):
        est = cls(depth=2).fit(X, X[:, :2])
        big = [k for k, v in vars(est).items() if isinstance(v, np.ndarray) and v.size >= 400**2]
        assert big == []
        # X_fit_ + dual coefficients + targets + row keys, not 400 x 400 floats
        assert len(pickle.dumps(est)) < 400 * 400 * 8 / 4


def test_std_after_unpickling_fetches_the_kernel_again():
    rng = np.random.default_rng(3)
    X, Xt = rng.normal(size=(30, 3)), rng.normal(size=(5, 3))
    est = NTKRegressor(depth=2).fit(X, X[:, 0])
    expected = est.predict(Xt, return_std=True)
    again = pickle.loads(pickle.dumps(est))
    _bank.clear()
    for e, g in zip(expected, again.predict(Xt, return_std=True)):
        np.testing.assert_allclose(g, e, rtol=1e-10)


def test_ntk_mean_computes_only_the_ntk(digits):
    X, y = digits
    NTKClassifier(depth=2).fit(X, y).predict(X)
    kinds = {kind for bank in _bank._banks.values() for key, store in bank.stores.items()
             for kind in store if key[0] == "kernel"}
    assert kinds == {"ntk"}


def test_float32_kernel_is_solved_in_float64_with_a_warning(digits):
    X, y = digits
    X = np.concatenate([X, X[:40] + 1e-3])  # near-duplicates: ill-conditioned
    y = np.concatenate([y, y[:40]])
    # measured: estimated condition number ~1e7, so eps32 * cond > 10%
    with pytest.warns(RuntimeWarning, match=r"computed in float32 .* estimated condition "
                                            r"number of .* off by about \d+%"):
        f32 = NNGPClassifier(depth=2, dtype="float32", diag_reg=1e-5).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f64 = NNGPClassifier(depth=2, diag_reg=1e-5).fit(X, y)
    assert np.mean(f32.predict(X) == f64.predict(X)) > 0.9
    # where the float64 solve of the float32 kernel does fail, it refuses
    with pytest.raises(ValueError, match=r"not positive definite at diag_reg=1e-07 with a "
                                         r"dtype='float32' kernel \(pivot \d+ of 160"):
        NNGPClassifier(depth=2, dtype="float32", diag_reg=1e-7).fit(X, y)


def test_classifiers_and_regressors_are_siblings():
    for cls in (NNGPClassifier, NTKClassifier):
        assert not issubclass(cls, RegressorMixin)
        assert not hasattr(cls, "sample_y") and not hasattr(cls, "log_marginal_likelihood")
    assert hasattr(NNGPRegressor, "log_marginal_likelihood")
    assert not hasattr(NTKRegressor, "log_marginal_likelihood")


def test_resuming_a_sub_block_of_a_kept_state(digits):
    """A fold inside the rows of a kept state resumes from gathered host arrays
    (mirrored lower tiles included: tiles of 16 on 120 rows)."""
    X, y = digits
    for depth in (1, 2):  # depth 2 keeps its state for X x X
        NTKClassifier(depth=depth, batch_size=16, **CNN).fit(X, y)
    resumed = _bank.stats["resumed"]
    sub = X[::-3]  # another order, a subset: not the kept tiling
    est = NTKClassifier(depth=3, batch_size=16, **CNN).fit(sub, y[::-3])
    assert _bank.stats["resumed"] == resumed + 1
    ref = kernel_matrix(sub, get=("nngp", "ntk"), depth=3, **CNN)
    got = est._train_kernels(("nngp", "ntk"))
    np.testing.assert_allclose(got["ntk"], ref.ntk, rtol=1e-13, atol=0)
    np.testing.assert_allclose(got["nngp"], ref.nngp, rtol=1e-13, atol=0)


def test_rows_of_small_integers_never_share_an_entry():
    """Structured rows (float64 words with many zero bits) get distinct keys."""
    grid = np.array([[a, b] for a in range(-20, 21) for b in range(-20, 21)], dtype=float)
    grid = np.concatenate([grid, grid / 2, grid / 4])
    keys = _bank.row_keys(np.unique(grid, axis=0))
    assert len(set(keys.tolist())) == len(keys)


def test_sign_flips_change_the_row_key():
    keys = _bank.row_keys(np.array([[1.0, 2.0, 3.0], [-1.0, -2.0, 3.0], [-1.0, 2.0, -3.0]]))
    assert len(set(keys.tolist())) == 3


def test_pickling_leaves_the_live_estimator_intact():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(25, 3))
    est = NNGPRegressor(depth=2).fit(X, X[:, 0])
    before = est.predict(X[:4], return_std=True)
    pickle.dumps(est)
    for a, b in zip(before, est.predict(X[:4], return_std=True)):
        np.testing.assert_array_equal(a, b)


def test_failed_refit_keeps_the_previous_fit():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(6, 3))
    est = NNGPRegressor(depth=2).fit(x, x[:, 0])
    expected = est.predict(x)
    duplicates = np.concatenate([x, x])
    with pytest.raises(ValueError, match="not positive definite"):
        est.set_params(diag_reg=0.0).fit(duplicates, np.arange(12.0))
    np.testing.assert_array_equal(est.predict(x), expected)


def test_std_uses_the_fitted_parameters_after_set_params():
    rng = np.random.default_rng(6)
    X, Xt = rng.normal(size=(30, 3)), rng.normal(size=(5, 3))
    for est in (NNGPRegressor(depth=2, diag_reg=1e-2), NTKRegressor(depth=2, t=5.0)):
        est.fit(X, X[:, 0])
        mean, std = est.predict(Xt, return_std=True)
        est.set_params(diag_reg=10.0, **({"t": 0.1} if "t" in est.get_params() else {}))
        again = pickle.loads(pickle.dumps(est))  # no cached factor: rebuilt from the bank
        m2, s2 = again.predict(Xt, return_std=True)
        np.testing.assert_allclose(m2, mean, rtol=1e-12)
        np.testing.assert_allclose(s2, std, rtol=1e-10)


def test_cholesky_solver_refuses_a_finite_time():
    with pytest.raises(ValueError, match=r"solver='cholesky' cannot give the finite-time NTK "
                                         r"\(t=2\.0\)"):
        NTKRegressor(solver="cholesky", t=2.0).fit(np.eye(4), np.arange(4.0))
