"""Kernels with their derivatives in ``W_std`` and ``b_std`` (pure JAX).

The tiled engine (:mod:`sknngp.kernels._tiles`) compiles each step with the
layer specs as static configuration, so ``W_std`` and ``b_std`` are constants
there. Here every ``Dense`` / ``Conv`` of a plan is given *traced* values
instead (one shared ``W_std`` and ``b_std``, as in the named architectures)
and the registered kernel maps run unchanged on them. Forward-mode autodiff
pushes one tangent per requested hyperparameter through each step (the JVPs
are batched with ``vmap``, the primal is computed once), in log space:
``d K / d log h = h * d K / d h``. Without tangents the same chain gives
values alone, compiled once for every value of ``W_std`` and ``b_std``
(the engine compiles once per value).

The matrix is cut into tiles like the engine's (zero-padded to one compiled
shape; a symmetric block computes the tiles on and above the diagonal), and
each step is compiled on its own for the same reason as there (see
:func:`sknngp.kernels._propagate.steps`).
"""

from __future__ import annotations

import copy
import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np

from ._propagate import finish, initial_state, run_step, steps
from ._tiles import _pad_rows, choose_tile, run_tiles, tile_jobs
from ._validation import _DTYPES, resolve_devices

#: the hyperparameters a plan can be differentiated in, in this order
HYPERPARAMETERS = ("W_std", "b_std")


def _with_values(plan, hyper):
    """``plan`` whose Dense / Conv layers carry ``W_std, b_std = hyper``.

    The specs are frozen (and validate concrete numbers), so the traced
    values are set on shallow copies, which only the kernel maps see.
    """
    layers = []
    for layer in plan.layers:
        if layer.affine:
            layer = copy.copy(layer)
            object.__setattr__(layer, "W_std", hyper[0])
            object.__setattr__(layer, "b_std", hyper[1])
        layers.append(layer)
    return dataclasses.replace(plan, layers=tuple(layers))


def _neutral(plan):
    """``plan`` with ``W_std=1, b_std=0`` in every Dense / Conv: the key of the
    compiled chain, which serves every value (they are arguments)."""
    layers = tuple(dataclasses.replace(layer, W_std=1.0, b_std=0.0) if layer.affine
                   else layer for layer in plan.layers)
    return dataclasses.replace(plan, layers=layers)


def _push(fn, hyper, dhyper, primals=(), tangents=()):
    """``fn(hyper, *primals)`` and its JVPs along each row of ``dhyper``
    (with the matching leading slice of ``tangents``): ``(out, d_out)`` where
    each leaf of ``d_out`` has a leading axis of size ``len(dhyper)``; no
    rows: ``d_out`` is None (values only)."""
    if dhyper.shape[0] == 0:
        return fn(hyper, *primals), None

    def one(dh, tans):
        return jax.jvp(fn, (hyper, *primals), (dh, *tans))

    return jax.vmap(one, out_axes=(None, 0))(dhyper, tangents)


class _Chain:
    """One jitted function per step, each taking ``(hyper, dhyper, ...)``."""

    def __init__(self, plan, want_ntk):
        self.want_ntk = want_ntk
        bounds = steps(plan)

        def first(hyper, dhyper, x1, x2):
            same = x2 is None
            start = initial_state(plan, x1, x1 if same else x2, same)
            return _push(
                lambda h: run_step(_with_values(plan, h), bounds[0], start, want_ntk),
                hyper, dhyper)

        def later(bd, hyper, dhyper, state, dstate):
            return _push(
                lambda h, s: run_step(_with_values(plan, h), bd, s, want_ntk),
                hyper, dhyper, (state,), (dstate,))

        self.first = jax.jit(first)
        self.rest = [jax.jit(functools.partial(later, bd)) for bd in bounds[1:]]

    def run(self, hyper, dhyper, x1, x2):
        state, dstate = self.first(hyper, dhyper, x1, x2)
        for step in self.rest:
            state, dstate = step(hyper, dhyper, state, dstate)
        kernels = finish(state, self.want_ntk)
        if dstate is None:
            return kernels, tuple(None if k is None else jnp.zeros((0,) + k.shape, k.dtype)
                                  for k in kernels)
        if self.want_ntk and dstate[1] is None:
            dstate = (dstate[0], jnp.zeros_like(dstate[0])) + tuple(dstate[2:])
        return kernels, (dstate[0], dstate[1])


