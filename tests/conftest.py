"""Test configuration shared by the whole suite.

Two fake CPU devices (``jax_num_cpu_devices=2``) so that multi-device code runs
without hardware, as equinox and JAX's own tests do. This must happen before
JAX initialises its backends, hence at import time of the conftest.
"""

import jax

jax.config.update("jax_num_cpu_devices", 2)

try:  # tiny networks in the finite-network tests run 10-60x slower on 2 threads
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is an optional extra
    pass
