"""Monte Carlo checks of the kernels against random finite networks.

Independent of neural-tangents: the finite networks below are small plain-JAX
implementations of the named architectures with the package's layer semantics
(the kernel recursions of the user guide):

- NTK parameterization: ``W = W_std / sqrt(fan_in) * omega``, bias ``b_std * beta``,
  with ``omega, beta ~ N(0, 1)`` the trained parameters;
- standard parameterization: ``W ~ N(0, W_std**2 / fan_in)`` and ``b ~ N(0, b_std**2)``
  trained directly (the NTK then grows with the hidden width, which
  ``kernel_matrix(..., width=n)`` must be told);
- ``fan_in`` = input channels x filter size for a Conv, features for a Dense;
  Conv 3x3 'SAME' with zero padding; ``cnn-vec`` flattens NHWC before the
  readout, ``cnn-gap`` averages over positions; the readout has one output.

What is checked, and why the tolerances are what they are
---------------------------------------------------------
(a) NNGP: ``K(x, x') = E[f(x) f(x')]`` over random initialisations of the
    scalar output ``f`` (its mean is 0). The estimate is the sample mean of
    ``f(x) f(x')`` over ``M`` independent networks; its standard error is the
    sample standard deviation of ``f(x) f(x')`` over ``sqrt(M)``.
(b) NTK: ``Theta(x, x') = E[J(x) . J(x')]`` with ``J`` the gradient of ``f``
    with respect to all parameters (``jax.jacobian``), averaged over ``S``
    initialisations of wide networks (width ~1000); standard error = sample
    standard deviation over ``S`` inits / ``sqrt(S)``. The same networks also
    give the NNGP averaged over the readout layer analytically,
    ``E[f f' | hidden] = W_std**2 g . g' / fan_in + b_std**2`` (g = readout input),
    a low-variance NNGP estimate for deeper stacks.
(c) both for the standard parameterization.

Each entry must satisfy ``|estimate - kernel| <= 5 SE + bias``:

- ``5 SE``: for an unbiased estimate a 5-sigma deviation has probability 6e-7
  for a normal statistic (``M`` in the tens of thousands), 8e-5 for the
  t-statistic with ``S - 1 = 19`` degrees of freedom of the NTK checks (S = 20
  inits; 5e-5 with S = 24 in the slow ones); the seeds are fixed, so the
  tests are deterministic. Typical sizes: SE ~ 0.5% of max|K| for the output
  covariance (48,000-80,000 draws), ~1.5% for the NTK of fc depth 2 at width
  1024 (one init's NTK fluctuates by ~7% there, measured) and ~0.5% for
  one-hidden-layer CNNs.
- ``bias``: networks with one hidden layer are unbiased at any width (the
  readout weights are independent of the Gaussian first-layer
  pre-activations, so both expectations are exactly the infinite-width
  kernels), so the allowance is 0 there. Deeper networks have an O(1/width)
  finite-width bias: the hidden covariance seen by layer l+1 fluctuates by
  O(1/sqrt(width)) and the kernel maps are smooth, so the mean shifts by
  O(1/width). Measured with 20,000-40,000 networks at widths 8 and 32 (fc
  depth 2-3, cnn-gap depth 2, relu and erf, both parameterizations):
  ``width * |bias| / max|K|`` <= 0.3 per extra hidden layer for the NNGP
  (0.63 for fc depth 3 relu) and <= 0.16 for the NTK. The allowance is
  ``BIAS_PER_LAYER * (depth - 1) / width * max|K|`` with BIAS_PER_LAYER = 1,
  about three times the largest measured value.

Run time: the default (fast) part takes ~30-40 s on two CPU cores; the
``slow`` part (deeper nets, depth-2 CNN NTKs at width 1024, more draws) runs
with ``make test-slow``. float32 is enough for the networks (Monte Carlo
errors are ~1e-2); x64 is not enabled.
"""

from __future__ import annotations

import math
import zlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.scipy.special import erf as _erf

import sknngp

HIGHEST = jax.lax.Precision.HIGHEST
N_SE = 5.0
BIAS_PER_LAYER = 1.0

