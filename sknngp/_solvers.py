"""Linear algebra of the kernel estimators (NumPy / SciPy, float64).

Three ways to apply ``(K + lambda I)^-1``:

- ``"cholesky"``: one factorization ``K + lambda I = U^T U`` (Rasmussen &
  Williams 2006, Alg. 2.1, with the upper factor). The default wherever a fixed ``lambda`` is enough.
- ``"eigh"``: ``K = V diag(w) V^T``; any spectral filter ``g(w)`` then costs two
  matrix products. Needed by the finite-time NTK (``exp(-eta Theta t / m)``).
  A symmetric eigendecomposition costs 15-100x a Cholesky factorization of
  the same matrix on CPUs (n = 1,000-6,000), so it is used only where a
  spectrum is needed or asked for.
- ``"cg"``: preconditioned conjugate gradients (:mod:`sknngp._cg`) over a
  kernel operator, for kernels too large to factor in memory.

Kernels may be computed in float32; solves are always float64. A failed
factorization raises an error that names ``diag_reg``, the kernel dtype and
the failing pivot.
"""

from __future__ import annotations

import contextlib
import re
import warnings

import numpy as np
import scipy.linalg
from threadpoolctl import ThreadpoolController

SOLVERS = ("auto", "cholesky", "eigh", "cg")

#: estimated relative error of the dual coefficients above which a float32
#: kernel triggers a warning
FLOAT32_WARN = 0.1


#: below this size BLAS runs single-threaded: a threaded OpenBLAS Cholesky of
#: a 200 x 200 matrix took 50-250 ms on a busy 2-core machine, 0.2 ms on one
#: thread (threads spin waiting for cores that are busy elsewhere)
SMALL_SOLVE = 1024


_controller = None


def blas_threads(n):
    """Context limiting BLAS to one thread for solves of size ``n < SMALL_SOLVE``."""
    global _controller
    if n >= SMALL_SOLVE:
        return contextlib.nullcontext()
    if _controller is None:  # finding the libraries reads /proc: do it once
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


def regularizer(K_trace, n, diag_reg, absolute):
    """The absolute ridge ``lambda``: ``diag_reg`` or ``diag_reg * tr(K) / n``."""
    if absolute:
        return float(diag_reg)
    return float(diag_reg) * float(K_trace) / n


def add_ridge(K, diag_reg, absolute):
    """``K += lambda I`` in place; returns ``lambda`` (see :func:`regularizer`)."""
    n = len(K)
    lam = regularizer(np.trace(K), n, diag_reg, absolute)
    K[np.diag_indices(n)] += lam
    return lam


def _not_pd(kind, diag_reg, dtype, detail):
    return ValueError(
        f"The regularized {kind} train kernel is not positive definite at "
        f"diag_reg={diag_reg!r} with a dtype={dtype!r} kernel ({detail}). Try a larger "
        "diag_reg (e.g. 1e-4 relative, the default), dtype='float64', or removing "
        "duplicate samples."
    )


def cholesky(A, *, kind, diag_reg, dtype):
    """Cholesky factor ``U`` (``A = U^T U``) of a symmetric ``A``, computed in
    place, with a clear error on failure.

    ``A`` is C-ordered; its transpose (the same symmetric matrix) is
    Fortran-ordered, which LAPACK takes without a copy. ``U`` is returned
    Fortran-ordered, as the solves below expect (no n x n copies).
    """
    try:
        with blas_threads(len(A)):
            return scipy.linalg.cholesky(A.T, lower=False, overwrite_a=True,
                                         check_finite=False)
    except np.linalg.LinAlgError as exc:
        found = re.search(r"(\d+)", str(exc))
        pivot = f"pivot {found.group(1)} of {len(A)} failed" if found else str(exc)
        raise _not_pd(kind, diag_reg, dtype, pivot) from None


def ridge_cholesky(K, *, diag_reg, absolute, kind, dtype, device=None):
    """``(U, lambda)`` with ``K + lambda I = U^T U``; ``K`` is consumed.

    The factorization runs on the GPU (float64) when JAX has one, ``device``
    does not ask for the CPU, and the solve fits the GPU's free memory
    (:mod:`sknngp._device_solve`); otherwise LAPACK on the host. For a float32
    kernel, warns when the solve's estimated error is large
    (:func:`warn_float32`).
    """
    lam = add_ridge(K, diag_reg, absolute)
    norm = one_norm(K) if dtype == "float32" else None
    gpu = _gpu_for(device, len(K))
    if gpu is not None:
        from . import _device_solve

        try:
            U = _device_solve.factor(K, 0.0, gpu)  # the ridge is already on K
        except np.linalg.LinAlgError as exc:
            raise _not_pd(kind, diag_reg, dtype, str(exc)) from None
    else:
        U = cholesky(K, kind=kind, diag_reg=diag_reg, dtype=dtype)
    warn_float32(U, norm, dtype)
    return U, lam


