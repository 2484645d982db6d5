"""The named architectures of the paper, as layer stacks.

``"fc"``      Flatten, ``depth`` x [Dense, activation], readout Dense.
``"cnn-vec"`` ``depth`` x [Conv 3x3 'SAME', activation], Flatten, readout Dense.
``"cnn-gap"`` ``depth`` x [Conv 3x3 'SAME', activation], GlobalAvgPool, readout Dense.

Every Dense / Conv uses the same ``W_std``, ``b_std`` and ``parameterization``;
hidden layers carry ``width`` (only the standard-parameterization NTK and the
finite network use it); the readout has ``width=None``.
"""

from __future__ import annotations

import numbers

from ._layers import Conv, Dense, Erf, Flatten, GlobalAvgPool, Relu, Serial, serial

ARCHITECTURES = ("fc", "cnn-vec", "cnn-gap")
ACTIVATIONS = ("relu", "erf")


def activation_layer(activation):
    """The layer spec for an activation name."""
    if activation == "relu":
        return Relu()
    if activation == "erf":
        return Erf()
    raise ValueError(
        f"activation must be one of {list(ACTIVATIONS)}; got {activation!r}. "
        "For other nonlinearities compose layers from sknngp.kernels "
        "(e.g. LeakyRelu, ABRelu) and pass the stack as `architecture`."
    )


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
    """
    if isinstance(architecture, Serial):
        return architecture
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {list(ARCHITECTURES)} or a layer stack "
            f"built with sknngp.kernels.serial; got {architecture!r}."
        )
    if (
        isinstance(depth, bool)
        or not isinstance(depth, numbers.Integral)
        or depth < 1
    ):
        raise ValueError(f"depth must be a positive integer; got {depth!r}.")
    if width is not None and (
        isinstance(width, bool) or not isinstance(width, numbers.Integral) or width < 1
    ):
        raise ValueError(f"width must be a positive integer or None; got {width!r}.")
    for name, value in (("W_std", W_std), ("b_std", b_std)):
        if not isinstance(value, numbers.Real) or not value >= 0:
            raise ValueError(f"{name} must be a non-negative number; got {value!r}.")
    act = activation_layer(activation)
    common = dict(W_std=float(W_std), b_std=float(b_std), parameterization=parameterization)
    width = None if width is None else int(width)
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
