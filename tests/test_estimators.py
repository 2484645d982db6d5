"""Kernel estimators against closed forms computed directly from kernel_matrix."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.linalg
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sknngp import _rowstore
from sknngp import (
    NNGPClassifier,
    NNGPRegressor,
    NTKClassifier,
    NTKRegressor,
    kernel_matrix,
)
from sknngp import _bank, _solvers

ARCH = dict(architecture="fc", depth=2, W_std=1.3, b_std=0.2)


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    Y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2]], axis=1)
    Xt = rng.normal(size=(7, 4))
    return X, Y, Xt


def _reg(K, diag_reg):
    return K + diag_reg * np.trace(K) / len(K) * np.eye(len(K))


def test_nngp_posterior_matches_closed_form(data):
    X, Y, Xt = data
    reg = NNGPRegressor(diag_reg=1e-3, **ARCH).fit(X, Y)
    K, Ks, Kss = (kernel_matrix(X, **ARCH), kernel_matrix(Xt, X, **ARCH),
                  kernel_matrix(Xt, **ARCH))
    A = _reg(K, 1e-3)
    mean = Ks @ np.linalg.solve(A, Y)
    cov = Kss - Ks @ np.linalg.solve(A, Ks.T)
    m, c = reg.predict(Xt, return_cov=True)
    np.testing.assert_allclose(m, mean, rtol=1e-9, atol=1e-12)
    # two targets: GaussianProcessRegressor's shapes, one copy per target
    np.testing.assert_allclose(c, np.stack([cov, cov], axis=-1), rtol=1e-7, atol=1e-10)
    m1, s = reg.predict(Xt, return_std=True)
    std = np.sqrt(np.diag(cov))
    np.testing.assert_allclose(s, np.stack([std, std], axis=-1), rtol=1e-6, atol=1e-9)
    # one output column
    m0 = NNGPRegressor(diag_reg=1e-3, **ARCH).fit(X, Y[:, 0]).predict(Xt)
    assert m0.shape == (7,)
    np.testing.assert_allclose(m0, mean[:, 0], rtol=1e-9, atol=1e-12)


def test_absolute_diag_reg(data):
    X, Y, Xt = data
    reg = NNGPRegressor(diag_reg=0.05, diag_reg_absolute_scale=True, **ARCH).fit(X, Y)
    K, Ks = kernel_matrix(X, **ARCH), kernel_matrix(Xt, X, **ARCH)
    np.testing.assert_allclose(
        reg.predict(Xt), Ks @ np.linalg.solve(K + 0.05 * np.eye(len(K)), Y), rtol=1e-9
    )


@pytest.mark.parametrize("t", [None, 0.5, 30.0])
def test_ntk_ensemble_matches_closed_form(data, t):
    X, Y, Xt = data
    lr = 0.7
    est = NTKRegressor(diag_reg=1e-3, t=t, learning_rate=lr, **ARCH).fit(X, Y)
    k = kernel_matrix(X, get=("nngp", "ntk"), **ARCH)
    ks = kernel_matrix(Xt, X, get=("nngp", "ntk"), **ARCH)
    kss = kernel_matrix(Xt, get="nngp", **ARCH)
    Th, K = _reg(k.ntk, 1e-3), _reg(k.nngp, 1e-3)
    if t is None:
        T = np.linalg.inv(Th)
    else:  # Theta^-1 (I - exp(-lr Theta t / m)), m = Y.size
        T = np.linalg.solve(Th, np.eye(len(Th)) - scipy.linalg.expm(-lr * Th * t / Y.size))
    mean = ks.ntk @ T @ Y
    cov = kss + ks.ntk @ T @ K @ T.T @ ks.ntk.T - ks.ntk @ T @ ks.nngp.T - ks.nngp @ T.T @ ks.ntk.T
    m, c = est.predict(Xt, return_cov=True)
    np.testing.assert_allclose(m, mean, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(c, np.stack([cov, cov], axis=-1), rtol=1e-6, atol=1e-9)
    _, s = est.predict(Xt, return_std=True)
    std = np.sqrt(np.clip(np.diag(cov), 0, None))
    np.testing.assert_allclose(s, np.stack([std, std], axis=-1), rtol=1e-5, atol=1e-8)


def test_ntk_finite_time_approaches_converged(data):
    X, Y, Xt = data
    late = NTKRegressor(t=1e7, **ARCH).fit(X, Y).predict(Xt)
    conv = NTKRegressor(t=None, **ARCH).fit(X, Y).predict(Xt)
    early = NTKRegressor(t=1e-3, **ARCH).fit(X, Y).predict(Xt)
    np.testing.assert_allclose(late, conv, rtol=1e-6, atol=1e-8)
    assert np.abs(early).max() < 0.05 * np.abs(conv).max()


def test_log_marginal_likelihood(data):
    X, Y, _ = data
    reg = NNGPRegressor(diag_reg=1e-2, **ARCH).fit(X, Y)
    A = _reg(kernel_matrix(X, **ARCH), 1e-2)
    _, logdet = np.linalg.slogdet(A)
    expected = sum(
        -0.5 * y @ np.linalg.solve(A, y) - 0.5 * logdet - 0.5 * len(y) * np.log(2 * np.pi)
        for y in Y.T
    )
    assert reg.log_marginal_likelihood() == pytest.approx(expected, rel=1e-9)
    other = NNGPRegressor(diag_reg=0.1, **ARCH).fit(X, Y).log_marginal_likelihood()
    assert reg.log_marginal_likelihood(0.1) == pytest.approx(other, rel=1e-12)


def test_sample_y_moments(data):
    X, Y, Xt = data
    reg = NNGPRegressor(diag_reg=1e-2, **ARCH).fit(X, Y[:, 0])
    draws = reg.sample_y(Xt[:3], n_samples=4000, random_state=1)
    mean, std = reg.predict(Xt[:3], return_std=True)
    assert draws.shape == (3, 4000)
    # Monte Carlo: 5 standard errors of the sample mean
    assert np.all(np.abs(draws.mean(1) - mean) < 5 * std / np.sqrt(4000) + 1e-12)
    assert reg_multi_shape(reg, X, Y, Xt) == (3, 2, 5)


def reg_multi_shape(reg, X, Y, Xt):
    return NNGPRegressor(**ARCH).fit(X, Y).sample_y(Xt[:3], n_samples=5).shape


@pytest.mark.parametrize("cls, reg_cls", [(NNGPClassifier, NNGPRegressor), (NTKClassifier, NTKRegressor)])
def test_classifier_is_regression_on_centered_one_hot(cls, reg_cls):
    X, y = load_digits(return_X_y=True)
    X, y = X[:120] / 16, y[:120]
    clf = cls(**ARCH).fit(X[:90], y[:90])
    Y = np.eye(10)[y[:90]] - 0.1
    scores = reg_cls(**ARCH).fit(X[:90], Y).predict(X[90:])
    np.testing.assert_allclose(clf.decision_function(X[90:]), scores, rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(clf.predict(X[90:]), np.argmax(scores, 1))
    assert clf.score(X[90:], y[90:]) == np.mean(np.argmax(scores, 1) == y[90:])
    np.testing.assert_array_equal(clf.classes_, np.arange(10))


def test_binary_decision_function_and_string_labels():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = np.where(X[:, 0] > 0, "pos", "neg")
    clf = NNGPClassifier(**ARCH).fit(X, y)
    d = clf.decision_function(X)
    assert d.shape == (40,)
    np.testing.assert_array_equal(clf.predict(X), np.where(d > 0, "pos", "neg"))
    assert clf.score(X, y) > 0.9


def test_images_4d_equal_2d_with_input_shape():
    X, y = load_digits(return_X_y=True)
    X = X[:60] / 16
    kw = dict(architecture="cnn-vec", depth=1)
    a = NNGPClassifier(input_shape=(8, 8, 1), **kw).fit(X[:40], y[:40]).decision_function(X[40:])
    b = NNGPClassifier(**kw).fit(X[:40].reshape(-1, 8, 8, 1), y[:40]).decision_function(
        X[40:].reshape(-1, 8, 8, 1))
    np.testing.assert_allclose(a, b, rtol=1e-12)


def test_pickle_round_trip(data):
    X, Y, Xt = data
    reg = NTKRegressor(t=3.0, **ARCH).fit(X, Y)
    again = pickle.loads(pickle.dumps(reg))
    np.testing.assert_array_equal(again.predict(Xt), reg.predict(Xt))


# ---------------------------------------------------------------- errors

def test_not_positive_definite_names_diag_reg_and_dtype():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    X = np.concatenate([x, x])  # duplicates: singular kernel
    with pytest.raises(ValueError, match=r"NNGP train kernel is not positive definite at "
                       r"diag_reg=0(\.0)? with a dtype='float64' kernel \(pivot \d+ of 10 "
                       r"failed\)\. Try a larger diag_reg"):
        NNGPRegressor(diag_reg=0.0, **ARCH).fit(X, np.arange(10.0))
    with pytest.raises(ValueError, match=r"NTK train kernel is not positive definite.*dtype='float32'"):
        NTKRegressor(diag_reg=0.0, dtype="float32", **ARCH).fit(X, np.arange(10.0))
    NNGPRegressor(diag_reg=1e-3, **ARCH).fit(X, np.arange(10.0))  # regularized: fine


def test_nan_input_rejected(data):
    X, Y, _ = data
    X = X.copy()
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        NNGPRegressor().fit(X, Y)


def test_negative_variances_clipped_with_warning():
    with pytest.warns(RuntimeWarning, match="Predicted variances smaller than 0"):
        out = _solvers.clip_variance(np.array([1.0, -1e-17, 0.5]),
                                       lambda m: warnings.warn(m, RuntimeWarning))
    np.testing.assert_array_equal(out, [1.0, 0.0, 0.5])


def test_predict_std_on_train_points_is_finite(data):
    X, Y, _ = data
    reg = NNGPRegressor(diag_reg=1e-12, **ARCH).fit(X, Y[:, 0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        _, s = reg.predict(X, return_std=True)
    assert np.all(np.isfinite(s)) and np.all(s >= 0)


def test_input_shape_mismatch(data):
    X, Y, _ = data
    with pytest.raises(ValueError, match=r"input_shape=\(2, 3, 1\) holds 6 values per sample but X has 4"):
        NNGPRegressor(input_shape=(2, 3, 1), architecture="cnn-vec").fit(X, Y)


def test_return_std_and_cov_exclusive(data):
    X, Y, Xt = data
    reg = NNGPRegressor(**ARCH).fit(X, Y)
    with pytest.raises(ValueError, match="At most one of return_std and return_cov"):
        reg.predict(Xt, return_std=True, return_cov=True)


def test_bad_parameter_named():
    with pytest.raises(ValueError, match="'architecture' parameter of NNGPRegressor"):
        NNGPRegressor(architecture="resnet").fit(np.ones((3, 2)), np.ones(3))
    with pytest.raises(ValueError, match="'diag_reg' parameter of NTKRegressor"):
        NTKRegressor(diag_reg=-1).fit(np.ones((3, 2)), np.ones(3))


# ---------------------------------------------------------- kernel reuse

def test_grid_search_reuses_kernel_entries_and_matches_uncached():
    X, y = load_digits(return_X_y=True)
    X, y = X[:150] / 16, y[:150]
    n = len(X)
    grid = {"diag_reg": [1e-4, 1e-2, 1.0]}
    _bank.clear()
    gs = GridSearchCV(NNGPClassifier(**ARCH), grid, cv=3).fit(X, y)
    # Fold kernels are sub-blocks of K(X, X): every entry is computed at most
    # once, whatever the number of diag_reg values (3 here) and folds; the
    # counter counts computed tile entries, which can revisit a few entries
    # when a block's missing rows and columns do not form a rectangle.
    assert _bank.stats["entries_computed"] <= 1.2 * n * n
    # Cholesky solves: no eigendecomposition at all
    assert _bank.stats["eigh_computed"] == 0
    gs_off = GridSearchCV(NNGPClassifier(kernel_cache="off", **ARCH), grid, cv=3).fit(X, y)
    np.testing.assert_allclose(gs.cv_results_["mean_test_score"],
                               gs_off.cv_results_["mean_test_score"])


def test_grid_search_in_pipeline_computes_each_fold_once():
    """With a StandardScaler fitted per fold the fold kernels differ, but each is
    still computed once for all diag_reg values."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:150] / 16, y[:150]
    grid = {"nngpclassifier__diag_reg": [1e-4, 1e-2, 1.0]}
    _bank.clear()
    GridSearchCV(make_pipeline(StandardScaler(), NNGPClassifier(**ARCH)), grid, cv=3).fit(X, y)
    per_fold = 100 * 100 + 50 * 100  # train x train and test x train
    assert _bank.stats["entries_computed"] == 3 * per_fold + 150 * 150


