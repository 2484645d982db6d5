"""Per-engine dispatch on layer types.

Each engine (the JAX kernel maps, the torch network builder) keeps one
:class:`Registry` and registers one function per layer type. Lookup is by the
*exact* type: a subclass of a registered layer is a different layer (its
kernel or forward pass may differ), so it must be registered itself and never
falls back to its parent's function.
"""

from __future__ import annotations


class Registry:
    """Functions of one engine, keyed by layer type.

    Parameters
    ----------
    engine : str
        What the functions compute (used in error messages), e.g.
        ``"kernel map"``.

    Examples
    --------
    >>> from sknngp.architecture import Registry, Relu, LeakyRelu
    >>> maps = Registry("demo map")
    >>> @maps.register(type(Relu()))
    ... def _relu(layer):
    ...     return "piecewise linear"
    >>> maps(LeakyRelu(0.1))
    'piecewise linear'
    """

    def __init__(self, engine):
        self.engine = engine
        self._functions = {}

    def register(self, *layer_types):
        """Decorator registering a function for one or more layer types."""

        def decorate(function):
            for layer_type in layer_types:
                self._functions[layer_type] = function
            return function

        return decorate

    def __contains__(self, layer_type):
        return layer_type in self._functions

    def lookup(self, layer):
        """The function registered for ``type(layer)``; raises if there is none."""
        function = self._functions.get(type(layer))
        if function is None:
            known = sorted(t.__name__ for t in self._functions)
            raise TypeError(
                f"no {self.engine} is registered for layer type "
                f"{type(layer).__name__} ({layer!r}). Registered types: {known}. "
                f"A new layer type (subclasses included) needs its own "
                f"{self.engine}: register one with the engine's registry."
            )
        return function

    def __call__(self, layer, *args, **kwargs):
        return self.lookup(layer)(layer, *args, **kwargs)
