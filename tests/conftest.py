"""Test configuration shared by the whole suite.

Two fake CPU devices (``jax_num_cpu_devices=2``) so that multi-device code runs
without hardware, as equinox and JAX's own tests do. This must happen before
JAX initialises its backends, hence at import time of the conftest.
"""

import jax
import pytest

jax.config.update("jax_num_cpu_devices", 2)

try:  # tiny networks in the finite-network tests run 10-60x slower on 2 threads
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is an optional extra
    pass


@pytest.fixture
def tile_inputs(monkeypatch):
    """The inputs ``(x1, x2)`` of every tile the kernel engine runs, in order
    (``x2`` None: a diagonal tile of a symmetric block; both None: a tile
    resumed from a stored state)."""
    from sknngp.kernels import _tiles

    calls = []
    real = _tiles.pipeline

    class Spy:
        def __init__(self, pipe):
            self.pipe = pipe

        def run(self, x1, x2, **kw):
            calls.append((x1, x2))
            return self.pipe.run(x1, x2, **kw)

        def readout(self, state):
            return self.pipe.readout(state)

    monkeypatch.setattr(_tiles, "pipeline", lambda plan, want: Spy(real(plan, want)))
    return calls