_RNG = np.random.default_rng(20240611)
X_FC = _RNG.standard_normal((4, 6)).astype(np.float32)  # 4 points in R^6
X_IMG = _RNG.standard_normal((3, 4, 4, 1)).astype(np.float32)  # 3 images 4x4x1

# Hyper-parameters per activation (erf needs a larger W_std to be non-linear;
# b_std well above 0 so that a missing bias term would show).
HYPER = {"relu": dict(W_std=1.4, b_std=0.5), "erf": dict(W_std=1.8, b_std=0.4)}


# ---------------------------------------------------------------------------
# Finite networks in plain JAX


def _phi(activation):
    if activation == "relu":
        return lambda x: jnp.maximum(x, 0.0)
    return _erf


def layer_shapes(arch, depth, width, input_shape):
    """``[(kind, weight_shape, fan_in)]`` for the hidden layers and the readout."""
    shapes = []
    if arch == "fc":
        d = int(np.prod(input_shape))
        for _ in range(depth):
            shapes.append(("dense", (d, width), d))
            d = width
        shapes.append(("dense", (d, 1), d))
        return shapes
    h, w, c = input_shape
    for _ in range(depth):
        shapes.append(("conv", (3, 3, c, width), 9 * c))
        c = width
    d = h * w * c if arch == "cnn-vec" else c
    shapes.append(("dense", (d, 1), d))
    return shapes


class Net:
    """A finite network of a named architecture; ``params`` are the trained variables."""

    def __init__(self, arch, depth, activation, W_std, b_std, parameterization, width,
                 input_shape):
        self.arch, self.depth, self.activation = arch, depth, activation
        self.W_std, self.b_std, self.par = W_std, b_std, parameterization
        self.width = width
        self.shapes = layer_shapes(arch, depth, width, input_shape)

    def init(self, rng, batch=()):
        """Parameters of one network, or of ``batch`` networks stacked on axis 0.

        Drawn with NumPy (``rng`` a ``numpy.random.Generator``): fast, and no
        per-shape compilation of JAX's random-number kernels.
        """
        params = []
        for _, wshape, fan_in in self.shapes:
            omega = rng.standard_normal(batch + wshape, dtype=np.float32)
            beta = rng.standard_normal(batch + (wshape[-1],), dtype=np.float32)
            if self.par == "ntk":
                params.append((omega, beta))
            else:
                params.append((np.float32(self.W_std / math.sqrt(fan_in)) * omega,
                               np.float32(self.b_std) * beta))
        return params

    def _affine(self, layer, p, x):
        kind, _, fan_in = layer
        w, b = p
        if self.par == "ntk":
            w, b = self.W_std / math.sqrt(fan_in) * w, self.b_std * b
        if kind == "conv":
            out = jax.lax.conv_general_dilated(
                x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"),
                precision=HIGHEST)
        else:
            out = jnp.dot(x, w, precision=HIGHEST)
        return out + b

    def features(self, params, x):
        """The input of the readout layer, ``(n, fan_in_readout)``."""
        phi = _phi(self.activation)
        if self.arch == "fc":
            x = x.reshape(x.shape[0], -1)
        for layer, p in zip(self.shapes[:-1], params[:-1]):
            x = phi(self._affine(layer, p, x))
        if self.arch == "cnn-vec":
            x = x.reshape(x.shape[0], -1)
        elif self.arch == "cnn-gap":
            x = jnp.mean(x, axis=(1, 2))
        return x

    def apply(self, params, x):
        """The scalar output ``f(x)``, shape ``(n,)``."""
        return self._affine(self.shapes[-1], params[-1], self.features(params, x))[:, 0]


def sample_outputs(net, x, n_draws, seed, chunk=4000):
    """``f`` of ``n_draws`` independently initialised networks: ``(n_draws, n)``."""
    rng = np.random.default_rng(seed)
    xj = jnp.asarray(x)
    draw = jax.jit(jax.vmap(net.apply, in_axes=(0, None)))
    return np.concatenate([
        np.asarray(draw(net.init(rng, batch=(min(chunk, n_draws - i),)), xj),
                   dtype=np.float64)
        for i in range(0, n_draws, chunk)
    ])


