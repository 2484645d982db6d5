"""Host-memory planning of the kernel estimators: estimate, choose, refuse.

Before a fit (or a standard deviation / covariance, which need the train
kernels again) computes any kernel, the estimator estimates the host bytes
the work holds at its peak and compares them with the available memory:

- a dense solve (``"cholesky"``, ``"eigh"``) holds every train kernel it needs
  at once (``8 n^2`` bytes each, float64); the Cholesky factor overwrites its
  kernel; an eigendecomposition adds about two more ``n x n`` arrays (the
  eigenvectors and LAPACK's workspace); with ``kernel_cache="memory"`` the
  bank keeps a copy of the new entries (up to its own budget,
  :data:`sknngp._bank.MAX_BANK_BYTES`);
- conjugate gradients (``"cg"``) hold the kernel operator (the whole kernel
  for an in-memory operator; what a streaming operator keeps otherwise) and
  a few ``n x k`` blocks for the ``k`` right-hand sides, plus the
  preconditioner's two ``n x r`` factors.

Blocks of test rows at prediction time are bounded separately
(:data:`sknngp._base.PREDICT_ENTRIES`) and are not part of the fit's plan.

``solver="auto"`` takes the dense solve when its estimate is at most
:data:`AUTO_DENSE_FRACTION` of the available memory (every small problem,
as before), else CG when that needs less memory than the dense solve and fits
(not for a finite-time NTK, which needs the spectrum). With the in-memory
kernel operator CG holds the same ``n x n`` kernel as an in-place Cholesky
factorization, so "auto" turns to CG only for an operator that streams the
kernel; otherwise the dense solve is kept while it fits at all. When nothing
fits, a ``MemoryError`` gives the estimate, the available memory and what
would fit.
"""

from __future__ import annotations

import os

from . import _bank

#: ``solver="auto"`` factors densely while the dense estimate is at most this
#: fraction of the available host memory ("fits comfortably": the rest of the
#: process, other processes and the page cache keep the remainder)
AUTO_DENSE_FRACTION = 0.5

#: ``n x k`` float64 blocks that conjugate gradients hold per right-hand side
#: (solution, residual, preconditioned residual, direction, product, right-hand side)
CG_BLOCKS = 6

GiB = 2**30


def available_bytes():
    """Host memory available to new allocations, in bytes (``None``: unknown).

    Linux's ``MemAvailable`` (free memory plus the page cache the kernel can
    reclaim) when ``/proc/meminfo`` has it, else ``os.sysconf``'s free pages
    (which, on Linux, leaves out the page cache and can be far lower on a
    machine that has read large files).
    """
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def kernel_bytes(n1, n2=None):
    """Bytes of one float64 ``n1 x n2`` kernel block (``n2=None``: square)."""
    return 8 * n1 * (n1 if n2 is None else n2)


def dense_bytes(n, n_kinds, eigh, bank=False):
    """Peak bytes of a dense solve over ``n_kinds`` train kernels of ``n`` rows."""
    k = kernel_bytes(n)
    total = n_kinds * k + (2 * k if eigh else 0)
    if bank:
        total += min(_bank.MAX_BANK_BYTES, n_kinds * k)
    return total


def cg_bytes(n, n_rhs, operator_bytes, rank, bank_bytes=0):
    """Peak bytes of a CG solve: the operators, the blocks, the preconditioner
    (and ``bank_bytes``, the bank's copy of an in-memory kernel)."""
    return (int(operator_bytes) + 8 * n * (CG_BLOCKS * n_rhs + 2 * rank)
            + min(_bank.MAX_BANK_BYTES, int(bank_bytes)))


def _gib(b):
    return f"{b / GiB:.1f} GiB"


def refuse(what, need, avail, hint):
    """A ``MemoryError`` with the estimate, the available memory and a way out."""
    return MemoryError(
        f"{what} needs about {_gib(need)} of host memory but only {_gib(avail)} is "
        f"available; {hint}"
    )


def choose_solver(solver, t, n, *, dense, cg, kernel_cache, what="The fit"):
    """The solve a fit uses (``"cholesky"``, ``"eigh"`` or ``"cg"``).

    ``dense`` and ``cg`` are the byte estimates of the dense solve (Cholesky,
    or eigh when ``t`` or ``solver`` asks for it) and of CG. Raises a
    ``MemoryError`` when the solve asked for (or, for ``"auto"``, every solve
    that can give the result) does not fit.
    """
    eigh = solver == "eigh" or t is not None
    method = "eigh" if eigh else "cholesky"
    avail = available_bytes()
    if avail is None:
        return "cg" if solver == "cg" else method
    streaming = kernel_cache not in ("memory", "off")
    way_out = ("use solver='cg' with kernel_cache=<a directory> (the kernel is then "
               "streamed from disk instead of held in memory), or fewer samples.")
    if streaming and solver != "cg":
        way_out = "use solver='cg' (it streams the cached kernel), or fewer samples."
    if solver == "cg":
        if cg > avail:
            hint = ("pass kernel_cache=<a directory> so that CG streams the kernel from "
                    "disk, or use fewer samples." if not streaming else "use fewer samples.")
            raise refuse(f"{what} with solver='cg' (n={n})", cg, avail, hint)
        return "cg"
    if solver == "auto" and not eigh:
        if dense <= AUTO_DENSE_FRACTION * avail:
            return method
        if cg < dense and cg <= avail:  # CG only where it saves memory (a streamed kernel)
            return "cg"
    if dense > avail:
        if t is not None:
            way_out = ("the finite-time NTK (t set) needs an eigendecomposition of the "
                       "n x n kernel, which CG cannot replace: use fewer samples, or "
                       "t=None with solver='cg'.")
        raise refuse(f"{what} with solver={solver!r} ({method}, n={n})", dense, avail,
                     way_out)
    return method


def check_spread(n, n_test, cov, *, method, n_train_kernels, operator_bytes, rank):
    """Refuse ``predict(return_std / return_cov)`` on ``n_test`` rows that does not fit.

    It holds ``n_train_kernels`` train kernels not yet cached (dense: ``8 n^2``
    each, plus an eigendecomposition's workspace; CG: the operators and its
    blocks), the cross blocks, the solved blocks and, for a covariance, the
    ``n_test x n_test`` test kernel.
    """
    if method == "cg":
        train = n_train_kernels * operator_bytes + cg_bytes(n, n_test, 0, rank)
    else:
        train = dense_bytes(n, n_train_kernels, eigh=method == "eigh" and n_train_kernels > 0)
    need = train + 8 * n_test * n * 4 + (kernel_bytes(n_test) if cov else 0)
    avail = available_bytes()
    if avail is not None and need > avail:
        what = "return_cov" if cov else "return_std"
        hint = "predict fewer samples per call"
        hint += ", use return_std instead of return_cov" if cov else ""
        hint += (", or refit with solver='cg' and kernel_cache=<a directory>."
                 if method != "cg" else ".")
        raise refuse(f"predict({what}=True) on {n_test} samples (n_train={n}, solver "
                     f"{method!r})", need, avail, hint)
