"""Tiles: the unit of kernel work, their memory plan and their pipeline.

The ``(n1, n2)`` matrix is cut into ``tile x tile`` blocks. Each tile is one
pass of a chain of jitted steps (compiled once per tile shape: the last,
partial tiles are zero-padded to the full size), so memory is bounded by the
tile size whatever ``n``. For a symmetric block only tiles on or above the
diagonal are computed and mirrored. Tiles are spread over the local devices
of the chosen backend and over worker threads (XLA releases the GIL) and
gathered on the host. A computation can also start from a banked state and
return intermediate states and readouts (see :mod:`sknngp._depths`).
"""

from __future__ import annotations

import contextvars
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

from ._progress import tile_bar
from ._propagate import Plan, finish, initial_state, run_step, steps
from ._validation import _DTYPES, check_finite_kernels, resolve_devices


def _entries_per_pair(plan):
    """Largest number of covariance entries one input pair carries."""
    worst = 1
    for full, spatial in zip(plan.full_inputs, plan.spatial_in):
        p = int(np.prod(spatial)) if spatial else 1
        worst = max(worst, p * p if (full and spatial) else p)
    return worst


def _tile_bytes(plan, tile, itemsize):
    """Upper estimate of the memory of one tile computation: nngp, ntk, the
    padded conv inputs and a few fused temporaries."""
    return 8 * tile * tile * _entries_per_pair(plan) * itemsize


#: covariance entries per array that keep a tile's working set in cache;
#: measured on CNN-GAP-8 / CNN-VEC-8 (8x8 inputs): tiles of 8 and 32 beat 16
#: and 128 by 1.5-3x, because XLA:CPU's fused passes become memory-bound.
TILE_ENTRIES = 2**18


def choose_tile(plan, n1, n2, batch_size):
    if batch_size is not None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer or None; got {batch_size!r}."
            )
        return int(batch_size)
    tile = int(math.sqrt(TILE_ENTRIES / _entries_per_pair(plan)))
    return max(1, min(tile, 512, max(n1, n2)))


def _check_memory(n1, n2, n_out, plan, tile, itemsize):
    try:
        avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return
    host = n1 * n2 * 8 * n_out
    if host > avail:
        raise MemoryError(
            f"the kernel matrix needs {host / 2**30:.1f} GiB on the host "
            f"({n1} x {n2} x {n_out} float64) but only {avail / 2**30:.1f} GiB is "
            "available; compute it in row blocks (pass slices of X1) or use fewer samples."
        )
    one = _tile_bytes(plan, tile, itemsize)
    if one > avail:
        raise MemoryError(
            f"one {tile}x{tile} tile needs about {one / 2**30:.1f} GiB but only "
            f"{avail / 2**30:.1f} GiB is available; pass a smaller batch_size."
        )


def _sub_plan(plan, bounds):
    """The layers of one step, with their shapes and layout, as a plan of its own."""
    lo, hi = bounds
    return Plan(plan.layers[lo:hi], plan.full_inputs[lo:hi], plan.shapes[lo:hi])


@functools.lru_cache(maxsize=256)
def jitted_step(sub, want_ntk, vmapped=False):
    """The compiled function of one step, shared by every identical step.

    Steps are keyed by their content (layers, shapes, covariance layout), not
    by their position, so the ``depth`` identical hidden steps of a named
    architecture compile once: the compile cost does not grow with depth.
    """
    fn = functools.partial(_step, sub, (0, len(sub.layers)), want_ntk)
    return jax.jit(jax.vmap(fn) if vmapped else fn)


