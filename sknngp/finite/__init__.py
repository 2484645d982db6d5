"""Finite-width networks of the same architectures as the kernels (PyTorch + skorch).

:class:`FiniteNetClassifier` and :class:`FiniteNetRegressor` train a finite
network built from the same layer specification as
:func:`sknngp.kernel_matrix`, so finite and infinite models compare like for
like. Importing this subpackage imports torch and skorch; ``import sknngp``
does not.
"""

from .._optional import require

require("torch", "skorch", feature="sknngp.finite (finite networks)")

from ._estimators import FiniteNetClassifier, FiniteNetRegressor  # noqa: E402

__all__ = ["FiniteNetClassifier", "FiniteNetRegressor"]