@functools.lru_cache(maxsize=32)
def _chain(plan, want_ntk):
    return _Chain(plan, want_ntk)


def kernel_and_gradient(plan, x1, x2, kinds, W_std, b_std, wrt, dkey,
                        batch_size=None, device=None):
    """Kernels of ``plan`` and their derivatives in ``log(h)`` for ``h`` in ``wrt``.

    Parameters
    ----------
    plan : Plan
        A canonical plan (see :func:`sknngp.kernels._engine.plan_for`); its
        Dense / Conv layers' own ``W_std`` and ``b_std`` are replaced.
    x1, x2 : ndarray
        Prepared inputs; ``x2=None`` is the symmetric block of ``x1``.
    kinds : tuple of {"nngp", "ntk"}
    W_std, b_std : float
        The values at which to evaluate, shared by every Dense / Conv layer.
    wrt : tuple of str
        Hyperparameters (from :data:`HYPERPARAMETERS`) to differentiate in;
        ``()`` computes values only (with ``W_std`` and ``b_std`` still
        arguments of the compiled program, not constants).
    dkey : {"float64", "float32"}
    batch_size, device
        Tile size and devices, as for the engine.

    Returns
    -------
    out : dict {kind: (K, dK)}
        ``K`` of shape (n1, n2) and ``dK`` of shape (n1, n2, len(wrt)) with
        ``dK[..., k] = d K / d log(wrt[k])``.
    """
    if any(name not in HYPERPARAMETERS for name in wrt):
        raise ValueError(f"wrt must name some of {list(HYPERPARAMETERS)}; got {list(wrt)}.")
    symmetric = x2 is None
    x2 = x1 if symmetric else x2
    n1, n2, m = len(x1), len(x2), len(wrt)
    np_dtype = _DTYPES[dkey]
    tile = choose_tile(plan, n1, n2, batch_size)
    value = {"W_std": float(W_std), "b_std": float(b_std)}
    hyper = np.array([value["W_std"], value["b_std"]], dtype=np_dtype)
    dhyper = np.zeros((m, 2), dtype=np_dtype)
    for k, name in enumerate(wrt):  # d h / d log h = h
        dhyper[k, HYPERPARAMETERS.index(name)] = value[name]
    chain = _chain(_neutral(plan), "ntk" in kinds)
    devices = resolve_devices(device)
    xs1 = x1.astype(np_dtype)
    xs2 = xs1 if symmetric else x2.astype(np_dtype)
    # tangents first: the mirrored and symmetrized blocks are 2-D transposes
    out = {kind: (np.empty((n1, n2)), np.empty((m, n1, n2))) for kind in kinds}
    jobs = tile_jobs(n1, n2, tile, symmetric)

    def run(job):
        i, j = jobs[job]
        dev = devices[job % len(devices)]
        ri, rj = min(tile, n1 - i), min(tile, n2 - j)
        diagonal = symmetric and i == j
        with jax.enable_x64(dkey == "float64"):
            put = functools.partial(jax.device_put, device=dev)
            a = put(_pad_rows(xs1[i:i + tile], tile))
            b = None if diagonal else put(_pad_rows(xs2[j:j + tile], tile))
            kernels, tangents = chain.run(put(hyper), put(dhyper), a, b)
            blocks = {kind: (np.asarray(kernels[k], dtype=np.float64)[:ri, :rj],
                             np.asarray(tangents[k], dtype=np.float64)[:, :ri, :rj])
                      for k, kind in enumerate(("nngp", "ntk")) if kind in kinds}
        for kind, (block, dblock) in blocks.items():
            K, dK = out[kind]
            if diagonal:  # (i, j) and (j, i) differ by round-off (summation order)
                block = 0.5 * (block + block.T)
                dblock = 0.5 * (dblock + dblock.transpose(0, 2, 1))
            K[i:i + ri, j:j + rj], dK[:, i:i + ri, j:j + rj] = block, dblock
            if symmetric and not diagonal:
                K[j:j + rj, i:i + ri] = block.T
                dK[:, j:j + rj, i:i + ri] = dblock.transpose(0, 2, 1)

    run_tiles(run, len(jobs), devices, f"kernel gradient {n1}x{n2}")  # disjoint blocks
    return {kind: (K, np.moveaxis(dK, 0, -1)) for kind, (K, dK) in out.items()}