def test_cache_never_stale():
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(20, 3)), rng.normal(size=20)
    _bank.clear()
    a = NNGPRegressor(**ARCH).fit(X, y).predict(X[:4])
    X2 = X.copy()
    X2[0, 0] += 1e-9  # a changed sample has a new identity
    b = NNGPRegressor(**ARCH).fit(X2, y).predict(X2[:4])
    c = NNGPRegressor(kernel_cache="off", **ARCH).fit(X2, y).predict(X2[:4])
    np.testing.assert_allclose(b, c, rtol=1e-11)  # equal up to tiling round-off
    assert not np.allclose(a, b, rtol=1e-11, atol=0)
    d = NNGPRegressor(**{**ARCH, "W_std": 1.0}).fit(X, y).predict(X[:4])
    e = NNGPRegressor(kernel_cache="off", **{**ARCH, "W_std": 1.0}).fit(X, y).predict(X[:4])
    np.testing.assert_allclose(d, e, rtol=1e-11)


def test_grid_search_with_worker_processes_matches_sequential():
    """n_jobs > 1: each worker keeps its own kernel bank; results are unchanged."""
    X, y = load_digits(return_X_y=True)
    X, y = X[:90] / 16, y[:90]
    grid = {"diag_reg": [1e-4, 1.0], "depth": [1]}
    seq = GridSearchCV(NNGPClassifier(**ARCH), grid, cv=3).fit(X, y)
    par = GridSearchCV(NNGPClassifier(**ARCH), grid, cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(par.cv_results_["mean_test_score"],
                               seq.cv_results_["mean_test_score"])


def test_on_disk_cache_shared_by_worker_processes(tmp_path):
    X, y = load_digits(return_X_y=True)
    X, y = X[:90] / 16, y[:90]
    grid = {"diag_reg": [1e-4, 1.0]}
    seq = GridSearchCV(NNGPClassifier(kernel_cache="off", **ARCH), grid, cv=3).fit(X, y)
    disk = NNGPClassifier(kernel_cache=str(tmp_path / "kcache"), **ARCH)
    par = GridSearchCV(disk, grid, cv=3, n_jobs=2).fit(X, y)
    np.testing.assert_allclose(par.cv_results_["mean_test_score"],
                               seq.cv_results_["mean_test_score"])
    stored = [p for p in (tmp_path / "kcache").rglob("*") if p.parent.parent.name == "c"]
    # 90 rows: one block of the rows and one kernel block, shared by the folds
    # and the worker processes (each fills in the rows it meets)
    assert {p.parts[-4] for p in stored} == {"x", "nngp"}, stored
    assert len(stored) == 2, stored
    with pytest.raises(ValueError, match="kernel_cache must be 'memory', 'off' or a directory"):
        NNGPClassifier(kernel_cache="", **ARCH).fit(X, y)


def test_on_disk_cache_verifies_blocks_and_never_unpickles(tmp_path, monkeypatch):
    rng = np.random.default_rng(7)
    X, Xt = rng.normal(size=(20, 3)), rng.normal(size=(4, 3))
    where = tmp_path / "kcache"
    expected = NNGPRegressor(kernel_cache="off", **ARCH).fit(X, X[:, 0]).predict(Xt)
    NNGPRegressor(kernel_cache=str(where), **ARCH).fit(X, X[:, 0]).predict(Xt)
    (block,) = [p for p in where.rglob("*") if p.parent.parent.name == "c"
                and p.parts[-4] == "nngp"]
    good = block.read_bytes()
    # a flipped byte, a truncated chunk, a planted pickle in its place
    for bad in (bytes([good[0] ^ 0xFF]) + good[1:], good[:50], pickle.dumps(expected)):
        block.write_bytes(bad)
        got = NNGPRegressor(kernel_cache=str(where), **ARCH).fit(X, X[:, 0]).predict(Xt)
        np.testing.assert_allclose(got, expected, rtol=1e-11)
        assert block.read_bytes() != bad  # recomputed and rewritten
    calls = []
    monkeypatch.setattr(_rowstore, "compute", lambda *a, **k: calls.append(1))
    got = NNGPRegressor(kernel_cache=str(where), **ARCH).fit(X, X[:, 0]).predict(Xt)
    np.testing.assert_allclose(got, expected, rtol=1e-11)
    assert calls == []  # the rewritten block verifies: nothing is computed again
