"""NNGP and NTK regressors: exact infinite-width inference as sklearn estimators."""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.base import RegressorMixin, _fit_context
from sklearn.utils import check_random_state

from . import _bank, _inference, _solvers
from ._base import (
    NTK_CONSTRAINTS,
    NTK_PARAMS_DOC,
    PARAMS_DOC,
    KernelEstimatorBase,
)


class _NTKParams:
    """``t`` and ``learning_rate``, shared by the NTK regressor and classifier."""

    _strategy = _inference.NTKEnsemble()

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
        solver="auto",
        tol=1e-7,
        max_iter=None,
        dtype="float64",
        batch_size=None,
        device=None,
        kernel_cache="memory",
        verbose=0,
    ):
        super().__init__(
            architecture=architecture, depth=depth, activation=activation,
            W_std=W_std, b_std=b_std, parameterization=parameterization,
            width=width, input_shape=input_shape, diag_reg=diag_reg,
            diag_reg_absolute_scale=diag_reg_absolute_scale, solver=solver,
            tol=tol, max_iter=max_iter, dtype=dtype, batch_size=batch_size, device=device, kernel_cache=kernel_cache,
            verbose=verbose,
        )
        self.t = t
        self.learning_rate = learning_rate


class _KernelRegressor(RegressorMixin, KernelEstimatorBase):
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Compute the train kernel and solve for the dual coefficients.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)
        y : array-like of shape (n_samples,) or (n_samples, n_targets)

        Returns
        -------
        self : object
        """
        X, y = self._rows(X, reset=True, y=y, multi_output=True, y_numeric=True)
        if y.dtype.kind not in "biuf":
            raise ValueError(
                f"y must be numeric for a regressor; got dtype {y.dtype}. For class "
                f"labels use {type(self).__name__.replace('Regressor', 'Classifier')}."
            )
        self._y_1d = y.ndim == 1
        return self._fit_targets(X, np.asarray(y, dtype=np.float64).reshape(len(y), -1))

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
        y_std : ndarray of shape (n_samples,) or (n_samples, n_targets), only if ``return_std``
            With several targets every column is the same: all targets share one
            kernel (as in :class:`~sklearn.gaussian_process.GaussianProcessRegressor`).
        y_cov : ndarray of shape (n_samples, n_samples) or (n_samples, n_samples, n_targets), \
only if ``return_cov``
        """
        mean, spread = self._predict(X, return_std, return_cov)
        if spread is None:
            return mean
        if not self._y_1d:  # GaussianProcessRegressor's shapes: one copy per target
            spread = np.repeat(spread[..., None], self.y_train_.shape[1], axis=-1)
        return mean, spread

    def _predict(self, X, return_std, return_cov):
        """``(mean, std or cov or None)``, the spread shared by all targets."""
        if return_std and return_cov:
            raise ValueError(
                "At most one of return_std and return_cov can be requested; got both True."
            )
        X = self._test_rows(X)
        keys = _bank.row_keys(X)
        if not (return_std or return_cov):
            return self._shape_out(self._mean(X, keys)), None
        strategy = self._strategy
        self._check_spread_memory(len(X), return_cov)
        cross = self._kernels(X, keys, self.X_fit_, self._fit_keys, strategy.cov_kinds)
        mean = self._shape_out(self._finite(strategy.mean(self, cross), "The predictions"))
        if return_std:
            diag = self._self_kernels(X, ("nngp",))["nngp"]
            var = _solvers.clip_variance(strategy.variance(self, cross, diag), self._warn)
            return mean, np.sqrt(var)
        K_ss = self._kernels(X, keys, None, None, ("nngp",))["nngp"]
        return mean, strategy.covariance(self, cross, K_ss)

    def _warn(self, msg):
        import warnings

        warnings.warn(msg, RuntimeWarning, stacklevel=4)

    def sample_y(self, X, n_samples=1, random_state=0):
        """Draw samples from the predictive distribution at ``X``.

        Returns
        -------
        y_samples : ndarray of shape (n_samples_X, n_samples) or
            (n_samples_X, n_targets, n_samples)
        """
        if (isinstance(n_samples, bool) or not isinstance(n_samples, numbers.Integral)
                or n_samples < 1):
            raise ValueError(f"n_samples must be a positive integer; got {n_samples!r}.")
        rng = check_random_state(random_state)
        mean, cov = self._predict(X, False, True)
        if mean.ndim == 1:
            return rng.multivariate_normal(mean, cov, n_samples).T
        draws = [
            rng.multivariate_normal(mean[:, j], cov, n_samples).T[:, None]
            for j in range(mean.shape[1])
        ]
        return np.concatenate(draws, axis=1)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


