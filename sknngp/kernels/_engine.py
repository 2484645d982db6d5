"""Tiled, multi-device evaluation of NNGP / NTK kernel matrices.

The public entry points and the input preparation; the tiles themselves are
computed by :mod:`sknngp.kernels._tiles`.
"""

from __future__ import annotations

import functools
from collections import namedtuple

import jax
import numpy as np

from ..architecture import Flatten, Serial, build_architecture
from . import _memory
from ._progress import reporting
from ._propagate import finish, initial_state, make_plan, run_step, steps
from ._tiles import (  # noqa: F401  (re-exported for the bank and the tests)
    TILE_ENTRIES,
    _entries_per_pair,
    _n_workers,
    _pad_rows,
    _step,
    _sub_plan,
    choose_tile,
    compute,
    jitted_step,
    pipeline,
    run_tiles,
)
from ._validation import (
    _DTYPES,
    _parse_dtype,
    _parse_get,
    as_images,
    check_finite_kernels,
    resolve_devices,
)

Kernels = namedtuple("Kernels", ["nngp", "ntk"])
Kernels.__doc__ = "NNGP and NTK kernel matrices returned by ``kernel_matrix(get=('nngp', 'ntk'))``."


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
    verbose=0,
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
        Tile side (at most the number of rows). ``None`` picks the largest
        that fits half of the free memory of each GPU / TPU in use (read from
        ``device.memory_stats()``), or on CPUs one whose arrays stay
        cache-sized (``TILE_ENTRIES`` covariance entries per array). A
        computation that would not fit the host's or a device's memory is
        refused before it starts (``MemoryError``, naming a ``batch_size``
        that fits).
    device : None, str or jax.Device, default=None
        ``None`` uses every local device of JAX's default backend; tiles go
        round robin over the devices, one at a time per accelerator.
    verbose : int, default=0
        ``1`` shows a progress bar (tqdm, on stderr) when the computation takes
        longer than a couple of seconds, ``2`` always, ``0`` never.

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
    with reporting(verbose):
        out, _, _ = compute(plan, x1, None if X2 is None else x2, gets, dkey, batch_size,
                            device, what="X1" if X2 is None else "X1, X2")
    if single:
        return out[gets[0]]
    return Kernels(out.get("nngp"), out.get("ntk"))


@functools.lru_cache(maxsize=64)
def _compiled_pairs(plan, want_ntk):
    """Like ``pipeline`` but for pairs ``(x1[i], x2[i])``: vmapped 1x1 tiles."""
    bounds = steps(plan)

    def first(a, b):
        state = initial_state(plan, a[None], b[None], same=True)
        return run_step(plan, bounds[0], state, want_ntk)

    chain = [jax.jit(jax.vmap(first))] + [
        jitted_step(_sub_plan(plan, bd), want_ntk, vmapped=True) for bd in bounds[1:]
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
    verbose=0,
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
    with reporting(verbose):
        out = diagonal(plan, x, gets, dkey, batch_size, device)
    if single:
        return out[gets[0]]
    return Kernels(out.get("nngp"), out.get("ntk"))


def diagonal_rows(plan, n, batch_size, itemsize=8, devices=()):
    """Rows per batch of the diagonal: ``batch_size``, else what fits the
    accelerators' free memory, else a cache-sized batch on CPUs; at most ``n``."""
    if batch_size is not None:
        choose_tile(plan, 1, 1, batch_size)  # validates it
        return min(n, int(batch_size))
    rows = _memory.accelerator_rows(plan, itemsize, devices)
    if rows is None:
        rows = min(max(1, int(TILE_ENTRIES / _entries_per_pair(plan))), 4096)
    return min(n, rows)


def diagonal(plan, x, gets, dkey, batch_size=None, device=None):
    """Self-kernels of prepared inputs: ``{kind: (n,)}``.

    Batches of rows go round robin over the devices, as the matrix's tiles
    do; the memory plan is checked first (:func:`_memory.check_diagonal`).
    """
    n = x.shape[0]
    itemsize = np.dtype(_DTYPES[dkey]).itemsize
    devices = resolve_devices(device)
    chunk = diagonal_rows(plan, n, batch_size, itemsize, devices)
    _memory.check_diagonal(plan, n, len(gets), chunk, itemsize, devices, _n_workers(devices))
    fn = _compiled_pairs(plan, "ntk" in gets)
    with np.errstate(over="ignore"):  # inputs beyond float32: the kernel check says so
        xs = x.astype(_DTYPES[dkey])
    out = {g: np.empty(n) for g in gets}
    starts = list(range(0, n, chunk))

    def run(k):
        i = starts[k]
        r = min(chunk, n - i)
        with jax.enable_x64(dkey == "float64"):
            a = jax.device_put(_pad_rows(xs[i:i + chunk], chunk), devices[k % len(devices)])
            nngp, ntk = fn(a, a)
            res = {"nngp": nngp, "ntk": ntk}
            for g in gets:  # disjoint rows: no lock needed
                out[g][i:i + r] = np.asarray(res[g], dtype=np.float64)[:r]

    run_tiles(run, len(starts), devices, f"kernel diagonal {n}",
              bar=lambda k: min(chunk, n - starts[k]), unit="row")
    check_finite_kernels(out, dkey, "X")
    return out


def _prepare(X1, X2, arch, input_shape, name1, name2="X2"):
    """Validate inputs, build the stack and its plan; ``X2=None`` means ``X1``.

    ``name1``/``name2`` are the arguments' names in the caller's signature.
    """
    stack = build_architecture(**arch)
    x1 = as_images(X1, input_shape, name1)
    x2 = x1 if X2 is None else as_images(X2, input_shape, name2)
    if x1.shape[1:] != x2.shape[1:]:
        raise ValueError(
            f"{name1} and {name2} must have the same sample shape; got {x1.shape[1:]} and "
            f"{x2.shape[1:]} (feature counts {int(np.prod(x1.shape[1:]))} and "
            f"{int(np.prod(x2.shape[1:]))})."
        )
    if x1.ndim == 3:
        raise ValueError(
            f"{name1}: 3-D inputs of shape {x1.shape} are ambiguous: pass (n, H, W, C) "
            "images or 2-D rows with input_shape=(H, W, C)."
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
