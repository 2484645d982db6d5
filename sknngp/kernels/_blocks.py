"""Kernel blocks on disk: the storage layer shared by the kernel store and the
estimators' ``kernel_cache=<directory>``.

A kernel of one kind is a zarr array cut into square ``block x block``
chunks: one chunk is one block, the unit of storage, of resumption and of
distributed work. Chunks carry a CRC-32C checksum (zarr's ``crc32c`` codec),
verified on every read; zarr's local store writes each chunk to a temporary
file and renames it, so a reader sees a whole block or none. Entries never
computed read back as NaN (the fill value): the engine refuses non-finite
kernels, so a NaN entry always means "missing", never a value.

A block that cannot be read (torn, corrupted, truncated) is reported as
missing, and the callers recompute it: a bad block is never used.
"""

from __future__ import annotations

import json
import math
import os
import re

import numpy as np

#: format version written into every store; a store of another version is refused
FORMAT = 1

#: block side used when none is given: large blocks stream faster, enough of
#: them keep every worker busy
MAX_BLOCK = 1024
MIN_BLOCK = 128


def default_block(n1, n2):
    """A block side that cuts an ``(n1, n2)`` kernel into at least ~8 x 8 blocks
    (for load balance over workers), a multiple of 128 between
    :data:`MIN_BLOCK` and :data:`MAX_BLOCK` entries."""
    side = math.ceil(max(n1, n2) / 8 / 128) * 128
    return int(min(MAX_BLOCK, max(MIN_BLOCK, side)))


def check_block(block):
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block_size must be a positive integer or None; got {block!r}.")
    return int(block)


def zarr():
    """Import zarr (a dependency of sknngp, imported on first use)."""
    import zarr as _zarr

    return _zarr


def create_array(group, name, shape, block):
    """A float64 kernel array of ``shape``, chunked in blocks, NaN-filled, CRC-checked."""
    from zarr.codecs import Crc32cCodec

    return group.create_array(
        name, shape=shape, chunks=(block, block), dtype="float64", fill_value=np.nan,
        compressors=[Crc32cCodec()], filters=None, overwrite=True,
    )


def read_block(array, bi, bj, block):
    """Block ``(bi, bj)`` as a ``(block, block)`` array (edge blocks cut to the
    array), or None when it is absent or fails verification."""
    n1, n2 = array.shape
    rows = slice(bi * block, min(n1, (bi + 1) * block))
    cols = slice(bj * block, min(n2, (bj + 1) * block))
    if not chunk_exists(array, bi, bj):
        return None
    try:
        return np.asarray(array[rows, cols])
    except Exception:  # noqa: BLE001 - any decoding failure means "not usable"
        return None


def write_block(array, bi, bj, block, values):
    """Write one block (``values`` covers the block's in-array extent)."""
    r0, c0 = bi * block, bj * block
    array[r0:r0 + values.shape[0], c0:c0 + values.shape[1]] = values


def _chunk_dir(array):
    root = getattr(array.store, "root", None)
    if root is None:  # pragma: no cover - only local stores are created here
        raise TypeError("kernel stores live in a local directory")
    return os.path.join(os.fspath(root), array.path, "c")


def chunk_exists(array, bi, bj):
    return os.path.isfile(os.path.join(_chunk_dir(array), str(bi), str(bj)))


_DIGITS = re.compile(r"^\d+$")


def present_chunks(array):
    """The ``(bi, bj)`` of every chunk file (complete files only: the store
    writes under a temporary name and renames)."""
    base = _chunk_dir(array)
    found = set()
    if not os.path.isdir(base):
        return found
    for bi in os.listdir(base):
        if not _DIGITS.match(bi):
            continue
        for bj in os.listdir(os.path.join(base, bi)):
            if _DIGITS.match(bj):
                found.add((int(bi), int(bj)))
    return found


def write_json_atomic(path, payload):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
