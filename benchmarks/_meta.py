"""Shared by the benchmarks: the machine/version record and atomic JSON writes."""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
import scipy

import sknngp


def meta(**extra):
    """Machine, versions and commit of this run (for a results file)."""
    src = os.path.dirname(os.path.abspath(sknngp.__file__))
    git = lambda *a: subprocess.run(  # noqa: E731
        ["git", "-C", src, *a], capture_output=True, text=True).stdout.strip()
    try:
        import zarr
        zarr_version = zarr.__version__
    except ImportError:  # pragma: no cover
        zarr_version = None
    try:
        import distributed
        dask_version = distributed.__version__
    except ImportError:
        dask_version = None
    with open("/proc/meminfo") as fh:
        mem = fh.readline().split()[1]
    return dict(machine=platform.platform(), processor=platform.processor(),
                cpu_count=os.cpu_count(), memory_gib=round(int(mem) / 2**20, 1),
                python=sys.version.split()[0], numpy=np.__version__, scipy=scipy.__version__,
                jax=jax.__version__, zarr=zarr_version, distributed=dask_version,
                sknngp=sknngp.__version__, sknngp_commit=git("rev-parse", "HEAD") or None,
                sknngp_uncommitted=git("status", "--porcelain", ".").splitlines(),
                devices=[str(d) for d in jax.devices()], loadavg_start=os.getloadavg(),
                date=time.strftime("%Y-%m-%d %H:%M:%S %z"), **extra)


def write(path, doc):
    """Write ``doc`` as JSON to ``path`` atomically (temporary file + rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    os.replace(tmp, path)
