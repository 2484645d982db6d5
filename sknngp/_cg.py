"""Preconditioned conjugate gradients for ``(K + lambda I) X = B`` (NumPy only).

The kernel is reached only through a :class:`KernelOperator` (its diagonal,
some of its columns, products with blocks of vectors), so the solver never
needs ``K`` as an ``n x n`` array when the operator streams it.

- **Block of right-hand sides.** Every column of ``B`` runs its own CG
  recursion (its own step sizes), but all active columns share one product
  ``K @ P`` per iteration: one pass over the kernel serves every column.
  A column stops updating once its relative residual
  ``||b - A x|| / ||b||`` is at most ``tol``; before the solve returns, the
  residuals of the converged columns are recomputed from scratch (one more
  product) and a column whose recursive residual had drifted above ``tol``
  resumes from its true residual.
- **Preconditioner.** A greedy pivoted (partial) Cholesky factor ``L`` of
  rank ``r``, ``K ~ L L^T`` (Harbrecht, Peters and Schneider 2012; used as a
  CG preconditioner for kernel matrices by Gardner et al. 2018, GPyTorch):
  each step takes the column of the largest remaining diagonal entry, so it
  needs ``r`` columns and the diagonal, never the whole matrix. It stops
  early once the remaining trace ``tr(K - L L^T)`` is below ``lambda`` (the
  preconditioned system then has all its eigenvalues in ``[1, 2]``).
  ``(L L^T + lambda I)^-1`` is applied through the eigendecomposition of
  ``L L^T = U diag(s) U^T`` (thin QR of ``L``, then an ``r x r``
  eigenproblem): ``v / lambda + U diag(1/(s + lambda) - 1/lambda) U^T v``,
  the Woodbury identity in a form without the cancellation of
  ``(lambda I + L^T L)^-1`` at small ``lambda``.

The iteration count of CG grows with the square root of the condition number
of the preconditioned system; the preconditioner removes the largest
eigenvalues of ``K`` (the slowly decaying head of a kernel's spectrum), which
is what makes a small relative ``diag_reg`` tractable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import scipy.linalg

from . import _solvers

#: largest default rank of the pivoted-Cholesky preconditioner (see
#: :func:`default_rank`)
PRECOND_RANK = 300


class KernelOperator(Protocol):
    """What the solver needs of a symmetric positive semi-definite kernel."""

    n: int

    def diagonal(self):
        """``K_ii``, shape ``(n,)``."""

    def columns(self, idx):
        """``K[:, idx]``, shape ``(n, len(idx))``."""

    def matmul(self, V):
        """``K @ V`` for ``V`` of shape ``(n, k)`` (no ridge: the solver adds it)."""


class DenseOperator:
    """:class:`KernelOperator` over an in-memory ``(n, n)`` kernel matrix."""

    def __init__(self, K):
        K = np.asarray(K, dtype=np.float64)
        if K.ndim != 2 or K.shape[0] != K.shape[1]:
            raise ValueError(f"K must be a square matrix; got shape {K.shape}.")
        self.K, self.n = K, len(K)

    def diagonal(self):
        return np.diag(self.K).copy()

    def columns(self, idx):
        return self.K[:, np.asarray(idx, dtype=np.intp)]

    def matmul(self, V):
        with _solvers.blas_threads(self.n):
            return self.K @ V


def default_max_iter(n):
    """``max(100, 10 * ceil(sqrt(n)))``: 100 up to n = 100, 448 at n = 2,000,
    708 at n = 5,000, 3,163 at n = 100,000."""
    return max(100, 10 * math.ceil(math.sqrt(n)))


#: rank of the preconditioner of an operator that streams the kernel from
#: disk: each iteration there costs a pass over the stored kernel, so a
#: larger factor (fewer iterations; its pivots come 64 per pass) pays off
STREAMING_RANK = 1000


def default_rank(n, streaming=False):
    """``min(n, PRECOND_RANK)`` (``min(n, STREAMING_RANK)`` for a streaming
    operator): ``n`` for small problems (the factor is then exact up to the
    trace stop)."""
    return min(n, STREAMING_RANK if streaming else PRECOND_RANK)


def pivoted_cholesky(op, rank, stop_trace=0.0):
    """Greedy pivoted Cholesky ``L`` (``(n, m)``, ``m <= rank``) with ``K ~ L L^T``.

    Stops after ``rank`` columns, or once the remaining trace
    ``tr(K - L L^T)`` is at most ``stop_trace``, or when no positive
    remaining diagonal entry is left. An operator with a ``column_batch``
    attribute (one that streams the kernel from disk, where each read of
    columns costs a pass over stored blocks) is asked for that many columns at
    once: the largest remaining diagonal entries, then eliminated one after
    the other (a candidate that an earlier one of its batch made negligible is
    skipped). With ``column_batch = 1`` this is the plain greedy algorithm.
    """
    d = np.array(op.diagonal(), dtype=np.float64)
    n = len(d)
    batch = max(1, int(getattr(op, "column_batch", 1)))
    Lt = np.zeros((rank, n))  # L transposed: the rows computed so far are contiguous
    m = 0
    while m < rank:
        if float(np.sum(d)) <= stop_trace:
            break
        k = min(batch, rank - m, n)
        cand = np.argsort(-d, kind="stable")[:k] if k > 1 else [int(np.argmax(d))]
        cand = [int(i) for i in cand if d[i] > 0]
        if not cand:
            break
        first = d[cand[0]]
        cols = np.asarray(op.columns(cand), dtype=np.float64).reshape(n, len(cand))
        for c, i in enumerate(cand):
            if m >= rank or float(np.sum(d)) <= stop_trace:
                break
            if d[i] <= 1e-12 * first:  # made negligible by this batch's earlier pivots
                continue
            col = (cols[:, c] - Lt[:m, i] @ Lt[:m]) / math.sqrt(d[i])
            Lt[m] = col
            d -= col ** 2
            d[i] = 0.0  # exactly pivoted out (round-off could leave it a tiny positive)
            m += 1
    return Lt[:m].T


class LowRankPreconditioner:
    """``(L L^T + lambda I)^-1``, symmetric positive definite for ``lambda > 0``."""

    def __init__(self, L, lam):
        self.lam, self.rank = float(lam), L.shape[1]
        if self.rank:
            Q, R = scipy.linalg.qr(L, mode="economic", check_finite=False)
            s, W = scipy.linalg.eigh(R @ R.T)
            s = np.maximum(s, 0.0)
            self.U = Q @ W
            self.c = 1.0 / (s + self.lam) - 1.0 / self.lam  # = -s / (lam (s + lam))

    def __call__(self, R):
        out = R / self.lam
        if self.rank:
            out += self.U @ (self.c[:, None] * (self.U.T @ R))
        return out


def build_preconditioner(op, lam, rank=None):
    """The pivoted-Cholesky preconditioner of ``K + lambda I`` (``rank=0``: none)."""
    streaming = getattr(op, "column_batch", 1) > 1
    rank = default_rank(op.n, streaming) if rank is None else min(int(rank), op.n)
    if rank <= 0 or lam <= 0:
        return None
    return LowRankPreconditioner(pivoted_cholesky(op, rank, stop_trace=lam), lam)


@dataclass
class CGInfo:
    """What a solve did: iterations, final residuals, preconditioner rank.

    ``n_iter`` is the number of iterations (products with ``K`` over the
    active columns), ``n_iter_per_column`` each column's share of them,
    ``residuals`` the true relative residuals ``||b - A x|| / ||b||`` at return
    (0 for zero columns), ``passes`` the number of products with ``K``
    including the final residual checks.
    """

    n_iter: int = 0
    passes: int = 0
    tol: float = 0.0
    max_iter: int = 0
    precond_rank: int = 0
    n_iter_per_column: np.ndarray = field(default_factory=lambda: np.zeros(0, int))
    residuals: np.ndarray = field(default_factory=lambda: np.zeros(0))

    @property
    def max_residual(self):
        return float(np.max(self.residuals)) if len(self.residuals) else 0.0


class CGConvergenceError(RuntimeError):
    """CG did not reach ``tol`` within ``max_iter`` iterations."""

    def __init__(self, info, reason=None):
        self.info = info
        why = (f"did not converge in {info.n_iter} iterations (max_iter={info.max_iter})"
               if reason is None else reason)
        super().__init__(
            f"The conjugate-gradient solve (solver='cg') {why}: worst relative residual "
            f"{info.max_residual:.3g} against tol={info.tol:.3g} (preconditioner rank "
            f"{info.precond_rank}). Try a larger diag_reg (better conditioned), a larger "
            "max_iter or tol, or solver='cholesky' when the n x n kernel fits in memory."
        )


def _col_norms(M):
    return np.sqrt(np.einsum("ij,ij->j", M, M))


def cg_solve(op, B, lam, *, tol, max_iter=None, precond=None, max_restarts=3):
    """Solve ``(K + lambda I) X = B`` for every column of ``B``; ``(X, CGInfo)``.

    Parameters
    ----------
    op : KernelOperator
    B : ndarray of shape (n,) or (n, k)
    lam : float
        The ridge ``lambda`` (absolute), added by the solver.
    tol : float
        Relative residual ``||b - A x|| / ||b||`` to reach in every column.
    max_iter : int, default=None
        Iterations allowed (``None``: :func:`default_max_iter`).
    precond : callable or None
        ``R -> M R`` approximating ``(K + lambda I)^-1`` column-wise, e.g. a
        :class:`LowRankPreconditioner`.

    Raises
    ------
    CGConvergenceError
        When a column is still above ``tol`` after ``max_iter`` iterations,
        or the system is not positive definite to working precision.
    """
    B = np.asarray(B, dtype=np.float64)
    vector = B.ndim == 1
    B = B.reshape(len(B), -1)
    n, k = B.shape
    max_iter = default_max_iter(n) if max_iter is None else int(max_iter)
    M = precond if precond is not None else (lambda R: R.copy())
    info = CGInfo(tol=float(tol), max_iter=max_iter,
                  precond_rank=getattr(precond, "rank", 0),
                  n_iter_per_column=np.zeros(k, dtype=int), residuals=np.zeros(k))

    def apply_A(V):
        info.passes += 1
        return op.matmul(V) + lam * V

    bnorm = _col_norms(B)
    X = np.zeros((n, k))
    R = B.copy()
    todo = np.flatnonzero(bnorm > 0)
    for _ in range(max_restarts + 1):
        if len(todo):
            _iterate(apply_A, M, X, R, bnorm, todo, info)
        done = np.flatnonzero(bnorm > 0)
        if len(done):  # true residuals: the recursion drifts at tight tol
            R[:, done] = B[:, done] - apply_A(X[:, done])
            info.residuals[done] = _col_norms(R[:, done]) / bnorm[done]
        todo = done[info.residuals[done] > tol]
        if not len(todo) or info.n_iter >= max_iter:
            break
    if len(todo) and info.n_iter < max_iter:  # restarts used up: round-off bound
        raise CGConvergenceError(
            info, f"stalled after {info.n_iter} iterations and {max_restarts} restarts "
                  "from the true residual (float64 round-off bounds the attainable "
                  "residual at this conditioning)")
    if len(todo):
        raise CGConvergenceError(info)
    return (X[:, 0] if vector else X), info


def _iterate(apply_A, M, X, R, bnorm, cols, info):
    """PCG from the residuals ``R[:, cols]`` (updates ``X``, ``R``, ``info``)."""
    Z = M(R[:, cols])
    P = Z.copy()
    rz = np.einsum("ij,ij->j", R[:, cols], Z)
    active = np.arange(len(cols))  # positions in cols
    while len(active) and info.n_iter < info.max_iter:
        c = cols[active]
        AP = apply_A(P[:, active])
        pap = np.einsum("ij,ij->j", P[:, active], AP)
        if not np.all(np.isfinite(pap)) or np.any(pap <= 0):
            info.residuals[c] = _col_norms(R[:, c]) / bnorm[c]
            raise CGConvergenceError(
                info, "broke down: the regularized kernel is not positive definite to "
                      "working precision")
        alpha = rz[active] / pap
        X[:, c] += alpha * P[:, active]
        R[:, c] -= alpha * AP
        info.n_iter += 1
        info.n_iter_per_column[c] += 1
        rel = _col_norms(R[:, c]) / bnorm[c]
        info.residuals[c] = rel
        going = rel > info.tol
        active, c = active[going], c[going]
        if not len(active):
            break
        Z = M(R[:, c])
        rz_new = np.einsum("ij,ij->j", R[:, c], Z)
        P[:, active] = Z + (rz_new / rz[active]) * P[:, active]
        rz[active] = rz_new
