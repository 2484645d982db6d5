"""Kernel reuse across fits in this process: what makes grid search cost one kernel.

``GridSearchCV`` clones and refits an estimator for every (parameter, fold)
pair. Each fold's kernel is a sub-block of the kernel of the whole data set,
and the regularization (``diag_reg``, ``t``) does not change it. The bank keeps
the kernel entries computed so far and computes only the missing ones.

- **Rows** are identified by a hash of their exact bytes, computed once per
  fit by the estimator (:func:`row_keys`). Each distinct row gets a *slot* in
  the bank of its sample shape, shared by every architecture.
- **Entries** ``K[i, j]`` live in ``PAGE x PAGE`` pages of slots, allocated
  only where something was computed: a test set adds its test x train pages,
  and a test x test block only when a covariance over it is requested. Symmetry is used: page ``(b, a)`` is page
  ``(a, b)`` transposed.
- **Keys** are everything that changes the numbers (the canonical plan of the
  architecture on this sample shape, the kernel dtype) and nothing that does
  not (tile size, device): estimators never inherit each other's execution
  settings, and entries are stored only after a computation succeeded, so a
  failed fit leaves nothing behind.
- **Depth families.** A request for a stack also yields, almost for free, the
  kernels of the shallower stacks of its family (the same layers cut after
  an earlier nonlinearity, same head; see :mod:`sknngp._depths`), and the
  state before the head is kept (for convolutional stacks when it fits, for
  all once another depth of the family was requested), so that a deeper
  request continues the recursion instead of starting again.
- **Lifetime**: slots are never freed (16 bytes and a dict entry per distinct
  row); :func:`clear` empties everything. One lock serializes requests, so
  concurrent fits in one process compute their kernels one at a time (each
  computation uses every core).

Memory is bounded by :data:`MAX_BANK_BYTES` (least recently used stores are
dropped first); a request that cannot fit is computed without being stored.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

from . import _depths
from .kernels import _engine

#: bytes of kernel entries and states kept in this process
MAX_BANK_BYTES = 2 * 2**30
PAGE = 512

_lock = threading.RLock()
_banks: "OrderedDict[tuple, _SampleBank]" = OrderedDict()
_eigh: "OrderedDict[tuple, tuple]" = OrderedDict()
_MAX_EIGH = 8
stats = {"entries_computed": 0, "requests": 0, "eigh_computed": 0, "resumed": 0}


def row_keys(X):
    """A 16-byte BLAKE2b hash of each row's exact float64 bytes (dtype ``V16``).

    A cryptographic hash, so distinct rows never share an entry in practice,
    whatever their structure (a vectorized polynomial hash was tried and
    rejected: rows of small integers have float64 words with many trailing
    zero bits, which left it with ~16 effective bits and real collisions).
    """
    X = np.ascontiguousarray(X, dtype=np.float64).reshape(len(X), -1)
    return np.array(
        [hashlib.blake2b(r.tobytes(), digest_size=16).digest() for r in X], dtype="V16"
    )


def rows_digest(keys):
    """One hash of a sequence of row keys (order matters)."""
    return hashlib.blake2b(np.ascontiguousarray(keys).tobytes(), digest_size=16).hexdigest()


def _runs(offsets):
    """``offsets`` as a slice when they are consecutive (cheap views)."""
    if len(offsets) and offsets[-1] - offsets[0] + 1 == len(offsets) and np.all(
        np.diff(offsets) == 1
    ):
        return slice(int(offsets[0]), int(offsets[-1]) + 1)
    return offsets


def _take(arr, rows, cols):
    out = arr[rows]
    return out[:, cols]


class _Pages:
    """Entries of one symmetric kernel for bank slots, page by page."""

    def __init__(self):
        self.values, self.known = {}, {}
        self.complete = set()  # pages whose every entry between assigned slots is known

    @property
    def nbytes(self):
        return PAGE * PAGE * 9 * len(self.values)  # float64 values + bool known

    @staticmethod
    def _groups(ids):
        pages = ids // PAGE
        out = []
        for page in np.unique(pages):
            where = np.flatnonzero(pages == page)
            out.append((int(page), _runs(where), _runs(ids[where] % PAGE)))
        return out

    def _pairs(self, ids1, ids2):
        for a, w1, o1 in self._groups(ids1):
            for b, w2, o2 in self._groups(ids2):
                yield a, w1, o1, b, w2, o2

    def known_mask(self, ids1, ids2):
        mask = np.zeros((len(ids1), len(ids2)), dtype=bool)
        for a, w1, o1, b, w2, o2 in self._pairs(ids1, ids2):
            if (min(a, b), max(a, b)) in self.complete:
                mask[_ix(w1, w2)] = True
            elif a <= b and (a, b) in self.known:
                mask[_ix(w1, w2)] = _take(self.known[a, b], o1, o2)
            elif a > b and (b, a) in self.known:
                mask[_ix(w1, w2)] = _take(self.known[b, a], o2, o1).T
        return mask

    def gather(self, ids1, ids2, out):
        for a, w1, o1, b, w2, o2 in self._pairs(ids1, ids2):
            if a <= b and (a, b) in self.values:
                out[_ix(w1, w2)] = _take(self.values[a, b], o1, o2)
            elif a > b and (b, a) in self.values:
                out[_ix(w1, w2)] = _take(self.values[b, a], o2, o1).T
        return out

    def scatter(self, ids1, ids2, block, n_slots):
        """Store ``block`` at slots ``ids1 x ids2`` (``n_slots`` are assigned)."""
        same = ids1 is ids2 or np.array_equal(ids1, ids2)
        for a, w1, o1, b, w2, o2 in self._pairs(ids1, ids2):
            part = block[_ix(w1, w2)]
            if a > b:
                a, b, o1, o2, part = b, a, o2, o1, part.T
            if (a, b) not in self.values:
                self.values[a, b] = np.zeros((PAGE, PAGE))
                self.known[a, b] = np.zeros((PAGE, PAGE), dtype=bool)
            _put(self.values[a, b], o1, o2, part)
            _put(self.known[a, b], o1, o2, True)
            if a == b and not same:  # a diagonal page holds both orientations
                _put(self.values[a, b], o2, o1, part.T)
                _put(self.known[a, b], o2, o1, True)
            ka, kb = (min(PAGE, n_slots - p * PAGE) for p in (a, b))
            if self.known[a, b][:ka, :kb].all():
                self.complete.add((a, b))


def _ix(rows, cols):
    if isinstance(rows, slice) or isinstance(cols, slice):
        if isinstance(rows, slice) and isinstance(cols, slice):
            return rows, cols
        r = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
        c = np.arange(cols.start, cols.stop) if isinstance(cols, slice) else cols
        return np.ix_(r, c)
    return np.ix_(rows, cols)


def _put(arr, rows, cols, value):
    """``arr[rows x cols] = value`` for a page (one flat fancy index: faster
    than a 2-D ``np.ix_`` assignment)."""
    if isinstance(rows, slice) and isinstance(cols, slice):
        arr[rows, cols] = value
        return
    r = np.arange(rows.start, rows.stop) if isinstance(rows, slice) else rows
    c = np.arange(cols.start, cols.stop) if isinstance(cols, slice) else cols
    idx = (r[:, None] * PAGE + c[None, :]).ravel()
    arr.reshape(-1)[idx] = np.broadcast_to(value, (len(r), len(c))).ravel()


class _Blocks:
    """Whole computed blocks of a state, kept as they were computed.

    The states a depth sweep resumes from are large (``(n1, n2, *S)``) and are
    requested again for exactly the blocks they were computed for (the next
    depth meets the same missing blocks as the previous one), so they are kept
    as the engine's :class:`~sknngp.kernels._tiles.TileState` and handed back
    as they are; a request for a sub-block gathers host arrays.
    """

    def __init__(self):
        self.blocks = []

    @property
    def nbytes(self):
        return sum(b[2].nbytes for b in self.blocks)

    def add(self, ids1, ids2, state):
        self.blocks.append((np.array(ids1), np.array(ids2), state))

    def discard(self, ids1, ids2):
        """Drop the block computed for exactly these slots (superseded)."""
        self.blocks = [b for b in self.blocks
                       if not (np.array_equal(b[0], ids1) and np.array_equal(b[1], ids2))]

    def find(self, ids1, ids2):
        """The state for slots ``ids1 x ids2``: the kept TileState itself, host
        arrays gathered from a covering block, or None."""
        for b1, b2, state in reversed(self.blocks):
            if np.array_equal(b1, ids1) and np.array_equal(b2, ids2):
                return state
        for b1, b2, state in reversed(self.blocks):
            p1, p2 = _positions(b1, ids1), _positions(b2, ids2)
            if p1 is None or p2 is None:
                continue
            nngp, ntk, var1, var2 = state.host()
            pair = [None if a is None else a[np.ix_(p1, p2)] for a in (nngp, ntk)]
            return (*pair, var1[p1], var2[p2])
        return None


def _positions(have, want):
    """Positions in ``have`` of each slot of ``want``; None if one is missing."""
    order = np.argsort(have, kind="stable")
    at = np.searchsorted(have[order], want)
    if np.any(at >= len(have)):
        return None
    pos = order[at]
    return pos if np.array_equal(have[pos], want) else None


class _SampleBank:
    """Slots of the rows of one sample shape, and the stores keyed on them."""

    def __init__(self):
        self.slots = {}
        self.stores: "OrderedDict[tuple, dict]" = OrderedDict()
        self.requested = set()  # (plan, dtype) of every request: evidence of sweeps

    @property
    def nbytes(self):
        return sum(p.nbytes for store in self.stores.values() for p in store.values())

    def lookup(self, keys):
        """Slot of each key, -1 for keys not seen yet."""
        get = self.slots.get
        return np.fromiter((get(k, -1) for k in keys.tolist()), dtype=np.intp,
                           count=len(keys))

    def assign(self, keys, ids):
        """Give the rows without a slot (``ids == -1``) new slots (in place)."""
        new = np.flatnonzero(ids < 0)
        for i in new:
            ids[i] = self.slots.setdefault(keys[i].tobytes(), len(self.slots))
        if len(new):  # pages that gained slots are no longer complete
            grown = set((ids[new] // PAGE).tolist())
            for store in self.stores.values():
                for part in store.values():
                    if isinstance(part, _Pages):
                        part.complete = {ab for ab in part.complete if not grown & set(ab)}
        return ids

    def known(self, key, kinds, ids1, ids2):
        """Which entries ``ids1 x ids2`` are banked for every kind (-1: new rows)."""
        store = self.stores.get(key)
        if store is None or any(kind not in store for kind in kinds):
            return np.zeros((len(ids1), len(ids2)), dtype=bool)
        seen1, seen2 = ids1 >= 0, ids2 >= 0
        everything = seen1.all() and seen2.all()
        mask = None
        for kind in kinds:
            part = store[kind].known_mask(ids1[seen1], ids2[seen2])
            if not everything:
                full = np.zeros((len(ids1), len(ids2)), dtype=bool)
                full[np.ix_(seen1, seen2)] = part
                part = full
            mask = part if mask is None else mask & part
        return mask

    def store(self, key, name):
        """The store ``name`` under ``key``: ``"blocks"`` (states) or a kernel kind."""
        stores = self.stores.setdefault(key, {})
        self.stores.move_to_end(key)
        if name not in stores:
            stores[name] = _Blocks() if name == "blocks" else _Pages()
        return stores[name]


def _bank(sample_shape):
    bank = _banks.get(sample_shape)
    if bank is None:
        bank = _banks[sample_shape] = _SampleBank()
    _banks.move_to_end(sample_shape)
    return bank


def _total_bytes():
    return sum(b.nbytes for b in _banks.values())


def _make_room(needed, keep):
    """Drop least recently used stores until ``needed`` more bytes fit; False
    if they cannot fit even in an empty bank."""
    if needed > MAX_BANK_BYTES:
        return False
    while _total_bytes() + needed > MAX_BANK_BYTES:
        # states (a sweep's shortcut) go before kernels, least recently used first
        victims = sorted(
            ((bank, key) for bank in _banks.values() for key in bank.stores if key != keep),
            key=lambda bk: bk[1][0] != "state",
        )
        if not victims:
            return False
        bank, key = victims[0]
        del bank.stores[key]
    return True


def kernels(plan, dkey, X1, keys1, X2, keys2, kinds, *, batch_size=None, device=None,
            use_bank=True):
    """``{kind: K(X1, X2)}`` (``X2=None``: the symmetric block of ``X1``).

    ``X1``/``X2`` are prepared engine inputs (``(n, *sample_shape)``),
    ``keys1``/``keys2`` their :func:`row_keys`. Only entries missing from the
    bank are computed; ``batch_size`` and ``device`` only say how.
    """
    kinds = tuple(kinds)
    if not use_bank:
        out, _, _ = _engine.compute(plan, X1, X2, kinds, dkey, batch_size, device)
        return out
    symmetric = X2 is None
    if symmetric:
        X2, keys2 = X1, keys1
    key = ("kernel", plan, dkey)
    with _lock:
        stats["requests"] += 1
        bank = _bank(tuple(X1.shape[1:]))
        bank.requested.add((plan, dkey))
        ids1, ids2 = bank.lookup(keys1), bank.lookup(keys2)
        known = bank.known(key, kinds, ids1, ids2)
        n1, n2 = known.shape
        rows = np.flatnonzero(~known.all(axis=1))
        cols = np.flatnonzero(~known.all(axis=0))
        if len(rows) == 0:
            return _gathered(bank, key, kinds, ids1, ids2)
        sym = symmetric and np.array_equal(rows, cols)
        computed = _depths.compute_missing(
            bank, plan, dkey, kinds, X1[rows], None if sym else X2[cols],
            ids1[rows], ids2[cols], budget=MAX_BANK_BYTES, batch_size=batch_size,
            device=device,
        )
        stats["entries_computed"] += len(rows) * len(cols)
        stats["resumed"] += computed.resumed
        whole = len(rows) == n1 and len(cols) == n2
        if whole:
            out = computed.kernels
        else:
            out = _gathered(bank, key, kinds, ids1, ids2)
            for kind in kinds:
                out[kind][np.ix_(rows, cols)] = computed.kernels[kind]
        ids1 = bank.assign(keys1, ids1)
        ids2 = ids1 if symmetric else bank.assign(keys2, ids2)
        computed.commit(ids1[rows], ids2[cols], _make_room)
        return out


def _gathered(bank, key, kinds, ids1, ids2):
    store = bank.stores[key]
    bank.stores.move_to_end(key)
    return {
        kind: store[kind].gather(ids1, ids2, np.empty((len(ids1), len(ids2))))
        for kind in kinds
    }


def cached_eigh(K, key, decompose):
    """``decompose(K)`` memoised under ``key`` (plan, dtype, kind, row digest)."""
    with _lock:
        hit = _eigh.get(key)
        if hit is not None:
            _eigh.move_to_end(key)
            return hit
    w, V = decompose(K)
    with _lock:
        stats["eigh_computed"] += 1
        _eigh[key] = (w, V)
        # a few decompositions, and at most half the bank's budget
        while len(_eigh) > 1 and (len(_eigh) > _MAX_EIGH or sum(
                v.nbytes for _, v in _eigh.values()) > MAX_BANK_BYTES // 2):
            _eigh.popitem(last=False)
    return w, V


def clear():
    """Empty the bank and the cached eigendecompositions; reset the counters."""
    with _lock:
        _banks.clear()
        _eigh.clear()
        for k in stats:
            stats[k] = 0
