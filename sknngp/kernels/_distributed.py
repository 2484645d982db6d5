"""Kernel tiles on a Dask cluster: the ``client=`` path of :func:`store_kernel`.

Each task computes one stored tile with JAX on its worker's own devices and
writes it to the shared store itself; only the tile's coordinates travel
back. The inputs are scattered to the workers once. A scheduler address
gives a client for the duration of the call; a given client is left open.
"""

from __future__ import annotations

import ctypes
import os
import sys

from .._optional import require


def _client(client):
    require("distributed", extra="dask", feature="store_kernel(client=...)")
    import distributed

    if isinstance(client, str):
        return distributed.Client(client), True
    if not isinstance(client, distributed.Client):
        raise TypeError(
            "client must be None, a dask.distributed.Client or a scheduler address such "
            f"as 'tcp://host:8786'; got {client!r} of type {type(client).__name__}."
        )
    return client, False


_TUNED = []


def _tune_malloc():
    """Undo the malloc settings a Dask nanny gives its workers, once per worker.

    Nannies start workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to return
    memory to the OS early). Setting it also freezes glibc's mmap threshold
    at 128 KiB, so every tile temporary is an mmap/munmap pair: measured on
    CNN-VEC-8 tiles, a worker took 2-3x the CPU time of a plain process,
    mostly in the kernel. Raising both thresholds (64 MiB mmap, 128 MiB trim)
    in the worker restores the plain process's speed. glibc on Linux only;
    elsewhere nothing is changed.
    """
    if _TUNED:
        return
    _TUNED.append(True)
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 2**20)  # M_MMAP_THRESHOLD
        libc.mallopt(-1, 128 * 2**20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _task(plan, x1, x2, job, block, gets, dkey, batch_size, path):
    from ._store import KernelStore, compute_block, write_blocks
    from ._tiles import CPU_THREADS

    _tune_malloc()
    token = CPU_THREADS.set(1)  # the worker runs one task per thread slot
    try:
        values = compute_block(plan, x1, x2, job, block, gets, dkey, batch_size, None)
    finally:
        CPU_THREADS.reset(token)
    write_blocks(KernelStore(path), job, values)
    return job


def run_on_cluster(client, jobs, plan, x1, x2, path, block, gets, dkey, batch_size, bar):
    """Compute ``jobs`` (tile coordinates) on the cluster; update ``bar`` as they land."""
    client, owned = _client(client)
    from distributed import as_completed

    try:
        path = os.path.abspath(path)
        sx1 = client.scatter(x1, broadcast=True)
        sx2 = None if x2 is None else client.scatter(x2, broadcast=True)
        futures = [client.submit(_task, plan, sx1, sx2, job, block, gets, dkey, batch_size,
                                 path, pure=False) for job in jobs]
        for future in as_completed(futures):
            future.result()  # re-raises a worker's error here
            bar.update(1)
    finally:
        if owned:
            client.close()
