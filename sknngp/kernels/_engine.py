"""Tiled, multi-device evaluation of NNGP / NTK kernel matrices.

The ``(n1, n2)`` matrix is cut into ``batch_size x batch_size`` tiles. Each tile
is one call of a jitted function (compiled once per tile shape: the last, partial
tiles are zero-padded to the full size), so memory is bounded by the tile size
whatever ``n``. When ``X2`` is None only tiles on or above the diagonal are
computed and mirrored. Tiles are spread over the local devices of the chosen
backend and over worker threads (XLA releases the GIL), and gathered on the host.
"""

from __future__ import annotations

import functools
import math
import os
import threading
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

import jax
import numpy as np

from ..architecture import Flatten, Serial, build_architecture
from ._validation import _DTYPES, _parse_dtype, _parse_get, as_images, resolve_devices
from ._propagate import finish, initial_state, make_plan, run_step, steps

Kernels = namedtuple("Kernels", ["nngp", "ntk"])
Kernels.__doc__ = "NNGP and NTK kernel matrices returned by ``kernel_matrix(get=('nngp', 'ntk'))``."



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


class _Pipeline:
    """One jitted function per step (see ``_propagate.steps``), chained.

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
        self.rest = [None] + [
            jax.jit(functools.partial(_step, plan, bd, want_ntk)) for bd in bounds[1:]
        ]

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


def kernel_matrix(
    X1,
    X2=None,
    *,
    get="nngp",
    architecture="fc",
    depth=3,
    activation="relu",
    W_std=2**0.5,
    b_std=0.1,
    parameterization="ntk",
    width=None,
    input_shape=None,
    dtype="float64",
    batch_size=None,
    device=None,
):
    """Infinite-width NNGP and/or NTK kernel matrix of an architecture.

    Parameters
    ----------
    X1 : array-like of shape (n1, n_features) or (n1, H, W, C)
        First inputs. 2-D rows are reshaped to ``input_shape`` when given.
    X2 : array-like of shape (n2, ...), default=None
        Second inputs; ``None`` means ``X1`` (each symmetric tile pair once).
    get : {"nngp", "ntk"} or tuple of them, default="nngp"
        What to return; a tuple returns a :class:`Kernels` namedtuple.
    architecture : {"fc", "cnn-vec", "cnn-gap"} or Serial, default="fc"
        A named architecture, or a layer stack built with
        :func:`sknngp.kernels.serial` (then the next six arguments are ignored).
    depth : int, default=3
        Number of hidden Dense / Conv layers.
    activation : {"relu", "erf"}, default="relu"
    W_std, b_std : float, default=sqrt(2), 0.1
        Weight and bias standard deviations of every Dense / Conv layer.
    parameterization : {"ntk", "standard"}, default="ntk"
    width : int, default=None
        Hidden width; required by the standard-parameterization NTK only.
    input_shape : tuple (H, W, C), default=None
        Image shape of 2-D inputs.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the kernel computation (the caller's JAX x64 setting is
        left untouched). The result is always returned as float64.
    batch_size : int, default=None
        Tile size; ``None`` picks one whose arrays stay cache-sized
        (``TILE_ENTRIES`` covariance entries per array).
    device : None, str or jax.Device, default=None
        ``None`` uses every local device of JAX's default backend.

    Returns
    -------
    K : ndarray of shape (n1, n2), or Kernels(nngp, ntk)

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp import kernel_matrix
    >>> X = np.random.default_rng(0).normal(size=(5, 4))
    >>> K = kernel_matrix(X, depth=2)
    >>> K.shape, bool(np.allclose(K, K.T))
    ((5, 5), True)
    >>> k = kernel_matrix(X, get=("nngp", "ntk"), depth=2)
    >>> bool(np.all(np.diag(k.ntk) >= np.diag(k.nngp)))
    True
    """
    gets, single = _parse_get(get)
    dkey = _parse_dtype(dtype)
    arch = dict(architecture=architecture, depth=depth, activation=activation,
                W_std=W_std, b_std=b_std, parameterization=parameterization, width=width)
    plan, x1, x2 = _prepare(X1, X2, arch, input_shape, "X1")
    out, _, _ = compute(plan, x1, None if X2 is None else x2, gets, dkey, batch_size, device)
    if single:
        return out[gets[0]]
    return Kernels(out.get("nngp"), out.get("ntk"))


def _swap(arr, full):
    """Exchange the two samples of a pair array: ``K[i, j, p] -> K[j, i, p]``
    (same-position layout ``(n1, n2, *S)``) or ``K[i, j, p, q] -> K[j, i, q, p]``
    (``full``: ``(n1, n2, *S, *S)``)."""
    if not full or arr.ndim == 2:
        return arr.swapaxes(0, 1)
    h = (arr.ndim - 2) // 2
    return arr.transpose((1, 0) + tuple(range(2 + h, 2 + 2 * h)) + tuple(range(2, 2 + h)))


def compute(plan, x1, x2, gets, dkey, batch_size=None, device=None, *, start=None,
            readouts=(), capture=None):
    """Tiled evaluation of a prepared plan (``x2=None``: the symmetric block).

    Parameters
    ----------
    start : (step, state), optional
        Resume from host arrays ``(nngp, ntk, var1, var2)`` holding the state
        after step ``step`` for these rows, instead of from the inputs.
    readouts : tuple of int
        Steps after which the last step is also applied (the kernels of the
        shallower stacks of a family, see :mod:`sknngp.kernels._family`).
    capture : int, optional
        Step whose output state is returned as host arrays.

    Returns
    -------
    out : dict {kind: (n1, n2)}; readout : {step: {kind: (n1, n2)}};
    state : tuple of host arrays or None
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

    jobs = [(i, j) for i in range(0, n1, tile) for j in range(0, n2, tile)
            if not (symmetric and j < i)]
    out = {g: np.empty((n1, n2), dtype=np.float64) for g in gets}
    ro = {b: {g: np.empty((n1, n2), dtype=np.float64) for g in gets} for b in readouts}
    cap = [None, None, None, None]
    xs1 = x1.astype(np_dtype)
    xs2 = xs1 if symmetric else x2.astype(np_dtype)
    lock = threading.Lock()

    cap_full = False
    if capture is not None:
        end = steps(plan)[capture][1]
        cap_full = plan.full_inputs[end - 1] and bool(plan.shapes[end - 1].spatial_out)

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
                res, tapped = pipe.run(None, None, taps=taps, start=(
                    start[0], _state_tile(start[1], i, j, tile, np_dtype, dev)))
            host = lambda pair: {g: np.asarray(pair[k], dtype=np.float64)[:ri, :rj]
                                 for g, k in (("nngp", 0), ("ntk", 1)) if g in gets}
            res = host(res)
            ro_tiles = {b: host(pipe.readout(tapped[b])) for b in readouts}
            cap_tile = None
            if capture is not None:
                st = tapped[capture]
                cap_tile = [None if st[k] is None else np.asarray(st[k], np.float64)[:ri, :rj]
                            for k in (0, 1)]
                cap_tile += [np.asarray(st[2], np.float64)[:ri],
                             np.asarray(st[3], np.float64)[:rj]]
        with lock:
            for g in gets:
                put(out[g], i, j, ri, rj, res[g], diagonal_tile)
                for bnd in readouts:
                    put(ro[bnd][g], i, j, ri, rj, ro_tiles[bnd][g], diagonal_tile)
            if cap_tile is not None:
                for k in (0, 1):
                    if cap_tile[k] is not None:
                        if cap[k] is None:
                            cap[k] = np.empty((n1, n2) + cap_tile[k].shape[2:])
                        put(cap[k], i, j, ri, rj, cap_tile[k], diagonal_tile, cap_full)
                for k, (at, r) in ((2, (i, ri)), (3, (j, rj))):
                    if cap[k] is None:
                        cap[k] = np.empty(((n1, n2)[k - 2],) + cap_tile[k].shape[1:])
                    cap[k][at:at + r] = cap_tile[k]
                if symmetric:
                    cap[2][j:j + rj] = cap_tile[3]
                    cap[3][i:i + ri] = cap_tile[2]

    n_workers = _n_workers(devices)
    if n_workers == 1 or len(jobs) == 1:
        for k in range(len(jobs)):
            run(k)
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(run, range(len(jobs))))
    return out, ro, (None if capture is None else tuple(cap))


