"""Inference strategies shared by the kernel regressors and classifiers.

- :class:`NNGPPosterior`: Gaussian-process regression with the NNGP kernel
  (Rasmussen & Williams 2006, eqs. 2.23-2.24): mean ``K* (K + lambda I)^-1 Y``,
  covariance ``K** - K* (K + lambda I)^-1 K*^T``.
- :class:`NTKEnsemble`: the infinite ensemble of infinitely wide networks
  trained by gradient descent on the MSE for time ``t`` (Lee et al. 2019,
  arXiv:1902.06720, eqs. 15-16; neural-tangents' time convention): with
  ``T = Theta^-1 (I - exp(-eta Theta t / m))``, ``m = y.size`` (``t=None``:
  ``T = Theta^-1``), mean ``Theta* T Y`` and covariance
  ``K** + Theta* T K T Theta*^T - (Theta* T K*^T + K* T Theta*^T)``.

A strategy says which kernels the mean needs (only the NTK for the NTK
ensemble: the NNGP kernel is computed only when a standard deviation or
covariance is requested), fits the dual coefficients ``T Y`` (or
``(K + lambda I)^-1 Y``) and evaluates predictions. Fitted estimators keep the
dual coefficients, not the train kernels; a method that needs a train kernel
again fetches it from the bank (or recomputes it) and keeps its factor in a
private cache that is not pickled.
"""

from __future__ import annotations

import numpy as np

from . import _cg, _loo, _solvers


class _Operator:
    """``T`` for one regularized train kernel: ``apply(B) = T B`` and, for
    symmetric positive ``T``, ``half(B)`` with ``half(B)^T half(B) = B^T T B``.
    Either the Cholesky factor ``U`` (``K + lambda I = U^T U``) or ``V, g`` (with
    ``w``, the unregularized eigenvalues of ``K = V diag(w) V^T``)."""

    def __init__(self, U=None, V=None, g=None, w=None):
        self.U, self.V, self.g, self.w = U, V, g, w

    def apply(self, B):
        if self.U is not None:
            return _solvers.cho_solve(self.U, B)
        return self.V @ (self.g[:, None] * (self.V.T @ B))

    def half(self, B):
        if self.U is not None:
            return _solvers.half_solve(self.U, B)
        return np.sqrt(self.g)[:, None] * (self.V.T @ B)

    def quad_diag(self, B):
        """``diag(B^T T B)``."""
        A = self.half(B)
        return np.einsum("ij,ij->j", A, A)

    def quad(self, B):
        """``B^T T B``."""
        A = self.half(B)
        return A.T @ A

    def inverse_diagonal(self, rows):
        """``[(K + lambda I)^-1]_ii`` at sorted ``rows`` (Cholesky operators)."""
        return _loo.inverse_diagonal(self.U, rows)


class _CGOperator:
    """``T = (K + lambda I)^-1`` applied by conjugate gradients over a kernel
    operator (:mod:`sknngp._cg`); the preconditioner is built on first use and
    kept for later solves. ``info`` is the :class:`sknngp._cg.CGInfo` of the
    last solve."""

    U = V = None

    def __init__(self, kernel, lam, tol, max_iter):
        self.kernel, self.lam, self.tol, self.max_iter = kernel, lam, tol, max_iter
        self._precond, self._inv_diag, self.info = None, None, None

    def apply(self, B):
        if self._precond is None:
            self._precond = _cg.build_preconditioner(self.kernel, self.lam)
        X, self.info = _cg.cg_solve(self.kernel, B, self.lam, tol=self.tol,
                                    max_iter=self.max_iter, precond=self._precond)
        return X

    def quad_diag(self, B):
        return np.einsum("ij,ij->j", B, self.apply(B))

    def quad(self, B):
        Q = B.T @ self.apply(B)
        return 0.5 * (Q + Q.T)  # symmetric to round-off, as the exact product is

    def solve_with_unit_rows(self, Y, rows):
        """``T Y``, solving for the unit vectors of ``rows`` in the same pass and
        keeping ``T_ii`` there for :meth:`inverse_diagonal`."""
        k = Y.shape[1]
        E = np.zeros((len(Y), len(rows)))
        E[rows, np.arange(len(rows))] = 1.0
        X = self.apply(np.hstack([Y, E]))
        self._inv_diag = (np.asarray(rows), X[rows, k + np.arange(len(rows))])
        return X[:, :k]

    def inverse_diagonal(self, rows):
        known, values = self._inv_diag
        if not np.array_equal(known, rows):
            raise ValueError("the CG solve kept T_ii for other rows than those requested")
        return values


