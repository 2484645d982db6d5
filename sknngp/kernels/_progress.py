"""Progress of kernel computations: the engine reports tiles, callers choose.

One mechanism for every caller: :func:`reporting` sets the verbosity for the
kernel work done inside it (``kernel_matrix(verbose=...)``, the estimators'
``verbose`` parameter), and the tile loop opens a :func:`tile_bar` for each
block it computes. The setting is a context variable, so threads and
concurrent estimators do not see each other's.

``verbose=0``: silent. ``1``: a tqdm bar on stderr for any block that takes
longer than :data:`DELAY_S` seconds (short ones stay silent). ``2``: a bar for
every block.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys

#: seconds a block must run before its bar appears at ``verbose=1``
DELAY_S = 2.0

_VERBOSE = contextvars.ContextVar("sknngp_kernel_verbose", default=0)


@contextlib.contextmanager
def reporting(verbose):
    """Report kernel progress at level ``verbose`` (0, 1, 2) inside the block."""
    token = _VERBOSE.set(int(verbose or 0))
    try:
        yield
    finally:
        _VERBOSE.reset(token)


class _Silent:
    def update(self, n=1):
        pass

    def close(self):
        pass


def tile_bar(total, desc, unit="tile"):
    """A progress bar of ``total`` units, or a silent stand-in (same methods)."""
    level = _VERBOSE.get()
    if level <= 0:
        return _Silent()
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, leave=False, file=sys.stderr,
                delay=0.0 if level >= 2 else DELAY_S, dynamic_ncols=True)
