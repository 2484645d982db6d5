"""Layer specifications: small, frozen, picklable descriptions of a network.

A layer here holds only hyper-parameters. The same objects drive the analytic
kernel (:mod:`sknngp.kernels`, JAX) and the finite PyTorch network
(:mod:`sknngp.finite`), so both sides describe exactly the same architecture.
Each engine registers one function per layer type (see
:class:`~sknngp.architecture.Registry`); this module imports neither JAX nor torch.

Conventions follow neural-tangents' ``stax`` (Novak et al. 2020): NHWC images,
a ``Dense`` acts on the trailing (channel) axis, ``W_std`` and ``b_std`` are the
standard deviations of the weights and biases, and ``parameterization`` is
``"ntk"`` (``W = W_std / sqrt(fan_in) * omega``, ``omega ~ N(0, 1)`` trained) or
``"standard"`` (``W ~ N(0, W_std**2 / fan_in)`` trained directly).
"""

from __future__ import annotations

import math
import numbers
import operator
from dataclasses import dataclass, field
from typing import ClassVar, Optional, Tuple

_PARAMETERIZATIONS = ("ntk", "standard")
_PADDINGS = ("SAME", "VALID")

#: largest accepted ``W_std`` / ``b_std``: their squares scale the kernel, and
#: above ~1.3e154 the square itself overflows float64
MAX_STD = 1e150

#: most layers a stack may hold (a named architecture at the largest depth
#: has ``2 * MAX_DEPTH + 2``); longer stacks only stress the compiler
MAX_LAYERS = 4096


def _check_choice(name, value, options):
    if value not in options:
        raise ValueError(
            f"{name} must be one of {list(options)}; got {value!r}."
        )


def _check_real(name, value, low=-math.inf, high=math.inf):
    """``value`` as a float in ``[low, high]``; rejects NaN, infinities, bools, strings."""
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not (low <= float(value) <= high)
    ):
        where = "a finite number" if low == -math.inf else f"a number in [{low:g}, {high:g}]"
        raise ValueError(f"{name} must be {where}; got {value!r}.")
    return float(value)


def _check_stds(layer):
    for name in ("W_std", "b_std"):
        value = _check_real(name, getattr(layer, name), 0.0, MAX_STD)
        object.__setattr__(layer, name, value)


def _check_width(width):
    if width is None:
        return None
    if isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1:
        raise ValueError(
            f"width must be a positive integer or None (a readout); got {width!r}."
        )
    return int(width)


def _check_positive_tuple(name, value, ndim=None):
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        value = tuple(operator.index(v) for v in value)
    except TypeError:
        raise ValueError(
            f"{name} must be a tuple of positive integers; got {value!r}."
        ) from None
    if not value or any(v < 1 for v in value) or (ndim and len(value) != ndim):
        raise ValueError(
            f"{name} must be a tuple of positive integers"
            + (f" of length {ndim}" if ndim else "")
            + f"; got {value!r}."
        )
    return value


@dataclass(frozen=True)
class Layer:
    """Base class of all layer specifications.

    ``affine`` marks layers with trained weights (their fan-in and ``width``
    matter), ``nonlinear`` marks elementwise nonlinearities (the kernel engine
    compiles one step per nonlinearity). Engines dispatch on the exact type.
    """

    affine: ClassVar[bool] = False
    nonlinear: ClassVar[bool] = False

    #: True for layers whose kernel map needs the full position x position
    #: covariance of its input (pooling layers).
    def needs_full_input(self, full_output: bool) -> bool:
        return full_output

    def output_spatial(self, spatial: Tuple[int, ...]) -> Tuple[int, ...]:
        return spatial


@dataclass(frozen=True)
class Dense(Layer):
    """Fully connected layer acting on the trailing (channel) axis.

    Parameters
    ----------
    W_std, b_std : float
        Weight and bias standard deviations. ``b_std=0`` is a bias that starts at
        zero and is still trained (as in neural-tangents): the
        standard-parameterization NTK keeps its ``+1`` bias term.
    parameterization : {"ntk", "standard"}
    width : int or None
        Number of output units of the finite network. Only the
        standard-parameterization NTK of the *next* layer depends on it
        (neural-tangents' ``out_dim``). ``None`` marks a readout layer whose
        output size is set by the task.
    """

    affine: ClassVar[bool] = True

    W_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"
    width: Optional[int] = None

    def __post_init__(self):
        _check_choice("parameterization", self.parameterization, _PARAMETERIZATIONS)
        _check_stds(self)
        object.__setattr__(self, "width", _check_width(self.width))


