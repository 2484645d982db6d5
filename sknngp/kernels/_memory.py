"""Memory plan of a kernel computation, made before any work is done.

What is counted:

* on the host: the kernel matrices (float64: one per kind and per shallower
  readout), a captured state when it is kept there, the finished tiles on
  their way back (one per tile in flight) and, for CPU devices, the tiles'
  working memory itself (a CPU device's memory is the host's);
* on each accelerator (GPU, TPU): one tile in flight (the scheduler runs one
  tile per accelerator at a time) and its share of a captured state kept on
  the devices.

A tile's working memory is estimated from the plan (:func:`tile_bytes`). An
accelerator's free memory is read from ``device.memory_stats()``
(``bytes_limit - bytes_in_use``); a tile may take :data:`DEVICE_SHARE` of
it, the rest is left to XLA's scratch space and to other arrays. A plan that
does not fit is refused with the estimate and the option that fits: a
``batch_size`` that does, rows in blocks, or a kernel store on disk.
"""

from __future__ import annotations

import math
import os

import numpy as np

#: share of an accelerator's free memory that one tile may take
DEVICE_SHARE = 0.5
#: largest tile side chosen on an accelerator (an 8 x 4096^2 float64 tile of
#: FC kernels is 1 GiB; larger tiles gain nothing and delay the first result)
MAX_DEVICE_TILE = 4096
#: largest batch of rows for the diagonal on an accelerator
MAX_DEVICE_ROWS = 65536


def host_available():
    """Bytes of host memory available now, or None where unknown."""
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - non-POSIX
        return None


def device_free(device):
    """Free bytes of an accelerator's memory (``bytes_limit - bytes_in_use``
    of ``device.memory_stats()``); None for a CPU device (its memory is the
    host's) or a device that does not report its memory."""
    if getattr(device, "platform", "cpu") == "cpu":
        return None
    try:
        stats = device.memory_stats()
    except Exception:  # backends without memory statistics raise
        return None
    if not stats or "bytes_limit" not in stats:
        return None
    return max(0, int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0)))


def entries_per_pair(plan):
    """Largest number of covariance entries one input pair carries."""
    worst = 1
    for full, spatial in zip(plan.full_inputs, plan.spatial_in):
        p = int(np.prod(spatial)) if spatial else 1
        worst = max(worst, p * p if (full and spatial) else p)
    return worst


def tile_bytes(plan, t1, t2, itemsize):
    """Upper estimate of the memory of one ``t1 x t2`` tile computation: nngp,
    ntk, the padded conv inputs and a few fused temporaries."""
    return 8 * t1 * t2 * entries_per_pair(plan) * itemsize


