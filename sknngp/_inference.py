"""Closed-form inference with NNGP and NTK kernels (NumPy, float64).

All solves go through the eigendecomposition ``K = V diag(w) V^T`` of the train
kernel, computed once per fold: a new regularisation ``lambda`` or training
time ``t`` only changes the filter applied to the eigenvalues.

- NNGP posterior (Rasmussen & Williams 2006, eqs. 2.23-2.24):
  mean ``K* (K + lambda I)^-1 Y``, covariance ``K** - K* (K + lambda I)^-1 K*^T``.
- NTK ensemble trained by gradient descent on MSE for time ``t`` (Lee et al.
  2019, arXiv:1902.06720, eqs. 15-16; neural-tangents' time convention):
  ``T = Theta^-1 (I - exp(-eta Theta t / m))``, ``m = y.size``; mean
  ``Theta* T Y``; covariance
  ``K** + Theta* T K T Theta*^T - (Theta* T K*^T + K* T Theta*^T)``.
  ``t = None`` is the converged limit ``T = Theta^-1``.
"""

from __future__ import annotations

import numpy as np


def regularizer(w, diag_reg, absolute):
    """The absolute ridge ``lambda``: ``diag_reg`` or ``diag_reg * tr(K) / n``."""
    if absolute:
        return float(diag_reg)
    return float(diag_reg) * float(np.sum(w)) / len(w)


def check_positive(w, lam, *, kind, diag_reg, dtype):
    """Raise if ``K + lambda I`` is not numerically positive definite."""
    if not np.all(np.isfinite(w)):
        raise ValueError(
            f"The {kind} train kernel contains NaN or infinite values "
            f"(dtype={dtype!r}, diag_reg={diag_reg!r}). Use dtype='float64' and check "
            "the inputs' scale (standardize X)."
        )
    eps = np.finfo(np.float32 if dtype == "float32" else np.float64).eps
    shifted = w + lam
    floor = len(w) * eps * max(float(np.max(np.abs(w))), 1e-300)
    if np.min(shifted) <= floor:
        raise ValueError(
            f"The regularized {kind} train kernel is not positive definite at "
            f"diag_reg={diag_reg!r} with dtype={dtype!r}: its smallest eigenvalue is "
            f"{np.min(shifted):.3g}, below the rounding level {floor:.3g}. Try a larger "
            "diag_reg (e.g. 1e-4 relative), dtype='float64', or removing duplicate samples."
        )


def spectral_filter(w_reg, t, learning_rate, m):
    """Eigenvalue filter ``g(w)`` with ``T = V diag(g) V^T``."""
    if t is None:
        return 1.0 / w_reg
    return -np.expm1(-learning_rate * w_reg * t / m) / w_reg


def mean(K_star, V, g, Y):
    """``K* V diag(g) V^T Y``."""
    return K_star @ (V @ (g[:, None] * (V.T @ Y)))


def nngp_variance(k_diag, K_star, V, g):
    """Diagonal of ``K** - K* V diag(g) V^T K*^T``."""
    A = K_star @ V
    return k_diag - np.einsum("ij,ij,j->i", A, A, g)


def nngp_covariance(K_ss, K_star, V, g):
    A = K_star @ V
    return K_ss - (A * g) @ A.T


def ntk_variance(k_diag, Theta_star, K_star, K_train, V, g):
    """Diagonal of the NTK-ensemble covariance (Lee et al. 2019, eq. 16)."""
    B = (Theta_star @ V) * g @ V.T  # Theta* T
    return (
        k_diag
        + np.einsum("ij,ij->i", B @ K_train, B)
        - 2.0 * np.einsum("ij,ij->i", B, K_star)
    )


def ntk_covariance(K_ss, Theta_star, K_star, K_train, V, g):
    B = (Theta_star @ V) * g @ V.T
    cross = B @ K_star.T
    return K_ss + B @ K_train @ B.T - cross - cross.T


def clip_variance(var, warn):
    """Clip tiny negative variances to 0 (warn once), as sklearn's GPR does."""
    neg = var < 0
    if np.any(neg):
        warn(
            "Predicted variances smaller than 0 (min "
            f"{float(np.min(var)):.3g}) were set to 0: round-off in K** - K* K^-1 K*^T. "
            "A larger diag_reg or dtype='float64' reduces it."
        )
        var = np.where(neg, 0.0, var)
    return var