#: below this size the host factors faster than a transfer to the GPU and back
GPU_SOLVE_MIN = 4096


def _gpu_for(device, n):
    """The JAX GPU/TPU to factor an ``n x n`` kernel on, or None (host)."""
    if n < GPU_SOLVE_MIN or (isinstance(device, str) and device.lower().startswith("cpu")):
        return None
    if getattr(device, "platform", None) == "cpu":
        return None
    from . import _device_solve

    gpu = _device_solve.accelerator() if device is None else None
    if device is not None:
        from .kernels._validation import resolve_devices

        first = resolve_devices(device)[0]
        gpu = first if first.platform != "cpu" else None
    return gpu if gpu is not None and _device_solve.fits(n, 1, gpu) else None


def cho_solve(U, B):
    """``(U^T U)^-1 B``."""
    with blas_threads(len(U)):
        return scipy.linalg.cho_solve((U, False), B, check_finite=False)


def half_solve(U, B):
    """``U^-T B``: ``||U^-T k||^2 = k^T (U^T U)^-1 k``."""
    with blas_threads(len(U)):
        return scipy.linalg.solve_triangular(U, B, trans="T", lower=False,
                                             check_finite=False)


def one_norm(A):
    """``||A||_1`` (largest absolute column sum), for :func:`warn_float32`."""
    return float(np.max(np.sum(np.abs(A), axis=0)))


def warn_float32(U, norm, dtype):
    """Warn when a float32 kernel leaves the solve with a large estimated error.

    The float32 kernel differs from the exact one by about ``eps32`` relative;
    the solution's relative error is then bounded by about
    ``cond(K + lambda I) * eps32``, with the 1-norm condition number estimated
    from the Cholesky factor by LAPACK's ``pocon`` (O(n^2)). ``norm`` is
    ``||K + lambda I||_1``, taken before the factorization.
    """
    if dtype != "float32":
        return
    rcond, info = scipy.linalg.lapack.dpocon(U, norm, uplo="U")
    cond = np.inf if info != 0 or rcond <= 0 else 1.0 / rcond
    error = cond * float(np.finfo(np.float32).eps)
    if error > FLOAT32_WARN:
        warnings.warn(
            f"The kernel was computed in float32 and the regularized system has an "
            f"estimated condition number of {cond:.2g}: the dual coefficients may be off "
            f"by about {min(error, 1.0):.0%} (relative; predictions usually much less). "
            "Use dtype='float64' or a larger diag_reg for exact results.",
            RuntimeWarning,
            stacklevel=7,  # the user's fit (through _fit_context)
        )


def eigh(K):
    """``(w, V)`` of a symmetric matrix (LAPACK's divide and conquer driver)."""
    with blas_threads(len(K)):
        return scipy.linalg.eigh(K, driver="evd", check_finite=False)


def check_spectrum(w, lam, *, kind, diag_reg, dtype):
    """Raise if ``K + lambda I`` is not positive definite (its smallest
    eigenvalue is not above float64 round-off)."""
    if not np.all(np.isfinite(w)):
        raise ValueError(
            f"The {kind} train kernel contains NaN or infinite values "
            f"(dtype={dtype!r}, diag_reg={diag_reg!r}). Use dtype='float64' and check "
            "the inputs' scale (standardize X)."
        )
    shifted = w + lam
    floor = len(w) * np.finfo(np.float64).eps * max(float(np.max(np.abs(w))), 1e-300)
    if np.min(shifted) <= floor:
        raise _not_pd(kind, diag_reg, dtype,
                      f"smallest eigenvalue {np.min(shifted):.3g} <= round-off {floor:.3g}")


def spectral_filter(w_reg, t, learning_rate, m):
    """Eigenvalue filter ``g(w)`` with ``T = V diag(g) V^T`` (``t=None``: ``1/w``)."""
    if t is None:
        return 1.0 / w_reg
    return -np.expm1(-learning_rate * w_reg * t / m) / w_reg


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
