"""Reuse of kernel entries across fits: what makes grid search cost one kernel.

``GridSearchCV`` clones and refits an estimator for every (parameter, fold)
pair. The kernel of each fold is a sub-block of the kernel of the whole data
set, and regularisation (``diag_reg``, ``t``) does not change it. A
:class:`KernelBank` keeps, per kernel configuration (architecture, dtype,
input shape), the rows seen so far (identified by a hash of their exact bytes)
and every entry computed between them; a request computes only the rows and
columns that still have missing entries. Eigendecompositions of train kernels
are cached as well, keyed by the same row identities, so each fold is
decomposed once for every regularisation value.

The bank never returns a stale entry: a different architecture or dtype maps
to a different bank, and a changed sample has a different hash. It lives in
the process (worker processes of ``n_jobs > 1`` each keep their own, and loky
reuses workers across tasks); ``kernel_cache="off"`` disables it. Memory is
bounded by :data:`MAX_BANK_BYTES`; a bank that would exceed it is emptied.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np
import scipy.linalg

from .kernels import kernel_matrix

MAX_BANK_BYTES = 2 * 2**30
_MAX_BANKS = 4
_MAX_EIGH = 16

_lock = threading.RLock()
_banks: "OrderedDict[tuple, KernelBank]" = OrderedDict()
_eigh: "OrderedDict[tuple, tuple]" = OrderedDict()
stats = {"entries_computed": 0, "requests": 0, "eigh_computed": 0}


def row_keys(X):
    """A hash of each row's float64 bytes (and the row length)."""
    X = np.ascontiguousarray(X, dtype=np.float64).reshape(len(X), -1)
    return [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in X]


class KernelBank:
    """Rows seen for one kernel configuration and the entries computed so far."""

    def __init__(self, kwargs):
        self.kwargs = kwargs
        self.index = {}
        self.rows = np.empty((0, 0))
        self.values = {}
        self.known = {}

    def _grow(self, X, keys):
        new = [i for i, k in enumerate(keys) if k not in self.index]
        # duplicates within X map to one bank row
        fresh = {}
        for i in new:
            fresh.setdefault(keys[i], i)
        if fresh:
            old_n = len(self.index)
            n = old_n + len(fresh)
            rows = np.empty((n, X.shape[1]))
            if old_n:
                rows[:old_n] = self.rows
            for j, (k, i) in enumerate(fresh.items()):
                self.index[k] = old_n + j
                rows[old_n + j] = X[i]
            self.rows = rows
            for kind in self.values:
                v = np.zeros((n, n))
                v[:old_n, :old_n] = self.values[kind]
                m = np.zeros((n, n), dtype=bool)
                m[:old_n, :old_n] = self.known[kind]
                self.values[kind], self.known[kind] = v, m
        return np.array([self.index[k] for k in keys], dtype=np.intp)

    def nbytes(self, extra_rows=0, kinds=1):
        n = len(self.index) + extra_rows
        return n * n * 9 * max(kinds, len(self.values))

    def get(self, X1, keys1, X2, keys2, kinds):
        """Kernel blocks ``{kind: K(X1, X2)}``, computing only missing entries."""
        ids1 = self._grow(X1, keys1)
        ids2 = ids1 if X2 is None else self._grow(X2, keys2)
        n = len(self.index)
        for kind in kinds:
            if kind not in self.values:
                self.values[kind] = np.zeros((n, n))
                self.known[kind] = np.zeros((n, n), dtype=bool)
        missing = np.zeros((len(ids1), len(ids2)), dtype=bool)
        for kind in kinds:
            missing |= ~_block(self.known[kind], ids1, ids2)
        if missing.any():
            r = np.unique(ids1[missing.any(axis=1)])
            c = np.unique(ids2[missing.any(axis=0)])
            sym = np.array_equal(r, c)
            res = kernel_matrix(
                self.rows[r], None if sym else self.rows[c], get=tuple(kinds), **self.kwargs
            )
            for kind in kinds:  # kernels are symmetric: store both orientations
                block = getattr(res, kind)
                self.values[kind][np.ix_(r, c)] = block
                self.values[kind][np.ix_(c, r)] = block.T
                self.known[kind][np.ix_(r, c)] = True
                self.known[kind][np.ix_(c, r)] = True
            stats["entries_computed"] += len(r) * len(c)
        return {kind: _block(self.values[kind], ids1, ids2) for kind in kinds}


