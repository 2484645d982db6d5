"""Ensembles of kernel (or any) predictors over random augmented draws.

Training a kernel method on fully augmented data multiplies ``n`` and the
``O(n^2)`` kernel (``O(n^3)`` solve). Lee et al. (2020, Sec. 3.12) instead fit
several predictors, each on one random augmented copy of the training set of
the *original* size, and average their test predictions.
:class:`AugmentedEnsemble` does that around any scikit-learn estimator.
"""

from copy import deepcopy
from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, _fit_context, clone
from sklearn.metrics import accuracy_score, r2_score
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import HasMethods, Interval
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from ._images import check_input_shape, check_rows_match_shape, to_rows

AUGMENTATIONS = ("hflip", "crop")


def _hflip(images, rng):
    """Mirror each NHWC image left-right with probability 1/2."""
    flip = rng.rand(images.shape[0]) < 0.5
    out = images.copy()
    out[flip] = images[flip, :, ::-1]
    return out


def _crop(images, padding, rng):
    """Zero-pad each NHWC image by ``padding`` on every side, then cut a random
    window of the original size (offsets uniform in ``0..2 * padding``)."""
    n, height, width, _ = images.shape
    padded = np.pad(images, ((0, 0), (padding, padding), (padding, padding), (0, 0)))
    top = rng.randint(0, 2 * padding + 1, size=n)
    left = rng.randint(0, 2 * padding + 1, size=n)
    rows = top[:, None] + np.arange(height)  # (n, height)
    cols = left[:, None] + np.arange(width)  # (n, width)
    return padded[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


def _augment(rows, image_shape, augmentations, padding, rng):
    """One random augmented draw of 2-D NHWC rows, same size and layout."""
    images = rows.reshape(-1, *image_shape)
    for name in augmentations:
        images = _hflip(images, rng) if name == "hflip" else _crop(images, padding, rng)
    return images.reshape(rows.shape)


def _estimator_has(attr):
    """Check the fitted members if there are any, else the unfitted template."""

    def check(self):
        if hasattr(self, "estimators_"):
            return hasattr(self.estimators_[0], attr)
        return hasattr(self.estimator, attr)

    return check


class AugmentedEnsemble(MetaEstimatorMixin, BaseEstimator):
    """Average of estimators each fitted on one random augmented draw of the data.

    Each of ``n_draws`` clones of ``estimator`` is fitted on a copy of the
    training set of the same size in which every image is independently
    augmented (mirrored left-right with probability 1/2 for ``"hflip"``; shifted
    by a random crop of its zero-padded version for ``"crop"``). Predictions
    average the clones' outputs: ``decision_function`` (or ``predict_proba``
    when the base has no decision function) for classifiers, ``predict`` for
    regressors. The ensemble is a classifier when ``estimator`` is one, and a
    regressor otherwise.

    This is the paper's cheap alternative to kernel regression on fully
    augmented data, whose cost grows with the cube of the augmented set size.

    Parameters
    ----------
    estimator : estimator object
        The estimator to clone and fit on each draw, e.g.
        :class:`sknngp.NNGPClassifier`. A classifier must have
        ``decision_function`` or ``predict_proba``.

    augmentations : tuple of {"hflip", "crop"}, default=("hflip",)
        Augmentations applied, in this order, to each image of each draw. An
        empty tuple fits every clone on the unchanged data (useful to ensemble
        over the base's own randomness, see ``random_state``).

    n_draws : int, default=8
        Number of augmented draws, i.e. of fitted clones.

    crop_padding : int, default=4
        Zero padding on each side before a random crop, when ``"crop"`` is in
        ``augmentations``: images move by up to ``crop_padding`` pixels in each
        direction. 4 is the usual choice for 32x32 CIFAR-10; for 8x8 digits use
        1.

    input_shape : tuple of int (height, width, channels), default=None
        Shape of one image when ``X`` is given as 2-D rows in NHWC order.
        Required for 2-D ``X`` when ``augmentations`` is not empty; 4-D ``X``
        carries its own shape.

    random_state : int, RandomState instance or None, default=None
        Seeds the augmentation draws. It also seeds every ``random_state``
        parameter of each clone (including nested ``*__random_state``), so
        that clones of a randomized estimator (e.g. a finite network) also
        differ in their own randomness; pass an int for reproducible fits.

    Attributes
    ----------
    estimators_ : list of estimators
        The ``n_draws`` fitted clones.

    classes_ : ndarray of shape (n_classes,)
        Class labels (only when ``estimator`` is a classifier).

    input_shape_ : tuple of int or None
        Image shape seen in fit, or None for augmentation-free 2-D input.

    n_features_in_ : int
        Number of features seen during :term:`fit` (``height * width *
        channels`` for images).

    feature_names_in_ : ndarray of shape (`n_features_in_`,)
        Names of features seen during :term:`fit`. Defined only when `X`
        has feature names that are all strings.

    See Also
    --------
    sklearn.ensemble.BaggingClassifier : Averages over bootstrap resamples
        instead of augmented copies.

    Notes
    -----
    The clones receive ``X`` in the layout ``fit`` got: 4-D images stay 4-D
    (so a base estimator that reads the image shape from 4-D input keeps
    working), 2-D rows stay rows. Prediction input of either layout is
    converted to that one.

    With ``decision_function`` outputs of shape ``(n_samples,)`` (binary
    scikit-learn classifiers), the averaged score's sign picks the class, as
    for each member; otherwise the arg-max of the averaged outputs does.

    References
    ----------
    .. [1] J. Lee, S. S. Schoenholz, J. Pennington, B. Adlam, L. Xiao, R. Novak
       and J. Sohl-Dickstein, "Finite Versus Infinite Neural Networks: an
       Empirical Study", NeurIPS 2020, arXiv:2007.15801, Sec. 3.12.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sklearn.linear_model import RidgeClassifier
    >>> from sknngp import AugmentedEnsemble
    >>> X, y = load_digits(return_X_y=True)
    >>> ens = AugmentedEnsemble(RidgeClassifier(), augmentations=("crop",),
    ...                         crop_padding=1, n_draws=4,
    ...                         input_shape=(8, 8, 1), random_state=0)
    >>> ens.fit(X[:1000], y[:1000]).predict(X[1000:1003]).shape
    (3,)
    >>> len(ens.estimators_), ens.estimators_[0].n_features_in_
    (4, 64)
    """

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"])],
        "augmentations": [tuple, list],
        "n_draws": [Interval(Integral, 1, None, closed="left")],
        "crop_padding": [Interval(Integral, 0, None, closed="left")],
        "input_shape": [None, tuple, list],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator,
        *,
        augmentations=("hflip",),
        n_draws=8,
        crop_padding=4,
        input_shape=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.augmentations = augmentations
        self.n_draws = n_draws
        self.crop_padding = crop_padding
        self.input_shape = input_shape
        self.random_state = random_state

    def _is_classifier(self):
        return get_tags(self.estimator).estimator_type == "classifier"

    def _check_augmentations(self):
        augs = tuple(self.augmentations)
        unknown = [a for a in augs if not isinstance(a, str) or a not in AUGMENTATIONS]
        if unknown or len(set(augs)) != len(augs):
            problem = f"unknown {unknown[0]!r}" if unknown else "a repeated name"
            raise ValueError(
                f"AugmentedEnsemble: augmentations={self.augmentations!r} has "
                f"{problem}; pass a tuple of distinct names among "
                f"{AUGMENTATIONS}, e.g. augmentations=('hflip',) or ('crop', 'hflip')."
            )
        return augs

    @_fit_context(prefer_skip_nested_validation=False)  # the clones validate themselves
    def fit(self, X, y):
        """Fit one clone of the estimator per augmented draw.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Training images, as 2-D NHWC rows (with ``input_shape``) or 4-D.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            Targets (class labels for a classifier).

        Returns
        -------
        self : object
            The fitted ensemble.
        """
        name = type(self).__name__
        augs = self._check_augmentations()
        shape = check_input_shape(self.input_shape, name)
        X, shape, was_4d = to_rows(X, shape, name)
        is_clf = self._is_classifier()
        X, y = validate_data(
            self, X, y, multi_output=not is_clf, y_numeric=not is_clf,
            ensure_all_finite=self._finite_policy(),
        )
        if is_clf:
            check_classification_targets(y)
            if not (hasattr(self.estimator, "decision_function")
                    or hasattr(self.estimator, "predict_proba")):
                raise ValueError(
                    f"{name} averages decision_function or predict_proba, but the "
                    f"classifier estimator={self.estimator!r} has neither. Wrap a "
                    "classifier that provides one (e.g. RidgeClassifier, "
                    "NNGPClassifier)."
                )
        check_rows_match_shape(X.shape[1], shape, name)
        if augs and shape is None:
            raise ValueError(
                f"{name}: augmentations={augs!r} act on images, but X is 2-D and "
                "input_shape is None. Pass input_shape=(height, width, channels) "
                "for rows in NHWC order, or X as a 4-D array of images."
            )

        rng = check_random_state(self.random_state)
        seeds = rng.randint(np.iinfo(np.int32).max, size=(self.n_draws, 2))
        self.input_shape_ = shape
        self._base_sees_4d = was_4d
        self.estimators_ = []
        for aug_seed, est_seed in seeds:
            X_draw = X
            if augs:
                X_draw = _augment(X, shape, augs, self.crop_padding,
                                  np.random.RandomState(aug_seed))
            est = clone(self.estimator)
            est_rng = np.random.RandomState(est_seed)
            for key in sorted(est.get_params(deep=True)):
                if key == "random_state" or key.endswith("__random_state"):
                    est.set_params(**{key: int(est_rng.randint(np.iinfo(np.int32).max))})
            est.fit(self._to_base_layout(X_draw), y)
            self.estimators_.append(est)
        if is_clf:
            self.classes_ = self.estimators_[0].classes_
        return self

    # -- prediction ----------------------------------------------------------------

    def _finite_policy(self):
        return "allow-nan" if get_tags(self.estimator).input_tags.allow_nan else True

    def _to_base_layout(self, rows):
        if self._base_sees_4d:
            return rows.reshape(-1, *self.input_shape_)
        return rows

    def _base_input(self, X):
        check_is_fitted(self)
        X, _, _ = to_rows(X, self.input_shape_, type(self).__name__)
        X = validate_data(self, X, reset=False, ensure_all_finite=self._finite_policy())
        return self._to_base_layout(X)

    def _average(self, method, X):
        X = self._base_input(X)
        return np.mean([getattr(est, method)(X) for est in self.estimators_], axis=0)

    def predict(self, X):
        """Predict with the averaged outputs of the members.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Test images, as 2-D NHWC rows or 4-D.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_targets)
            Class labels (arg-max of the averaged decision function or
            probabilities) for a classifier; averaged predictions for a
            regressor.
        """
        if not self._is_classifier():
            return self._average("predict", X)
        if hasattr(self, "decision_function"):
            scores = self.decision_function(X)
        else:
            scores = self.predict_proba(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    @available_if(_estimator_has("decision_function"))
    def decision_function(self, X):
        """Average of the members' decision functions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Test images, as 2-D NHWC rows or 4-D.

        Returns
        -------
        scores : ndarray of shape (n_samples,) or (n_samples, n_classes)
            The mean over members, in the members' output shape.
        """
        return self._average("decision_function", X)

    @available_if(_estimator_has("predict_proba"))
    def predict_proba(self, X):
        """Average of the members' class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Test images, as 2-D NHWC rows or 4-D.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            The mean over members; columns follow ``classes_``.
        """
        return self._average("predict_proba", X)

    def score(self, X, y, sample_weight=None):
        """Accuracy for a classifier, R^2 for a regressor.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Test images.
        y : array-like of shape (n_samples,) or (n_samples, n_targets)
            True labels or targets.
        sample_weight : array-like of shape (n_samples,), default=None
            Sample weights.

        Returns
        -------
        score : float
            ``accuracy_score`` or ``r2_score`` of ``self.predict(X)``.
        """
        metric = accuracy_score if self._is_classifier() else r2_score
        return metric(y, self.predict(X), sample_weight=sample_weight)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            base = get_tags(self.estimator)
        except (AttributeError, TypeError, ValueError):
            return tags  # not an estimator: parameter validation reports it in fit
        tags.estimator_type = base.estimator_type
        tags.classifier_tags = deepcopy(base.classifier_tags)
        if tags.classifier_tags is not None:
            tags.classifier_tags.multi_label = False
        tags.regressor_tags = deepcopy(base.regressor_tags)
        tags.target_tags.required = True
        tags.target_tags.multi_output = (
            base.target_tags.multi_output and base.estimator_type != "classifier"
        )
        tags.input_tags.allow_nan = base.input_tags.allow_nan
        tags.input_tags.sparse = False
        tags.non_deterministic = base.non_deterministic
        return tags
