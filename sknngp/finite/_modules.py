"""PyTorch modules built from sknngp layer specifications.

The layer specs of :mod:`sknngp.architecture` describe an architecture once;
this module turns a :class:`~sknngp.architecture.Serial` stack into a finite-width
``torch.nn.Module`` with exactly the conventions of the analytic kernel
(neural-tangents' ``stax``, Novak et al. 2020, arXiv:1912.02803):

- inputs are NHWC; a :class:`Dense` acts on the channel axis (a 1x1
  convolution on images); :class:`Flatten` flattens spatial and channel axes
  in NHWC order;
- :class:`Conv` uses zero padding, ``"SAME"`` split as XLA does (the smaller
  half at the low end); the fan-in is ``in_channels * prod(filter_shape)``;
- NTK parameterization: the layer computes
  ``W_std / sqrt(fan_in) * (omega @ x) + b_std * beta`` and trains
  ``omega, beta ~ N(0, 1)``; standard parameterization: ``W @ x + b`` with
  ``W ~ N(0, W_std**2 / fan_in)``, ``b ~ N(0, b_std**2)`` trained directly.
  A bias is always present (the standard-parameterization NTK counts the bias
  gradient even when ``b_std=0``: it then starts at 0 and is trained).

Every module carries a leading *ensemble* axis: ``n_ensemble`` independently
initialized copies of the network are evaluated together (dense layers as
batched matrix products, convolutions as grouped convolutions). Internally a
batch is laid out as ``(n_samples, n_ensemble, channels, *spatial)``.

Only :mod:`sknngp.finite` imports this module, so ``import sknngp`` never
imports torch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..architecture import (
    ABRelu,
    AvgPool,
    Conv,
    Dense,
    Erf,
    Flatten,
    GlobalAvgPool,
    Registry,
    infer_shapes,
    pad_lo_hi,
    prod,
)

#: layer type -> ``fn(layer, shape, context) -> torch.nn.Module``
TORCH_BUILDERS = Registry("torch module builder")

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _same_padding(spatial, window, strides, padding):
    """``F.pad`` argument (last axis first) and output shape of a window op."""
    geo = [pad_lo_hi(n, f, s, padding) for n, f, s in zip(spatial, window, strides)]
    pads = []
    for lo, hi, _ in reversed(geo):
        pads += [lo, hi]
    return tuple(pads), tuple(out for _, _, out in geo)


class _Affine(nn.Module):
    """Dense (channel axis) or Conv layer with the parameterization of its spec.

    Parameters are ``omega``/``beta`` (NTK parameterization) or ``W``/``b``
    (standard), of shape ``(n_ensemble, out, in, *filter_shape)`` and
    ``(n_ensemble, out)``.
    """

    def __init__(self, spec, in_channels, out_channels, spatial, n_ensemble, dtype,
                 generator):
        super().__init__()
        self.spec = spec
        self.is_conv = isinstance(spec, Conv)
        filt = tuple(spec.filter_shape) if self.is_conv else ()
        if self.is_conv and len(spatial) not in _CONV:
            raise ValueError(
                f"a Conv layer needs 1, 2 or 3 spatial axes; its input has spatial "
                f"shape {tuple(spatial)}."
            )
        self.fan_in = in_channels * prod(filt)
        self.in_channels, self.out_channels = in_channels, out_channels
        self.n_ensemble = n_ensemble
        self.ntk = spec.parameterization == "ntk"
        w_shape = (n_ensemble, out_channels, in_channels) + filt
        omega = torch.randn(w_shape, generator=generator, dtype=dtype)
        beta = torch.randn((n_ensemble, out_channels), generator=generator, dtype=dtype)
        if self.ntk:
            self.omega, self.beta = nn.Parameter(omega), nn.Parameter(beta)
        else:
            self.W = nn.Parameter(omega * (spec.W_std / math.sqrt(self.fan_in)))
            self.b = nn.Parameter(beta * spec.b_std)
        if self.is_conv:
            self.pads, _ = _same_padding(spatial, filt, spec.strides, spec.padding)

    def weight_decay_scales(self):
        """Factor on each parameter's L2 penalty that makes it the plain L2 of
        the effective weight ``W`` and bias ``b``."""
        if self.ntk:
            return {"omega": self.spec.W_std**2 / self.fan_in, "beta": self.spec.b_std**2}
        return {"W": 1.0, "b": 1.0}

    def effective(self):
        """The effective weight ``W`` and bias ``b`` of the layer (for inspection)."""
        if self.ntk:
            scale = self.spec.W_std / math.sqrt(self.fan_in)
            return self.omega * scale, self.beta * self.spec.b_std
        return self.W, self.b

    def forward(self, x):
        if self.ntk:
            # W_std / sqrt(fan_in) * (omega @ x): scaling the (small) output
            # rather than the weight tensor keeps every step O(activations).
            weight, out_scale = self.omega, self.spec.W_std / math.sqrt(self.fan_in)
            bias = self.beta * self.spec.b_std
        else:
            weight, out_scale, bias = self.W, 1.0, self.b
        n, e = x.shape[0], self.n_ensemble
        if not self.is_conv:
            spatial = tuple(x.shape[3:])
            # (n, e, c, *S) -> (e, c, n * S): out = omega @ x per member, so that
            # the weight gradient comes out of one bmm in omega's own layout.
            cols = x.movedim(0, 2).reshape(e, self.in_channels, -1)
            out = torch.bmm(weight, cols)
            if out_scale != 1.0:
                out = out * out_scale
            out = out + bias.unsqueeze(-1)
            out = out.reshape((e, self.out_channels, n) + spatial)
            return out.movedim(2, 0)
        spatial = x.shape[3:]
        x = x.reshape((n, e * self.in_channels) + tuple(spatial))
        if any(self.pads):
            x = F.pad(x, self.pads)
        w = weight.reshape((e * self.out_channels, self.in_channels) + weight.shape[3:])
        out = _CONV[len(spatial)](x, w, None, stride=tuple(self.spec.strides), groups=e)
        if out_scale != 1.0:
            out = out * out_scale
        out = out + bias.reshape((1, e * self.out_channels) + (1,) * len(spatial))
        return out.reshape((n, e, self.out_channels) + tuple(out.shape[2:]))


class _ABRelu(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.a, self.b = float(spec.a), float(spec.b)

    def forward(self, x):
        return torch.where(x > 0, self.b * x, self.a * x)


class _Erf(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.a, self.b = float(spec.a), float(spec.b)

    def forward(self, x):
        return self.a * torch.erf(self.b * x)


class _Flatten(nn.Module):
    """Flatten ``(n, e, C, *spatial)`` in NHWC order: spatial axes, then channels."""

    def forward(self, x):
        if x.ndim == 3:
            return x
        perm = (0, 1) + tuple(range(3, x.ndim)) + (2,)
        return x.permute(perm).reshape(x.shape[0], x.shape[1], -1)


class _GlobalAvgPool(nn.Module):
    def forward(self, x):
        if x.ndim == 3:
            return x
        return x.mean(dim=tuple(range(3, x.ndim)))


class _AvgPool(nn.Module):
    """Average over windows; zero padding counts in the divisor (as the kernel)."""

    def __init__(self, spec, spatial):
        super().__init__()
        self.spec = spec
        self.pads, _ = _same_padding(spatial, spec.window_shape, spec.strides, spec.padding)

    def forward(self, x):
        n, e, c = x.shape[:3]
        spatial = tuple(x.shape[3:])
        y = x.reshape((n, e * c) + spatial)
        if any(self.pads):
            y = F.pad(y, self.pads)
        y = _AVG_POOL[len(spatial)](
            y, tuple(self.spec.window_shape), tuple(self.spec.strides)
        )
        return y.reshape((n, e, c) + tuple(y.shape[2:]))


@TORCH_BUILDERS.register(Dense, Conv)
def _build_affine(layer, shape, ctx):
    if isinstance(layer, Conv) and len(shape.spatial_in) not in _CONV:
        raise ValueError(
            f"a Conv layer needs 1, 2 or 3 spatial axes; its input has spatial "
            f"shape {tuple(shape.spatial_in)}."
        )
    if shape.channels_out is None:
        raise ValueError(
            f"hidden layer {ctx['index']} ({type(layer).__name__}) has width=None; a "
            "finite network needs the number of units of every layer but "
            "the readout. Build the stack with width=<int> (e.g. "
            "build_architecture(..., width=256))."
        )
    return _Affine(layer, shape.channels_in, int(shape.channels_out), shape.spatial_in,
                   ctx["n_ensemble"], ctx["dtype"], ctx["generator"])


TORCH_BUILDERS.register(ABRelu)(lambda layer, shape, ctx: _ABRelu(layer))
TORCH_BUILDERS.register(Erf)(lambda layer, shape, ctx: _Erf(layer))
TORCH_BUILDERS.register(Flatten)(lambda layer, shape, ctx: _Flatten())
TORCH_BUILDERS.register(GlobalAvgPool)(lambda layer, shape, ctx: _GlobalAvgPool())


@TORCH_BUILDERS.register(AvgPool)
def _build_avg_pool(layer, shape, ctx):
    if len(shape.spatial_in) not in _AVG_POOL:
        raise ValueError(
            f"AvgPool needs 1, 2 or 3 spatial axes; its input has spatial "
            f"shape {shape.spatial_in}."
        )
    return _AvgPool(layer, shape.spatial_in)


def build_layers(stack, input_shape, n_outputs, n_ensemble=1, dtype=torch.float32,
                 generator=None):
    """Torch modules for ``stack`` applied to samples of shape ``input_shape``.

    Parameters
    ----------
    stack : Serial
        The layer specification (see :func:`sknngp.architecture.build_architecture`).
    input_shape : tuple of int
        Shape of one sample: ``(n_features,)`` or ``(*spatial, channels)``.
    n_outputs : int
        Output size of the readout, the last :class:`Dense` / :class:`Conv`
        (its ``width`` must be None or equal to ``n_outputs``); every other
        Dense / Conv uses its own ``width``.
    n_ensemble : int, default=1
    dtype : torch.dtype, default=torch.float32
    generator : torch.Generator, default=None
        Source of the initial weights; None uses torch's global generator.

    Returns
    -------
    layers : torch.nn.ModuleList
    """
    shapes = infer_shapes(stack, tuple(input_shape), n_outputs=n_outputs)
    affine = [i for i, layer in enumerate(stack.layers) if layer.affine]
    if not affine:
        raise ValueError(
            "the layer stack has no Dense or Conv layer, so the network has no "
            "parameters; end it with Dense() as the readout."
        )
    readout = stack.layers[affine[-1]]
    if readout.width is not None and readout.width != n_outputs:
        raise ValueError(
            f"the readout layer {readout!r} has width={readout.width} but the task "
            f"has {n_outputs} output(s); give the last Dense/Conv "
            "width=None so the task sets it."
        )
    for layer in stack.layers:
        TORCH_BUILDERS.lookup(layer)  # an unregistered layer fails before any work
    ctx = dict(n_ensemble=n_ensemble, dtype=dtype, generator=generator)
    return nn.ModuleList([
        TORCH_BUILDERS(layer, shape, {**ctx, "index": i})
        for i, (layer, shape) in enumerate(zip(stack.layers, shapes))
    ])


class _Stack(nn.Module):
    """The layers of one network (all ensemble members), applied in order."""

    def __init__(self, layers):
        super().__init__()
        self.layers = layers

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class FiniteNetModule(nn.Module):
    """An ensemble of finite networks of one architecture, optionally centered.

    Parameters
    ----------
    stack : Serial
        Layer specification shared with the analytic kernel.
    input_shape : tuple of int
        One sample's shape, ``(n_features,)`` or ``(H, W, C)`` (NHWC).
    n_outputs : int
        Size of the readout.
    n_ensemble : int, default=1
        Independently initialized copies evaluated side by side.
    center : bool, default=False
        Return ``f(x) - f0(x)``: the output minus that of the same network with
        its initial parameters (kept as buffers, not trained).
    dtype : torch.dtype, default=torch.float32
    seed : int or None, default=None
        Seed of the initial weights; None draws from torch's global generator.

    Forward maps ``(n, *input_shape)`` (or ``(n, prod(input_shape))``) to
    ``(n, n_ensemble, n_outputs)``: each member's output, not their mean, so a
    loss summed over members trains every member on its own loss.
    """

    def __init__(self, stack, input_shape, n_outputs, n_ensemble=1, center=False,
                 dtype=torch.float32, seed=None):
        super().__init__()
        self.input_shape = tuple(int(s) for s in input_shape)
        self.n_ensemble, self.n_outputs, self.center = n_ensemble, n_outputs, center
        generator = None
        if seed is not None:
            generator = torch.Generator().manual_seed(int(seed))
        self.net = _Stack(build_layers(
            stack, self.input_shape, n_outputs, n_ensemble, dtype, generator
        ))
        self._init_buffers = {}
        if center:
            for name, param in self.net.named_parameters():
                buffer = "init__" + name.replace(".", "__")
                self.register_buffer(buffer, param.detach().clone())
                self._init_buffers[name] = buffer

    def prepare(self, x):
        """NHWC samples (or their flat rows) to ``(n, n_ensemble, C, *spatial)``."""
        x = x.reshape((x.shape[0],) + self.input_shape)
        x = x.movedim(-1, 1).unsqueeze(1)
        return x.expand((x.shape[0], self.n_ensemble) + tuple(x.shape[2:]))

    def initial_parameters(self):
        """The parameters at initialization (kept only when ``center=True``)."""
        return {name: getattr(self, buf) for name, buf in self._init_buffers.items()}

    def forward(self, x):
        x = self.prepare(x)
        out = self.net(x)
        if self.center:
            with torch.no_grad():
                # the same layers with the initial tensors swapped in for one call
                out0 = torch.func.functional_call(self.net, self.initial_parameters(), (x,))
            out = out - out0
        return out

    def weight_decay_scales(self):
        """``{parameter name: factor}`` making the penalty the L2 of effective weights."""
        scales = {}
        for i, layer in enumerate(self.net.layers):
            if isinstance(layer, _Affine):
                for pname, factor in layer.weight_decay_scales().items():
                    scales[f"net.layers.{i}.{pname}"] = factor
        return scales


class EnsembleMSELoss(nn.Module):
    """``sum_e 0.5 * mean((f_e - y)**2)``: each member's MSE, summed.

    The mean runs over samples and outputs (``m = y.size`` entries), the
    normalisation under which gradient descent with learning rate ``lr`` is,
    in the infinite-width limit, ``f_t = (I - exp(-lr * Theta * t / m)) Y``
    (neural-tangents' ``predict.gradient_descent_mse``). Summing over members
    gives each member exactly the gradient of its own loss, so the members are
    trained independently.
    """

    def forward(self, y_pred, y_true):
        y_true = y_true.reshape(y_pred.shape[0], 1, -1).to(y_pred.dtype)
        return 0.5 * ((y_pred - y_true) ** 2).mean(dim=(0, 2)).sum()


class EnsembleCrossEntropyLoss(nn.Module):
    """Each member's mean cross-entropy on integer labels, summed over members."""

    def forward(self, y_pred, y_true):
        n, e, c = y_pred.shape
        labels = y_true.reshape(n).long().repeat_interleave(e)
        return F.cross_entropy(y_pred.reshape(n * e, c), labels) * e
