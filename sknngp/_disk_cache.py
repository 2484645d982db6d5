"""``kernel_cache=<directory>``: the estimators' on-disk kernel cache.

The directory holds one row-keyed kernel store per architecture and kernel
dtype (:mod:`sknngp._rowstore`): entries are keyed by the hash of each row,
stored as CRC-checked blocks written atomically, shared by every process and
Dask worker that uses the directory, and grown as new rows arrive, so the
folds of a grid search compute each kernel entry once. Nothing read back is
ever unpickled; a block that fails verification is recomputed.
"""

from __future__ import annotations

import os
from pathlib import Path

from ._rowstore import CorruptRows, RowStore


def check_location(location):
    """``kernel_cache`` checked: None for ``"memory"`` / ``"off"``, else the
    directory as a :class:`~pathlib.Path` (created if only it is missing).

    Refuses near-misses of the two modes (``"MEMORY"``, ``"off "``), names
    with surrounding spaces, a path that is a file, a missing parent folder,
    and a directory this process cannot write to.
    """
    if location in ("memory", "off"):
        return None
    how = "kernel_cache must be 'memory', 'off' or a directory path for the on-disk cache"
    if not isinstance(location, (str, os.PathLike)):
        raise TypeError(f"{how}; got {location!r} of type {type(location).__name__}.")
    text = os.fspath(location)
    if isinstance(text, bytes) or not text.strip() or text != text.strip():
        raise ValueError(f"{how}; got {location!r} (empty, or with surrounding spaces).")
    if text.lower() in ("memory", "off"):
        raise ValueError(
            f"{how}; got {location!r}. Did you mean {text.lower()!r}? (Modes are "
            "lower-case; any other string is a directory path.)"
        )
    folder = Path(text)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"{how}; got {location!r}, which is an existing file.")
    parent = folder.absolute().parent
    if not folder.exists() and not parent.is_dir():
        raise ValueError(
            f"{how}; got {location!r}, whose parent folder {str(parent)!r} does not "
            "exist. Create it first (or fix the path)."
        )
    _ensure(folder, location)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{how}; got {location!r}, a directory this process cannot write to.")
    return folder


def _ensure(folder, location):
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise ValueError(
            f"kernel_cache={location!r}: cannot create the cache directory ({exc})."
        ) from None


_STORES = {}


def row_store(location, plan, dkey, sample_shape):
    """The (process-wide) row store of ``plan`` and ``dkey`` in ``location``."""
    folder = check_location(location)
    key = (os.path.abspath(folder), plan, dkey, tuple(sample_shape))
    store = _STORES.get(key)
    if store is None or not os.path.isdir(store.root):  # deleted mid-run: start afresh
        try:
            store = _STORES[key] = RowStore(folder, plan, dkey, sample_shape)
        except OSError as exc:
            raise ValueError(f"kernel_cache={location!r}: cannot write the cache ({exc}).") from None
    return store


def disk_kernels(location, plan, dkey, x1, x2, kinds, *, batch_size, device):
    """``{kind: K(x1, x2)}`` (``x2=None``: symmetric), from the row store in
    ``location``; entries not stored yet are computed and stored.

    A store whose row data fail verification, or whose folder disappears
    while in use, is started afresh (once per call).
    """
    for attempt in (0, 1):
        store = row_store(location, plan, dkey, x1.shape[1:])
        try:
            g1 = store.indices(x1)
            g2 = g1 if x2 is None else store.indices(x2)
            return {kind: store.kernel(kind, g1, g2, batch_size, device) for kind in kinds}
        except Exception as exc:
            lost = not os.path.isfile(os.path.join(store.root, "about.json"))
            if attempt == 0 and (isinstance(exc, CorruptRows) or lost):
                store.open(fresh=True)
                continue
            if isinstance(exc, OSError):
                raise ValueError(
                    f"kernel_cache={location!r}: cannot write the cache ({exc})."
                ) from None
            raise
