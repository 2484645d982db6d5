"""sknngp: finite neural networks and their infinite-width limits, scikit-learn style.

Public objects are imported lazily so that ``import sknngp`` stays light
(torch is only imported by the finite-network estimators).
"""

import importlib

__version__ = "0.1.0.dev0"

_LAZY = {
    "kernel_matrix": "sknngp.kernels",
    "Kernels": "sknngp.kernels",
    "kernel_diagonal": "sknngp.kernels",
    "store_kernel": "sknngp.kernels",
    "CGConvergenceError": "sknngp._cg",
    "NNGPRegressor": "sknngp.estimators",
    "NTKRegressor": "sknngp.estimators",
    "NNGPClassifier": "sknngp.estimators",
    "NTKClassifier": "sknngp.estimators",
    "NNGPKernel": "sknngp.gaussian_process",
    "NTKKernel": "sknngp.gaussian_process",
    "ZCAWhitener": "sknngp.preprocessing",
    "PerImageStandardizer": "sknngp.preprocessing",
    "AugmentedEnsemble": "sknngp.ensemble",
    "FiniteNetClassifier": "sknngp.finite",
    "FiniteNetRegressor": "sknngp.finite",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sknngp' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
