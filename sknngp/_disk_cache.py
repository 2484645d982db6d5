"""``kernel_cache=<directory>``: whole kernel blocks cached on disk as verified arrays.

Shared by the worker processes of ``GridSearchCV(n_jobs > 1)``. Each block is
one ``.npz`` file named by a hash of everything that determines its values
(the canonical plan, the kernel dtype, the kinds and the exact bytes of the
inputs; never tiling or device), so an entry is never stale. Files hold plain
arrays plus a checksum of them and of the block's key: they are read with
``allow_pickle=False`` (nothing read back is ever unpickled), verified (shape,
dtype, checksum), and recomputed and rewritten when unreadable, corrupted or
belonging to another block. Writes go to a temporary file in the same
directory, then ``os.replace``: a reader never sees a torn file.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import zipfile
from pathlib import Path

import numpy as np

from .kernels import _engine


def _block_key(plan, dkey, x1, x2, kinds):
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((plan, dkey, tuple(kinds))).encode())
    for x in (x1, x2):
        if x is None:
            h.update(b"symmetric")
            continue
        a = np.ascontiguousarray(x)
        h.update(repr((a.dtype.str, a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


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


def _checksum(arrays, kinds, key):
    # the block's key is part of the checksum: a valid file of another block
    # copied under this name does not verify
    h = hashlib.blake2b(digest_size=32)
    h.update(key.encode())
    for kind in kinds:
        a = np.ascontiguousarray(arrays[kind], dtype=np.float64)
        h.update(kind.encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8)


def _read(path, kinds, key, shape):
    """The verified arrays of ``path``, or None if absent, unreadable or corrupted."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {kind: data[kind] for kind in kinds}
            stored = data["checksum"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if any(a.shape != shape or a.dtype != np.float64 for a in arrays.values()):
        return None
    if not np.array_equal(stored, _checksum(arrays, kinds, key)):
        return None
    return arrays


def _write(path, arrays, kinds, key, location):
    _ensure(path.parent, location)  # deleted while we computed: recreate it
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    except OSError as exc:
        raise ValueError(f"kernel_cache={location!r}: cannot write the cache ({exc}).") from None
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, checksum=_checksum(arrays, kinds, key), **arrays)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError):  # disk full, directory removed mid-write, ...
            raise ValueError(
                f"kernel_cache={location!r}: cannot write the cache ({exc})."
            ) from None
        raise


def disk_kernels(location, plan, dkey, x1, x2, kinds, *, batch_size, device):
    """``{kind: K(x1, x2)}``, read from ``location`` when a verified block is there."""
    folder = check_location(location)
    kinds = tuple(kinds)
    key = _block_key(plan, dkey, x1, x2, kinds)
    path = folder / f"{key}.npz"
    shape = (len(x1), len(x1) if x2 is None else len(x2))
    arrays = _read(path, kinds, key, shape)
    if arrays is None:
        arrays, _, _ = _engine.compute(plan, x1, x2, kinds, dkey, batch_size, device)
        _write(path, arrays, kinds, key, location)
    return arrays