def _block(A, rows, cols):
    """``A[np.ix_(rows, cols)]``, 2-3x faster as two takes."""
    return A.take(rows, axis=0).take(cols, axis=1)


def _config_key(kwargs):
    """What determines kernel values (tiling and device do not)."""
    return tuple(
        sorted((k, repr(v)) for k, v in kwargs.items() if k not in ("batch_size", "device"))
    )


def _compute(X1, X2, kinds, kwargs):
    res = kernel_matrix(X1, X2, get=kinds, **kwargs)
    return {k: getattr(res, k) for k in kinds}


def _disk_compute(location):
    """``_compute`` memoised on disk by joblib (keyed by the arrays' contents and
    the kernel arguments, so it can never return a stale kernel)."""
    import joblib

    memory = joblib.Memory(location, verbose=0)
    return memory.cache(_compute_keyed, ignore=["kwargs"])


def _compute_keyed(X1, X2, kinds, key, kwargs):
    del key  # part of joblib's cache key only (tiling/device do not change values)
    return _compute(X1, X2, kinds, kwargs)


def cached_kernel(X1, X2, kinds, kwargs, use_cache=True):
    """``{kind: K(X1, X2)}`` (``X2=None``: symmetric), through the bank when enabled.

    ``X1``/``X2`` are 2-D float64 rows (images flattened); ``kwargs`` are the
    architecture arguments of :func:`sknngp.kernel_matrix`. ``use_cache`` is
    True (in-process bank), False, or a directory: whole requests are then
    cached on disk with joblib, shared by the worker processes of ``n_jobs>1``.
    """
    kinds = tuple(kinds)
    if isinstance(use_cache, str):
        return _disk_compute(use_cache)(X1, X2, kinds, _config_key(kwargs), kwargs)
    if not use_cache:
        return _compute(X1, X2, kinds, kwargs)
    key = _config_key(kwargs) + (("n_features", X1.shape[1]),)
    with _lock:
        stats["requests"] += 1
        bank = _banks.get(key)
        if bank is None:
            bank = _banks[key] = KernelBank(kwargs)
            while len(_banks) > _MAX_BANKS:
                _banks.popitem(last=False)
        _banks.move_to_end(key)
        extra = len(X1) + (0 if X2 is None else len(X2))
        if bank.nbytes(extra, len(kinds)) > MAX_BANK_BYTES:
            if extra * extra * 9 * len(kinds) > MAX_BANK_BYTES:
                res = kernel_matrix(X1, X2, get=kinds, **kwargs)
                return {k: getattr(res, k) for k in kinds}
            bank = _banks[key] = KernelBank(kwargs)
        keys1 = row_keys(X1)
        keys2 = None if X2 is None else row_keys(X2)
        return bank.get(X1, keys1, X2, keys2, kinds)


def _decompose(K):
    # LAPACK's divide-and-conquer driver: 2x faster than numpy's default here.
    return scipy.linalg.eigh(K, driver="evd", check_finite=False)


def cached_eigh(K, key, use_cache=True):
    """Eigendecomposition of ``K``, memoised under ``key`` (config, kind, row hashes)."""
    if not use_cache:
        return _decompose(K)
    with _lock:
        hit = _eigh.get(key)
        if hit is not None:
            _eigh.move_to_end(key)
            return hit
    w, V = _decompose(K)
    with _lock:
        stats["eigh_computed"] += 1
        _eigh[key] = (w, V)
        while len(_eigh) > _MAX_EIGH:
            _eigh.popitem(last=False)
    return w, V


def train_key(kwargs, kind, X):
    """Key of a train kernel for :func:`cached_eigh`."""
    h = hashlib.blake2b(digest_size=16)
    for k in row_keys(X):
        h.update(k)
    return (_config_key(kwargs), kind, h.hexdigest())


def clear():
    """Empty all kernel banks and cached eigendecompositions."""
    with _lock:
        _banks.clear()
        _eigh.clear()
        for k in stats:
            stats[k] = 0
