"""NNGP and NTK classifiers: kernel regression on centered one-hot targets."""

from __future__ import annotations

import numpy as np
import scipy.special
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import column_or_1d

from . import _bank, _inference, _loo
from ._base import NTK_CONSTRAINTS, NTK_PARAMS_DOC, PARAMS_DOC, KernelEstimatorBase
from ._regressors import NNGP_ATTRIBUTES, NTK_ATTRIBUTES, _NTKParams


class _KernelClassifier(ClassifierMixin, KernelEstimatorBase):
    """Regress ``onehot(y) - 1/C`` (the paper's setting); predict the argmax."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Fit the kernel regression on centered one-hot encodings of ``y``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : object
        """
        X, y = self._rows(X, reset=True, y=y)
        y = column_or_1d(y, warn=True)
        check_classification_targets(y)
        enc = LabelEncoder().fit(y)
        self.classes_ = enc.classes_
        n_classes = len(self.classes_)
        if n_classes < 2:
            raise ValueError(
                f"y contains 1 class ({self.classes_[0]!r}); a classifier needs at least 2."
            )
        Y = np.eye(n_classes)[enc.transform(y)] - 1.0 / n_classes
        return self._fit_targets(X, Y)

    def _loo_rows(self, n):
        return _loo.loo_rows(n)

    def _on_solved(self, op, Y, alpha):
        """Fit the softmax temperature on leave-one-out outputs (see :mod:`sknngp._loo`)."""
        rows = self._loo_rows(len(Y))
        scores = _loo.loo_outputs(op, Y, alpha, rows)
        labels = np.argmax(Y[rows], axis=1)  # the encoded classes of the one-hot rows
        self.temperature_, self.loo_log_loss_ = _loo.fit_temperature(scores, labels)

    def _outputs(self, X):
        """Regression outputs per class, ``(n_samples, n_classes)``."""
        X = self._test_rows(X)
        return self._mean(X, _bank.row_keys(X))

    def decision_function(self, X):
        """Regression outputs per class (binary: positive minus negative column).

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,) for two classes
        """
        out = self._outputs(X)
        if len(self.classes_) == 2:
            return out[:, 1] - out[:, 0]
        return out

    def predict_proba(self, X):
        """Class probabilities: ``softmax(outputs / temperature_)``.

        The outputs are the regression outputs per class (the regressed
        targets are ``onehot - 1/C``); ``temperature_`` was fitted at ``fit``
        to minimise the leave-one-out log-loss on the training set, computed
        in closed form from the fit's factorization (no refit, no held-out
        split). The argmax of each row is :meth:`predict`.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Rows sum to 1; columns follow ``classes_``.
        """
        return np.exp(self.predict_log_proba(X))

    def predict_log_proba(self, X):
        """Logarithm of :meth:`predict_proba` (computed stably)."""
        return scipy.special.log_softmax(self._outputs(X) / self.temperature_, axis=1)

    def predict(self, X):
        """Class labels: the argmax of the regression outputs."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]


_CLASSIFIER_ATTRIBUTES = """    classes_ : ndarray of shape (n_classes,)
        Class labels; ``y_train_`` holds their centered one-hot codes ``onehot - 1/C``.

    temperature_ : float
        Temperature of :meth:`predict_proba`'s softmax, fitted to minimise the
        leave-one-out log-loss of evenly spaced training rows (all of them up to
        n ~ 1,250, at least 128 beyond; targets smoothed by one pseudo-observation),
        from closed-form leave-one-out outputs (exact for the NNGP posterior
        and the infinite-time NTK; the linear-smoother approximation for a
        finite ``t``).

    loo_log_loss_ : float
        That leave-one-out log-loss at ``temperature_``.
"""


class NNGPClassifier(_KernelClassifier):
    __doc__ = (
        """Classifier from the NNGP posterior mean on centered one-hot targets.

    Parameters
    ----------"""
        + PARAMS_DOC
        + NNGP_ATTRIBUTES
        + _CLASSIFIER_ATTRIBUTES
        + """
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

    _strategy = _inference.NNGPPosterior()


class NTKClassifier(_NTKParams, _KernelClassifier):
    __doc__ = (
        """Classifier from the trained infinite NTK ensemble on centered one-hot targets.

    Parameters
    ----------"""
        + PARAMS_DOC
        + NTK_PARAMS_DOC
        + NTK_ATTRIBUTES
        + _CLASSIFIER_ATTRIBUTES
        + """
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

    _parameter_constraints = {**KernelEstimatorBase._parameter_constraints, **NTK_CONSTRAINTS}
