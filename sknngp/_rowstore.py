"""The row-keyed kernel store behind ``kernel_cache=<directory>``.

One store per architecture and kernel dtype (a sub-folder named by the hash
of the canonical plan and the dtype). Rows are registered once, in order of
arrival, under the BLAKE2b hash of their exact float64 bytes: a row's global
index never changes, so the store grows as new rows arrive and every fit,
fold, process or Dask worker that meets a row again reuses its entries. The
kernel over global indices is kept in the block format of
:mod:`sknngp.kernels._blocks` (CRC-checked zarr chunks written atomically,
NaN for entries not yet computed), upper blocks only (the kernel is
symmetric in its rows). A block is completed when first needed, for every
row registered so far; when rows arrive later, only the entries of the new
rows are computed.

Registering rows takes a POSIX file lock (``fcntl``): processes sharing the
folder, on one host or on a network file system with working locks, never
give two rows one index. Row data and the index file are written data first,
index last, so a reader that sees an index entry finds its data.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
from collections import deque
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ._bank import _runs, row_keys
from .kernels import _blocks
from .kernels._progress import reporting, tile_bar
from .kernels._tiles import compute

#: side of the stored blocks (rows x rows): few, large chunks stream fast
ROW_BLOCK = 1024
#: logical size of the growable arrays (chunks are created only where written)
CAPACITY = 2**32
KEY_BYTES = 16


class CorruptRows(Exception):
    """Stored row data that fail verification: the store is rebuilt."""


class RowStore:
    """Kernel entries of every row pair met so far, for one plan and dtype."""

    def __init__(self, folder, plan, dkey, sample_shape):
        self.plan, self.dkey = plan, dkey
        self.sample_shape = tuple(int(s) for s in sample_shape)
        digest = hashlib.blake2b(repr((plan, dkey)).encode(), digest_size=16).hexdigest()
        self.root = os.path.join(os.fspath(folder), f"kernels-{digest}")
        self.block = ROW_BLOCK
        self.open()

    def open(self, fresh=False):
        """Create or check the layout; ``fresh=True`` starts the store afresh."""
        self._index, self._keys, self._n_read = {}, [], 0
        os.makedirs(self.root, exist_ok=True)
        with self._locked():
            if fresh:
                _remove(os.path.join(self.root, "about.json"))
            self._init_layout()

    # ------------------------------------------------------------- layout
    @contextlib.contextmanager
    def _locked(self):
        with open(os.path.join(self.root, "lock"), "a+") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def _init_layout(self):
        zarr = _blocks.zarr()
        about = os.path.join(self.root, "about.json")
        features = int(np.prod(self.sample_shape))
        want = {"format": _blocks.FORMAT, "dtype": self.dkey, "block": self.block,
                "sample_shape": list(self.sample_shape), "plan": repr(self.plan)}
        if os.path.exists(about):
            try:
                with open(about) as fh:
                    found = json.load(fh)
            except (OSError, ValueError):
                found = None
            if isinstance(found, dict) and {k: found.get(k) for k in want} == want:
                self.identity = found.get("identity")
                return
        # new, or unreadable / another layout: start this store afresh
        group = zarr.open_group(os.path.join(self.root, "data"), mode="w")
        _blocks.create_array(group, "x", (CAPACITY, features), (self.block, features))
        for kind in ("nngp", "ntk"):
            _blocks.create_array(group, kind, (CAPACITY, CAPACITY), (self.block, self.block))
            # seals of a former layout must not match the new one
            shutil.rmtree(os.path.join(self.root, "seals", kind), ignore_errors=True)
        open(self._index_path, "wb").close()
        self.identity = os.urandom(16).hex()
        _blocks.write_json_atomic(about, {**want, "identity": self.identity})

    @property
    def _index_path(self):
        return os.path.join(self.root, "rows.idx")

    def _group(self):
        return _blocks.zarr().open_group(os.path.join(self.root, "data"), mode="r+")

    def blocks(self, kind):
        return _blocks.Blocks(self._group()[kind], os.path.join(self.root, "seals", kind),
                              self.identity)

    # ---------------------------------------------------------------- rows
    def _refresh(self):
        """Read index entries written since the last read (by anyone)."""
        with open(self._index_path, "rb") as fh:
            fh.seek(self._n_read * KEY_BYTES)
            data = fh.read()
        k = len(data) // KEY_BYTES
        for i in range(k):
            key = data[i * KEY_BYTES:(i + 1) * KEY_BYTES]
            self._index[key] = self._n_read + i
            self._keys.append(key)
        self._n_read += k

    def indices(self, x):
        """Global indices of the rows of ``x``, registering the new ones."""
        keys = [bytes(k) for k in row_keys(x)]
        self._refresh()
        if any(k not in self._index for k in keys):
            with self._locked():
                self._refresh()
                if os.path.getsize(self._index_path) != self._n_read * KEY_BYTES:
                    # a writer died mid-append: drop its partial key (we hold the lock)
                    os.truncate(self._index_path, self._n_read * KEY_BYTES)
                new, rows = [], []
                for pos, k in enumerate(keys):
                    if k not in self._index and k not in new:
                        new.append(k)
                        rows.append(pos)
                if new:
                    start = self._n_read
                    flat = np.ascontiguousarray(x[rows], dtype=np.float64).reshape(len(rows), -1)
                    self._group()["x"][start:start + len(rows)] = flat
                    with open(self._index_path, "ab") as fh:
                        fh.write(b"".join(new))
                        fh.flush()
                        os.fsync(fh.fileno())
                self._refresh()
        return np.array([self._index[k] for k in keys], dtype=np.int64)

    def _rows(self, lo, hi):
        """Registered rows ``lo:hi`` as engine inputs."""
        try:
            flat = np.asarray(self._group()["x"][lo:hi])
        except Exception:  # noqa: BLE001 - a chunk that fails its CRC
            flat = None
        if flat is None or [bytes(k) for k in row_keys(flat)] != self._keys[lo:hi]:
            raise CorruptRows(f"the stored rows {lo}:{hi} in {self.root!r} do not match their hashes")
        return flat.reshape((hi - lo,) + self.sample_shape)

    # -------------------------------------------------------------- blocks
    def _extent(self, b):
        lo = b * self.block
        return lo, min(self._n_read, lo + self.block)

    def complete_block(self, array, bi, bj, kind, batch_size, device):
        """Block ``(bi, bj)`` (``bi <= bj``) with every registered row filled in."""
        (r0, r1), (c0, c1) = self._extent(bi), self._extent(bj)
        values = array.read(bi, bj, self.block)
        if values is None:
            values = np.full((r1 - r0, c1 - c0), np.nan)
        else:
            values = values[:r1 - r0, :c1 - c0]
        missing = np.isnan(values)
        if not missing.any():
            return values
        values = values.copy()
        xi = self._rows(r0, r1)
        xj = xi if bi == bj else self._rows(c0, c1)
        if missing.all():  # a new block (symmetric on the diagonal: each pair once)
            values = self._kernel(xi, None if bi == bj else xj, kind, batch_size, device)
            self._write(array, bi, bj, values)
            return values
        rows = np.flatnonzero(missing.all(axis=1))  # rows registered since the last write
        if rows.size:
            values[rows] = self._kernel(xi[rows], xj, kind, batch_size, device)
            if bi == bj:
                values[:, rows] = values[rows].T
        holes = np.isnan(values)
        if holes.any():  # columns registered since: old rows x new columns
            r, c = np.flatnonzero(holes.any(axis=1)), np.flatnonzero(holes.any(axis=0))
            values[np.ix_(r, c)] = self._kernel(xi[r], xj[c], kind, batch_size, device)
        if np.isnan(values).any():  # scattered holes (another writer): the whole block
            values = self._kernel(xi, None if bi == bj else xj, kind, batch_size, device)
        self._write(array, bi, bj, values)
        return values

    def _write(self, array, bi, bj, values):
        try:
            array.write(bi, bj, self.block, values)
        except OSError:
            if os.path.isdir(self.root):
                raise
            # the folder was deleted while we computed: the values are still
            # good for this call; the next call starts the store afresh

    def _kernel(self, a, b, kind, batch_size, device):
        with reporting(0):  # the store reports blocks; the engine stays quiet inside one
            out, _, _ = compute(self.plan, a, b, (kind,), self.dkey, batch_size, device)
        return out[kind]

    def _blocks_for(self, g1, g2):
        pairs = {(min(p, q), max(p, q))
                 for p in np.unique(g1 // self.block) for q in np.unique(g2 // self.block)}
        return sorted((int(p), int(q)) for p, q in pairs)

    def ensure(self, kind, g1, g2, batch_size, device):
        """Complete every block the pairs ``g1 x g2`` touch, yielding
        ``((bi, bj), values)`` one block at a time (memory: one block)."""
        array = self.blocks(kind)
        pairs = self._blocks_for(g1, g2)
        bar = tile_bar(len(pairs), f"kernel_cache {kind} {len(g1)}x{len(g2)}")
        try:
            for bi, bj in pairs:
                yield (bi, bj), self.complete_block(array, bi, bj, kind, batch_size, device)
                bar.update(1)
        finally:
            bar.close()

    def kernel(self, kind, g1, g2, batch_size, device):
        """``K[g1][:, g2]`` as an ``(len(g1), len(g2))`` array."""
        out = np.empty((len(g1), len(g2)))
        b = self.block
        pos1 = _positions(g1, b)
        pos2 = pos1 if g2 is g1 else _positions(g2, b)
        for (bi, bj), values in self.ensure(kind, g1, g2, batch_size, device):
            for p, q, vals in ((bi, bj, values), (bj, bi, values.T)):
                if p in pos1 and q in pos2:
                    r, lr = pos1[p]
                    c, lc = pos2[q]
                    _put(out, r, c, _take(vals, lr, lc))
                if bi == bj:
                    break
        return out


#: blocks read ahead of the one being multiplied (bounded: memory stays a few blocks)
READ_AHEAD = 2


def _read_ahead(fn, items, depth):
    """``fn(item)`` for each item, in order, at most ``depth`` computed ahead
    on worker threads."""
    if depth <= 0:
        yield from map(fn, items)
        return
    with ThreadPoolExecutor(depth) as pool:
        pending = deque()
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _remove(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _positions(g, block):
    """``{block: (positions in g, offsets inside the block)}``; runs of
    consecutive indices are slices (views, no copies)."""
    owner = g // block
    out = {}
    for b in np.unique(owner):
        where = np.flatnonzero(owner == b)
        out[int(b)] = (_runs(where), _runs(g[where] - b * block))
    return out


def _put(out, r, c, values):
    """``out[r][:, c] = values`` for slices or index arrays."""
    if isinstance(r, slice) or isinstance(c, slice):
        out[r, c] = values
    else:
        out[np.ix_(r, c)] = values


def _take(values, li, lj):
    """``values[li][:, lj]`` for slices or index arrays (a view for slices)."""
    if isinstance(li, slice) and isinstance(lj, slice):
        return values[li, lj]
    return values[li][:, lj]


class RowKernel:
    """The kernel of some stored rows as an operator that streams blocks.

    What the conjugate-gradient solver needs (``n``, ``diagonal()``,
    ``columns(idx)``, ``matmul(V)``) without ever holding the ``n x n``
    matrix: each product reads the stored blocks once (a block that fails
    verification meanwhile is recomputed).
    """

    #: pivots the preconditioner asks for at once (each request reads the
    #: blocks holding those columns)
    column_batch = 64

    def __init__(self, store, kind, g, batch_size=None, device=None):
        self.store, self.kind, self.g = store, kind, np.asarray(g, dtype=np.int64)
        self.n = len(self.g)
        self._args = (batch_size, device)
        self._pos = _positions(self.g, store.block)
        self._pairs = store._blocks_for(self.g, self.g)
        for _ in store.ensure(kind, self.g, self.g, batch_size, device):
            pass  # every block complete before the first product

    def _each(self, pairs=None):
        """The blocks, read (and verified) ahead on :data:`READ_AHEAD` threads
        while the caller multiplies: decoding and checksums release the GIL."""
        array = self.store.blocks(self.kind)

        def read(pair):
            bi, bj = pair
            values = self.store.complete_block(array, bi, bj, self.kind, *self._args)
            (ri, li), (rj, lj) = self._pos[bi], self._pos[bj]
            return bi, bj, ri, rj, _take(values, li, lj)

        yield from _read_ahead(read, self._pairs if pairs is None else pairs, READ_AHEAD)

    def matmul(self, V):
        V = np.asarray(V, dtype=np.float64)
        out = np.zeros_like(V)
        for bi, bj, ri, rj, sub in self._each():
            out[ri] += sub @ V[rj]
            if bi != bj:
                out[rj] += sub.T @ V[ri]
        return out

    def diagonal(self):
        out = np.empty(self.n)
        for _, _, ri, _, sub in self._each([(b, b) for b in sorted(self._pos)]):
            out[ri] = np.diag(sub)
        return out

    def columns(self, idx):
        idx = np.asarray(idx, dtype=np.int64).ravel()
        out = np.empty((self.n, len(idx)))
        owner = self.g[idx] // self.store.block
        wanted = {int(b) for b in owner}
        pairs = [(bi, bj) for bi, bj in self._pairs if bi in wanted or bj in wanted]
        where = {int(b): np.flatnonzero(owner == b) for b in wanted}
        local = {int(b): self.g[idx[where[b]]] - b * self.store.block for b in wanted}
        array = self.store.blocks(self.kind)
        for bi, bj in pairs:
            values = self.store.complete_block(array, bi, bj, self.kind, *self._args)
            for p, q, vals in ((bi, bj, values), (bj, bi, values.T)):
                if q in wanted:  # rows of block p, the wanted columns in block q
                    rp, lp = self._pos[p]
                    _put(out, rp, where[q], vals[lp][:, local[q]])
                if bi == bj:
                    break
        return out