def size(nbytes):
    """``nbytes`` for people: ``"23.4 KiB"``, ``"1.5 GiB"``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(nbytes) < 1024 or unit == "GiB" and abs(nbytes) < 1024**2:
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def name(device):
    """``"gpu:0"``: how ``device=`` names it."""
    return f"{device.platform}:{device.id}"


def _accelerators(devices):
    """``[(device, free bytes)]`` of the devices with memory of their own."""
    out = []
    for d in devices:
        free = device_free(d)
        if free is not None:
            out.append((d, free))
    return out


def _tightest(devices):
    """The accelerator with the least free memory and that memory, or None."""
    acc = _accelerators(devices)
    return min(acc, key=lambda df: df[1]) if acc else None


def accelerator_tile(plan, itemsize, devices):
    """Largest tile side whose estimate fits :data:`DEVICE_SHARE` of the
    tightest accelerator's free memory (at most :data:`MAX_DEVICE_TILE`), or
    None when no device reports its memory (CPUs)."""
    tight = _tightest(devices)
    if tight is None:
        return None
    per = tile_bytes(plan, 1, 1, itemsize)
    side = math.isqrt(int(DEVICE_SHARE * tight[1]) // per)
    return max(1, min(side, MAX_DEVICE_TILE))


def accelerator_rows(plan, itemsize, devices):
    """Like :func:`accelerator_tile` for the diagonal: rows per batch."""
    tight = _tightest(devices)
    if tight is None:
        return None
    rows = int(DEVICE_SHARE * tight[1]) // tile_bytes(plan, 1, 1, itemsize)
    return max(1, min(rows, MAX_DEVICE_ROWS))


def _n_jobs(n1, n2, t1, t2, symmetric):
    a, b = -(-n1 // t1), -(-n2 // t2)
    return a * (a + 1) // 2 if symmetric else a * b


def _largest(fits, below):
    """Largest side ``t < below`` with ``fits(t)``; 0 if none."""
    for t in range(min(below - 1, 2 * MAX_DEVICE_ROWS), 0, -1):
        if fits(t):
            return t
    return 0


def check_matrix(plan, n1, n2, n_out, tiles, itemsize, devices, n_workers, *,
                 symmetric=False, state_bytes=0):
    """Refuse a kernel matrix computation that does not fit, before any work.

    Parameters
    ----------
    n_out : int
        Float64 ``(n1, n2)`` matrices returned (kinds times readouts).
    tiles : (t1, t2)
        Tile shape.
    n_workers : int
        Tiles computed at once (at most one per job).
    state_bytes : int
        A captured state's size, kept on the accelerators when it fits
        there, on the host otherwise.

    Returns
    -------
    where : {"device", "host"}
        Where to keep the captured state: ``"device"``, as computed (on CPU
        devices that is host memory, and counted there), or ``"host"``
        (copied off accelerators too small to keep it).

    Raises
    ------
    MemoryError
        With the estimate and the option that fits.
    """
    avail = host_available()
    acc = _accelerators(devices)
    on_host = len(acc) < len(devices)  # CPU devices: tiles work in host memory

    def per_tile(t):
        t1, t2 = min(t, n1), min(t, n2)
        return t1, t2, tile_bytes(plan, t1, t2, itemsize)

    def device_fits(t, state, free):
        share = -(-state // max(1, len(acc)))
        return per_tile(t)[2] + share <= DEVICE_SHARE * free

    t1, t2 = tiles
    side = max(t1, t2)
    for dev, free in acc:
        if not device_fits(side, 0, free):
            fit = _largest(lambda t: device_fits(t, 0, free), side)
            raise MemoryError(
                f"one {t1}x{t2} tile needs about {size(per_tile(side)[2])} on {name(dev)} "
                f"but only {size(free)} of its memory is free (a tile may take "
                f"{DEVICE_SHARE:.0%} of it); " + _batch_hint(fit, dev)
            )
    if not acc:  # CPU devices: kept as computed, in the host's memory
        where = "device"
    elif not on_host and all(device_fits(side, state_bytes, free) for _, free in acc):
        where = "device"
    else:
        where = "host"
    if avail is None:
        return where
    kernel = n1 * n2 * 8 * n_out
    state = state_bytes if where == "host" or not acc else 0
    if kernel + state > avail:
        row = n2 * 8 * n_out
        rows = avail // (2 * row)
        blocks = (f"compute it in blocks of at most {rows} rows "
                  f"(kernel_matrix(X1[i:i + {rows}], X2)) or " if rows >= 1 else "")
        raise MemoryError(
            f"the kernel matrix needs {size(kernel)} on the host ({n1} x {n2} x {n_out} "
            f"float64)" + (f" and its captured state {size(state)}" if state else "")
            + f" but only {size(avail)} is available; {blocks}keep it on disk with "
            "sknngp.kernels.store_kernel(X1, X2, path=...) (estimators: "
            "kernel_cache=<directory> with solver='cg')."
        )

    def host_tiles(t):
        a, b, work = per_tile(t)
        at_once = min(n_workers, _n_jobs(n1, n2, a, b, symmetric))
        return at_once, at_once * (a * b * 8 * n_out + (work if on_host else 0))

    left = avail - kernel - state
    at_once, need = host_tiles(side)
    if need > left:
        fit = _largest(lambda t: host_tiles(t)[1] <= left, side)
        raise MemoryError(
            f"the {t1}x{t2} tiles ({at_once} at a time) need about {size(need)} on the host "
            f"but only {size(left)} is left beside the kernel matrix ({size(kernel)}); "
            + _batch_hint(fit, None)
        )
    return where


def check_diagonal(plan, n, n_out, rows, itemsize, devices, n_workers):
    """Refuse a kernel diagonal computation (``rows`` per batch) that does not
    fit, before any work; see :func:`check_matrix`."""
    acc = _accelerators(devices)
    on_host = len(acc) < len(devices)
    batch = lambda r: tile_bytes(plan, min(r, n), 1, itemsize)  # noqa: E731
    for dev, free in acc:
        if batch(rows) > DEVICE_SHARE * free:
            fit = _largest(lambda r: batch(r) <= DEVICE_SHARE * free, rows)
            raise MemoryError(
                f"a batch of {rows} rows needs about {size(batch(rows))} on {name(dev)} but "
                f"only {size(free)} of its memory is free (a batch may take "
                f"{DEVICE_SHARE:.0%} of it); " + _batch_hint(fit, dev)
            )
    avail = host_available()
    if avail is None:
        return
    out = n * 8 * n_out
    if out > avail:
        raise MemoryError(
            f"the kernel diagonal needs {size(out)} on the host ({n} x {n_out} float64) but "
            f"only {size(avail)} is available; pass X in blocks of at most "
            f"{max(1, avail // (16 * n_out))} rows."
        )

    def host_batches(r):
        at_once = min(n_workers, -(-n // min(r, n)))
        return at_once, at_once * (min(r, n) * 8 * n_out + (batch(r) if on_host else 0))

    at_once, need = host_batches(rows)
    if need > avail - out:
        fit = _largest(lambda r: host_batches(r)[1] <= avail - out, rows)
        raise MemoryError(
            f"a batch of {rows} rows needs about {size(need / at_once)} on the host "
            f"({at_once} at a time) but only {size(avail - out)} is left beside the "
            "result; " + _batch_hint(fit, None)
        )


def _batch_hint(fit, device):
    if fit >= 1:
        return f"pass batch_size={fit} or smaller."
    return (
        "even a 1x1 tile does not fit: use dtype='float32', smaller images (fewer "
        "positions) or " + ("another device (device='cpu')." if device is not None
                            else "a machine with more memory.")
    )
