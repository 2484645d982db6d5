"""``kernel_cache=<directory>``: whole kernel blocks cached on disk with joblib.

Shared by the worker processes of ``GridSearchCV(n_jobs > 1)``. Entries are
keyed by the arrays' contents, the canonical plan and the dtype, never by
tiling or device, so they are never stale.
"""

from __future__ import annotations

import functools

from .kernels import _engine


def _compute(x1, x2, kinds, plan, dkey, exec_settings):
    out, _, _ = _engine.compute(plan, x1, x2, kinds, dkey, *exec_settings)
    return out


@functools.lru_cache(maxsize=8)
def _cached(location):
    import joblib

    return joblib.Memory(location, verbose=0).cache(_compute, ignore=["exec_settings"])


def disk_kernels(location, plan, dkey, x1, x2, kinds, *, batch_size, device):
    """``{kind: K(x1, x2)}`` memoised under ``location``."""
    if not location:
        raise ValueError(
            "kernel_cache must be 'memory', 'off' or a directory path for the "
            "on-disk cache; got ''."
        )
    return _cached(location)(x1, x2, tuple(kinds), plan, dkey, (batch_size, device))
