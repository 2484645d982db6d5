"""Tests of sknngp.ensemble.AugmentedEnsemble with scikit-learn bases.

The kernel estimators are deliberately not used here: any estimator with the
sklearn API must work, and these tests must not depend on the kernel engine.
"""

import pickle

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.base import (
    BaseEstimator,
    ClassifierMixin,
    RegressorMixin,
    clone,
    is_classifier,
    is_regressor,
)
from sklearn.kernel_ridge import KernelRidge
from sklearn.linear_model import LogisticRegression, RidgeClassifier, SGDClassifier
from sklearn.metrics import r2_score
from sklearn.model_selection import GridSearchCV
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

from sknngp.ensemble import AugmentedEnsemble

SHAPE = (4, 5, 2)


def _images(n=60, shape=SHAPE, seed=0):
    """Strictly positive images with all-distinct pixels (so that every flip or
    shift of an image is recognisable, and zero padding stands out)."""
    rng = np.random.RandomState(seed)
    return rng.permutation(n * int(np.prod(shape))).reshape(n, *shape) + 1.0


class _Recorder(RegressorMixin, BaseEstimator):
    """Keeps what it was fitted on; accepts any rank, like an image estimator."""

    def __init__(self, random_state=None):
        self.random_state = random_state

    def fit(self, X, y):
        self.X_seen_ = np.array(X)
        self.n_features_in_ = int(np.prod(np.shape(X)[1:]))
        return self

    def predict(self, X):
        self.X_predict_shape_ = np.shape(X)
        return np.asarray(X).reshape(len(X), -1).sum(axis=1) + self.random_state % 7


class _LabelsOnly(ClassifierMixin, BaseEstimator):
    """A classifier with neither decision_function nor predict_proba."""

    def fit(self, X, y):
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        return np.full(len(X), self.classes_[0])


def _fitted_draws(augmentations, n=60, n_draws=6, random_state=0, **kwargs):
    X = _images(n)
    ens = AugmentedEnsemble(_Recorder(), augmentations=augmentations, n_draws=n_draws,
                            random_state=random_state, **kwargs)
    ens.fit(X, np.zeros(n))
    return X, [est.X_seen_ for est in ens.estimators_]


def _crop_offset(original, augmented, padding):
    """The (dy, dx) shift of ``original`` (zero fill) that gives ``augmented``."""
    h, w, _ = original.shape
    padded = np.pad(original, ((padding, padding), (padding, padding), (0, 0)))
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            if np.array_equal(padded[top:top + h, left:left + w], augmented):
                return top - padding, left - padding
    return None


# -- the augmentations -----------------------------------------------------------


def test_hflip_mirrors_about_half_of_the_images_of_each_draw():
    X, draws = _fitted_draws(("hflip",), n=200, n_draws=8)
    flipped_total = 0
    for X_draw in draws:
        assert X_draw.shape == X.shape  # original size, same layout
        same = np.all(X_draw == X, axis=(1, 2, 3))
        mirrored = np.all(X_draw == X[:, :, ::-1], axis=(1, 2, 3))
        assert np.all(same ^ mirrored)  # each image exactly one of the two
        flipped_total += mirrored.sum()
    # 1600 fair coins: 1/2 +- 5 standard deviations (0.0125 each).
    assert 0.4375 < flipped_total / 1600 < 0.5625
    # Draws differ from each other.
    assert not np.array_equal(draws[0], draws[1])


def test_hflip_mirrors_width_not_height_or_channels():
    X = np.arange(2 * 2 * 3 * 2, dtype=float).reshape(2, 2, 3, 2)
    ens = AugmentedEnsemble(_Recorder(), n_draws=20, random_state=0).fit(X, [0, 0])
    seen = [est.X_seen_[i] for est in ens.estimators_ for i in range(2)]
    mirrored = [X[i][:, ::-1, :] for i in range(2)]
    assert any(np.array_equal(s, mirrored[0]) for s in seen)
    assert mirrored[0][0, 0, 0] == X[0][0, 2, 0]  # columns swapped, channels kept


