"""Infinite-width NNGP and NTK kernels in pure JAX.

Layers (hyper-parameters only; picklable, hashable):

- linear: :class:`Dense`, :class:`Conv`
- nonlinear: :class:`ABRelu`, :func:`Relu`, :func:`LeakyRelu`, :func:`Abs`, :class:`Erf`
- reshaping and pooling: :class:`Flatten`, :class:`GlobalAvgPool`, :class:`AvgPool`
- composition: :func:`serial`

Kernels: :func:`kernel_matrix` (tiled, multi-device, float32/float64).
This subpackage imports neither scikit-learn nor torch.
"""

from ._architectures import ACTIVATIONS, ARCHITECTURES, build_architecture
from ._engine import Kernels, kernel_diagonal, kernel_matrix
from ._layers import (
    ABRelu,
    Abs,
    AvgPool,
    Conv,
    Dense,
    Erf,
    Flatten,
    GlobalAvgPool,
    Layer,
    LeakyRelu,
    Relu,
    Serial,
    serial,
)

__all__ = [
    "ABRelu", "Abs", "AvgPool", "Conv", "Dense", "Erf", "Flatten",
    "GlobalAvgPool", "Layer", "LeakyRelu", "Relu", "Serial", "serial",
    "ACTIVATIONS", "ARCHITECTURES", "build_architecture", "Kernels", "kernel_diagonal", "kernel_matrix",
]
