"""``kernel_cache=<directory>``: whole kernel blocks cached on disk as verified arrays.

Shared by the worker processes of ``GridSearchCV(n_jobs > 1)``. Each block is
one ``.npz`` file named by a hash of everything that determines its values
(the canonical plan, the kernel dtype, the kinds and the exact bytes of the
inputs; never tiling or device), so an entry is never stale. Files hold plain
arrays plus a checksum of them: they are read with ``allow_pickle=False``
(nothing read back is ever unpickled), verified, and recomputed and rewritten
when unreadable or corrupted. Writes go to a temporary file in the same
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


def _checksum(arrays, kinds):
    h = hashlib.blake2b(digest_size=32)
    for kind in kinds:
        a = np.ascontiguousarray(arrays[kind], dtype=np.float64)
        h.update(kind.encode())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return np.frombuffer(h.digest(), dtype=np.uint8)


def _read(path, kinds):
    """The verified arrays of ``path``, or None if absent, unreadable or corrupted."""
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {kind: data[kind] for kind in kinds}
            stored = data["checksum"]
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None
    if not np.array_equal(stored, _checksum(arrays, kinds)):
        return None
    return arrays


def _write(path, arrays, kinds):
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, checksum=_checksum(arrays, kinds), **arrays)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def disk_kernels(location, plan, dkey, x1, x2, kinds, *, batch_size, device):
    """``{kind: K(x1, x2)}``, read from ``location`` when a verified block is there."""
    if not location:
        raise ValueError(
            "kernel_cache must be 'memory', 'off' or a directory path for the "
            "on-disk cache; got ''."
        )
    kinds = tuple(kinds)
    folder = Path(location)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{_block_key(plan, dkey, x1, x2, kinds)}.npz"
    arrays = _read(path, kinds)
    if arrays is None:
        arrays, _, _ = _engine.compute(plan, x1, x2, kinds, dkey, batch_size, device)
        _write(path, arrays, kinds)
    return arrays
