"""The named architectures of the paper, as layer stacks.

``"fc"``      Flatten, ``depth`` x [Dense, activation], readout Dense.
``"cnn-vec"`` ``depth`` x [Conv 3x3 'SAME', activation], Flatten, readout Dense.
``"cnn-gap"`` ``depth`` x [Conv 3x3 'SAME', activation], GlobalAvgPool, readout Dense.

Every Dense / Conv uses the same ``W_std``, ``b_std`` and ``parameterization``;
hidden layers carry ``width`` (only the standard-parameterization NTK and the
finite network use it); the readout has ``width=None``.

:data:`ARCHITECTURE_PARAMS` names the estimator parameters that describe an
architecture, in :func:`build_architecture`'s order; every estimator builds its
stack through :func:`architecture_from_params` from exactly these.
"""

from __future__ import annotations

import numbers

from ._layers import (
    MAX_STD, Conv, Dense, Erf, Flatten, GlobalAvgPool, Relu, Serial, _check_real, serial,
)

ARCHITECTURES = ("fc", "cnn-vec", "cnn-gap")

#: activation name -> layer factory; a new named activation is one entry here
#: (its layer type registers its kernel map and torch module with the engines)
ACTIVATIONS = {"relu": Relu, "erf": Erf}

#: the parameters that describe an architecture, in build_architecture's order
ARCHITECTURE_PARAMS = (
    "architecture", "depth", "activation", "W_std", "b_std", "parameterization", "width",
)

#: largest accepted depth: deeper stacks only stress the compiler (the NNGP of
#: a deep ReLU network converges to a constant kernel long before this)
MAX_DEPTH = 1000


def activation_layer(activation):
    """The layer spec for an activation name."""
    factory = ACTIVATIONS.get(activation) if isinstance(activation, str) else None
    if factory is None:
        raise ValueError(
            f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}. "
            "For other nonlinearities compose layers from sknngp.architecture "
            "(e.g. LeakyRelu, ABRelu) and pass the stack as `architecture`."
        )
    return factory()


def _check_int(name, value, low, high=None, allow_none=False):
    if value is None and allow_none:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < low
        or (high is not None and value > high)
    ):
        bound = f"an integer in [{low}, {high}]" if high else "a positive integer"
        none = " or None" if allow_none else ""
        raise ValueError(f"{name} must be {bound}{none}; got {value!r}.")
    return int(value)


def build_architecture(
    architecture="fc",
    depth=3,
    activation="relu",
    W_std=2**0.5,
    b_std=0.1,
    parameterization="ntk",
    width=None,
):
    """Return the :class:`Serial` stack of a named architecture.

    A :class:`Serial` passed as ``architecture`` is returned unchanged (the
    other arguments are then ignored).

    Examples
    --------
    >>> from sknngp.architecture import build_architecture
    >>> len(build_architecture("fc", depth=2).layers)  # Flatten, 2 x (Dense, Relu), Dense
    6
    """
    if isinstance(architecture, Serial):
        return architecture
    if not isinstance(architecture, str) or architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {list(ARCHITECTURES)} or a layer stack "
            f"built with sknngp.architecture.serial; got {architecture!r}."
        )
    depth = _check_int("depth", depth, 1, MAX_DEPTH)
    width = _check_int("width", width, 1, allow_none=True)
    W_std = _check_real("W_std", W_std, 0.0, MAX_STD)
    b_std = _check_real("b_std", b_std, 0.0, MAX_STD)
    act = activation_layer(activation)
    common = dict(W_std=float(W_std), b_std=float(b_std), parameterization=parameterization)
    if architecture == "fc":
        layers = [Flatten()]
        for _ in range(depth):
            layers += [Dense(width=width, **common), act]
        return serial(*layers, Dense(**common))
    layers = []
    for _ in range(depth):
        layers += [Conv((3, 3), None, "SAME", width=width, **common), act]
    pool = Flatten() if architecture == "cnn-vec" else GlobalAvgPool()
    return serial(*layers, pool, Dense(**common))


def architecture_from_params(params):
    """The stack described by ``params``, a mapping holding :data:`ARCHITECTURE_PARAMS`."""
    return build_architecture(*(params[name] for name in ARCHITECTURE_PARAMS))
