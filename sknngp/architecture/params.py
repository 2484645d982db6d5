"""The architecture parameters' constraints and docs, defined once.

Every estimator that takes an architecture (the kernel estimators and the
finite networks) merges :data:`ARCHITECTURE_CONSTRAINTS` into its
``_parameter_constraints`` and :data:`ARCHITECTURE_DOC` into its docstring.
This module imports scikit-learn (for the constraint objects); the rest of
:mod:`sknngp.architecture` imports nothing beyond the standard library.
"""

from __future__ import annotations

import numbers

from sklearn.utils._param_validation import Interval, StrOptions

from ._layers import MAX_STD, Serial
from ._named import ACTIVATIONS, ARCHITECTURES, MAX_DEPTH

ARCHITECTURE_CONSTRAINTS = {
    "architecture": [StrOptions(set(ARCHITECTURES)), Serial],
    "depth": [Interval(numbers.Integral, 1, MAX_DEPTH, closed="both")],
    "activation": [StrOptions(set(ACTIVATIONS))],
    "W_std": [Interval(numbers.Real, 0, MAX_STD, closed="both")],
    "b_std": [Interval(numbers.Real, 0, MAX_STD, closed="both")],
    "parameterization": [StrOptions({"ntk", "standard"})],
    "width": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "input_shape": [tuple, list, None],
}

ARCHITECTURE_DOC = f"""
    architecture : {{"fc", "cnn-vec", "cnn-gap"}} or Serial, default="fc"
        A named architecture (see :func:`sknngp.architecture.build_architecture`)
        or an explicit layer stack built with :func:`sknngp.architecture.serial`;
        ``depth``, ``activation``, ``W_std``, ``b_std``, ``parameterization``
        and ``width`` are then ignored.
    depth : int in [1, {MAX_DEPTH}], default=3
        Number of hidden Dense / Conv layers.
    activation : {{{", ".join(repr(a).replace("'", '"') for a in ACTIVATIONS)}}}, default="relu"
        Nonlinearity after every hidden layer.
    W_std, b_std : float in [0, 1e150], default=sqrt(2), 0.1
        Weight and bias standard deviations of every Dense / Conv layer.
    parameterization : {{"ntk", "standard"}}, default="ntk"
        ``"ntk"``: each layer computes ``W_std / sqrt(fan_in) * (omega @ x) +
        b_std * beta`` with ``omega, beta ~ N(0, 1)`` trained. ``"standard"``:
        ``W @ x + b`` with ``W ~ N(0, W_std**2 / fan_in)``, ``b ~ N(0,
        b_std**2)`` trained directly.
"""

INPUT_SHAPE_DOC = """
    input_shape : tuple (height, width, channels), default=None
        Image shape of 2-D input rows (NHWC order). Needed by the convolutional
        architectures unless ``X`` is given as 4-D NHWC arrays.
"""