class _Pipeline:
    """One jitted function per distinct step (see ``_propagate.steps``), chained.

    ``run(x1, x2)`` computes a tile (``x2=None``: a diagonal tile of a
    symmetric matrix). ``start=(b, state)`` resumes from the state after step
    ``b`` instead of the inputs; ``taps`` lists steps whose output state is
    returned as well (for readouts of shallower stacks and for resuming).
    """

    def __init__(self, plan, want_ntk):
        self.plan, self.want_ntk = plan, want_ntk
        self.bounds = bounds = steps(plan)
        self.first = jax.jit(
            lambda x1, x2: run_step(plan, bounds[0], initial_state(plan, x1, x2), want_ntk)
        )
        self.first_same = jax.jit(
            lambda x1: run_step(plan, bounds[0], initial_state(plan, x1, x1, True), want_ntk)
        )
        self.rest = [None] + [jitted_step(_sub_plan(plan, bd), want_ntk) for bd in bounds[1:]]

    def run(self, x1, x2, start=None, taps=()):
        if start is None:
            state = self.first_same(x1) if x2 is None else self.first(x1, x2)
            done = 0
        else:
            done, state = start
        tapped = {done: state} if done in taps else {}
        for s in range(done + 1, len(self.bounds)):
            state = self.rest[s](state)
            if s in taps:
                tapped[s] = state
        return finish(state, self.want_ntk), tapped

    def readout(self, state):
        """The last step (the layers after the last nonlinearity) on a state."""
        return finish(self.rest[-1](state), self.want_ntk)


@functools.lru_cache(maxsize=64)
def pipeline(plan, want_ntk):
    return _Pipeline(plan, want_ntk)


def _step(plan, bounds, want_ntk, state):
    return run_step(plan, bounds, state, want_ntk)


def _pad_rows(x, size):
    if x.shape[0] == size:
        return x
    pad = np.zeros((size - x.shape[0],) + x.shape[1:], dtype=x.dtype)
    return np.concatenate([x, pad])


def _swap(arr, full):
    """Exchange the two samples of a pair array: ``K[i, j, p] -> K[j, i, p]``
    (same-position layout ``(n1, n2, *S)``) or ``K[i, j, p, q] -> K[j, i, q, p]``
    (``full``: ``(n1, n2, *S, *S)``)."""
    if not full or arr.ndim == 2:
        return arr.swapaxes(0, 1)
    h = (arr.ndim - 2) // 2
    return arr.transpose((1, 0) + tuple(range(2 + h, 2 + 2 * h)) + tuple(range(2, 2 + h)))


