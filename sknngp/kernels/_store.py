"""A resumable kernel store: :func:`store_kernel` and :class:`KernelStore`.

The kernel is computed block by block into a zarr group on disk (see
:mod:`sknngp.kernels._blocks` for the block format: one chunk per block,
CRC-checked, written atomically). The group's attributes record what the
store holds: the fingerprint of its inputs and architecture, the shape, the
kinds, the kernel dtype and the block side. A symmetric store keeps only the
blocks on and above the diagonal (each unordered pair computed and stored
once); :class:`StoredKernel` mirrors them when read.

Calling :func:`store_kernel` again with the same path and inputs resumes:
every stored block is verified (checksum, no missing entries) and only the
missing or bad ones are computed. Blocks are computed in this process (the
engine spreads each block's tiles over the local devices) or, with
``client=``, by the workers of a Dask cluster, which write to the shared
store themselves (see :mod:`sknngp.kernels._distributed`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import _blocks
from ._engine import _prepare
from ._progress import reporting, tile_bar
from ._tiles import choose_tile, compute, tile_jobs
from ._validation import _parse_dtype, _parse_get


def fingerprint(plan, dkey, x1, x2):
    """Digests identifying a store's contents: ``{"plan", "inputs"}``."""
    h = hashlib.blake2b(digest_size=20)
    for x in (x1, x2):
        if x is None:
            h.update(b"symmetric")
            continue
        a = np.ascontiguousarray(x, dtype=np.float64)
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return {"plan": hashlib.blake2b(repr((plan, dkey)).encode(), digest_size=20).hexdigest(),
            "inputs": h.hexdigest()}


