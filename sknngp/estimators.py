"""The kernel estimators: NNGP / NTK regressors and classifiers."""

from ._classifiers import NNGPClassifier, NTKClassifier
from ._regressors import NNGPRegressor, NTKRegressor

__all__ = ["NNGPClassifier", "NNGPRegressor", "NTKClassifier", "NTKRegressor"]