def _state_tile(state, i, j, tile, np_dtype, dev):
    """Rows ``i:i+tile`` x columns ``j:j+tile`` of a host state, padded and on ``dev``."""
    nngp, ntk, var1, var2 = state

    def pair_block(arr):
        if arr is None:
            return None
        block = arr[i:i + tile, j:j + tile]
        pad = [(0, tile - block.shape[0]), (0, tile - block.shape[1])]
        pad += [(0, 0)] * (block.ndim - 2)
        return jax.device_put(np.pad(block, pad).astype(np_dtype), dev)

    def row_block(arr, at):
        return jax.device_put(_pad_rows(arr[at:at + tile], tile).astype(np_dtype), dev)

    return pair_block(nngp), pair_block(ntk), row_block(var1, i), row_block(var2, j)


@functools.lru_cache(maxsize=64)
def _compiled_pairs(plan, want_ntk):
    """Like ``pipeline`` but for pairs ``(x1[i], x2[i])``: vmapped 1x1 tiles."""
    bounds = steps(plan)

    def first(a, b):
        state = initial_state(plan, a[None], b[None], same=True)
        return run_step(plan, bounds[0], state, want_ntk)

    chain = [jax.jit(jax.vmap(first))] + [
        jax.jit(jax.vmap(functools.partial(_step, plan, bd, want_ntk))) for bd in bounds[1:]
    ]

    def fn(x1, x2):
        state = chain[0](x1, x2)
        for step in chain[1:]:
            state = step(state)
        nngp, ntk = finish(state, want_ntk)
        return nngp[:, 0, 0], None if ntk is None else ntk[:, 0, 0]

    return fn


