"""Kernel blocks on disk: the storage layer shared by the kernel store and the
estimators' ``kernel_cache=<directory>``.

A kernel of one kind is a zarr array cut into square ``block x block``
chunks: one chunk is one block, the unit of storage, of resumption and of
distributed work. Chunks carry a CRC-32C checksum (zarr's ``crc32c`` codec),
verified on every read; zarr's local store writes each chunk to a temporary
file and renames it, so a reader sees a whole block or none. Entries never
computed read back as NaN (the fill value): the engine refuses non-finite
kernels, so a NaN entry always means "missing", never a value.

Each block also carries a seal binding it to its store, kind and place
(:class:`Blocks`). A block that cannot be read (torn, corrupted, truncated,
misplaced) is reported as missing, and the callers recompute it: a bad block
is never used.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import threading

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


def create_array(group, name, shape, chunks):
    """A float64 array of ``shape`` in ``chunks``, NaN-filled (never written:
    missing), each chunk CRC-checked."""
    from zarr.codecs import Crc32cCodec

    return group.create_array(
        name, shape=shape, chunks=chunks, dtype="float64", fill_value=np.nan,
        compressors=[Crc32cCodec()], filters=None, overwrite=True,
    )


class Blocks:
    """The blocks of one kernel array, each sealed to its place.

    zarr's CRC catches torn and corrupted chunks, but a valid chunk copied
    under another block's name (or from another store) would pass it. So
    every write also leaves a seal, ``seals/<bi>.<bj>``: a hash of the store's
    identity, the kind, the block's coordinates and the chunk's CRC. A block
    is used only when its chunk decodes (CRC) and its seal matches; a block
    with a missing or stale seal (a crash between the two writes, a
    concurrent writer) counts as missing and is recomputed.
    """

    def __init__(self, array, seal_dir, identity):
        self.array, self.seal_dir, self.identity = array, seal_dir, identity
        self.chunks = _chunk_dir(array)
        os.makedirs(seal_dir, exist_ok=True)

    def _seal(self, bi, bj, crc):
        h = hashlib.blake2b(digest_size=16)
        h.update(repr((self.identity, self.array.path, int(bi), int(bj))).encode())
        h.update(crc)
        return h.digest()

    def _crc(self, bi, bj):
        try:
            with open(os.path.join(self.chunks, str(bi), str(bj)), "rb") as fh:
                fh.seek(-4, os.SEEK_END)
                return fh.read(4)
        except OSError:
            return None

    def _seal_path(self, bi, bj):
        return os.path.join(self.seal_dir, f"{bi}.{bj}")

    def sealed(self):
        """``(bi, bj)`` of every block with a seal (verified only when read)."""
        found = set()
        for name in os.listdir(self.seal_dir):
            parts = name.split(".")
            if len(parts) == 2 and all(_DIGITS.match(p) for p in parts):
                found.add((int(parts[0]), int(parts[1])))
        return found

    def read(self, bi, bj, block):
        """Block ``(bi, bj)`` (edge blocks cut to the array), or None when it is
        absent or fails verification (CRC or seal)."""
        try:
            with open(self._seal_path(bi, bj), "rb") as fh:
                seal = fh.read()
        except OSError:
            return None
        n1, n2 = self.array.shape
        rows = slice(bi * block, min(n1, (bi + 1) * block))
        cols = slice(bj * block, min(n2, (bj + 1) * block))
        try:
            values = np.asarray(self.array[rows, cols])
        except Exception:  # noqa: BLE001 - any decoding failure means "not usable"
            return None
        crc = self._crc(bi, bj)
        if crc is None or seal != self._seal(bi, bj, crc):
            return None
        return values

    def write(self, bi, bj, block, values):
        """Write one block (``values`` covers its in-array extent), then its seal."""
        r0, c0 = bi * block, bj * block
        n1, n2 = self.array.shape
        full = (min(block, n1 - r0), min(block, n2 - c0))
        if values.shape != full:  # the whole chunk, so zarr never reads the old one back
            padded = np.full(full, np.nan)
            padded[:values.shape[0], :values.shape[1]] = values
            values = padded
        self.array[r0:r0 + full[0], c0:c0 + full[1]] = values
        crc = self._crc(bi, bj)
        path = self._seal_path(bi, bj)
        os.makedirs(self.seal_dir, exist_ok=True)
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "wb") as fh:
            fh.write(self._seal(bi, bj, crc))
        os.replace(tmp, path)


def _chunk_dir(array):
    root = getattr(array.store, "root", None)
    if root is None:  # pragma: no cover - only local stores are created here
        raise TypeError("kernel stores live in a local directory")
    return os.path.join(os.fspath(root), array.path, "c")


_DIGITS = re.compile(r"^\d+$")


def write_json_atomic(path, payload):
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(payload, fh, indent=1, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