@pytest.mark.parametrize("padding", [1, 2])
def test_crop_is_a_zero_filled_shift_within_the_padding(padding):
    X, draws = _fitted_draws(("crop",), n=80, n_draws=6, crop_padding=padding)
    offsets = set()
    for X_draw in draws:
        assert X_draw.shape == X.shape
        for original, augmented in zip(X, X_draw):
            offset = _crop_offset(original, augmented, padding)
            assert offset is not None
            offsets.add(offset)
    # 480 uniform draws over the (2p + 1)^2 offsets hit every one of them.
    span = range(-padding, padding + 1)
    assert offsets == {(dy, dx) for dy in span for dx in span}


def test_crop_then_hflip_composes_both():
    X, draws = _fitted_draws(("crop", "hflip"), n=80, n_draws=4, crop_padding=1)
    kinds = set()
    for X_draw in draws:
        for original, augmented in zip(X, X_draw):
            plain = _crop_offset(original, augmented, 1)
            flipped = _crop_offset(original, augmented[:, ::-1], 1)
            assert plain is not None or flipped is not None
            kinds.add(plain is None)
    assert kinds == {True, False}


def test_no_augmentation_keeps_the_data():
    X, draws = _fitted_draws((), n=10, n_draws=3)
    for X_draw in draws:
        assert_array_equal(X_draw, X)


def test_draws_reproducible_with_random_state():
    _, first = _fitted_draws(("crop", "hflip"), random_state=3, crop_padding=1)
    _, again = _fitted_draws(("crop", "hflip"), random_state=3, crop_padding=1)
    _, other = _fitted_draws(("crop", "hflip"), random_state=4, crop_padding=1)
    for a, b in zip(first, again):
        assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(first, other))


def test_clones_get_distinct_reproducible_seeds_including_nested():
    X, y = _images(40).reshape(40, -1), np.arange(40) % 2
    base = make_pipeline(StandardScaler(), SGDClassifier(random_state=0))
    ens = AugmentedEnsemble(base, augmentations=(), n_draws=4, random_state=1).fit(X, y)
    seeds = [est.get_params()["sgdclassifier__random_state"] for est in ens.estimators_]
    assert len(set(seeds)) == 4
    again = clone(ens).fit(X, y)
    assert seeds == [est.get_params()["sgdclassifier__random_state"] for est in again.estimators_]
    assert base.get_params()["sgdclassifier__random_state"] == 0  # template untouched


# -- layouts ---------------------------------------------------------------------------


def test_rows_with_input_shape_equal_4d_images():
    X = _images(30)
    rows = X.reshape(30, -1)
    kw = dict(augmentations=("crop", "hflip"), crop_padding=1, n_draws=3, random_state=0)
    y = np.arange(30.0)
    # Same seed, same draws, whichever layout: KernelRidge gets rows, the
    # recorder (fitted on 4-D images) gets images.
    ens2 = AugmentedEnsemble(KernelRidge(alpha=1.0), input_shape=SHAPE, **kw).fit(rows, y)
    ens4 = AugmentedEnsemble(_Recorder(), **kw).fit(X, y)
    for est2, est4 in zip(ens2.estimators_, ens4.estimators_):
        assert est4.X_seen_.shape == X.shape
        assert_array_equal(est2.X_fit_, est4.X_seen_.reshape(30, -1))


def test_base_receives_the_layout_used_in_fit():
    X = _images(12)
    rows = X.reshape(12, -1)
    fitted_4d = AugmentedEnsemble(_Recorder(), n_draws=2, random_state=0).fit(X, np.zeros(12))
    fitted_4d.predict(rows)
    assert fitted_4d.estimators_[0].X_predict_shape_ == X.shape
    fitted_2d = AugmentedEnsemble(_Recorder(), n_draws=2, input_shape=SHAPE,
                                  random_state=0).fit(rows, np.zeros(12))
    fitted_2d.predict(X)
    assert fitted_2d.estimators_[0].X_predict_shape_ == rows.shape
    assert fitted_2d.n_features_in_ == 40 and fitted_2d.input_shape_ == SHAPE


# -- averaging and estimator type ------------------------------------------------------