_ATTRIBUTES = """
    Attributes
    ----------
    architecture_ : Serial
        The layer stack built from the parameters at ``fit``.
    X_fit_ : ndarray of shape (n_samples, n_features)
    y_train_ : ndarray of shape (n_samples, n_targets)
        The training targets as a 2-D array.
    dual_coef_ : ndarray of shape (n_samples, n_targets)
        ``{dual}``: ``predict`` is ``{cross} @ dual_coef_``.
    regularization_ : float
        The absolute ridge ``lambda`` added to the train kernel's diagonal.
    solver_ : {{"cholesky", "eigh", "cg"}}
        The solve the fit used (what ``solver="auto"`` chose).
    n_iter_ : int
        CG iterations of the fit (passes over the train kernel, all right-hand
        sides together); 1 for a direct solve.
    solver_info_ : CGInfo or None
        With CG: iterations per right-hand side (``n_iter_per_column``), the
        final relative residuals (``residuals``), the preconditioner's rank
        (``precond_rank``) and the products with the kernel (``passes``);
        None for a direct solve.
    image_shape_ : tuple or None
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
"""
NNGP_ATTRIBUTES = _ATTRIBUTES.format(dual="(K + lambda I)^-1 y", cross="K(X, X_fit_)")
NTK_ATTRIBUTES = _ATTRIBUTES.format(dual="T y", cross="Theta(X, X_fit_)")


class NNGPRegressor(_KernelRegressor):
    __doc__ = (
        """Exact Bayesian inference with the NNGP kernel of an architecture.

    The posterior of an infinitely wide network with Gaussian weights: Gaussian
    process regression (kernel ridge regression) with its NNGP kernel.

    Parameters
    ----------"""
        + PARAMS_DOC
        + NNGP_ATTRIBUTES
        + """
    Notes
    -----
    Mean ``K* (K + lambda I)^-1 y`` and covariance ``K** - K* (K + lambda I)^-1 K*^T``
    (Rasmussen & Williams 2006, eqs. 2.23-2.24), through one Cholesky
    factorization of ``K + lambda I`` (Alg. 2.1).

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

    _strategy = _inference.NNGPPosterior()

    def log_marginal_likelihood(self, diag_reg=None):
        """Log evidence of the training targets, summed over targets.

        ``-1/2 y^T (K + lambda I)^-1 y - 1/2 log|K + lambda I| - n/2 log(2 pi)``
        (Rasmussen & Williams 2006, eq. 2.30). ``diag_reg=None`` uses the value
        of the last fit; the train kernel is fetched from the bank (or recomputed).
        """
        self._check_predict()
        reg = self._fitted.diag_reg if diag_reg is None else diag_reg
        if isinstance(reg, (bool, np.bool_)) or not (
                isinstance(reg, numbers.Real) and np.isfinite(reg) and reg >= 0):
            raise ValueError(f"diag_reg must be a finite number >= 0; got {reg!r}.")
        return self._strategy.log_marginal_likelihood(self, reg)


class NTKRegressor(_NTKParams, _KernelRegressor):
    __doc__ = (
        """Infinite ensemble of infinitely wide networks trained by gradient descent.

    Mean (and covariance) of the outputs of networks trained on MSE with
    gradient flow for time ``t`` (``t=None``: to convergence), in the
    infinite-width limit where training is linear in the NTK.

    Parameters
    ----------"""
        + PARAMS_DOC
        + NTK_PARAMS_DOC
        + NTK_ATTRIBUTES
        + """
    Notes
    -----
    With ``T = Theta^-1 (I - exp(-eta Theta t / m))`` (``m = y.size``) the mean is
    ``Theta* T y`` and the covariance
    ``K** + Theta* T K T Theta*^T - (Theta* T K*^T + K* T Theta*^T)``
    (Lee et al. 2019, arXiv:1902.06720, eq. 16). ``diag_reg`` is added to both
    train kernels, as in neural-tangents' ``gradient_descent_mse_ensemble``.
    The mean needs only the NTK; the NNGP kernel is computed when a standard
    deviation or covariance is requested.

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

    _parameter_constraints = {**KernelEstimatorBase._parameter_constraints, **NTK_CONSTRAINTS}
