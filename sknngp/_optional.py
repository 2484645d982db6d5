"""Optional dependencies: one-line errors that name the extra to install.

The core (kernels and kernel estimators) needs only NumPy, SciPy,
scikit-learn, JAX and tqdm. Finite networks need torch and skorch (extra
``torch``); the study also needs pandas and matplotlib (extra ``study``, which
brings torch and skorch too).
"""

from __future__ import annotations

import importlib.util
import sys

#: the extra of ``pip install "sknngp[<extra>]"`` that brings each module
EXTRA_OF = {
    "torch": "torch",
    "skorch": "torch",
    "pandas": "study",
    "matplotlib": "study",
    "dask": "dask",
    "distributed": "dask",
}


class MissingDependencyError(ImportError):
    """An optional dependency of the feature in use is not installed."""


def _importable(name):
    if name in sys.modules:
        return sys.modules[name] is not None  # None: Python's way of blocking an import
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def missing(*modules):
    """The modules among ``modules`` that cannot be imported (not imported here)."""
    return [name for name in modules if not _importable(name)]


def require(*modules, feature, extra=None):
    """Raise :class:`MissingDependencyError` naming the extra when any module is missing.

    ``extra`` names the extra to suggest; by default the smallest one that
    brings every missing module (:data:`EXTRA_OF`).

    Examples
    --------
    >>> require("numpy", feature="the kernels")
    >>> require("no_such_module_xyz", feature="this feature")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    sknngp._optional.MissingDependencyError: this feature needs no_such_module_xyz, ...
    """
    absent = missing(*modules)
    if not absent:
        return
    if extra is None:
        extras = {EXTRA_OF.get(name, "study") for name in absent}
        # "study" includes "torch": name the smallest extra that brings them all
        extra = "study" if "study" in extras else "torch"
    raise MissingDependencyError(
        f"{feature} needs {', '.join(absent)}, which {'is' if len(absent) == 1 else 'are'} "
        f'not installed; install it with: pip install "sknngp[{extra}]"'
    )