def _digit_like(n=90, n_classes=3, seed=0):
    rng = np.random.RandomState(seed)
    y = np.arange(n) % n_classes
    centers = rng.normal(size=(n_classes, 40))
    return centers[y] + 0.8 * rng.normal(size=(n, 40)), y


def test_classifier_averages_decision_functions():
    X, y = _digit_like()
    ens = AugmentedEnsemble(RidgeClassifier(), augmentations=("hflip",), n_draws=5,
                            input_shape=SHAPE, random_state=0).fit(X, y)
    members = np.array([est.decision_function(X) for est in ens.estimators_])
    assert_allclose(ens.decision_function(X), members.mean(axis=0))
    assert_array_equal(ens.predict(X), ens.classes_[members.mean(axis=0).argmax(axis=1)])
    assert ens.score(X, y) == np.mean(ens.predict(X) == y)
    assert not hasattr(ens, "predict_proba")  # RidgeClassifier has none


def test_binary_classifier_thresholds_the_averaged_score_at_zero():
    X, y = _digit_like(n_classes=2)
    labels = np.array(["cat", "dog"])[y]
    ens = AugmentedEnsemble(LogisticRegression(), n_draws=4, input_shape=SHAPE,
                            random_state=0).fit(X, labels)
    scores = np.mean([est.decision_function(X) for est in ens.estimators_], axis=0)
    assert ens.decision_function(X).shape == (len(X),)
    assert_array_equal(ens.predict(X), np.where(scores > 0, "dog", "cat"))
    assert_allclose(ens.predict_proba(X),
                    np.mean([est.predict_proba(X) for est in ens.estimators_], axis=0))


def test_classifier_without_decision_function_averages_probabilities():
    X, y = _digit_like()
    ens = AugmentedEnsemble(KNeighborsClassifier(5), n_draws=3, input_shape=SHAPE,
                            random_state=0).fit(X, y + 10)
    proba = np.mean([est.predict_proba(X) for est in ens.estimators_], axis=0)
    assert not hasattr(ens, "decision_function")
    assert_allclose(ens.predict_proba(X), proba)
    assert_array_equal(ens.predict(X), ens.classes_[proba.argmax(axis=1)])
    assert_array_equal(ens.classes_, [10, 11, 12])


def test_regressor_averages_predictions():
    X, _ = _digit_like()
    y = np.column_stack([X[:, 0] + X[:, 9], X[:, 1]])
    ens = AugmentedEnsemble(KernelRidge(alpha=0.1), augmentations=("crop", "hflip"),
                            crop_padding=1, n_draws=4, input_shape=SHAPE,
                            random_state=0).fit(X, y)
    members = np.array([est.predict(X) for est in ens.estimators_])
    assert_allclose(ens.predict(X), members.mean(axis=0))
    assert ens.predict(X).shape == (len(X), 2)
    assert ens.score(X, y) == pytest.approx(r2_score(y, ens.predict(X)))


def test_type_follows_the_wrapped_estimator():
    clf = AugmentedEnsemble(RidgeClassifier())
    reg = AugmentedEnsemble(KernelRidge())
    assert is_classifier(clf) and not is_regressor(clf)
    assert is_regressor(reg) and not is_classifier(reg)
    assert not hasattr(reg, "decision_function") and not hasattr(reg, "predict_proba")


def test_grid_search_reaches_the_wrapped_estimator():
    X, y = _digit_like()
    ens = AugmentedEnsemble(RidgeClassifier(), n_draws=2, input_shape=SHAPE, random_state=0)
    search = GridSearchCV(ens, {"estimator__alpha": [0.1, 10.0]}, cv=3).fit(X, y)
    assert search.best_params_["estimator__alpha"] in (0.1, 10.0)
    assert search.best_estimator_.estimators_[0].alpha == search.best_params_["estimator__alpha"]


