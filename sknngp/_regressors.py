"""NNGP and NTK regressors: exact infinite-width inference as sklearn estimators."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import RegressorMixin
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval

from . import _inference
from ._base import KernelEstimatorBase

_SHARED_DOC = """
    Parameters
    ----------
    architecture : {"fc", "cnn-vec", "cnn-gap"} or Serial, default="fc"
        Named architecture (see :func:`sknngp.kernel_matrix`) or a layer stack
        from :func:`sknngp.kernels.serial`.
    depth : int, default=3
        Number of hidden Dense / Conv layers.
    activation : {"relu", "erf"}, default="relu"
    W_std, b_std : float, default=sqrt(2), 0.1
        Weight and bias standard deviations.
    parameterization : {"ntk", "standard"}, default="ntk"
    width : int, default=None
        Hidden width; only the standard-parameterization NTK needs it.
    input_shape : tuple (H, W, C), default=None
        Image shape of 2-D rows (NHWC order). 4-D input needs none.
    diag_reg : float, default=1e-4
        Diagonal regularization. Relative by default: the train kernel becomes
        ``K + diag_reg * tr(K) / n * I`` (neural-tangents' convention).
    diag_reg_absolute_scale : bool, default=False
        If True, ``K + diag_reg * I`` (sklearn's ``alpha``).
    dtype : {"float64", "float32"}, default="float64"
        Precision of the kernel computation; solves are always float64.
    batch_size : int, default=None
        Kernel tile size (see :func:`sknngp.kernel_matrix`).
    device : None, str or jax.Device, default=None
        Where kernels are computed; None uses JAX's default backend (a GPU when
        JAX has one).
    kernel_cache : {"memory", "off"} or str, default="memory"
        Reuse kernel entries and eigendecompositions across fits in this
        process (what makes ``GridSearchCV`` over ``diag_reg`` cost about one
        kernel). Entries are keyed by the architecture and the exact bytes of
        each sample, so changed data or architecture never hit a stale entry.
"""


class _KernelRegressorBase(RegressorMixin, KernelEstimatorBase):
    def fit(self, X, y):
        """Compute the train kernel(s) and their eigendecomposition.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self : object
        """
        self._validate_params()
        X, y, shape = self._flatten_input(
            X, reset=True, y=y, multi_output=True, y_numeric=True
        )
        self.image_shape_ = shape
        self._y_1d = y.ndim == 1
        Y = y.reshape(len(y), -1)
        return self._fit_kernels(X, Y)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags

    def _shape_out(self, M):
        return M[:, 0] if self._y_1d else M

    def predict(self, X, return_std=False, return_cov=False):
        """Posterior mean, and optionally its standard deviation or covariance.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)
        return_std : bool, default=False
            Also return the predictive standard deviation (without forming the
            full test covariance).
        return_cov : bool, default=False
            Also return the predictive covariance.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_targets)
        y_std : ndarray of shape (n_samples,), only if ``return_std``
        y_cov : ndarray of shape (n_samples, n_samples), only if ``return_cov``
        """
        if return_std and return_cov:
            raise ValueError(
                "At most one of return_std and return_cov can be requested; got both True."
            )
        X = self._test_input(X)
        cross = self._kernels(X, self.X_fit_, self._kinds)
        mean = self._mean(cross)
        if return_std:
            diag = self._self_kernels(X, ("nngp",))["nngp"]
            var = _inference.clip_variance(self._variance(cross, diag), self._warn)
            return self._shape_out(mean), np.sqrt(var)
        if return_cov:
            K_ss = self._kernels(X, None, ("nngp",))["nngp"]
            return self._shape_out(mean), self._covariance(cross, K_ss)
        return self._shape_out(mean)

    def sample_y(self, X, n_samples=1, random_state=0):
        """Draw samples from the predictive distribution at ``X``.

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples) or
            (n_samples_X, n_targets, n_samples)
        """
        rng = check_random_state(random_state)
        mean, cov = self.predict(X, return_cov=True)
        if mean.ndim == 1:
            return rng.multivariate_normal(mean, cov, n_samples).T
        draws = [
            rng.multivariate_normal(mean[:, j], cov, n_samples).T[:, None]
            for j in range(mean.shape[1])
        ]
        return np.concatenate(draws, axis=1)


class NNGPRegressor(_KernelRegressorBase):
    __doc__ = (
        """Exact Bayesian inference with the NNGP kernel of an architecture.

    The posterior of an infinitely wide network with Gaussian weights: Gaussian
    process regression (kernel ridge regression) with its NNGP kernel.
