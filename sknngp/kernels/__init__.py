"""Infinite-width NNGP and NTK kernels in pure JAX.

Kernels: :func:`kernel_matrix` (tiled, multi-device, float32/float64) and
:func:`kernel_diagonal` (self-kernels in O(n)). Architectures are described by
the plain-Python layer specs of :mod:`sknngp.architecture` (re-exported here
for convenience); each layer type registers its kernel map in
``sknngp.kernels._propagate.KERNEL_MAPS``.
This subpackage imports neither scikit-learn nor torch.
"""

from ..architecture import (
    ABRelu,
    Abs,
    ACTIVATIONS,
    ARCHITECTURES,
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
    build_architecture,
    serial,
)
from ._engine import Kernels, kernel_diagonal, kernel_matrix
from ._store import KernelStore, StoredKernel, store_kernel

__all__ = [
    "ABRelu", "Abs", "AvgPool", "Conv", "Dense", "Erf", "Flatten",
    "GlobalAvgPool", "Layer", "LeakyRelu", "Relu", "Serial", "serial",
    "ACTIVATIONS", "ARCHITECTURES", "build_architecture", "Kernels", "kernel_diagonal", "kernel_matrix",
    "KernelStore", "StoredKernel", "store_kernel",
]