def empirical_kernels(net, x, n_inits, seed):
    """Per init: the readout-averaged NNGP and the empirical NTK ``J J^T``."""
    rng = np.random.default_rng(seed)
    xj = jnp.asarray(x)
    n = x.shape[0]

    @jax.jit
    def one(params):
        g = net.features(params, xj)
        nngp = net.W_std**2 * jnp.dot(g, g.T, precision=HIGHEST) / g.shape[1] + net.b_std**2
        jac = jax.jacobian(net.apply)(params, xj)
        ntk = sum(
            jnp.dot(j.reshape(n, -1), j.reshape(n, -1).T, precision=HIGHEST)
            for j in jax.tree_util.tree_leaves(jac)
        )
        return nngp, ntk

    out = [one(net.init(rng)) for _ in range(n_inits)]
    return (np.stack([np.asarray(o[0], np.float64) for o in out]),
            np.stack([np.asarray(o[1], np.float64) for o in out]))


# ---------------------------------------------------------------------------
# Helpers


def analytic(net, x, get):
    return np.asarray(sknngp.kernel_matrix(
        np.asarray(x, np.float64), get=get, architecture=net.arch, depth=net.depth,
        activation=net.activation, W_std=net.W_std, b_std=net.b_std,
        parameterization=net.par, width=net.width, dtype="float64"))


def mean_and_se(samples):
    return samples.mean(0), samples.std(0, ddof=1) / math.sqrt(samples.shape[0])


def assert_mc_close(estimate, se, exact, depth, width, label):
    scale = np.max(np.abs(exact))
    bias = BIAS_PER_LAYER * (depth - 1) / width * scale
    tol = N_SE * se + bias
    err = np.abs(estimate - exact)
    worst = np.unravel_index(np.argmax(err - tol), err.shape)
    assert np.all(err <= tol), (
        f"{label}: Monte Carlo estimate off by {err[worst]:.4g} at {worst} "
        f"(= {err[worst] / se[worst]:.1f} SE; tolerance {N_SE:g} SE + bias "
        f"{bias:.3g} = {tol[worst]:.4g}); estimate\n{estimate}\nkernel\n{exact}"
    )
    return float(np.max(err / scale)), float(np.max(tol / scale))


def _net(arch, depth, activation, parameterization, width):
    x = X_FC if arch == "fc" else X_IMG
    net = Net(arch, depth, activation, parameterization=parameterization, width=width,
              input_shape=x.shape[1:], **HYPER[activation])
    return net, x


# ---------------------------------------------------------------------------
# (a) NNGP: covariance of the scalar output over random initialisations

NNGP_CASES = [
    # arch, depth, activation, parameterization, width, draws
    ("fc", 1, "relu", "ntk", 64, 80000),
    ("fc", 1, "erf", "ntk", 64, 80000),
    ("cnn-vec", 1, "relu", "ntk", 16, 48000),
    ("cnn-gap", 1, "erf", "ntk", 16, 48000),
    ("fc", 1, "relu", "standard", 64, 80000),
    ("cnn-gap", 1, "relu", "standard", 16, 48000),
]
NNGP_SLOW = [
    ("fc", 2, "relu", "ntk", 128, 40000),
    ("fc", 3, "erf", "ntk", 64, 80000),
    ("fc", 2, "erf", "standard", 128, 40000),
    ("cnn-vec", 1, "erf", "ntk", 32, 80000),
    ("cnn-gap", 2, "relu", "ntk", 32, 40000),
    ("cnn-gap", 1, "relu", "ntk", 32, 80000),
]


def _seed(case, base):
    """A distinct, reproducible seed per case (so cases do not share draws)."""
    return base * 1000 + zlib.crc32(repr(case).encode()) % 1000


