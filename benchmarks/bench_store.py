"""Kernel store: a 2-worker Dask LocalCluster against this process, and resume after SIGKILL.

Writes ``benchmarks/results/store.json``:

* ``cluster``: ``store_kernel`` of an ``n x n`` CNN-VEC (depth 8) kernel on
  random 8x8x1 images (NNGP and NTK), computed in this process (tiles over
  local threads) and on a ``LocalCluster`` of 2 worker processes with 1 thread
  each, which compute the tiles and write them to the shared store. The
  overhead is ``cluster_time / in_process_time - 1`` (target: at most 15%).
  Both sides are warmed first on two blocks of the same size (compilation is
  per process: ``cluster_warmup_s`` records the workers' share).
  The store's own floor, ``kernel_matrix`` of the same inputs in memory, is
  timed on the same machine too (``--floor``).
* ``resume``: a ``store_kernel`` subprocess killed with SIGKILL once about half
  its tiles are stored; the resumed call must compute exactly the missing
  tiles.

Times are from one shared 2-core machine: compare the ratios, not the seconds.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np

from _meta import meta, write
from sknngp.kernels import KernelStore, kernel_matrix, store_kernel
from sknngp.kernels._blocks import default_block

ARCH = dict(architecture="cnn-vec", depth=8)


def images(n, seed=0):
    return np.random.default_rng(seed).normal(size=(n, 8, 8, 1))


def _warm(warm, work, block):
    """Compile the tile programs in this (worker) process: one diagonal and one
    off-diagonal block of the timed runs' size."""
    import uuid

    store_kernel(warm, path=os.path.join(work, f"warm-{uuid.uuid4().hex}"), verbose=0,
                 block_size=block, **ARCH)


def cluster_vs_process(n, floor):
    import distributed

    X = images(n)
    out = {"n": n, "architecture": ARCH, "get": ["nngp", "ntk"]}
    work = tempfile.mkdtemp(prefix="sknngp-bench-store-")
    try:
        block = default_block(n, n)
        warm = X[:2 * block]  # same block (so same tile shapes) as the timed runs
        store_kernel(warm, path=os.path.join(work, "warm"), verbose=0, **ARCH)  # compile
        t = time.perf_counter()
        local = store_kernel(X, path=os.path.join(work, "local"), verbose=0, **ARCH)
        out["in_process_s"] = time.perf_counter() - t
        out["tiles"], out["block_size"] = local.tiles_total, local.block_size
        t = time.perf_counter()
        with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                      dashboard_address=None) as cluster:
            with distributed.Client(cluster) as client:
                out["cluster_start_s"] = time.perf_counter() - t
                t = time.perf_counter()
                client.run(_warm, warm, work, block)  # on every worker: each compiles
                out["cluster_warmup_s"] = time.perf_counter() - t
                t = time.perf_counter()
                remote = store_kernel(X, path=os.path.join(work, "cluster"), client=client,
                                      verbose=0, **ARCH)
                out["cluster_s"] = time.perf_counter() - t
        out["overhead"] = out["cluster_s"] / out["in_process_s"] - 1
        a, b = np.asarray(local.ntk), np.asarray(remote.ntk)
        out["max_rel_difference_ntk"] = float(np.max(np.abs(a - b)) / np.max(np.abs(a)))
        if floor:
            t = time.perf_counter()
            K = kernel_matrix(X, get=("nngp", "ntk"), **ARCH)
            out["kernel_matrix_s"] = time.perf_counter() - t
            out["store_over_kernel_matrix"] = out["in_process_s"] / out["kernel_matrix_s"]
            out["max_rel_difference_vs_kernel_matrix"] = float(
                np.max(np.abs(a - K.ntk)) / np.max(np.abs(K.ntk)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


_CHILD = """
import sys
import numpy as np
from sknngp.kernels import store_kernel
X = np.random.default_rng(0).normal(size=(int(sys.argv[2]), 8, 8, 1))
store_kernel(X, path=sys.argv[1], block_size=128, architecture="cnn-vec", depth=8, verbose=0)
"""


def resume(n):
    work = tempfile.mkdtemp(prefix="sknngp-bench-resume-")
    path = os.path.join(work, "s")
    try:
        proc = subprocess.Popen([sys.executable, "-c", _CHILD, path, str(n)])
        jobs = (-(-n // 128)) * (-(-n // 128) + 1) // 2
        seals = os.path.join(path, "seals", "ntk")
        while proc.poll() is None:
            if os.path.isdir(seals) and len(os.listdir(seals)) >= jobs // 2:
                break
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        before = KernelStore(path)
        done, total = before.tiles_done, before.tiles_total
        X = images(n)
        t = time.perf_counter()
        after = store_kernel(X, path=path, architecture="cnn-vec", depth=8, verbose=0)
        seconds = time.perf_counter() - t
        K = kernel_matrix(X, get="ntk", **ARCH)
        err = float(np.max(np.abs(np.asarray(after.ntk) - K)) / np.max(np.abs(K)))
        return dict(n=n, block_size=128, tiles_total=total, tiles_done_at_kill=done,
                    tiles_missing=total - done, tiles_recomputed=after.tiles_computed,
                    recomputed_equals_missing=after.tiles_computed == total - done,
                    resume_s=seconds, max_rel_difference_vs_kernel_matrix=err,
                    partial_files_left=sum(f.endswith(".partial") for _, _, fs in os.walk(path)
                                           for f in fs))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=4000)
    ap.add_argument("--resume-n", type=int, default=1500)
    ap.add_argument("--floor", action="store_true", help="also time kernel_matrix in memory")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results",
                                                  "store.json"))
    args = ap.parse_args()
    doc = meta(benchmark="bench_store")
    doc["resume"] = resume(args.resume_n)
    print(doc["resume"], flush=True)
    doc["cluster"] = cluster_vs_process(args.n, args.floor)
    print(doc["cluster"], flush=True)
    doc["loadavg_end"] = os.getloadavg()
    write(args.out, doc)


if __name__ == "__main__":
    main()