def compute(plan, x1, x2, gets, dkey, batch_size=None, device=None, *, start=None,
            readouts=(), capture=None, what="X"):
    """Tiled evaluation of a prepared plan (``x2=None``: the symmetric block).

    Parameters
    ----------
    start : (step, state), optional
        Resume from the state after step ``step`` for these rows, instead of
        from the inputs: a :class:`TileState` (used tile by tile, without
        copies, when its tiling matches) or host arrays
        ``(nngp, ntk, var1, var2)``.
    readouts : tuple of int
        Steps after which the last step is also applied (the kernels of the
        shallower stacks of a family, see :mod:`sknngp.kernels._family`).
    capture : int, optional
        Step whose output state is returned, as a :class:`TileState`.

    what : str
        How the inputs are named in the error raised when a kernel overflows.

    Returns
    -------
    out : dict {kind: (n1, n2)}; readout : {step: {kind: (n1, n2)}};
    state : TileState or None

    Raises
    ------
    ValueError
        If a kernel holds NaN or infinite values (overflow). Nothing
        non-finite leaves the engine, so nothing non-finite is ever cached.
    """
    symmetric = x2 is None
    if symmetric:
        x2 = x1
    np_dtype = _DTYPES[dkey]
    n1, n2 = x1.shape[0], x2.shape[0]
    tile = choose_tile(plan, n1, n2, batch_size)
    extra = 0 if capture is None else 2 * _entries_per_pair(plan)
    _check_memory(n1, n2, len(gets) * (1 + len(readouts)) + extra, plan, tile,
                  np.dtype(np_dtype).itemsize)
    devices = resolve_devices(device)
    pipe = pipeline(plan, "ntk" in gets)
    taps = tuple(readouts) + (() if capture is None else (capture,))

    jobs = tile_jobs(n1, n2, tile, symmetric)
    out = {g: np.empty((n1, n2), dtype=np.float64) for g in gets}
    ro = {b: {g: np.empty((n1, n2), dtype=np.float64) for g in gets} for b in readouts}
    with np.errstate(over="ignore"):  # inputs beyond float32: the kernel check says so
        xs1 = x1.astype(np_dtype)
        xs2 = xs1 if symmetric else x2.astype(np_dtype)
    lock = threading.Lock()

    cap = None
    if capture is not None:
        end = steps(plan)[capture][1]
        full = plan.full_inputs[end - 1] and bool(plan.shapes[end - 1].spatial_out)
        cap = TileState(tile, n1, n2, symmetric, full, dkey)
    resume = None
    if start is not None:
        step0, state0 = start
        if isinstance(state0, TileState) and not state0.fits(tile, n1, n2, symmetric, dkey):
            state0 = state0.host()
        resume = step0, state0

    def put(target, i, j, ri, rj, block, diagonal_tile, full=False):
        if symmetric and diagonal_tile and block.ndim == 2:
            # (i, j) and (j, i) differ by round-off (summation order)
            block = 0.5 * (block + block.T)
        target[i:i + ri, j:j + rj] = block
        if symmetric and not diagonal_tile:
            target[j:j + rj, i:i + ri] = _swap(block, full)

    def run(job_index):
        i, j = jobs[job_index]
        dev = devices[job_index % len(devices)]
        diagonal_tile = symmetric and i == j
        ri, rj = min(tile, n1 - i), min(tile, n2 - j)
        with jax.enable_x64(dkey == "float64"):
            if start is None:
                a = jax.device_put(_pad_rows(xs1[i:i + tile], tile), dev)
                b = None if diagonal_tile else jax.device_put(
                    _pad_rows(xs2[j:j + tile], tile), dev)
                res, tapped = pipe.run(a, b, taps=taps)
            else:
                step0, state0 = resume
                if isinstance(state0, TileState):
                    st0 = tuple(None if a is None else jax.device_put(a, dev)
                                for a in state0.tiles[i, j])
                else:
                    st0 = _state_tile(state0, i, j, tile, np_dtype, dev)
                res, tapped = pipe.run(None, None, taps=taps, start=(step0, st0))
            host = lambda pair: {g: np.asarray(pair[k], dtype=np.float64)[:ri, :rj]
                                 for g, k in (("nngp", 0), ("ntk", 1)) if g in gets}
            res = host(res)
            ro_tiles = {b: host(pipe.readout(tapped[b])) for b in readouts}
            if cap is not None:
                cap.tiles[i, j] = tapped[capture]  # kept as computed: no copy
        with lock:
            for g in gets:
                put(out[g], i, j, ri, rj, res[g], diagonal_tile)
                for bnd in readouts:
                    put(ro[bnd][g], i, j, ri, rj, ro_tiles[bnd][g], diagonal_tile)

    run_tiles(run, len(jobs), devices, f"kernel {n1}x{n2}")
    check_finite_kernels(out, dkey, what)
    for arrays in ro.values():
        check_finite_kernels(arrays, dkey, what)
    return out, ro, cap


def tile_jobs(n1, n2, tile, symmetric):
    """Top-left corners ``(i, j)`` of the tiles to compute: all of them, or those
    on and above the diagonal of a symmetric block."""
    return [(i, j) for i in range(0, n1, tile) for j in range(0, n2, tile)
            if not (symmetric and j < i)]


def run_tiles(run, n_jobs, devices, desc):
    """``run(k)`` for every job ``k`` (job ``k`` on ``devices[k % len(devices)]`` is
    ``run``'s business), over worker threads, each finished tile reported to a
    progress bar (:func:`sknngp.kernels._progress.tile_bar`)."""
    bar = tile_bar(n_jobs, desc)
    lock = threading.Lock()

    def run_and_report(k):
        run(k)
        with lock:
            bar.update(1)

    n_workers = _n_workers(devices)
    try:
        if n_workers == 1 or n_jobs == 1:
            for k in range(n_jobs):
                run_and_report(k)
        else:
            with ThreadPoolExecutor(n_workers) as pool:
                list(pool.map(run_and_report, range(n_jobs)))
    finally:
        bar.close()


