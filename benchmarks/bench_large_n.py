"""Large-n solves: conjugate gradients against Cholesky, and a fit at n = 50,000.

Writes ``benchmarks/results/large_n.json`` (``--part cg`` and ``--part 50k``
fill their own sections; an existing file keeps the other section).

* ``cg``: ``NNGPRegressor`` (fc, depth 3, relative ``diag_reg=1e-3``) on
  ``--n`` Fashion-MNIST training images (784 features in [0, 1]), centered
  one-hot targets of the 10 classes, predicting 2,000 test images, with
  ``solver="cholesky"`` and with ``solver="cg"``. Each fit runs in its own
  subprocess, so each peak RSS (``ru_maxrss``) is its own. Reported: the
  largest relative prediction difference (target: 1e-6), times, CG's
  iterations and both peak RSS (target: CG at most half a kernel,
  ``4 n^2`` bytes, above Cholesky). Both use the in-memory kernel (the same
  kernel computation), so the difference is the solve. A third run,
  ``cg_kernel_cache``, streams the kernel from ``kernel_cache=<directory>``
  (computed into the cache first, in the same process) instead of holding it.
* ``50k``: a fit at n = 50,000 (CIFAR-10's training-set size) with
  ``kernel_cache=<directory>`` and ``solver="cg"``, then predictions for
  10,000 test images, on this machine. The float64 kernel is 20 GB; the
  store keeps its upper half (10 GB) on disk and CG streams it.
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from _meta import meta, write

HERE = os.path.dirname(os.path.abspath(__file__))
ARCH = dict(architecture="fc", depth=3)


def load(n_train, n_test):
    from sknngp.datasets import load_fashion_mnist

    Xtr, Xte, ytr, yte = load_fashion_mnist(n_train=n_train, n_test=n_test, download=False,
                                            return_X_y=True)
    return Xtr.reshape(n_train, -1), Xte.reshape(n_test, -1), ytr, yte


def targets(y):
    return np.eye(10)[y] - 0.1


def child(args):
    """One fit + predict in this process; prints a JSON line."""
    from sknngp import NNGPRegressor

    Xtr, Xte, ytr, yte = load(args.n, args.n_test)
    kw = dict(ARCH, diag_reg=args.diag_reg, solver=args.solver)
    if args.solver == "cg":
        kw["tol"] = args.tol
    if args.cache:
        kw["kernel_cache"] = args.cache
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    est = NNGPRegressor(**kw, verbose=1).fit(Xtr, targets(ytr))
    fit_s = time.perf_counter() - t
    t = time.perf_counter()
    pred = est.predict(Xte)
    predict_s = time.perf_counter() - t
    np.save(args.pred_out, pred)
    info = getattr(est, "solver_info_", None)
    print(json.dumps(dict(
        solver=args.solver, fitted_solver=getattr(est, "solver_", None), n=args.n,
        n_test=args.n_test, fit_s=fit_s, predict_s=predict_s,
        accuracy=float(np.mean(pred.argmax(1) == yte)),
        n_iter=getattr(est, "n_iter_", None),
        max_residual=None if info is None else float(np.max(info.residuals)),
        preconditioner_rank=None if info is None else info.precond_rank,
        passes=None if info is None else info.passes,
        peak_rss_gib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        rss_before_fit_gib=rss0 / 2**20)))


def run_child(**kw):
    cmd = [sys.executable, __file__, "--child"]
    for k, v in kw.items():
        cmd += [f"--{k.replace('_', '-')}", str(v)]
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(out.stderr[-3000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_cg(n, diag_reg, tol):
    work = tempfile.mkdtemp(prefix="sknngp-bench-cg-")
    try:
        res = {}
        for solver in ("cholesky", "cg"):
            res[solver] = run_child(n=n, n_test=2000, solver=solver, diag_reg=diag_reg,
                                    tol=tol, pred_out=os.path.join(work, f"{solver}.npy"))
            print(res[solver], flush=True)
        res["cg_kernel_cache"] = run_child(
            n=n, n_test=2000, solver="cg", diag_reg=diag_reg, tol=tol,
            cache=os.path.join(work, "kcache"), pred_out=os.path.join(work, "cg_disk.npy"))
        print(res["cg_kernel_cache"], flush=True)
        a = np.load(os.path.join(work, "cholesky.npy"))
        b = np.load(os.path.join(work, "cg.npy"))
        c = np.load(os.path.join(work, "cg_disk.npy"))
        half_kernel_gib = 4 * n * n / 2**30
        return dict(
            n=n, n_test=2000, architecture=ARCH, diag_reg=diag_reg, relative=True, tol=tol,
            data="Fashion-MNIST (784 features in [0, 1]), centered one-hot targets",
            cholesky=res["cholesky"], cg=res["cg"], cg_kernel_cache=res["cg_kernel_cache"],
            max_rel_prediction_difference=float(np.max(np.abs(a - b)) / np.max(np.abs(a))),
            max_rel_prediction_difference_kernel_cache=float(
                np.max(np.abs(a - c)) / np.max(np.abs(a))),
            cg_over_cholesky_time=(res["cg"]["fit_s"] + res["cg"]["predict_s"])
            / (res["cholesky"]["fit_s"] + res["cholesky"]["predict_s"]),
            half_kernel_gib=half_kernel_gib,
            cg_peak_rss_minus_cholesky_gib=res["cg"]["peak_rss_gib"]
            - res["cholesky"]["peak_rss_gib"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def part_50k(n, diag_reg, tol, cache):
    work = tempfile.mkdtemp(prefix="sknngp-bench-50k-")
    cache = cache or os.path.join(work, "kcache")
    try:
        t = time.perf_counter()
        res = run_child(n=n, n_test=10000, solver="cg", diag_reg=diag_reg, tol=tol,
                        cache=cache, pred_out=os.path.join(work, "pred.npy"))
        res["wall_s"] = time.perf_counter() - t
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(cache)
                   for f in fs)
        res.update(n=n, architecture=ARCH, diag_reg=diag_reg, relative=True, tol=tol,
                   cache_on_disk_gib=size / 2**30, dense_kernel_gib=8 * n * n / 2**30)
        return res
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=["cg", "50k"], default="cg")
    ap.add_argument("--n", type=int, default=None)
    ap.add_argument("--n-test", type=int, default=2000)
    ap.add_argument("--diag-reg", type=float, default=1e-3)
    ap.add_argument("--tol", type=float, default=None)
    ap.add_argument("--solver", default="cg")
    ap.add_argument("--cache", default="")
    ap.add_argument("--pred-out", default="")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "large_n.json"))
    args = ap.parse_args()
    if args.child:
        args.tol = 1e-7 if args.tol is None else args.tol
        return child(args)
    tol = args.tol
    if tol is None:
        from sknngp import NNGPRegressor
        tol = NNGPRegressor().tol  # the default
    doc = {}
    if os.path.exists(args.out):
        with open(args.out) as fh:
            doc = json.load(fh)
    doc.setdefault("runs", {})
    if args.part == "cg":
        doc["runs"]["cg_vs_cholesky"] = dict(meta=meta(), **part_cg(args.n or 10000,
                                                                    args.diag_reg, tol))
    else:
        doc["runs"]["fit_50k"] = dict(meta=meta(), **part_50k(args.n or 50000, args.diag_reg,
                                                              tol, args.cache))
    write(args.out, doc)
    print(json.dumps(doc["runs"], indent=1, default=str))


if __name__ == "__main__":
    main()
