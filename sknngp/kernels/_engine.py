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

from ._architectures import build_architecture
from ._layers import Flatten, Serial
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


def choose_tile(plan, n1, n2, itemsize, batch_size):
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


@functools.lru_cache(maxsize=64)
def _compiled(plan, want_ntk):
    """One jitted function per step (see ``_propagate.steps``), chained.

    ``fn(x1, x2)``; ``fn(x1, None)`` for a diagonal tile of a symmetric matrix.
    """
    bounds = steps(plan)
    first = jax.jit(
        lambda x1, x2: run_step(plan, bounds[0], initial_state(plan, x1, x2), want_ntk)
    )
    first_same = jax.jit(
        lambda x1: run_step(plan, bounds[0], initial_state(plan, x1, x1, True), want_ntk)
    )
    rest = [
        jax.jit(functools.partial(_step, plan, b, want_ntk)) for b in bounds[1:]
    ]

    def fn(x1, x2):
        state = first_same(x1) if x2 is None else first(x1, x2)
        for step in rest:
            state = step(state)
        return finish(state, want_ntk)

    return fn


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
    symmetric = X2 is None
    plan, x1, x2 = _prepare(
        X1, X2, (architecture, depth, activation, W_std, b_std, parameterization, width),
        input_shape, "X1",
    )
    np_dtype = _DTYPES[dkey]
    itemsize = np.dtype(np_dtype).itemsize
    n1, n2 = x1.shape[0], x2.shape[0]
    tile = choose_tile(plan, n1, n2, itemsize, batch_size)
    _check_memory(n1, n2, len(gets), plan, tile, itemsize)
    devices = resolve_devices(device)
    want_ntk = "ntk" in gets

    starts1 = list(range(0, n1, tile))
    starts2 = list(range(0, n2, tile))
    jobs = [
        (i, j) for i in starts1 for j in starts2 if not (symmetric and j < i)
    ]
    out = {g: np.empty((n1, n2), dtype=np.float64) for g in gets}
    xs1 = x1.astype(np_dtype)
    xs2 = xs1 if symmetric else x2.astype(np_dtype)
    fn = _compiled(plan, want_ntk)
    lock = threading.Lock()
    n_workers = _n_workers(devices)

    def run(job_index):
        i, j = jobs[job_index]
        dev = devices[job_index % len(devices)]
        a = _pad_rows(xs1[i:i + tile], tile)
        b = _pad_rows(xs2[j:j + tile], tile)
        with jax.enable_x64(dkey == "float64"):
            a = jax.device_put(a, dev)
            b = None if (symmetric and i == j) else jax.device_put(b, dev)
            nngp, ntk = fn(a, b)
            res = {"nngp": nngp, "ntk": ntk}
            res = {g: np.asarray(res[g], dtype=np.float64) for g in gets}
        ri, rj = min(tile, n1 - i), min(tile, n2 - j)
        with lock:
            for g in gets:
                block = res[g][:ri, :rj]
                if symmetric and i == j:
                    # (i, j) and (j, i) differ by round-off (summation order)
                    block = 0.5 * (block + block.T)
                out[g][i:i + ri, j:j + rj] = block
                if symmetric and j != i:
                    out[g][j:j + rj, i:i + ri] = block.T

    if n_workers == 1 or len(jobs) == 1:
        for k in range(len(jobs)):
            run(k)
    else:
        with ThreadPoolExecutor(n_workers) as pool:
            list(pool.map(run, range(len(jobs))))
    if single:
        return out[gets[0]]
    return Kernels(out.get("nngp"), out.get("ntk"))


@functools.lru_cache(maxsize=64)
def _compiled_pairs(plan, want_ntk):
    """Like ``_compiled`` but for pairs ``(x1[i], x2[i])``: vmapped 1x1 tiles."""
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
    plan, x, _ = _prepare(
        X, None, (architecture, depth, activation, W_std, b_std, parameterization, width),
        input_shape, "X",
    )
    n = x.shape[0]
    per = max(1, int(TILE_ENTRIES / _entries_per_pair(plan)))
    chunk = int(batch_size) if batch_size is not None else min(n, per, 4096)
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
    if single:
        return out[gets[0]]
    return Kernels(out.get("nngp"), out.get("ntk"))


def _prepare(X1, X2, arch_args, input_shape, name1):
    """Validate inputs, build the stack and its plan; ``X2=None`` means ``X1``."""
    stack = build_architecture(*arch_args)
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
    stack, x1, x2 = _flatten_first(stack, x1, x2)
    return make_plan(stack, x1.shape[1:-1], x1.shape[-1]), x1, x2


def _flatten_first(stack, x1, x2):
    """A leading Flatten acts on the raw inputs: flatten them instead.

    Same kernel (the mean over positions of ``x_p . x'_p / C`` is
    ``x . x' / (P C)``), without per-position arrays of shape ``(n1, n2, P)``.
    """
    if stack.layers and isinstance(stack.layers[0], Flatten) and x1.ndim > 2:
        rest = Serial(stack.layers[1:])
        return rest, x1.reshape(len(x1), -1), x2.reshape(len(x2), -1)
    return stack, x1, x2


def _n_workers(devices):
    """Concurrent tile computations: one per device; on CPU one per core."""
    if all(d.platform == "cpu" for d in devices):
        return max(len(devices), os.cpu_count() or 1)
    return len(devices)