"""
        + _SHARED_DOC
        + """
    Attributes
    ----------
    X_fit_ : ndarray of shape (n_samples, n_features)
    y_train_ : ndarray of shape (n_samples, n_targets)
    train_kernels_ : dict {"nngp": ndarray of shape (n_samples, n_samples)}
    eigen_ : dict {"nngp": (eigenvalues, eigenvectors)} of the train kernel
    image_shape_ : tuple or None
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)

    Notes
    -----
    Mean ``K* (K + lambda I)^-1 y`` and covariance ``K** - K* (K + lambda I)^-1 K*^T``
    (Rasmussen & Williams 2006, eqs. 2.23-2.24), through one eigendecomposition
    of ``K`` that serves every ``diag_reg``.

    References
    ----------
    Lee et al., "Deep Neural Networks as Gaussian Processes", ICLR 2018.
    Lee et al., "Finite Versus Infinite Neural Networks: an Empirical Study",
    NeurIPS 2020.

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp import NNGPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 3)); y = np.sin(X[:, 0])
    >>> reg = NNGPRegressor(depth=2, diag_reg=1e-3).fit(X, y)
    >>> mean, std = reg.predict(X[:2], return_std=True)
    >>> mean.shape, std.shape
    ((2,), (2,))
    """
    )

    def _mean(self, cross):
        w, V = self._filter("nngp")
        return _inference.mean(cross["nngp"], V, 1.0 / w, self.y_train_)

    def _variance(self, cross, k_diag):
        w, V = self._filter("nngp")
        return _inference.nngp_variance(k_diag, cross["nngp"], V, 1.0 / w)

    def _covariance(self, cross, K_ss):
        w, V = self._filter("nngp")
        return _inference.nngp_covariance(K_ss, cross["nngp"], V, 1.0 / w)

    def log_marginal_likelihood(self, diag_reg=None):
        """Log evidence of the training targets, summed over targets.

        ``-1/2 y^T (K + lambda I)^-1 y - 1/2 log|K + lambda I| - n/2 log(2 pi)``
        (Rasmussen & Williams 2006, eq. 2.30). ``diag_reg=None`` uses the fitted
        value; another value reuses the fitted eigendecomposition.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        w, V = self.eigen_["nngp"]
        reg = self.diag_reg if diag_reg is None else diag_reg
        w_reg = w + _inference.regularizer(w, reg, self.diag_reg_absolute_scale)
        _inference.check_positive(w, w_reg - w, kind="NNGP", diag_reg=reg, dtype=self.dtype)
        proj = V.T @ self.y_train_
        n = len(w)
        fit = -0.5 * np.sum(proj**2 / w_reg[:, None], axis=0)
        return float(np.sum(fit - 0.5 * np.sum(np.log(w_reg)) - 0.5 * n * np.log(2 * np.pi)))


class NTKRegressor(_KernelRegressorBase):
    __doc__ = (
        """Infinite ensemble of infinitely wide networks trained by gradient descent.

    Mean (and covariance) of the outputs of networks trained on MSE with
    gradient flow for time ``t`` (``t=None``: to convergence), in the
    infinite-width limit where training is linear in the NTK.
"""
        + _SHARED_DOC
        + """    t : float, default=None
        Training time; None means converged. Grid-searchable: the fitted
        eigendecomposition serves every value.
    learning_rate : float, default=1.0
        Gradient-descent learning rate, in neural-tangents' time convention
        ``exp(-learning_rate * Theta * t / y.size)``.

    Attributes
    ----------
    X_fit_, y_train_, image_shape_, n_features_in_, feature_names_in_
        As for :class:`NNGPRegressor`.
    train_kernels_ : dict {"nngp": ndarray, "ntk": ndarray}
    eigen_ : dict of eigendecompositions of both train kernels

    Notes
    -----
    With ``T = Theta^-1 (I - exp(-eta Theta t / m))`` (``m = y.size``) the mean is
    ``Theta* T y`` and the covariance
    ``K** + Theta* T K T Theta*^T - (Theta* T K*^T + K* T Theta*^T)``
    (Lee et al. 2019, arXiv:1902.06720, eq. 16). ``diag_reg`` is added to both
    train kernels, as in neural-tangents' ``gradient_descent_mse_ensemble``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp import NTKRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(20, 3)); y = np.sin(X[:, 0])
    >>> early = NTKRegressor(depth=2, t=10.0).fit(X, y).predict(X[:3])
    >>> late = NTKRegressor(depth=2, t=None).fit(X, y).predict(X[:3])
    >>> bool(np.abs(late - y[:3]).max() < np.abs(early - y[:3]).max())
    True
    """
    )

    _parameter_constraints = {
        **KernelEstimatorBase._parameter_constraints,
        "t": [Interval(numbers.Real, 0, None, closed="left"), None],
        "learning_rate": [Interval(numbers.Real, 0, None, closed="neither")],
    }
    _kinds = ("nngp", "ntk")
    _main_kind = "ntk"

    def __init__(
        self,
        *,
        architecture="fc",
        depth=3,
        activation="relu",
        W_std=2**0.5,
        b_std=0.1,
        parameterization="ntk",
        width=None,
        input_shape=None,
        diag_reg=1e-4,
        diag_reg_absolute_scale=False,
        t=None,
        learning_rate=1.0,
        dtype="float64",
        batch_size=None,
        device=None,
        kernel_cache="memory",
    ):
        super().__init__(
            architecture=architecture, depth=depth, activation=activation,
            W_std=W_std, b_std=b_std, parameterization=parameterization,
            width=width, input_shape=input_shape, diag_reg=diag_reg,
            diag_reg_absolute_scale=diag_reg_absolute_scale, dtype=dtype,
            batch_size=batch_size, device=device, kernel_cache=kernel_cache,
        )
        self.t = t
        self.learning_rate = learning_rate

    def _g(self):
        w, V = self._filter("ntk")
        return _inference.spectral_filter(w, self.t, self.learning_rate, self.y_train_.size), V

    def _k_train(self):
        """Regularized NNGP train kernel ``K + lambda I`` (O(n^2), not rebuilt
        from its eigendecomposition)."""
        K = self.train_kernels_["nngp"]
        w, _ = self.eigen_["nngp"]
        lam = _inference.regularizer(w, self.diag_reg, self.diag_reg_absolute_scale)
        return K + lam * np.eye(len(K))

    def _mean(self, cross):
        g, V = self._g()
        return _inference.mean(cross["ntk"], V, g, self.y_train_)

    def _variance(self, cross, k_diag):
        g, V = self._g()
        return _inference.ntk_variance(
            k_diag, cross["ntk"], cross["nngp"], self._k_train(), V, g
        )

    def _covariance(self, cross, K_ss):
        g, V = self._g()
        return _inference.ntk_covariance(
            K_ss, cross["ntk"], cross["nngp"], self._k_train(), V, g
        )