def block_jobs(n1, n2, block, symmetric):
    """``(bi, bj)`` of every block to compute (upper ones for a symmetric store):
    the engine's tile list, counted in blocks."""
    return [(i // block, j // block) for i, j in tile_jobs(n1, n2, block, symmetric)]


class StoredKernel:
    """One kernel of a :class:`KernelStore`, read block by block from disk.

    An array-like: ``np.asarray(k)`` assembles the whole matrix, ``k[rows]``
    (basic slices) reads only the blocks it needs. ``diagonal``, ``columns``
    and ``matmul`` stream the blocks without ever holding the matrix, which is
    what the conjugate-gradient solver uses.
    """

    dtype = np.dtype(np.float64)
    ndim = 2

    def __init__(self, store, kind):
        self._store, self.kind = store, kind
        self.shape = tuple(store.shape)
        self.n = self.shape[0]

    def __repr__(self):
        return f"<StoredKernel {self.kind} {self.shape[0]}x{self.shape[1]} at {self._store.path!r}>"

    def __len__(self):
        return self.shape[0]

    @property
    def _array(self):
        return self._store._blocks(self.kind)

    def _block(self, array, bi, bj):
        values = array.read(bi, bj, self._store.block_size)
        if values is None or np.isnan(values).any():
            raise ValueError(
                f"Block ({bi}, {bj}) of the {self.kind} kernel in the store at "
                f"{self._store.path!r} is missing or failed its checksum; call store_kernel "
                "again with the same inputs and path to compute it."
            )
        return values

    def blocks(self):
        """``(row0, col0, values)`` of every stored block (symmetric stores: the
        upper ones; the block at ``(j, i)`` is the transpose of ``(i, j)``)."""
        s = self._store
        array = self._array
        for bi, bj in block_jobs(*self.shape, s.block_size, s.symmetric):
            yield bi * s.block_size, bj * s.block_size, self._block(array, bi, bj)

    def _rows(self, r0, r1):
        """Rows ``r0:r1`` of the matrix."""
        s, b = self._store, self._store.block_size
        array = self._array
        out = np.empty((r1 - r0, self.shape[1]))
        for bi in range(r0 // b, -(-r1 // b)):
            lo, hi = max(r0, bi * b), min(r1, (bi + 1) * b)
            for bj in range(-(-self.shape[1] // b)):
                c0 = bj * b
                if s.symmetric and bj < bi:
                    values = self._block(array, bj, bi).T
                else:
                    values = self._block(array, bi, bj)
                out[lo - r0:hi - r0, c0:c0 + values.shape[1]] = values[lo - bi * b:hi - bi * b]
        return out

    def __array__(self, dtype=None, copy=None):
        out = self._rows(0, self.shape[0])
        return out if dtype is None else out.astype(dtype)

    def __getitem__(self, key):
        rows = key[0] if isinstance(key, tuple) else key
        rest = key[1:] if isinstance(key, tuple) else ()
        if isinstance(rows, slice) and rows.step in (None, 1):
            r0, r1, _ = rows.indices(self.shape[0])
            block = self._rows(r0, max(r0, r1))
            return block[(slice(None),) + rest] if rest else block
        return np.asarray(self)[key]

    def diagonal(self):
        """``K_ii``, from the diagonal blocks only."""
        self._square("diagonal")
        b = self._store.block_size
        array = self._array
        return np.concatenate([np.diag(self._block(array, bi, bi))
                               for bi in range(-(-self.n // b))])

    def columns(self, idx):
        """``K[:, idx]``: one pass over the blocks holding those columns."""
        self._square("columns")
        idx = np.asarray(idx, dtype=np.intp).ravel()
        b = self._store.block_size
        array = self._array
        out = np.empty((self.n, len(idx)))
        owner = idx // b
        for bj in np.unique(owner):
            where = np.flatnonzero(owner == bj)
            local = idx[where] - bj * b
            for bi in range(-(-self.n // b)):
                values = (self._block(array, bj, bi).T if bj < bi
                          else self._block(array, bi, bj))
                out[bi * b:bi * b + values.shape[0], where] = values[:, local]
        return out

    def matmul(self, V):
        """``K @ V`` for ``V`` of shape ``(n2,)`` or ``(n2, k)``, streaming blocks."""
        V = np.asarray(V, dtype=np.float64)
        vec = V.ndim == 1
        V2 = V[:, None] if vec else V
        if V2.shape[0] != self.shape[1]:
            raise ValueError(f"matmul: V has {V2.shape[0]} rows; the kernel has {self.shape[1]} columns.")
        out = np.zeros((self.shape[0], V2.shape[1]))
        symmetric = self._store.symmetric
        for r0, c0, values in self.blocks():
            ri, rj = values.shape
            out[r0:r0 + ri] += values @ V2[c0:c0 + rj]
            if symmetric and r0 != c0:
                out[c0:c0 + rj] += values.T @ V2[r0:r0 + ri]
        return out[:, 0] if vec else out

    __matmul__ = matmul

    def _square(self, what):
        if not self._store.symmetric:
            raise ValueError(f"{what} needs a symmetric store (x2=None); this one is {self.shape}.")


class KernelStore:
    """A kernel matrix stored on disk by :func:`store_kernel`.

    ``KernelStore(path)`` opens an existing store (read-only use; computing
    goes through :func:`store_kernel`).

    Attributes
    ----------
    path : str
    shape : tuple (n1, n2)
    symmetric : bool
        True for ``x2=None``: only blocks on and above the diagonal are stored.
    kinds : tuple of {"nngp", "ntk"}
    nngp, ntk : StoredKernel
        The stored kernels (array-likes); accessing a kind that is not stored
        raises an AttributeError.
    block_size : int
        Side of the stored blocks ("tiles").
    tiles_total, tiles_done : int
        Tiles the store needs, and tiles present (read from the directory:
        :func:`store_kernel` verifies their checksums before trusting them).
    tiles_computed : int
        Tiles computed by the :func:`store_kernel` call that returned this
        object (0 when opened directly).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        meta = _read_meta(self.path)
        if meta is None:
            raise ValueError(f"{self.path!r} is not an sknngp kernel store (store_kernel creates one).")
        self._meta = meta
        self.shape = tuple(meta["shape"])
        self.symmetric = bool(meta["symmetric"])
        self.kinds = tuple(meta["kinds"])
        self.block_size = int(meta["block_size"])
        self.dtype = meta["dtype"]
        self.fingerprint = dict(meta["fingerprint"])
        self.tiles_computed = 0
        self._opened = {}

    def _group(self):
        return _blocks.zarr().open_group(self.path, mode="r+")

    def _blocks(self, kind):
        """The :class:`~sknngp.kernels._blocks.Blocks` of one kind (opened once)."""
        if kind not in self._opened:
            identity = (self.fingerprint["plan"], self.fingerprint["inputs"], self.dtype)
            self._opened[kind] = _blocks.Blocks(self._group()[kind],
                                                os.path.join(self.path, "seals", kind), identity)
        return self._opened[kind]

    def __getattr__(self, name):
        if name in ("nngp", "ntk"):
            if name not in self.kinds:
                raise AttributeError(f"this store holds {self.kinds}, not {name!r}")
            return StoredKernel(self, name)
        raise AttributeError(name)

    def _jobs(self):
        return block_jobs(*self.shape, self.block_size, self.symmetric)

    @property
    def tiles_total(self):
        return len(self._jobs())

    def _present(self):
        sets = [self._blocks(k).sealed() for k in self.kinds]
        return set(self._jobs()).intersection(*sets)

    @property
    def tiles_done(self):
        return len(self._present())

    @property
    def complete(self):
        return self.tiles_done == self.tiles_total

    def __repr__(self):
        return (f"KernelStore({self.path!r}: {'/'.join(self.kinds)} {self.shape[0]}x{self.shape[1]}"
                f"{' symmetric' if self.symmetric else ''}, {self.dtype}, tiles "
                f"{self.tiles_done}/{self.tiles_total})")


def _read_meta(path):
    try:
        group = _blocks.zarr().open_group(path, mode="r")
    except Exception:  # noqa: BLE001 - absent or not a zarr group
        return None
    meta = dict(group.attrs).get("sknngp_kernel_store")
    if not isinstance(meta, dict) or meta.get("format") != _blocks.FORMAT:
        return None
    return meta


def _open_or_create(path, meta):
    """The store at ``path`` for ``meta``: created, or checked to hold the same kernel."""
    zarr = _blocks.zarr()
    if os.path.exists(path) and (not os.path.isdir(path) or os.listdir(path)):
        found = _read_meta(path)
        if found is None:
            raise ValueError(
                f"path={path!r} exists and is not an sknngp kernel store; pass a new or "
                "empty directory (or an existing store of the same kernel to resume it)."
            )
        _check_same(path, found, meta)
        return KernelStore(path)
    group = zarr.open_group(path, mode="w")
    for kind in meta["kinds"]:
        block = meta["block_size"]
        _blocks.create_array(group, kind, tuple(meta["shape"]), (block, block))
    group.attrs["sknngp_kernel_store"] = meta
    return KernelStore(path)


def _check_same(path, found, meta):
    checks = [
        ("inputs (x1, x2)", "fingerprint", lambda m: m["fingerprint"]["inputs"]),
        ("architecture", "plan", lambda m: m["fingerprint"]["plan"]),
        ("shape", "shape", lambda m: tuple(m["shape"])),
        ("kernel dtype", "dtype", lambda m: m["dtype"]),
        ("kernels (get)", "kinds", lambda m: tuple(m["kinds"])),
    ]
    differ = [what for what, _, get in checks if get(found) != get(meta)]
    if differ:
        shown = {"shape": (tuple(found["shape"]), tuple(meta["shape"])),
                 "kernel dtype": (found["dtype"], meta["dtype"]),
                 "kernels (get)": (tuple(found["kinds"]), tuple(meta["kinds"]))}
        detail = "; ".join(f"{w}: stored {shown[w][0]}, asked {shown[w][1]}" if w in shown
                           else f"{w}: different" for w in differ)
        raise ValueError(
            f"The kernel store at {path!r} holds another kernel ({detail}). Pass another path "
            "for these inputs, or delete the store to recompute it."
        )


def _verified_done(store, jobs, n_threads=4):
    """The jobs whose blocks are present in every kind, pass their checksum and
    hold no missing entry (reads the whole store once)."""
    arrays = [store._blocks(k) for k in store.kinds]
    present = store._present()

    def ok(job):
        if job not in present:
            return False
        for array in arrays:
            values = array.read(*job, store.block_size)
            if values is None or np.isnan(values).any():
                return False
        return True

    with ThreadPoolExecutor(n_threads) as pool:
        flags = list(pool.map(ok, jobs))
    return {job for job, flag in zip(jobs, flags) if flag}


def compute_block(plan, x1, x2, job, block, gets, dkey, batch_size, device):
    """``{kind: values}`` of one block (``x2=None``: the store is symmetric)."""
    bi, bj = job
    a = x1[bi * block:(bi + 1) * block]
    if x2 is None and bi == bj:
        b = None
    else:
        b = (x1 if x2 is None else x2)[bj * block:(bj + 1) * block]
    with reporting(0):  # the store reports blocks; the engine stays quiet inside one
        out, _, _ = compute(plan, a, b, gets, dkey, batch_size, device, what="x1, x2")
    return out


def write_blocks(store, job, values):
    """Write one tile of every kind of ``store`` (its seals after its chunks)."""
    for kind in store.kinds:
        store._blocks(kind).write(*job, store.block_size, values[kind])


def store_kernel(
    x1,
    x2=None,
    *,
    path,
    get=("nngp", "ntk"),
    client=None,
    batch_size=None,
    block_size=None,
    architecture="fc",
    depth=3,
    activation="relu",
    W_std=2**0.5,
    b_std=0.1,
    parameterization="ntk",
    width=None,
    input_shape=None,
    dtype="float64",
    device=None,
    verbose=1,
):
    """Compute a kernel matrix into a resumable store on disk.

    The matrix is cut into ``block_size x block_size`` tiles, each computed
    once and written to a zarr store at ``path`` with a checksum. Calling
    again with the same ``path`` and inputs resumes (after an interruption,
    even a ``SIGKILL``): stored tiles are verified and only the missing or bad
    ones are computed.

    Parameters
    ----------
    x1 : array-like of shape (n1, n_features) or (n1, H, W, C)
    x2 : array-like of shape (n2, ...), default=None
        ``None``: the symmetric kernel of ``x1`` (each tile pair computed and
        stored once).
    path : str or os.PathLike
        Directory of the store: new (its parent must exist), empty, or a store
        of the same kernel to resume. A store of another kernel is refused.
    get : {"nngp", "ntk"} or tuple of them, default=("nngp", "ntk")
    client : dask.distributed.Client or str, default=None
        ``None`` computes in this process (tiles over the local devices). A
        Dask client, or a scheduler address such as ``"tcp://host:8786"``,
        sends tiles to the cluster's workers, which compute them with JAX on
        their own devices and write to the store: ``path`` must then be on a
        file system every worker sees. Needs ``pip install "sknngp[dask]"``.
    batch_size : int, default=None
        Tile size of the engine inside a stored tile (see
        :func:`sknngp.kernel_matrix`); does not change the stored values.
    block_size : int, default=None
        Side of the stored tiles; ``None`` picks a multiple of 128 between 128
        and 1024 that cuts the matrix into about 8 x 8 or more. A resumed
        store keeps the block size it was created with.
    architecture, depth, activation, W_std, b_std, parameterization, width, input_shape, dtype, device
        As in :func:`sknngp.kernel_matrix`.
    verbose : int, default=1
        Progress bar over the tiles (tqdm, on stderr): ``1`` when the job takes
        longer than a couple of seconds, ``2`` always, ``0`` never.

    Returns
    -------
    store : KernelStore
        ``store.nngp`` / ``store.ntk`` are array-likes (``np.asarray`` gives the
        matrix); ``store.tiles_total``, ``tiles_done`` and ``tiles_computed``
        say where the job stands.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sknngp.kernels import kernel_matrix, store_kernel
    >>> X = np.random.default_rng(0).normal(size=(300, 5))
    >>> where = os.path.join(tempfile.mkdtemp(), "k.zarr")
    >>> store = store_kernel(X, path=where, get="nngp", depth=2, block_size=128, verbose=0)
    >>> store.tiles_total, store.tiles_computed
    (6, 6)
    >>> bool(np.allclose(np.asarray(store.nngp), kernel_matrix(X, depth=2)))
    True
    >>> store_kernel(X, path=where, get="nngp", depth=2, verbose=0).tiles_computed
    0
    """
    gets, _ = _parse_get(get)
    dkey = _parse_dtype(dtype)
    arch = dict(architecture=architecture, depth=depth, activation=activation,
                W_std=W_std, b_std=b_std, parameterization=parameterization, width=width)
    plan, xa, xb = _prepare(x1, x2, arch, input_shape, "x1", "x2")
    symmetric = x2 is None
    n1, n2 = len(xa), len(xb)
    if batch_size is not None:
        choose_tile(plan, n1, n2, batch_size)  # validates it
    path = _check_path(path)
    found = _read_meta(path)
    block = (_blocks.default_block(n1, n2) if block_size is None
             else _blocks.check_block(block_size))
    if found is not None and block_size is None:
        block = int(found["block_size"])  # a resumed store keeps its tiles
    elif found is not None and block != int(found["block_size"]):
        raise ValueError(
            f"block_size={block} differs from the {found['block_size']} of the store at "
            f"{path!r}; pass block_size=None (or {found['block_size']}) to resume it."
        )
    meta = {"format": _blocks.FORMAT, "shape": [n1, n2], "symmetric": symmetric,
            "kinds": list(gets), "block_size": block, "dtype": dkey,
            "fingerprint": fingerprint(plan, dkey, xa, None if symmetric else xb)}
    _check_disk(path, found is None, len(block_jobs(n1, n2, block, symmetric)), block, n1, n2,
                len(gets))
    store = _open_or_create(path, meta)
    jobs = store._jobs()
    todo = [job for job in jobs if job not in _verified_done(store, jobs)]
    xb = None if symmetric else xb
    with reporting(verbose):
        bar = tile_bar(len(todo), f"kernel store {n1}x{n2}")
        try:
            if client is None:
                for job in todo:
                    values = compute_block(plan, xa, xb, job, block, gets, dkey, batch_size, device)
                    write_blocks(store, job, values)
                    bar.update(1)
            else:
                from ._distributed import run_on_cluster

                run_on_cluster(client, todo, plan, xa, xb, path, block, gets, dkey,
                               batch_size, bar)
        finally:
            bar.close()
    store.tiles_computed = len(todo)
    return store


def _check_disk(path, new, n_tiles, block, n1, n2, n_kinds):
    """Refuse a new store that the disk cannot hold, before any work."""
    need = n_tiles * min(block, n1) * min(block, n2) * 8 * n_kinds
    where = path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))
    free = shutil.disk_usage(where).free
    if new and need > free:
        raise MemoryError(
            f"the kernel store needs about {need / 2**30:.1f} GiB on disk ({n_tiles} tiles of "
            f"{block} x {block} float64 x {n_kinds} kind(s)) but {where!r} has "
            f"{free / 2**30:.1f} GiB free; choose a path on a larger disk, or ask for one "
            "kernel (get='nngp' or 'ntk')."
        )


def _check_path(path):
    if not isinstance(path, (str, os.PathLike)) or isinstance(path, bytes):
        raise TypeError(f"path must be a directory path (str or os.PathLike); got {path!r}.")
    text = os.fspath(path)
    if not text.strip():
        raise ValueError(f"path must be a directory path; got {path!r}.")
    if os.path.exists(text) and not os.path.isdir(text):
        raise ValueError(f"path={text!r} is an existing file; pass a directory for the store.")
    parent = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(parent):
        raise ValueError(f"path={text!r}: the parent folder {parent!r} does not exist; "
                         "create it first.")
    return text
