"""Architectures as plain Python: layer specs, named stacks, shape inference.

One description of a network serves both engines: the analytic NNGP / NTK
kernels (:mod:`sknngp.kernels`, JAX) and the finite networks
(:mod:`sknngp.finite`, PyTorch). This subpackage imports neither.

Layers (hyper-parameters only; frozen, picklable, hashable):

- with weights: :class:`Dense`, :class:`Conv`
- nonlinearities: :class:`ABRelu` (:func:`Relu`, :func:`LeakyRelu`, :func:`Abs`), :class:`Erf`
- reshaping and pooling: :class:`Flatten`, :class:`GlobalAvgPool`, :class:`AvgPool`
- composition: :class:`Serial`, :func:`serial`

Named architectures: :func:`build_architecture`. Shapes: :func:`infer_shapes`.
Engines dispatch on layer types through a :class:`Registry` each.
"""

from ._layers import (
    ABRelu,
    Abs,
    AvgPool,
    Conv,
    Dense,
    Erf,
    Flatten,
    MAX_LAYERS,
    MAX_STD,
    GlobalAvgPool,
    Layer,
    LeakyRelu,
    Relu,
    Serial,
    pad_lo_hi,
    serial,
)
from ._named import (
    ACTIVATIONS,
    ARCHITECTURE_PARAMS,
    ARCHITECTURES,
    MAX_DEPTH,
    activation_layer,
    architecture_from_params,
    build_architecture,
)
from ._registry import Registry
from ._shapes import LayerShape, infer_shapes, prod

__all__ = [
    "ABRelu", "Abs", "AvgPool", "Conv", "Dense", "Erf", "Flatten", "GlobalAvgPool",
    "Layer", "LeakyRelu", "Relu", "Serial", "serial", "pad_lo_hi",
    "ACTIVATIONS", "ARCHITECTURE_PARAMS", "ARCHITECTURES", "MAX_DEPTH", "MAX_LAYERS", "MAX_STD",
    "activation_layer", "architecture_from_params", "build_architecture",
    "Registry", "LayerShape", "infer_shapes", "prod",
]