def kernel_diagonal(
    X,
    *,
    get="nngp",
    architecture="fc",
    depth=3,
    activation="relu",
    W_std=2**0.5,
    b_std=0.1,
    parameterization="ntk",
    width=None,
    input_shape=None,
    dtype="float64",
    batch_size=None,
    device=None,
):
    """Self-kernels ``k(x_i, x_i)``: the diagonal of ``kernel_matrix(X)`` in O(n).

    Same parameters as :func:`kernel_matrix`; returns arrays of shape ``(n,)``.

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp.kernels import kernel_diagonal, kernel_matrix
    >>> X = np.random.default_rng(0).normal(size=(4, 3))
    >>> bool(np.allclose(kernel_diagonal(X), np.diag(kernel_matrix(X))))
    True
    """
    gets, single = _parse_get(get)
    dkey = _parse_dtype(dtype)
    arch = dict(architecture=architecture, depth=depth, activation=activation,
                W_std=W_std, b_std=b_std, parameterization=parameterization, width=width)
    plan, x, _ = _prepare(X, None, arch, input_shape, "X")
    out = diagonal(plan, x, gets, dkey, batch_size, device)
    if single:
        return out[gets[0]]
    return Kernels(out.get("nngp"), out.get("ntk"))


def diagonal(plan, x, gets, dkey, batch_size=None, device=None):
    """Self-kernels of prepared inputs: ``{kind: (n,)}``."""
    if batch_size is not None:
        choose_tile(plan, 1, 1, batch_size)  # validates it
    n = x.shape[0]
    per = max(1, int(TILE_ENTRIES / _entries_per_pair(plan)))
    chunk = min(n, int(batch_size) if batch_size is not None else min(per, 4096))
    dev = resolve_devices(device)[0]
    fn = _compiled_pairs(plan, "ntk" in gets)
    xs = x.astype(_DTYPES[dkey])
    out = {g: np.empty(n) for g in gets}
    for i in range(0, n, chunk):
        with jax.enable_x64(dkey == "float64"):
            a = jax.device_put(_pad_rows(xs[i:i + chunk], chunk), dev)
            nngp, ntk = fn(a, a)
            res = {"nngp": nngp, "ntk": ntk}
            r = min(chunk, n - i)
            for g in gets:
                out[g][i:i + r] = np.asarray(res[g], dtype=np.float64)[:r]
    return out


def _prepare(X1, X2, arch, input_shape, name1):
    """Validate inputs, build the stack and its plan; ``X2=None`` means ``X1``."""
    stack = build_architecture(**arch)
    x1 = as_images(X1, input_shape, name1)
    x2 = x1 if X2 is None else as_images(X2, input_shape, "X2")
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"X1 and X2 must have the same sample shape; got {x1.shape[1:]} and "
            f"{x2.shape[1:]} (feature counts {int(np.prod(x1.shape[1:]))} and "
            f"{int(np.prod(x2.shape[1:]))})."
        )
    if x1.ndim == 3:
        raise ValueError(
            f"3-D inputs of shape {x1.shape} are ambiguous: pass (n, H, W, C) images "
            "or 2-D rows with input_shape=(H, W, C)."
        )
    plan, flat = plan_for(stack, x1.shape[1:])
    if flat:
        x1, x2 = x1.reshape(len(x1), -1), x2.reshape(len(x2), -1)
    return plan, x1, x2


@functools.lru_cache(maxsize=256)
def plan_for(stack, sample_shape):
    """The plan of ``stack`` on samples of ``sample_shape``, and whether the
    inputs are to be flattened first.

    A leading Flatten acts on the raw inputs: the rows are flattened instead
    (same kernel: the mean over positions of ``x_p . x'_p / C`` is
    ``x . x' / (P C)``), without per-position arrays of shape ``(n1, n2, P)``.
    The plan is canonical, so the kernel bank keys on it.
    """
    sample_shape = tuple(int(s) for s in sample_shape)
    flat = bool(stack.layers) and type(stack.layers[0]) is Flatten and len(sample_shape) > 1
    if flat:
        stack = Serial(stack.layers[1:])
        sample_shape = (int(np.prod(sample_shape)),)
    return make_plan(stack, sample_shape[:-1], sample_shape[-1]), flat


def _n_workers(devices):
    """Concurrent tile computations: one per device; on CPU one per core."""
    if all(d.platform == "cpu" for d in devices):
        return max(len(devices), os.cpu_count() or 1)
    return len(devices)