def _check_output_covariance(arch, depth, activation, par, width, draws, seed):
    net, x = _net(arch, depth, activation, par, width)
    f = sample_outputs(net, x, draws, seed)
    est, se = mean_and_se(f[:, :, None] * f[:, None, :])
    return assert_mc_close(est, se, analytic(net, x, "nngp"), depth, width,
                           f"NNGP {arch}-{depth} {activation} {par} width {width}")


@pytest.mark.parametrize("case", NNGP_CASES, ids=lambda c: "-".join(map(str, c[:5])))
def test_nngp_is_output_covariance(case):
    _check_output_covariance(*case, seed=_seed(case, 11))


@pytest.mark.slow
@pytest.mark.parametrize("case", NNGP_SLOW, ids=lambda c: "-".join(map(str, c[:5])))
def test_nngp_is_output_covariance_slow(case):
    _check_output_covariance(*case, seed=_seed(case, 12))


# ---------------------------------------------------------------------------
# (b), (c) NTK: J J^T of wide networks, averaged over a few initialisations

NTK_INITS = 20
NTK_CASES = [
    # arch, depth, activation, parameterization, width
    ("fc", 2, "relu", "ntk", 1024),
    ("fc", 2, "erf", "ntk", 1024),
    ("cnn-vec", 1, "relu", "ntk", 1024),
    ("cnn-gap", 1, "erf", "ntk", 1024),
    ("fc", 2, "relu", "standard", 1024),
    ("fc", 2, "erf", "standard", 1024),
    ("cnn-vec", 1, "erf", "standard", 1024),
    ("cnn-gap", 1, "relu", "standard", 1024),
]
NTK_SLOW = [
    ("fc", 3, "erf", "ntk", 2048),
    ("fc", 3, "relu", "standard", 2048),
    ("cnn-vec", 2, "relu", "ntk", 512),
    ("cnn-gap", 2, "relu", "ntk", 1024),
    ("cnn-gap", 2, "erf", "ntk", 1024),
    ("cnn-gap", 2, "relu", "standard", 1024),
]


def _check_empirical_ntk(arch, depth, activation, par, width, seed, n_inits=NTK_INITS):
    net, x = _net(arch, depth, activation, par, width)
    nngps, ntks = empirical_kernels(net, x, n_inits, seed)
    label = f"{arch}-{depth} {activation} {par} width {width}"
    est, se = mean_and_se(ntks)
    assert_mc_close(est, se, analytic(net, x, "ntk"), depth, width, "NTK " + label)
    est, se = mean_and_se(nngps)
    assert_mc_close(est, se, analytic(net, x, "nngp"), depth, width,
                    "readout-averaged NNGP " + label)


@pytest.mark.parametrize("case", NTK_CASES, ids=lambda c: "-".join(map(str, c)))
def test_ntk_is_mean_empirical_ntk(case):
    _check_empirical_ntk(*case, seed=_seed(case, 21))


@pytest.mark.slow
@pytest.mark.parametrize("case", NTK_SLOW, ids=lambda c: "-".join(map(str, c)))
def test_ntk_is_mean_empirical_ntk_slow(case):
    _check_empirical_ntk(*case, seed=_seed(case, 22), n_inits=24)


def test_empirical_ntk_error_shrinks_with_width():
    """A 32x wider network has an empirical NTK ~sqrt(32) ~ 5.7x closer to the kernel.

    One init's NTK deviates from the infinite-width kernel by O(1/sqrt(width))
    (plus an O(1/width) bias). The statistic is the root-mean-square relative
    Frobenius error over 16 inits, at widths 32 and 1024 (fc, depth 2, relu).
    Over 10 seeds the ratio ranged from 3.8 to 9.0; we require 2.5.
    """
    errors = {}
    for width in (32, 1024):
        net, x = _net("fc", 2, "relu", "ntk", width)
        _, ntks = empirical_kernels(net, x, 16, seed=31)
        exact = analytic(net, x, "ntk")
        sq = [np.linalg.norm(t - exact) ** 2 for t in ntks]
        errors[width] = math.sqrt(np.mean(sq)) / np.linalg.norm(exact)
    assert errors[1024] < errors[32] / 2.5, errors
    assert errors[1024] < 0.15, errors  # ~0.07 expected at width 1024