class _Strategy:
    main = "nngp"

    def train_operator(self, est, K, Y_size):
        """Factor (or decompose) the regularized main train kernel ``K``.

        ``K`` is consumed (the Cholesky factor overwrites it). Returns the
        operator and the absolute ridge ``lambda``.
        """
        f = est._fitted  # the parameters of the last fit, not later set_params
        kind = self.main.upper()
        if f.method == "cg":
            return self.cg_operator(est)
        if f.method == "cholesky":
            U, lam = _solvers.ridge_cholesky(K, diag_reg=f.diag_reg, kind=kind, dtype=f.dtype,
                                             absolute=f.diag_reg_absolute_scale,
                                             device=est.device)
            return _Operator(U=U), lam
        lam = _solvers.regularizer(np.trace(K), len(K), f.diag_reg, f.diag_reg_absolute_scale)
        w, V = est._eigh(self.main, K)
        _solvers.check_spectrum(w, lam, kind=kind, diag_reg=f.diag_reg, dtype=f.dtype)
        return _Operator(V=V, g=self.filter(f, w + lam, Y_size), w=w), lam

    def cg_operator(self, est, kind=None):
        """``(K + lambda I)^-1`` by CG over ``est._train_operator(kind)``, and ``lambda``
        (relative ``diag_reg`` from the operator's diagonal)."""
        f = est._fitted
        kernel = est._train_operator(kind or self.main)
        lam = _solvers.regularizer(np.sum(kernel.diagonal()), kernel.n, f.diag_reg,
                                   f.diag_reg_absolute_scale)
        return _CGOperator(kernel, lam, f.tol, f.max_iter), lam

    def filter(self, fitted, w_reg, m):
        return 1.0 / w_reg

    def fit(self, est, K, Y):
        """Dual coefficients ``T Y``, the ridge and the CG info (None for a
        direct solve). ``K`` is the main train kernel, consumed (None with CG:
        the kernel is reached through ``est._train_operator``)."""
        op, lam = self.train_operator(est, K, Y.size)
        solved = getattr(est, "_on_solved", None)  # classifiers: leave-one-out calibration
        if K is None and solved is not None:  # CG: diag(T) at the rows, in the same pass
            alpha = op.solve_with_unit_rows(Y, est._loo_rows(len(Y)))
        else:
            alpha = op.apply(Y)
        if solved is not None:
            solved(op, Y, alpha)
        return alpha, lam, getattr(op, "info", None)  # the factor is not kept

    def mean(self, est, cross):
        return cross[self.main] @ est.dual_coef_

    def operator(self, est):
        """The operator of the fitted train kernel, built from the bank on first
        use (std / covariance) and then cached (not pickled)."""
        op = est._cache.get(("op", self.main))
        if op is None and est._fitted.method == "cg":
            op, _ = self.cg_operator(est)
            est._cache[("op", self.main)] = op
        elif op is None:
            K = est._train_kernels((self.main,))[self.main]
            op, _ = self.train_operator(est, K, est.y_train_.size)
            est._cache[("op", self.main)] = op
        return op


class NNGPPosterior(_Strategy):
    """Exact Gaussian-process posterior with the NNGP kernel."""

    main = "nngp"
    mean_kinds = ("nngp",)
    cov_kinds = ("nngp",)

    def variance(self, est, cross, k_diag):
        return k_diag - self.operator(est).quad_diag(cross["nngp"].T)

    def covariance(self, est, cross, K_ss):
        return K_ss - self.operator(est).quad(cross["nngp"].T)

    def log_marginal_likelihood(self, est, diag_reg):
        """``-1/2 y^T A^-1 y - 1/2 log|A| - n/2 log(2 pi)`` summed over targets,
        ``A = K + lambda I`` (Rasmussen & Williams 2006, eq. 2.30)."""
        f = est._fitted
        if f.method == "cg":
            raise ValueError(
                "log_marginal_likelihood needs log|K + lambda I|, which conjugate "
                "gradients do not give; this estimator was fitted with solver='cg'. Refit "
                "with solver='cholesky' (the n x n kernel and its factor must fit in memory)."
            )
        est._check_dense_memory(1, "log_marginal_likelihood")
        K = est._train_kernels(("nngp",))["nngp"]
        n = len(K)
        _solvers.add_ridge(K, diag_reg, f.diag_reg_absolute_scale)
        U = _solvers.cholesky(K, kind="NNGP", diag_reg=diag_reg, dtype=f.dtype)
        alpha = _solvers.cho_solve(U, est.y_train_)
        n_targets = est.y_train_.shape[1]
        fit = -0.5 * float(np.sum(est.y_train_ * alpha))
        half_logdet = float(np.sum(np.log(np.diag(U))))  # log|A| = 2 sum log U_ii
        return fit - n_targets * (half_logdet + 0.5 * n * np.log(2 * np.pi))


class NTKEnsemble(_Strategy):
    """Infinite ensemble of infinitely wide networks trained by gradient descent."""

    main = "ntk"
    mean_kinds = ("ntk",)
    cov_kinds = ("nngp", "ntk")

    def filter(self, fitted, w_reg, m):
        return _solvers.spectral_filter(w_reg, fitted.t, fitted.learning_rate, m)

    def _parts(self, est, cross):
        """``B^T = T Theta*^T`` and ``(K + lambda I) B^T`` with the NNGP train kernel
        (through ``est._train_operator``: never an n x n copy beyond the operator's)."""
        Bt = self.operator(est).apply(cross["ntk"].T)
        K = est._train_operator("nngp")
        f = est._fitted
        lam = _solvers.regularizer(np.sum(K.diagonal()), K.n, f.diag_reg,
                                   f.diag_reg_absolute_scale)
        return Bt, K.matmul(Bt) + lam * Bt

    def variance(self, est, cross, k_diag):
        Bt, KBt = self._parts(est, cross)
        return (k_diag + np.einsum("ij,ij->j", Bt, KBt)
                - 2.0 * np.einsum("ij,ji->j", Bt, cross["nngp"]))

    def covariance(self, est, cross, K_ss):
        Bt, KBt = self._parts(est, cross)
        mixed = cross["nngp"] @ Bt
        return K_ss + Bt.T @ KBt - mixed - mixed.T
