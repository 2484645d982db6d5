"""Layer-by-layer propagation of NNGP and NTK kernels (pure JAX).

State of the computation between two batches ``x1`` (n1 samples) and ``x2`` (n2):

``nngp``, ``ntk``
    ``(n1, n2, *S)`` when only same-position covariances are needed
    ("diagonal", enough before ``Flatten``), or ``(n1, n2, *S, *S)`` with the full
    position x position covariance ("full", needed before pooling).
``var1``, ``var2``
    The covariance of each sample with itself, ``(n, *S)`` or ``(n, *S, *S)``,
    needed to normalise the nonlinearities.

The maps follow neural-tangents' ``stax`` conventions (Novak et al. 2020,
arXiv:1912.02803): a Dense / Conv layer sends
``K -> W_std^2 K + b_std^2`` and ``Theta -> W_std^2 Theta + K_new`` (NTK
parameterization) or ``Theta -> fan_in K + W_std^2 Theta + 1`` (standard
parameterization, Sohl-Dickstein et al. 2020, arXiv:2001.07301); a nonlinearity
sends ``K -> E[phi phi]`` and ``Theta -> E[phi' phi'] Theta``.

Each layer type registers its map in :data:`KERNEL_MAPS` (exact-type lookup:
an unregistered type, subclasses included, raises).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Tuple

import jax
import jax.numpy as jnp

from ..architecture import (
    ABRelu,
    AvgPool,
    Conv,
    Dense,
    Erf,
    Flatten,
    GlobalAvgPool,
    LayerShape,
    Registry,
    infer_shapes,
    pad_lo_hi,
    prod,
)
from . import _nonlinear

#: layer type -> ``fn(layer, state, shape, full, want_ntk) -> state``
KERNEL_MAPS = Registry("kernel map")

_HIGHEST = jax.lax.Precision.HIGHEST


@dataclass(frozen=True)
class Plan:
    """Static facts about a stack applied to inputs of a given shape."""

    layers: tuple
    full_inputs: Tuple[bool, ...]  # does layer i need full spatial covariance?
    shapes: Tuple[LayerShape, ...]

    @property
    def spatial_in(self):
        return tuple(s.spatial_in for s in self.shapes)

    def __hash__(self):
        # plans key the bank's stores and the compiled steps: hash a long stack
        # once, not on every lookup (not pickled: string hashes vary by process)
        h = self.__dict__.get("_hash")
        if h is None:
            h = hash((self.layers, self.full_inputs, self.shapes))
            object.__setattr__(self, "_hash", h)
        return h

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_hash", None)
        return state


def make_plan(stack, spatial, channels):
    """Check a stack against an input shape and record what each layer needs."""
    shapes = infer_shapes(stack, tuple(spatial) + (channels,))
    layers = stack.layers
    for layer in layers:
        KERNEL_MAPS.lookup(layer)  # an unregistered layer fails before any work
    full = [False] * len(layers)
    need = False
    for i in range(len(layers) - 1, -1, -1):
        need = layers[i].needs_full_input(need)
        full[i] = need
    # A full covariance stays full until a layer removes the spatial axes
    # (e.g. AvgPool -> Flatten: Flatten reads the diagonal of what it is given).
    for i in range(1, len(layers)):
        if full[i - 1] and shapes[i - 1].spatial_out:
            full[i] = True
    for layer, shape in zip(layers, shapes):
        if layer.affine and layer.parameterization == "standard" and shape.channels_in is None:
            raise ValueError(
                "the standard-parameterization NTK depends on the hidden width: "
                "pass width=<number of hidden units> (neural-tangents' out_dim)."
            )
    return Plan(tuple(layers), tuple(full), shapes)


# --------------------------------------------------------------------------
# Input kernel


def input_kernel(x1, x2, full, same=False):
    """Covariances of the raw inputs, ``x . x' / C`` per position (pair).

    ``same=True`` (a diagonal tile of a symmetric matrix, ``x2 is x1``): the
    self-covariances are read off the diagonal of the cross-covariance, so
    ``nngp[i, i] == var1[i]`` bit for bit and identical inputs have correlation
    exactly 1 (arccos is ill-conditioned there). Otherwise they come from a
    cheap separate reduction.
    """
    n1, n2, c = x1.shape[0], x2.shape[0], x1.shape[-1]
    spatial = x1.shape[1:-1]
    p = prod(spatial)
    f1, f2 = x1.reshape(n1, p, c), x2.reshape(n2, p, c)
    if full and spatial:
        nngp = jnp.einsum("ipc,jqc->ijpq", f1, f2, precision=_HIGHEST) / c
        if same:
            idx = jnp.arange(n1)
            var1 = var2 = nngp[idx, idx]
        else:
            var1, var2 = (
                jnp.einsum("ipc,iqc->ipq", f, f, precision=_HIGHEST) / c for f in (f1, f2)
            )
        return (
            nngp.reshape((n1, n2) + spatial * 2),
            var1.reshape((n1,) + spatial * 2),
            var2.reshape((n2,) + spatial * 2),
        )
    nngp = jnp.einsum("ipc,jpc->ijp", f1, f2, precision=_HIGHEST) / c
    if same:
        var1 = var2 = jnp.diagonal(nngp, axis1=0, axis2=1).T
    else:
        var1, var2 = (jnp.sum(f * f, axis=-1) / c for f in (f1, f2))
    return (
        nngp.reshape((n1, n2) + spatial),
        var1.reshape((n1,) + spatial),
        var2.reshape((n2,) + spatial),
    )


# --------------------------------------------------------------------------
# Spatial operators on arrays with ``b`` leading batch axes


def _window_sum(arr, axes, size, stride, lo, hi, out):
    """Sum ``size`` strided shifts along ``axes`` (the same shift on every axis)."""
    if lo or hi:
        pads = [(0, 0)] * arr.ndim
        for ax in axes:
            pads[ax] = (lo, hi)
        arr = jnp.pad(arr, pads)
    total = None
    for k in range(size):
        idx = [slice(None)] * arr.ndim
        for ax in axes:
            idx[ax] = slice(k, k + stride * (out - 1) + 1, stride)
        term = arr[tuple(idx)]
        total = term if total is None else total + term
    return total


def conv_average(arr, layer, spatial, full, b):
    """``(1/F) sum_f K[s p + f, s q + f]`` (full) or ``(1/F) sum_f K[s p + f]``.

    Same-position covariances: all spatial axes are padded once and the ``F``
    shifted reads summed in one fused pass. Full covariances: one spatial axis
    pair at a time (measured faster on the 6-D arrays of CNN-GAP).
    """
    ns = len(spatial)
    if full:
        for i, (n, f, s) in enumerate(zip(spatial, layer.filter_shape, layer.strides)):
            lo, hi, out = pad_lo_hi(n, f, s, layer.padding)
            arr = _window_sum(arr, (b + i, b + ns + i), f, s, lo, hi, out)
        return arr / prod(layer.filter_shape)
    geo = [pad_lo_hi(n, f, s, layer.padding) for n, f, s in
           zip(spatial, layer.filter_shape, layer.strides)]
    pads = [(0, 0)] * arr.ndim
    for i, (lo, hi, _) in enumerate(geo):
        pads[b + i] = (lo, hi)
    if any(p != (0, 0) for p in pads):
        arr = jnp.pad(arr, pads)
    total = None
    for offsets in itertools.product(*(range(f) for f in layer.filter_shape)):
        idx = [slice(None)] * arr.ndim
        for i, (k, s, (_, _, out)) in enumerate(zip(offsets, layer.strides, geo)):
            idx[b + i] = slice(k, k + s * (out - 1) + 1, s)
        term = arr[tuple(idx)]
        total = term if total is None else total + term
    return total / prod(layer.filter_shape)


def avg_pool(arr, layer, spatial, b):
    """Average pooling of a full covariance: independent windows for p and q."""
    ns = len(spatial)
    for i, (n, w, s) in enumerate(zip(spatial, layer.window_shape, layer.strides)):
        lo, hi, out = pad_lo_hi(n, w, s, layer.padding)
        for ax in (b + i, b + ns + i):
            arr = _window_sum(arr, (ax,), w, s, lo, hi, out)
    return arr / prod(layer.window_shape) ** 2


def spatial_diagonal(arr, spatial, b):
    """Same-position entries ``K[..., p, p]`` of a full covariance."""
    p = prod(spatial)
    flat = arr.reshape(arr.shape[:b] + (p, p))
    return jnp.diagonal(flat, axis1=b, axis2=b + 1).reshape(arr.shape[:b] + spatial)


# --------------------------------------------------------------------------
# Layer maps


def register_activation(layer_type, normaliser, pair):
    """Register the kernel map of an elementwise nonlinearity.

    ``normaliser(var, a, b)`` returns per-position factors of one side and
    ``pair(k12, norm1, norm2, a, b)`` returns ``(E[phi phi], E[phi' phi'])``
    (see :mod:`sknngp.kernels._nonlinear`); ``a, b`` are the layer's fields.
    """

    @KERNEL_MAPS.register(layer_type)
    def _map(layer, state, shape, full, want_ntk):
        return _nonlinearity(state, (normaliser, pair, (layer.a, layer.b)),
                             shape.spatial_in, full, want_ntk)

    return _map


def _nonlinearity(state, activation, spatial, full, want_ntk):
    nngp, ntk, var1, var2 = state
    normaliser, pair, ab = activation
    ns = len(spatial)
    d1 = spatial_diagonal(var1, spatial, 1) if full else var1
    d2 = spatial_diagonal(var2, spatial, 1) if full else var2
    norm1 = normaliser(d1, *ab)
    norm2 = normaliser(d2, *ab)
    ones = (1,) * ns

    def shaped(norm, shape):
        return tuple(v.reshape(shape) for v in norm)

    n1, n2 = d1.shape[0], d2.shape[0]
    if full:
        b1 = shaped(norm1, (n1, 1) + spatial + ones)
        b2 = shaped(norm2, (1, n2) + ones + spatial)
        s1 = [shaped(nm, (n,) + spatial + ones) for nm, n in ((norm1, n1), (norm2, n2))]
        s2 = [shaped(nm, (n,) + ones + spatial) for nm, n in ((norm1, n1), (norm2, n2))]
    else:
        b1 = shaped(norm1, (n1, 1) + spatial)
        b2 = shaped(norm2, (1, n2) + spatial)
        s1 = s2 = [norm1, norm2]
    new_nngp, kdot = pair(nngp, b1, b2, *ab)
    new_ntk = None if ntk is None else kdot * ntk
    new_var1 = pair(var1, s1[0], s2[0], *ab)[0]
    new_var2 = pair(var2, s1[1], s2[1], *ab)[0]
    return new_nngp, new_ntk, new_var1, new_var2


register_activation(ABRelu, _nonlinear.abrelu_normaliser, _nonlinear.abrelu_pair)
register_activation(Erf, _nonlinear.erf_normaliser, _nonlinear.erf_pair)


@KERNEL_MAPS.register(Dense, Conv)
def _affine_layer(layer, state, shape, full, want_ntk):
    nngp, ntk, var1, var2 = state
    w2, b2 = layer.W_std**2, layer.b_std**2
    if isinstance(layer, Conv):
        def lin(arr, b):
            return conv_average(arr, layer, shape.spatial_in, full, b)
    else:
        def lin(arr, b):
            return arr
    base = lin(nngp, 2)
    new_nngp = w2 * base + b2
    new_ntk = None
    if want_ntk:
        prev = 0.0 if ntk is None else w2 * lin(ntk, 2)
        if layer.parameterization == "ntk":
            new_ntk = new_nngp + prev
        else:
            new_ntk = shape.fan_in * base + prev + 1.0
    return new_nngp, new_ntk, w2 * lin(var1, 1) + b2, w2 * lin(var2, 1) + b2


@KERNEL_MAPS.register(Flatten)
def _flatten(layer, state, shape, full, want_ntk):
    spatial = shape.spatial_in
    ns = len(spatial)
    if not ns:
        return state
    out = []
    for arr, b in zip(state, (2, 2, 1, 1)):
        if arr is None:
            out.append(None)
            continue
        if full:
            arr = spatial_diagonal(arr, spatial, b)
        out.append(jnp.mean(arr, axis=tuple(range(b, b + ns))))
    return tuple(out)


@KERNEL_MAPS.register(GlobalAvgPool)
def _global_avg_pool(layer, state, shape, full, want_ntk):
    # make_plan gives pooling layers the full covariance whenever there are
    # spatial axes; without them the mean is over nothing.
    return tuple(
        None if arr is None else jnp.mean(arr, axis=tuple(range(b, arr.ndim)))
        for arr, b in zip(state, (2, 2, 1, 1))
    )


@KERNEL_MAPS.register(AvgPool)
def _avg_pool(layer, state, shape, full, want_ntk):
    return tuple(
        None if arr is None else avg_pool(arr, layer, shape.spatial_in, b)
        for arr, b in zip(state, (2, 2, 1, 1))
    )


def steps(plan):
    """Split the stack into steps that each end with a nonlinearity.

    Each step is compiled on its own, so its output is materialised. Compiled
    as one program, XLA:CPU fuses each activation (arccos, square roots) into
    every shifted read of the next convolution and recomputes it per filter tap,
    a cost that compounds with depth (measured: 4 layers 12x slower than 1).
    """
    bounds, start = [], 0
    for i, layer in enumerate(plan.layers):
        if layer.nonlinear:
            bounds.append((start, i + 1))
            start = i + 1
    if start < len(plan.layers):
        bounds.append((start, len(plan.layers)))
    return tuple(bounds)


def run_step(plan, bounds, state, want_ntk):
    """Apply layers ``plan.layers[lo:hi]`` to a kernel state."""
    lo, hi = bounds
    for i in range(lo, hi):
        shape = plan.shapes[i]
        full = plan.full_inputs[i] and bool(shape.spatial_in)
        state = KERNEL_MAPS(plan.layers[i], state, shape, full, want_ntk)
    return state


def initial_state(plan, x1, x2, same=False):
    full0 = plan.full_inputs[0] and bool(plan.spatial_in[0])
    nngp, var1, var2 = input_kernel(x1, x2, full0, same)
    return nngp, None, var1, var2


def finish(state, want_ntk):
    nngp, ntk = state[0], state[1]
    if want_ntk and ntk is None:
        ntk = jnp.zeros_like(nngp)
    return nngp, ntk
