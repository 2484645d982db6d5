"""Solves of ``(K + lam I) X = B`` on one JAX device, in float64.

A GPU factors a 20,000 x 20,000 kernel in about a second where a few CPU
cores take a minute, so fits solve there when the matrix fits the device's
memory (:func:`fits`). Everything is float64 whatever the kernel's dtype
(JAX's x64 mode is switched on for the call only); the results come back as
NumPy arrays. :func:`factor` returns the same upper Cholesky factor as
``scipy.linalg.cholesky(K + lam I, lower=False)``, Fortran-ordered, so the
SciPy solves that follow a fit take it unchanged; :func:`solve` returns the
solution itself.

A failed factorization (``K + lam I`` not positive definite: JAX returns NaN
pivots instead of raising) raises :class:`numpy.linalg.LinAlgError`.

Examples
--------
>>> import numpy as np
>>> from sknngp import _device_solve
>>> K = np.array([[2.0, 1.0], [1.0, 2.0]])
>>> x = _device_solve.solve(K, np.array([1.0, 1.0]), lam=1.0)
>>> bool(np.allclose((K + np.eye(2)) @ x, 1.0))
True
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from .kernels import _memory
from .kernels._validation import resolve_devices

#: share of a device's free memory (the host's for a CPU device) a solve may take
SOLVE_SHARE = 0.8


def accelerator():
    """The first local GPU / TPU of JAX's default backend, or None (CPUs only)."""
    for device in jax.local_devices():
        if device.platform != "cpu":
            return device
    return None


def _device(device):
    if device is None:
        return accelerator() or jax.local_devices()[0]
    return resolve_devices(device)[0]


def bytes_needed(n, n_rhs=1):
    """Upper estimate of the device memory of a solve: ``K``, ``K + lam I``
    and its factor (``3 n^2``), ``B``, an intermediate and ``X``
    (``3 n n_rhs``), float64."""
    return 8 * (3 * n * n + 3 * n * n_rhs)


def fits(n, n_rhs=1, device=None):
    """Whether a solve of size ``n`` with ``n_rhs`` right-hand sides fits
    :data:`SOLVE_SHARE` of ``device``'s free memory (``memory_stats()``;
    the host's available memory for a CPU device; True where unknown).

    ``device``: None (the first GPU / TPU, else the first CPU), a
    ``jax.Device``, or a name such as ``"gpu:0"``.
    """
    dev = device if hasattr(device, "platform") else _device(device)
    free = _memory.device_free(dev)
    if free is None:
        free = _memory.host_available()
        if free is None:
            return True
    return bytes_needed(n, n_rhs) <= SOLVE_SHARE * free


@functools.lru_cache(maxsize=None)
def _compiled(donate):
    def factor_and_solve(K, B, lam, want_solution):
        A = K + lam * jnp.eye(K.shape[0], dtype=K.dtype)
        L = jnp.linalg.cholesky(A)
        ok = jnp.all(jnp.isfinite(jnp.diagonal(L)))
        if not want_solution:
            return L, ok
        return jax.scipy.linalg.cho_solve((L, True), B), ok

    # donating K lets XLA factor in its buffer (a CPU backend cannot donate)
    return jax.jit(factor_and_solve, static_argnums=3,
                   donate_argnums=(0,) if donate else ())


def _check(K, B, lam):
    K = np.asarray(K, dtype=np.float64)
    if K.ndim != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"K must be a square 2-D array; got shape {K.shape}.")
    if B is not None:
        B = np.asarray(B, dtype=np.float64)
        if B.ndim not in (1, 2) or B.shape[0] != K.shape[0]:
            raise ValueError(
                f"B must have {K.shape[0]} rows, as K; got shape {B.shape}."
            )
    if isinstance(lam, bool) or not isinstance(lam, (int, float, np.floating, np.integer)) \
            or not math.isfinite(lam) or lam < 0:
        raise ValueError(f"lam must be a finite number >= 0; got {lam!r}.")
    return K, B, float(lam)


def _run(K, B, lam, device, want_solution):
    K, B, lam = _check(K, B, lam)
    dev = _device(device)
    with jax.enable_x64(True):
        k = jax.device_put(K, dev)
        b = jax.device_put(np.zeros((K.shape[0], 0)) if B is None else B, dev)
        out, ok = _compiled(dev.platform != "cpu")(k, b, lam, want_solution)
        if not bool(ok):
            raise np.linalg.LinAlgError(
                f"K + lam I (n={K.shape[0]}, lam={lam:g}) is not positive definite on "
                f"{_memory.name(dev)}: its Cholesky factorization failed. Use a larger "
                "lam (diag_reg) or check K for NaN values."
            )
        return np.asarray(out, dtype=np.float64)


def solve(K, B, lam, device=None):
    """``X`` with ``(K + lam I) X = B``, by Cholesky on ``device``.

    Parameters
    ----------
    K : array-like of shape (n, n)
        Symmetric matrix (not modified).
    B : array-like of shape (n,) or (n, m)
    lam : float
        Ridge added to the diagonal, ``>= 0``.
    device : None, str or jax.Device, default=None
        ``None``: the first local GPU / TPU, else the first CPU.

    Returns
    -------
    X : ndarray of B's shape, float64
    """
    return _run(K, B, lam, device, True)


def factor(K, lam, device=None):
    """Upper Cholesky factor ``U`` of ``K + lam I`` (``U^T U``), computed on
    ``device`` and returned Fortran-ordered, as ``_solvers.cholesky`` returns it.

    Parameters
    ----------
    K : array-like of shape (n, n)
        Symmetric matrix (not modified).
    lam : float
    device : None, str or jax.Device, default=None

    Returns
    -------
    U : ndarray of shape (n, n), float64, Fortran-ordered
    """
    return _run(K, None, lam, device, False).T
