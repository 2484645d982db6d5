"""Closed-form Gaussian expectations of the activations (pure JAX).

Each function takes the covariance entry ``k12`` of a pair of pre-activations
and the per-position *reciprocal* normalisers of both sides, broadcastable to
``k12``, and returns ``(E[phi(u) phi(v)], E[phi'(u) phi'(v)])`` for
``(u, v) ~ N(0, [[k11, k12], [k12, k22]])``. Normalisers are computed once per
sample and position (``O(n P)``) so that the ``O(n^2 P^2)`` inner loop only
multiplies, takes square roots and evaluates one branch-free arc-sine.

References: Cho & Saul (2009) for the arc-cosine kernel, Williams (1997) for erf.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

# asin(s) = s + s z P(z), z = s^2, 0 <= s <= 1/2 (P: degree-12 Chebyshev fit;
# produced by tools/fit_asin.py, max relative error 2.2e-16 in float64).
_ASIN_P = (
    0.028757851367421566,
    -0.014851887071247204,
    0.01740087944269402,
    0.005457506718640358,
    0.01032281435018578,
    0.011479177415184906,
    0.013971212973552933,
    0.017352392720869973,
    0.02237217294214989,
    0.030381944138531247,
    0.04464285714635543,
    0.07499999999998433,
    0.16666666666666669,
)


def _asin_reduced(a):
    """For ``0 <= a <= 1`` return ``(r, big)`` with ``asin(a) = r`` if not big,
    else ``asin(a) = pi/2 - 2 r`` (``r = asin(sqrt((1 - a) / 2))``)."""
    big = a > 0.5
    z = jnp.where(big, 0.5 * (1.0 - a), a * a)
    s = jnp.where(big, jnp.sqrt(z), a)
    p = _ASIN_P[0]
    for c in _ASIN_P[1:]:
        p = p * z + c
    return s + s * z * p, big


# Derivatives (for hyperparameter gradients, :mod:`sknngp.kernels._autodiff`).
# At identical inputs the correlation is clamped to exactly 1 and the square
# roots below meet 0, where the chain rule would multiply a zero tangent by an
# infinite derivative (NaN). Along every such path the argument stays at its
# end point, so these functions define the derivative there as 0 and use the
# closed forms elsewhere. Values (and the compiled forward pass) are unchanged.


@jax.custom_jvp
def sqrt0(x):
    """``sqrt(x)`` for ``x >= 0`` whose derivative at ``x == 0`` is taken as 0."""
    return jnp.sqrt(x)


@sqrt0.defjvp
def _sqrt0_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    root = jnp.sqrt(x)
    return root, dx * jnp.where(x > 0, 0.5 / jnp.where(x > 0, root, 1.0), 0.0)


def _unit_slope(x):
    """``1 / sqrt(1 - x^2)`` inside (-1, 1), 0 at and beyond the end points."""
    inside = jnp.abs(x) < 1.0
    return jnp.where(inside, 1.0 / jnp.sqrt(jnp.where(inside, 1.0 - x * x, 1.0)), 0.0)


@jax.custom_jvp
def arccos(x):
    """Branch-free arccos with float64 accuracy; ``x`` is clipped to [-1, 1]."""
    x = jnp.clip(x, -1.0, 1.0)
    r, big = _asin_reduced(jnp.abs(x))
    acos_abs = jnp.where(big, 2.0 * r, 0.5 * math.pi - r)
    return jnp.where(x < 0, math.pi - acos_abs, acos_abs)


@arccos.defjvp
def _arccos_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return arccos(x), -dx * _unit_slope(x)


@jax.custom_jvp
def arcsin(x):
    """Branch-free arcsin with float64 accuracy; ``x`` is clipped to [-1, 1]."""
    x = jnp.clip(x, -1.0, 1.0)
    r, big = _asin_reduced(jnp.abs(x))
    asin_abs = jnp.where(big, 0.5 * math.pi - 2.0 * r, r)
    return jnp.where(x < 0, -asin_abs, asin_abs)


@arcsin.defjvp
def _arcsin_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return arcsin(x), dx * _unit_slope(x)


def abrelu_normaliser(var, a, b):
    """Per-position ``(1 / sqrt(var), sqrt(var))``; ``(0, 0)`` where ``var == 0``."""
    del a, b
    n = sqrt0(jnp.maximum(var, 0.0))
    safe = jnp.where(n > 0, n, 1.0)
    return jnp.where(n > 0, 1.0 / safe, 0.0), n


def abrelu_pair(k12, norm1, norm2, a, b):
    """E[phi phi] and E[phi' phi'] for phi(x) = a x (x<0), b x (x>0).

    With ``cos(theta) = k12 / sqrt(k11 k22)`` and ``T = (a^2+b^2) pi - (a-b)^2 theta``:
    ``E[phi phi] = ((a-b)^2 sqrt(k11 k22 - k12^2) + T k12) / (2 pi)`` and
    ``E[phi' phi'] = T / (2 pi)`` (Cho & Saul 2009, generalised to two slopes).
    """
    (r1, n1), (r2, n2) = norm1, norm2
    cos = k12 * (r1 * r2)
    # Identical inputs must give cos == 1 exactly: r1 * r2 carries a few ulps of
    # rounding, and arccos(1 - eps) ~ sqrt(2 eps) would turn them into ~1e-8.
    eps = jnp.finfo(cos.dtype).eps
    cos = jnp.where(cos > 1.0 - 4 * eps, 1.0, cos)
    theta = arccos(cos)
    t = (a * a + b * b) * math.pi - (a - b) ** 2 * theta
    inv_2pi = 1.0 / (2.0 * math.pi)
    kdot = t * inv_2pi
    if a == b:
        return kdot * k12, kdot
    sin = sqrt0(jnp.maximum(1.0 - cos * cos, 0.0))
    s_term = sin * (n1 * n2)  # sqrt(k11 k22 - k12^2)
    return ((a - b) ** 2 * s_term + t * k12) * inv_2pi, kdot


def erf_normaliser(var, a, b):
    """Per-position ``(1 / sqrt(1 + 2 b^2 var),)``."""
    del a
    return (1.0 / jnp.sqrt(1.0 + 2.0 * b * b * var),)


def erf_pair(k12, norm1, norm2, a, b):
    """E[phi phi] and E[phi' phi'] for phi(x) = a erf(b x) (Williams 1997).

    ``E[phi phi] = a^2 (2/pi) asin(2 b^2 k12 / sqrt((1+2b^2 k11)(1+2b^2 k22)))``,
    ``E[phi' phi'] = a^2 b^2 (4/pi) / sqrt((1+2b^2 k11)(1+2b^2 k22) - 4 b^4 k12^2)``.
    """
    rr = norm1[0] * norm2[0]
    x = 2.0 * b * b * k12 * rr
    one_minus = jnp.maximum(1.0 - x * x, jnp.finfo(rr.dtype).tiny)
    kk = a * a * (2.0 / math.pi) * arcsin(x)
    kdot = a * a * b * b * (4.0 / math.pi) * rr / jnp.sqrt(one_minus)
    return kk, kdot