def test_clone_and_pickle():
    X, y = _digit_like()
    ens = AugmentedEnsemble(RidgeClassifier(alpha=3.0), augmentations=["crop"], crop_padding=1,
                            n_draws=3, input_shape=SHAPE, random_state=0)
    copy = clone(ens)
    assert copy.get_params()["estimator"] is not ens.estimator
    assert copy.get_params(deep=True)["estimator__alpha"] == 3.0
    assert not hasattr(copy, "estimators_")
    ens.fit(X, y)
    restored = pickle.loads(pickle.dumps(ens))
    assert_allclose(restored.decision_function(X), ens.decision_function(X))
    assert_array_equal(clone(ens).fit(X, y).predict(X), ens.predict(X))


# -- errors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "augmentations, problem",
    [(("rotate",), "unknown 'rotate'"), (("hflip", "hflip"), "a repeated name"),
     ((3,), "unknown 3")],
)
def test_error_bad_augmentation_names(augmentations, problem):
    ens = AugmentedEnsemble(KernelRidge(), augmentations=augmentations, input_shape=SHAPE)
    with pytest.raises(ValueError, match=rf"augmentations=.* has {problem}; pass a tuple of "
                                         r"distinct names among \('hflip', 'crop'\)"):
        ens.fit(_images(5), np.zeros(5))


def test_error_augmentations_given_as_a_string():
    with pytest.raises(ValueError, match=r"'augmentations' parameter of AugmentedEnsemble must "
                                         r"be an instance of 'tuple' or an instance of 'list'\. "
                                         r"Got 'hflip' instead"):
        AugmentedEnsemble(KernelRidge(), augmentations="hflip").fit(_images(5), np.zeros(5))


def test_error_rows_without_input_shape():
    with pytest.raises(ValueError, match=r"augmentations=\('hflip',\) act on images, but X is "
                                         r"2-D and input_shape is None\. Pass input_shape="):
        AugmentedEnsemble(KernelRidge()).fit(np.ones((5, 40)), np.zeros(5))


def test_error_input_shape_does_not_match_rows():
    with pytest.raises(ValueError, match=r"input_shape=\(4, 5, 2\) describes images of 40 "
                                         r"values, but X has 41 features"):
        AugmentedEnsemble(KernelRidge(), input_shape=SHAPE).fit(np.ones((5, 41)), np.zeros(5))


def test_error_predict_images_of_another_shape():
    ens = AugmentedEnsemble(_Recorder(), n_draws=1, random_state=0).fit(_images(5), np.zeros(5))
    with pytest.raises(ValueError, match=r"images of shape \(5, 4, 2\).*input_shape is "
                                         r"\(4, 5, 2\)"):
        ens.predict(np.ones((2, 5, 4, 2)))


def test_error_classifier_without_scores():
    with pytest.raises(ValueError, match=r"averages decision_function or predict_proba, but the "
                                         r"classifier estimator=_LabelsOnly\(\) has neither"):
        AugmentedEnsemble(_LabelsOnly(), input_shape=SHAPE).fit(np.ones((4, 40)), [0, 1, 0, 1])


def test_error_n_draws_and_estimator_are_validated():
    with pytest.raises(ValueError, match=r"'n_draws' parameter of AugmentedEnsemble must be an "
                                         r"int in the range \[1, inf\)\. Got 0 instead"):
        AugmentedEnsemble(KernelRidge(), n_draws=0).fit(_images(5), np.zeros(5))
    with pytest.raises(ValueError, match=r"'estimator' parameter of AugmentedEnsemble must be an "
                                         r"object implementing 'fit' and 'predict'"):
        AugmentedEnsemble("ridge").fit(_images(5), np.zeros(5))


# -- scikit-learn's common checks ----------------------------------------------------------
# The common checks feed 2-D data of many widths (1 to 10 features), which are
# not images of a fixed shape; with augmentations, fit rightly refuses 2-D data
# without input_shape. So the common checks run on augmentation-free ensembles,
# which exercise everything the meta-estimator adds (parameters, cloning,
# validation, averaging, tags); the image path is covered by the tests above.


@parametrize_with_checks(
    [
        AugmentedEnsemble(RidgeClassifier(), augmentations=(), n_draws=3),
        AugmentedEnsemble(LogisticRegression(), augmentations=(), n_draws=2),
        AugmentedEnsemble(KernelRidge(), augmentations=(), n_draws=2),
    ]
)
def test_sklearn_compatible(estimator, check):
    check(estimator)
