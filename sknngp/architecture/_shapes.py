"""Shape inference for layer stacks, shared by the kernel and network engines.

:func:`infer_shapes` walks a :class:`~sknngp.architecture.Serial` once and
records, per layer, the spatial shape and channel count it receives and
produces, and checks what both engines need (window ranks, a stack that ends
without spatial axes). Engine-specific requirements (e.g. the hidden widths a
finite network needs) are checked by the engines.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

from ._layers import AvgPool, Conv, Flatten, Serial


def prod(values):
    """Product of a sequence of ints (1 for an empty one)."""
    out = 1
    for v in values:
        out *= int(v)
    return out


@dataclass(frozen=True)
class LayerShape:
    """What one layer receives and produces (``channels`` may be None: unknown
    width of a layer whose size the kernel does not need)."""

    spatial_in: Tuple[int, ...]
    channels_in: Optional[int]
    spatial_out: Tuple[int, ...]
    channels_out: Optional[int]
    fan_in: Optional[int]


def _window(layer):
    if isinstance(layer, Conv):
        return "a Conv with filter_shape", layer.filter_shape
    if isinstance(layer, AvgPool):
        return "an AvgPool with window_shape", layer.window_shape
    return None, None


def infer_shapes(stack, sample_shape, n_outputs=None):
    """Per-layer shapes of ``stack`` applied to samples of ``sample_shape``.

    Parameters
    ----------
    stack : Serial
    sample_shape : tuple of int
        ``(n_features,)`` for rows or ``(*spatial, channels)`` for images.
    n_outputs : int, default=None
        Size of the readout (the last layer with weights) when known; None
        keeps that layer's own ``width``.

    Returns
    -------
    shapes : tuple of LayerShape, one per layer

    Examples
    --------
    >>> from sknngp.architecture import build_architecture, infer_shapes
    >>> stack = build_architecture("cnn-vec", depth=1, width=8)
    >>> [s.channels_out for s in infer_shapes(stack, (4, 4, 3), n_outputs=2)]
    [8, 8, 128, 2]
    """
    if not isinstance(stack, Serial):
        raise TypeError(
            f"the architecture must be a Serial layer stack; got {type(stack).__name__}."
        )
    layers = stack.layers
    if not layers:
        raise ValueError("the layer stack is empty; compose layers with serial(...).")
    affine = [i for i, layer in enumerate(layers) if layer.affine]
    readout = affine[-1] if affine else None
    spatial, channels = tuple(int(s) for s in sample_shape[:-1]), int(sample_shape[-1])
    shapes = []
    for i, layer in enumerate(layers):
        what, window = _window(layer)
        if window is not None and len(window) != len(spatial):
            raise ValueError(
                f"{what}={tuple(window)} needs inputs with {len(window)} spatial axes, "
                f"but its input has spatial shape {spatial}. Pass images as 4-D NHWC "
                "arrays or give input_shape=(H, W, C)."
            )
        out_spatial = tuple(layer.output_spatial(spatial))
        fan_in = None
        if layer.affine:
            fan_in = channels
            if isinstance(layer, Conv) and channels is not None:
                fan_in = channels * prod(layer.filter_shape)
            out_channels = layer.width
            if i == readout and n_outputs is not None:
                out_channels = int(n_outputs)
        elif isinstance(layer, Flatten):
            out_channels = None if channels is None else channels * prod(spatial)
        else:
            out_channels = channels
        shapes.append(LayerShape(spatial, channels, out_spatial, out_channels, fan_in))
        spatial, channels = out_spatial, out_channels
    if spatial:
        raise ValueError(
            f"the layer stack ends with spatial shape {spatial}; end it with Flatten() or "
            "GlobalAvgPool() followed by Dense() so each pair of inputs gets one kernel value."
        )
    return tuple(shapes)
