"""predict_proba of the kernel classifiers: leave-one-out temperature scaling.

References are independent of the closed form: leave-one-out outputs are
checked against refits without the row, ``diag((U^T U)^-1)`` against a dense
inverse, and the temperature against a grid search of the same loss.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose
from sklearn.datasets import load_digits
from sklearn.ensemble import VotingClassifier
from sklearn.metrics import log_loss, roc_auc_score
from sklearn.model_selection import GridSearchCV

from sknngp import NNGPClassifier, NNGPRegressor, NTKClassifier, NTKRegressor, _loo

ARCH = dict(architecture="fc", depth=2)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:300] / 16, y[:300], X[300:500] / 16, y[300:500]


def _small(n=36, seed=0, n_classes=3):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 5))
    y = np.arange(n) % n_classes
    X[:, 0] += 1.5 * y  # some signal
    return X, y


@pytest.mark.parametrize("Classifier, Regressor, params", [
    (NNGPClassifier, NNGPRegressor, dict(solver="cholesky")),
    (NNGPClassifier, NNGPRegressor, dict(solver="eigh")),
    (NTKClassifier, NTKRegressor, dict(solver="auto")),
])
def test_loo_outputs_equal_refits_without_the_row(monkeypatch, Classifier, Regressor, params):
    X, y = _small()
    seen = {}

    def spy(scores, labels):
        seen["scores"], seen["labels"] = scores, labels
        return 1.0, 0.0

    monkeypatch.setattr(_loo, "fit_temperature", spy)
    # an absolute ridge keeps lambda the same when a row is left out
    common = dict(**ARCH, diag_reg=0.05, diag_reg_absolute_scale=True, **params)
    Classifier(**common).fit(X, y)
    Y = np.eye(3)[y] - 1 / 3
    assert_allclose(seen["labels"], y)
    for i in (0, 7, 20, 35):
        keep = np.arange(len(X)) != i
        ref = Regressor(**common).fit(X[keep], Y[keep]).predict(X[i:i + 1])
        assert_allclose(seen["scores"][i], ref[0], rtol=1e-8, atol=1e-10)


def test_inverse_diagonal_matches_a_dense_inverse():
    rng = np.random.RandomState(1)
    B = rng.normal(size=(70, 70))
    A = B @ B.T + 70 * np.eye(70)
    U = np.linalg.cholesky(A).T
    rows = np.array([0, 1, 5, 33, 34, 60, 69])
    assert_allclose(_loo.inverse_diagonal(U, rows), np.diag(np.linalg.inv(A))[rows], rtol=1e-12)
    assert_allclose(_loo.inverse_diagonal(U, np.arange(70)), np.diag(np.linalg.inv(A)),
                    rtol=1e-12)


def test_loo_rows_cover_sorted_data_evenly():
    assert_allclose(_loo.loo_rows(5), np.arange(5))
    assert_allclose(_loo.loo_rows(1000), np.arange(1000))  # cheap: every row
    assert 128 < len(_loo.loo_rows(2000)) < 2000
    rows = _loo.loo_rows(10_000)
    assert len(rows) == _loo.LOO_ROWS and rows[0] == 0 and rows[-1] == 9_999
    assert np.ptp(np.diff(rows)) <= 1


def test_temperature_minimises_the_smoothed_loss_on_a_grid():
    rng = np.random.RandomState(2)
    scores = rng.normal(size=(200, 4))
    labels = np.where(rng.rand(200) < 0.7, scores.argmax(1), rng.randint(0, 4, 200))
    T, loss = _loo.fit_temperature(scores, labels)
    grid = np.exp(np.linspace(np.log(1e-3), np.log(1e3), 4001))
    smoothed = [_loo.mean_log_loss(1 / t, scores, labels, 1 / 201) for t in grid]
    assert_allclose(T, grid[np.argmin(smoothed)], rtol=5e-3)
    # the reported loss is the plain log-loss at that temperature
    assert_allclose(loss, log_loss(labels, _loo.softmax_proba(scores, T)), rtol=1e-10)
    # one pseudo-observation in 201 barely moves T on noisy data
    plain = [_loo.mean_log_loss(1 / t, scores, labels) for t in grid]
    assert_allclose(T, grid[np.argmin(plain)], rtol=0.05)


def test_separable_rows_keep_a_finite_temperature():
    """All rows right: the unsmoothed optimum is T -> 0 (one-hot probabilities)."""
    scores = np.eye(3)[np.arange(90) % 3] + 0.01 * np.random.RandomState(0).normal(size=(90, 3))
    labels = np.arange(90) % 3
    T, _ = _loo.fit_temperature(scores, labels)
    P = _loo.softmax_proba(scores, T)
    assert T > 1.5 * (1 / _loo.BETA_BOUNDS[1])
    # the most confident probability leaves room for a mistake: about 1 - 1/(m+1)
    assert 0.98 < P.max() < 1 - 1e-4


@pytest.mark.parametrize("Classifier, params", [
    (NNGPClassifier, {}), (NTKClassifier, {}), (NTKClassifier, dict(t=50.0)),
])
@pytest.mark.parametrize("n_classes", [2, 10])
def test_probabilities_sum_to_one_and_agree_with_predict(digits, Classifier, params, n_classes):
    X, y, X_test, y_test = digits
    keep, keep_test = y < n_classes, y_test < n_classes
    clf = Classifier(**ARCH, **params).fit(X[keep], y[keep])
    P = clf.predict_proba(X_test[keep_test])
    assert P.shape == (keep_test.sum(), n_classes)
    assert_allclose(P.sum(axis=1), 1.0, rtol=1e-12)
    assert np.all(P >= 0)
    assert np.array_equal(clf.classes_[P.argmax(axis=1)], clf.predict(X_test[keep_test]))
    assert_allclose(np.log(P), clf.predict_log_proba(X_test[keep_test]), rtol=1e-9, atol=1e-12)
    assert 0 < clf.temperature_ < np.inf
    # calibrated better than the uniform guess and than the raw (T=1) softmax
    loss = log_loss(y_test[keep_test], P, labels=clf.classes_)
    scores = clf.decision_function(X_test[keep_test])
    if n_classes == 2:  # softmax is shift-invariant: [0, f1 - f0] ~ [f0, f1]
        scores = np.c_[np.zeros(len(P)), scores]
    raw = _loo.softmax_proba(scores, 1.0)
    assert loss < np.log(n_classes)
    assert loss < log_loss(y_test[keep_test], raw, labels=clf.classes_)


def test_sklearn_tools_that_need_probabilities(digits):
    X, y, X_test, y_test = digits
    clf = NNGPClassifier(**ARCH).fit(X, y)
    assert roc_auc_score(y_test, clf.predict_proba(X_test), multi_class="ovr") > 0.99
    search = GridSearchCV(NNGPClassifier(**ARCH), {"diag_reg": [1e-3, 1e-1]},
                          scoring="roc_auc_ovr", cv=3).fit(X, y)
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_score_ > 0.99
    vote = VotingClassifier([("nngp", NNGPClassifier(**ARCH)), ("ntk", NTKClassifier(**ARCH))],
                            voting="soft").fit(X, y)
    single = NTKClassifier(**ARCH).fit(X, y).score(X_test, y_test)
    assert vote.score(X_test, y_test) >= min(clf.score(X_test, y_test), single) - 0.02
    assert_allclose(vote.predict_proba(X_test).sum(axis=1), 1.0)


def test_temperature_survives_pickling(digits):
    import pickle

    X, y, X_test, _ = digits
    clf = NNGPClassifier(**ARCH).fit(X, y)
    clone = pickle.loads(pickle.dumps(clf))
    assert_allclose(clone.predict_proba(X_test), clf.predict_proba(X_test))
