"""NNGP and NTK classifiers: kernel regression on centered one-hot targets."""

from __future__ import annotations

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from ._regressors import _SHARED_DOC, NNGPRegressor, NTKRegressor


class _KernelClassifierMixin(ClassifierMixin):
    """Regress ``onehot(y) - 1/C`` (the paper's setting); predict the argmax."""

    def fit(self, X, y):
        """Fit the kernel regressor on centered one-hot encodings of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
        """
        self._validate_params()
        X, y, shape = self._flatten_input(X, reset=True, y=y)
        self.image_shape_ = shape
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        enc = LabelEncoder().fit(y)
        self.classes_ = enc.classes_
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"y contains 1 class ({self.classes_[0]!r}); a classifier needs at least 2."
            )
        codes = enc.transform(y)
        Y = np.eye(n_classes)[codes] - 1.0 / n_classes
        self._y_1d = False
        return self._fit_kernels(X, Y)

    def decision_function(self, X):
        """Regression outputs per class (binary: positive minus negative column).

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
        """
        out = super().predict(X)
        if len(self.classes_) == 2:
            return out[:, 1] - out[:, 0]
        return out

    def predict(self, X):
        """Class labels: the argmax of the regression outputs."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "classifier"
        tags.regressor_tags = None
        tags.target_tags.multi_output = False
        return tags


class NNGPClassifier(_KernelClassifierMixin, NNGPRegressor):
    __doc__ = (
        """Classifier from the NNGP posterior mean on centered one-hot targets.
"""
        + _SHARED_DOC
        + """
    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    X_fit_, y_train_, train_kernels_, eigen_, image_shape_, n_features_in_
        As for :class:`NNGPRegressor` (``y_train_`` holds ``onehot - 1/C``).

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sknngp import NNGPClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = NNGPClassifier(architecture="fc", depth=2).fit(X[:200] / 16, y[:200])
    >>> bool(clf.score(X[200:400] / 16, y[200:400]) > 0.85)
    True
    """
    )


class NTKClassifier(_KernelClassifierMixin, NTKRegressor):
    __doc__ = (
        """Classifier from the trained infinite NTK ensemble on centered one-hot targets.
"""
        + _SHARED_DOC
        + """    t : float, default=None
        Training time (None: converged).
    learning_rate : float, default=1.0

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
    X_fit_, y_train_, train_kernels_, eigen_, image_shape_, n_features_in_
        As for :class:`NTKRegressor`.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from sknngp import NTKClassifier
    >>> X, y = load_digits(return_X_y=True)
    >>> clf = NTKClassifier(architecture="fc", depth=2).fit(X[:200] / 16, y[:200])
    >>> bool(clf.score(X[200:400] / 16, y[200:400]) > 0.85)
    True
    """
    )