@dataclass(frozen=True)
class Conv(Layer):
    """Convolution over the spatial axes with shared weights.

    Parameters
    ----------
    filter_shape : tuple of int, default=(3, 3)
    strides : tuple of int or None, default=None (all ones)
    padding : {"SAME", "VALID"}
        ``"SAME"`` follows XLA's convention (output size ``ceil(in / stride)``,
        zero padding split low/high with the extra pixel at the high end).
    W_std, b_std, parameterization, width
        As for :class:`Dense`; the fan-in is ``in_channels * prod(filter_shape)``.
    """

    affine: ClassVar[bool] = True

    filter_shape: Tuple[int, ...] = (3, 3)
    strides: Optional[Tuple[int, ...]] = None
    padding: str = "SAME"
    W_std: float = 1.0
    b_std: float = 0.0
    parameterization: str = "ntk"
    width: Optional[int] = None

    def __post_init__(self):
        fs = _check_positive_tuple("filter_shape", self.filter_shape)
        object.__setattr__(self, "filter_shape", fs)
        st = (1,) * len(fs) if self.strides is None else self.strides
        object.__setattr__(self, "strides", _check_positive_tuple("strides", st, len(fs)))
        _check_choice("padding", self.padding, _PADDINGS)
        _check_choice("parameterization", self.parameterization, _PARAMETERIZATIONS)
        _check_stds(self)
        object.__setattr__(self, "width", _check_width(self.width))

    def output_spatial(self, spatial):
        return tuple(
            pad_lo_hi(n, f, s, self.padding)[2]
            for n, f, s in zip(spatial, self.filter_shape, self.strides)
        )


@dataclass(frozen=True)
class ABRelu(Layer):
    """Piecewise-linear activation ``a * x`` for ``x < 0`` and ``b * x`` for ``x > 0``."""

    nonlinear: ClassVar[bool] = True

    a: float = 0.0
    b: float = 1.0

    def __post_init__(self):
        _check_ab(self)


def Relu():
    """ReLU, ``max(x, 0)``: ``ABRelu(a=0, b=1)``."""
    return ABRelu(0.0, 1.0)


def LeakyRelu(alpha=0.01):
    """Leaky ReLU with slope ``alpha`` for negative inputs: ``ABRelu(alpha, 1)``."""
    return ABRelu(_check_real("alpha", alpha, -MAX_STD, MAX_STD), 1.0)


def Abs():
    """Absolute value: ``ABRelu(-1, 1)``."""
    return ABRelu(-1.0, 1.0)


@dataclass(frozen=True)
class Erf(Layer):
    """Scaled error function ``a * erf(b * x)``."""

    nonlinear: ClassVar[bool] = True

    a: float = 1.0
    b: float = 1.0

    def __post_init__(self):
        _check_ab(self)


def _check_ab(layer):
    for name in ("a", "b"):
        value = _check_real(f"{type(layer).__name__}.{name}", getattr(layer, name),
                            -MAX_STD, MAX_STD)
        object.__setattr__(layer, name, value)


@dataclass(frozen=True)
class Flatten(Layer):
    """Flatten spatial and channel axes into one feature axis (NHWC order)."""

    def needs_full_input(self, full_output):
        return False

    def output_spatial(self, spatial):
        return ()


@dataclass(frozen=True)
class GlobalAvgPool(Layer):
    """Average over all spatial positions."""

    def needs_full_input(self, full_output):
        return True

    def output_spatial(self, spatial):
        return ()


@dataclass(frozen=True)
class AvgPool(Layer):
    """Average pooling over windows (divides by the window size, also at edges)."""

    window_shape: Tuple[int, ...] = (2, 2)
    strides: Optional[Tuple[int, ...]] = None
    padding: str = "VALID"

    def __post_init__(self):
        ws = _check_positive_tuple("window_shape", self.window_shape)
        object.__setattr__(self, "window_shape", ws)
        st = ws if self.strides is None else self.strides
        object.__setattr__(self, "strides", _check_positive_tuple("strides", st, len(ws)))
        _check_choice("padding", self.padding, _PADDINGS)

    def needs_full_input(self, full_output):
        return True

    def output_spatial(self, spatial):
        return tuple(
            pad_lo_hi(n, f, s, self.padding)[2]
            for n, f, s in zip(spatial, self.window_shape, self.strides)
        )


@dataclass(frozen=True)
class Serial(Layer):
    """A sequence of layers applied one after the other."""

    layers: Tuple[Layer, ...] = field(default_factory=tuple)

    def __post_init__(self):
        flat = []
        for layer in self.layers:
            if isinstance(layer, Serial):
                flat.extend(layer.layers)
            elif isinstance(layer, Layer):
                flat.append(layer)
            else:
                raise TypeError(
                    f"serial() takes layer specifications from sknngp.architecture; "
                    f"got {layer!r} of type {type(layer).__name__}."
                )
        if len(flat) > MAX_LAYERS:
            raise ValueError(
                f"a layer stack holds at most {MAX_LAYERS} layers; got {len(flat)} layers. "
                "Much deeper stacks only stress the compiler: the kernel of a deep "
                "network converges to a fixed point long before."
            )
        object.__setattr__(self, "layers", tuple(flat))


def serial(*layers):
    """Compose layers: ``serial(Dense(), Relu(), Dense())``."""
    return Serial(tuple(layers))


def pad_lo_hi(n, f, s, padding):
    """Padding ``(lo, hi)`` and output length of a window of size ``f``, stride ``s``.

    ``"VALID"``: no padding, ``out = (n - f) // s + 1``. ``"SAME"`` (XLA's rule):
    ``out = ceil(n / s)``, total padding ``max((out - 1) * s + f - n, 0)`` with
    the smaller half at the low end.
    """
    if padding == "VALID":
        out = (n - f) // s + 1
        if out < 1:
            raise ValueError(
                f"a window of size {f} does not fit a spatial axis of size {n} "
                f"with padding='VALID'; use padding='SAME' or a larger input."
            )
        return 0, 0, out
    out = -(-n // s)
    total = max((out - 1) * s + f - n, 0)
    return total // 2, total - total // 2, out
