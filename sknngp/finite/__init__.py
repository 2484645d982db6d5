"""Finite-width networks of the same architectures as the kernels (PyTorch + skorch).

:class:`FiniteNetClassifier` and :class:`FiniteNetRegressor` train a finite
network built from the same layer specification as
:func:`sknngp.kernel_matrix`, so finite and infinite models compare like for
like; :func:`critical_learning_rate` measures the largest stable learning
rate of gradient descent from a network's empirical NTK. Importing this
subpackage imports torch and skorch; ``import sknngp`` does not.
"""

from .._optional import require

require("torch", "skorch", feature="sknngp.finite (finite networks)")

from ._critical import critical_learning_rate  # noqa: E402
from ._estimators import FiniteNetClassifier, FiniteNetRegressor  # noqa: E402

__all__ = ["FiniteNetClassifier", "FiniteNetRegressor", "critical_learning_rate"]
