"""Leave-one-out decision values and the softmax temperature of the classifiers.

The kernel classifiers are linear smoothers of their one-hot targets: the
in-sample outputs are ``F = S Y`` with ``S = K T``, where ``T`` is the fitted
operator (``(K + lambda I)^-1`` for the NNGP posterior and the infinite-time
NTK; ``V diag(g) V^T`` for the NTK trained for a finite time). For such a
smoother the leave-one-out output at a training row ``i`` is (Hastie,
Tibshirani and Friedman, *The Elements of Statistical Learning*, 2009, eq. 7.52)

    F_loo[i] = Y[i] - (Y - F)[i] / (1 - S_ii),

exact for kernel ridge regression, where it reduces to
``Y[i] - alpha[i] / [(K + lambda I)^-1]_ii`` with ``alpha = (K + lambda I)^-1 Y``
(Rasmussen & Williams 2006, eq. 5.12), and the usual linear-smoother
approximation for the finite-time NTK. It costs no refit: triangular solves
with the Cholesky factor the fit already has (only the trailing block below
each row is touched), one product with the eigenvectors, or, with conjugate
gradients, the unit vectors of the rows solved in the same pass as ``Y``.

:func:`fit_temperature` then chooses the single temperature ``T`` of
``softmax(F / T)`` that minimises the mean leave-one-out log-loss (targets
smoothed by one pseudo-observation, so that perfectly separated rows still
give a finite ``T``). The loss is convex in ``1/T``; the search is a bounded
scalar minimisation, so the result is deterministic.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.optimize
from scipy.special import log_softmax

from . import _solvers

#: at least this many training rows give leave-one-out values (all rows when
#: fewer); evenly spaced, so sorted data still contributes every class
LOO_ROWS = 128
#: more rows while their triangular solves stay under this many flops
#: (``rows * n**2``): all rows up to n ~ 1,250, 128 from n ~ 4,000
LOO_FLOPS = 2e9
#: bounds of the inverse temperature ``1/T`` of the search
BETA_BOUNDS = (1e-4, 1e4)
_CHUNKS = 2


def loo_rows(n):
    """Evenly spaced training rows used for the leave-one-out values."""
    m = min(n, max(LOO_ROWS, int(LOO_FLOPS / max(n, 1) ** 2)))
    return np.unique(np.linspace(0, n - 1, m).round().astype(np.intp))


def inverse_diagonal(U, rows):
    """``[(U^T U)^-1]_ii`` at sorted ``rows``.

    ``(U^T U)^-1 = U^-1 U^-T`` and row ``i`` of the upper-triangular ``U^-1``
    solves ``U^T z = e_i`` with ``z_j = 0`` for ``j < i``, so a group of rows
    starting at ``i0`` needs only the trailing block ``U[i0:, i0:]``.
    """
    out = np.empty(len(rows))
    with _solvers.blas_threads(len(U)):
        for chunk in np.array_split(np.arange(len(rows)), min(_CHUNKS, len(rows))):
            if not len(chunk):
                continue
            i0 = rows[chunk[0]]
            E = np.zeros((len(U) - i0, len(chunk)))
            E[rows[chunk] - i0, np.arange(len(chunk))] = 1.0
            Z = scipy.linalg.solve_triangular(U[i0:, i0:], E, trans="T", lower=False,
                                              check_finite=False)
            out[chunk] = np.einsum("ij,ij->j", Z, Z)
    return out


def loo_outputs(op, Y, alpha, rows):
    """Leave-one-out outputs ``F_loo[rows]`` of the smoother with operator ``op``.

    ``op`` is the fitted operator: a ridge operator (Cholesky factor of
    ``K + lambda I``, or CG, which solved for the unit vectors of ``rows``
    with ``Y``) that gives ``[(K + lambda I)^-1]_ii`` by ``inverse_diagonal``,
    or eigenvectors ``V``, unregularized eigenvalues ``w`` and filter ``g``;
    ``alpha = T Y`` the dual coefficients.
    """
    if op.V is None:  # ridge: Y - alpha / diag(A^-1)
        return Y[rows] - alpha[rows] / op.inverse_diagonal(rows)[:, None]
    h = 1.0 - op.w * op.g  # eigenvalues of I - S
    Vr = op.V[rows]
    residual = Vr @ (h[:, None] * (op.V.T @ Y))  # (Y - F)[rows]
    return Y[rows] - residual / (Vr ** 2 @ h)[:, None]


def mean_log_loss(beta, scores, labels, smoothing=0.0):
    """Mean log-loss of ``softmax(beta * scores)`` at the integer ``labels``,
    against targets ``(1 - smoothing) * onehot + smoothing / C``."""
    logp = log_softmax(beta * scores, axis=1)
    hit = logp[np.arange(len(labels)), labels]
    return -float(np.mean((1.0 - smoothing) * hit + smoothing * logp.mean(axis=1)))


def fit_temperature(scores, labels):
    """``(T, loss)``: the temperature minimising the mean log-loss of
    ``softmax(scores / T)``, and that (unsmoothed) loss.

    The targets are smoothed by ``1 / (m + 1)`` for ``m`` rows: one
    pseudo-observation spread evenly over the classes. Without it, rows that
    are all classified correctly (common on easy data) would drive ``T`` to 0
    and the probabilities to 0/1, so that a single test mistake costs an
    unbounded log-loss.
    """
    smoothing = 1.0 / (len(labels) + 1)
    lo, hi = np.log(BETA_BOUNDS[0]), np.log(BETA_BOUNDS[1])
    res = scipy.optimize.minimize_scalar(
        lambda log_beta: mean_log_loss(np.exp(log_beta), scores, labels, smoothing),
        bounds=(lo, hi), method="bounded", options={"xatol": 1e-6},
    )
    return float(np.exp(-res.x)), mean_log_loss(np.exp(res.x), scores, labels)


def softmax_proba(scores, temperature):
    """``softmax(scores / T)`` per row (rows sum to 1), as ``predict_proba`` computes it."""
    return np.exp(log_softmax(scores / temperature, axis=1))