class TileState:
    """The state after a step, kept tile by tile as the computation left it.

    ``tiles[i, j]`` holds the (padded) arrays ``(nngp, ntk, var1, var2)`` of
    the tile at rows ``i`` and columns ``j`` (upper tiles only for a symmetric
    block). A later computation with the same tiling resumes from them
    directly; :meth:`host` assembles whole host arrays otherwise.
    """

    def __init__(self, tile, n1, n2, symmetric, full, dkey):
        self.tile, self.n1, self.n2 = tile, n1, n2
        self.symmetric, self.full, self.dkey = symmetric, full, dkey
        self.tiles = {}

    @property
    def nbytes(self):
        return sum(a.nbytes for t in self.tiles.values() for a in t if a is not None)

    @property
    def has_ntk(self):
        return all(t[1] is not None for t in self.tiles.values())

    def fits(self, tile, n1, n2, symmetric, dkey):
        return (tile, n1, n2, symmetric, dkey) == (
            self.tile, self.n1, self.n2, self.symmetric, self.dkey)

    def host(self):
        """``(nngp, ntk, var1, var2)`` as float64 host arrays of the whole block."""
        n1, n2, t = self.n1, self.n2, self.tile
        out = [None, None, np.empty((n1,) + self._entry(2)), np.empty((n2,) + self._entry(2))]
        for k in (0, 1):
            if self.has_ntk or k == 0:
                out[k] = np.empty((n1, n2) + self._entry(k))
        for (i, j), arrays in self.tiles.items():
            ri, rj = min(t, n1 - i), min(t, n2 - j)
            a = [None if x is None else np.asarray(x, np.float64) for x in arrays]
            for k in (0, 1):
                if out[k] is not None:
                    out[k][i:i + ri, j:j + rj] = a[k][:ri, :rj]
                    if self.symmetric and i != j:
                        out[k][j:j + rj, i:i + ri] = _swap(a[k][:ri, :rj], self.full)
            out[2][i:i + ri], out[3][j:j + rj] = a[2][:ri], a[3][:rj]
            if self.symmetric:
                out[2][j:j + rj], out[3][i:i + ri] = a[3][:rj], a[2][:ri]
        return tuple(out)

    def _entry(self, k):
        first = next(iter(self.tiles.values()))
        return tuple(first[0 if k < 2 else 2].shape[2 if k < 2 else 1:])


def _state_tile(state, i, j, tile, np_dtype, dev):
    """Rows ``i:i+tile`` x columns ``j:j+tile`` of a host state, padded and on ``dev``."""
    nngp, ntk, var1, var2 = state

    def pair_block(arr):
        if arr is None:
            return None
        block = arr[i:i + tile, j:j + tile]
        if block.shape[:2] != (tile, tile):
            pad = [(0, tile - block.shape[0]), (0, tile - block.shape[1])]
            block = np.pad(block, pad + [(0, 0)] * (block.ndim - 2))
        return jax.device_put(np.ascontiguousarray(block, dtype=np_dtype), dev)

    def row_block(arr, at):
        block = _pad_rows(arr[at:at + tile], tile)
        return jax.device_put(np.ascontiguousarray(block, dtype=np_dtype), dev)

    return pair_block(nngp), pair_block(ntk), row_block(var1, i), row_block(var2, j)


#: tile threads per computation on CPU; None: one per core. A Dask worker sets
#: 1 (the worker already runs one task per thread slot)
CPU_THREADS = contextvars.ContextVar("sknngp_cpu_threads", default=None)


def _n_workers(devices):
    """Concurrent tile computations: one per device; on CPU one per core."""
    if all(d.platform == "cpu" for d in devices):
        if CPU_THREADS.get() is not None:
            return max(len(devices), CPU_THREADS.get())
        return max(len(devices), os.cpu_count() or 1)
    return len(devices)
