"""Tiles: the unit of kernel work, their memory plan and their pipeline.

The ``(n1, n2)`` matrix is cut into ``t1 x t2`` blocks (a tile side capped
by each side's rows, so a few rows are never padded to a large tile). Each
tile is one pass of a chain of jitted steps (compiled once per tile shape:
the last, partial tiles are zero-padded to the full size), so memory is
bounded by the tile size whatever ``n``; the memory plan
(:mod:`sknngp.kernels._memory`) is checked before any tile runs. For a
symmetric block only tiles on or above the diagonal are computed and
mirrored. Tiles are spread round robin over the local devices of the chosen
backend (one tile in flight per accelerator; on CPUs over worker threads:
XLA releases the GIL) and gathered on the host. A computation can also start from a banked state and
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

from . import _memory
from ._memory import entries_per_pair as _entries_per_pair
from ._progress import tile_bar
from ._propagate import Plan, finish, initial_state, run_step, steps
from ._validation import _DTYPES, check_finite_kernels, resolve_devices


#: covariance entries per array that keep a tile's working set in cache;
#: measured on CNN-GAP-8 / CNN-VEC-8 (8x8 inputs): tiles of 8 and 32 beat 16
#: and 128 by 1.5-3x, because XLA:CPU's fused passes become memory-bound.
TILE_ENTRIES = 2**18


def choose_tile(plan, n1, n2, batch_size, devices=(), itemsize=8):
    """Tile side: ``batch_size``, else the largest that fits the accelerators'
    free memory (see :mod:`sknngp.kernels._memory`), else a cache-sized one
    on CPUs (``TILE_ENTRIES`` covariance entries per array); never more than
    the rows, so a few rows are never padded up to a large ``batch_size``."""
    if batch_size is not None:
        if (
            isinstance(batch_size, bool)
            or not isinstance(batch_size, (int, np.integer))
            or batch_size < 1
        ):
            raise ValueError(
                f"batch_size must be a positive integer or None; got {batch_size!r}."
            )
        tile = int(batch_size)
    else:
        tile = _memory.accelerator_tile(plan, itemsize, devices)
        if tile is None:
            tile = max(1, min(int(math.sqrt(TILE_ENTRIES / _entries_per_pair(plan))), 512))
    return max(1, min(tile, max(n1, n2)))


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
    MemoryError
        Before any work, if the host or a device cannot hold the plan
        (:func:`sknngp.kernels._memory.check_matrix`).
    """
    symmetric = x2 is None
    if symmetric:
        x2 = x1
    np_dtype = _DTYPES[dkey]
    n1, n2 = x1.shape[0], x2.shape[0]
    itemsize = np.dtype(np_dtype).itemsize
    devices = resolve_devices(device)
    tile = choose_tile(plan, n1, n2, batch_size, devices, itemsize)
    t1, t2 = min(tile, n1), min(tile, n2)
    state_bytes = 0 if capture is None else (
        n1 * n2 * _entries_per_pair(plan) * itemsize * (2 if "ntk" in gets else 1))
    state_at = _memory.check_matrix(
        plan, n1, n2, len(gets) * (1 + len(readouts)), (t1, t2), itemsize, devices,
        _n_workers(devices), symmetric=symmetric, state_bytes=state_bytes)
    pipe = pipeline(plan, "ntk" in gets)
    taps = tuple(readouts) + (() if capture is None else (capture,))

    jobs = tile_jobs(n1, n2, (t1, t2), symmetric)
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
        cap = TileState((t1, t2), n1, n2, symmetric, full, dkey)
    resume = None
    if start is not None:
        step0, state0 = start
        if isinstance(state0, TileState) and not state0.fits((t1, t2), n1, n2, symmetric, dkey):
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
        ri, rj = min(t1, n1 - i), min(t2, n2 - j)
        with jax.enable_x64(dkey == "float64"):
            if start is None:
                a = jax.device_put(_pad_rows(xs1[i:i + t1], t1), dev)
                b = None if diagonal_tile else jax.device_put(
                    _pad_rows(xs2[j:j + t2], t2), dev)
                res, tapped = pipe.run(a, b, taps=taps)
            else:
                step0, state0 = resume
                if isinstance(state0, TileState):
                    st0 = tuple(None if a is None else jax.device_put(a, dev)
                                for a in state0.tiles[i, j])
                else:
                    st0 = _state_tile(state0, i, j, (t1, t2), np_dtype, dev)
                res, tapped = pipe.run(None, None, taps=taps, start=(step0, st0))
            host = lambda pair: {g: np.asarray(pair[k], dtype=np.float64)[:ri, :rj]
                                 for g, k in (("nngp", 0), ("ntk", 1)) if g in gets}
            res = host(res)
            ro_tiles = {b: host(pipe.readout(tapped[b])) for b in readouts}
            if cap is not None:  # kept as computed (no copy) where it fits
                cap.tiles[i, j] = tapped[capture] if state_at == "device" else tuple(
                    None if a is None else np.asarray(a) for a in tapped[capture])
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
    on and above the diagonal of a symmetric block. ``tile``: a side or a
    shape ``(t1, t2)`` (equal sides for a symmetric block)."""
    t1, t2 = (tile, tile) if np.ndim(tile) == 0 else tile
    return [(i, j) for i in range(0, n1, t1) for j in range(0, n2, t2)
            if not (symmetric and j < i)]


def run_tiles(run, n_jobs, devices, desc, bar=None, unit="tile"):
    """``run(k)`` for every job ``k`` (job ``k`` on ``devices[k % len(devices)]`` is
    ``run``'s business), over worker threads, each finished job reported to a
    progress bar (:func:`sknngp.kernels._progress.tile_bar`; ``bar(k)`` says
    how many units job ``k`` counts, default 1).

    On CPUs a pool of :func:`_n_workers` threads takes the jobs in turn. On
    accelerators each device has one thread that runs its own jobs
    (``k % len(devices)``) one after the other: one tile in flight per
    device, as the memory plan assumes (:mod:`sknngp.kernels._memory`).
    """
    progress = tile_bar(n_jobs if bar is None else sum(bar(k) for k in range(n_jobs)), desc,
                        unit=unit)
    lock = threading.Lock()

    def run_and_report(k):
        run(k)
        with lock:
            progress.update(1 if bar is None else bar(k))

    n_workers = _n_workers(devices)
    try:
        if n_workers == 1 or n_jobs == 1:
            for k in range(n_jobs):
                run_and_report(k)
        elif all(d.platform == "cpu" for d in devices):
            with ThreadPoolExecutor(n_workers) as pool:
                list(pool.map(run_and_report, range(n_jobs)))
        else:
            def own(w):
                for k in range(w, n_jobs, n_workers):
                    run_and_report(k)

            with ThreadPoolExecutor(n_workers) as pool:
                list(pool.map(own, range(min(n_workers, n_jobs))))
    finally:
        progress.close()


class TileState:
    """The state after a step, kept tile by tile as the computation left it.

    ``tiles[i, j]`` holds the (padded) arrays ``(nngp, ntk, var1, var2)`` of
    the tile at rows ``i`` and columns ``j`` (upper tiles only for a symmetric
    block). A later computation with the same tiling resumes from them
    directly; :meth:`host` assembles whole host arrays otherwise.
    """

    def __init__(self, tile, n1, n2, symmetric, full, dkey):
        self.tile = (tile, tile) if np.ndim(tile) == 0 else tuple(tile)
        self.n1, self.n2 = n1, n2
        self.symmetric, self.full, self.dkey = symmetric, full, dkey
        self.tiles = {}

    @property
    def nbytes(self):
        return sum(a.nbytes for t in self.tiles.values() for a in t if a is not None)

    @property
    def has_ntk(self):
        return all(t[1] is not None for t in self.tiles.values())

    def fits(self, tile, n1, n2, symmetric, dkey):
        tile = (tile, tile) if np.ndim(tile) == 0 else tuple(tile)
        return (tile, n1, n2, symmetric, dkey) == (
            self.tile, self.n1, self.n2, self.symmetric, self.dkey)

    def host(self):
        """``(nngp, ntk, var1, var2)`` as float64 host arrays of the whole block."""
        n1, n2, (t1, t2) = self.n1, self.n2, self.tile
        out = [None, None, np.empty((n1,) + self._entry(2)), np.empty((n2,) + self._entry(2))]
        for k in (0, 1):
            if self.has_ntk or k == 0:
                out[k] = np.empty((n1, n2) + self._entry(k))
        for (i, j), arrays in self.tiles.items():
            ri, rj = min(t1, n1 - i), min(t2, n2 - j)
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
    """Rows ``i:i+t1`` x columns ``j:j+t2`` of a host state (``tile = (t1, t2)``),
    padded and on ``dev``."""
    nngp, ntk, var1, var2 = state
    t1, t2 = tile

    def pair_block(arr):
        if arr is None:
            return None
        block = arr[i:i + t1, j:j + t2]
        if block.shape[:2] != (t1, t2):
            pad = [(0, t1 - block.shape[0]), (0, t2 - block.shape[1])]
            block = np.pad(block, pad + [(0, 0)] * (block.ndim - 2))
        return jax.device_put(np.ascontiguousarray(block, dtype=np_dtype), dev)

    def row_block(arr, at, t):
        block = _pad_rows(arr[at:at + t], t)
        return jax.device_put(np.ascontiguousarray(block, dtype=np_dtype), dev)

    return pair_block(nngp), pair_block(ntk), row_block(var1, i, t1), row_block(var2, j, t2)


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
