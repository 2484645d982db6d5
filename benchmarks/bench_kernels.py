"""Kernel throughput of sknngp against neural-tangents, in one run.

Entries per second of NNGP + NTK together, float64, for FC-3, CNN-VEC-8 and
CNN-GAP-8 (ReLU, W_std=sqrt(2), b_std=0.1) on digits 8x8x1 and on random
32x32x3 images, for a rectangular block (X1 != X2, no symmetry to exploit) and
a square train x train block (X2=None; sknngp computes each unordered tile pair
once). neural-tangents 0.6.5 runs in its own venv (it does not import on current
JAX) through ``_nt_worker.py`` on the same inputs, timed the same way
(best of ``--repeats`` after a warm-up call, compilation excluded). Both sides'
NTKs are compared, so a fast wrong answer cannot pass.

    make bench            # or
    python benchmarks/bench_kernels.py --nt-python .nt-venv/bin/python

Writes benchmarks/results/kernels.json and prints a Markdown table.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import jax
import numpy as np
from sklearn.datasets import load_digits

import sknngp

HERE = os.path.dirname(os.path.abspath(__file__))

# (name, arch, depth, image shape, n for the rectangular and square blocks,
#  neural-tangents batch size).
CASES = [
    ("FC-3 digits", "fc", 3, (8, 8, 1), 1000, 1000),
    ("CNN-VEC-8 digits", "cnn-vec", 8, (8, 8, 1), 256, 32),
    ("CNN-GAP-8 digits", "cnn-gap", 8, (8, 8, 1), 48, 8),
    ("FC-3 32x32x3", "fc", 3, (32, 32, 3), 1000, 1000),
    ("CNN-VEC-8 32x32x3", "cnn-vec", 8, (32, 32, 3), 64, 8),
    ("CNN-GAP-8 32x32x3", "cnn-gap", 8, (32, 32, 3), 4, 1),
]


def inputs(shape, n, seed):
    if shape == (8, 8, 1):
        X = load_digits().data / 16.0
        rng = np.random.default_rng(seed)
        return X[rng.permutation(len(X))[:n]].reshape(n, 8, 8, 1)
    return np.random.default_rng(seed).uniform(0, 1, size=(n,) + shape)


def time_sknngp(x1, x2, arch, depth, repeats):
    kw = dict(get=("nngp", "ntk"), architecture=arch, depth=depth)
    sknngp.kernel_matrix(x1[:2], None if x2 is None else x2[:2], **kw)  # compile
    # compile the full-size tile shape too
    sknngp.kernel_matrix(x1, None if x2 is None else x2, **kw)
    best, out = np.inf, None
    for _ in range(repeats):
        t = time.perf_counter()
        out = sknngp.kernel_matrix(x1, x2, **kw)
        best = min(best, time.perf_counter() - t)
    return best, out


def time_nt(nt_python, x1, x2, arch, depth, batch, repeats):
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.json")
        cfg = dict(arch=arch, depth=depth, W_std=2**0.5, b_std=0.1,
                   nt_batch_size=batch, repeats=repeats)
        arrays = {"x1": x1, "config": json.dumps(cfg)}
        if x2 is not None:
            arrays["x2"] = x2
        np.savez(inp, **arrays)
        subprocess.run([nt_python, os.path.join(HERE, "_nt_worker.py"), inp, outp],
                       check=True, stderr=subprocess.DEVNULL)
        with open(outp) as fh:
            res = json.load(fh)
        ntk = np.load(outp.replace(".json", "_ntk.npy"))
    return min(res["seconds"]), ntk, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nt-python", default=os.path.join(HERE, "..", ".nt-venv", "bin", "python"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--only", default=None, help="substring of the case names to run")
    ap.add_argument("--out", default=os.path.join(HERE, "results", "kernels.json"))
    args = ap.parse_args()
    rows, nt_info = [], {}
    for name, arch, depth, shape, n, nt_batch in CASES:
        if args.only and args.only not in name:
            continue
        for block in ("rectangular", "square"):
            x1 = inputs(shape, n, 0)
            x2 = inputs(shape, n, 1) if block == "rectangular" else None
            t_s, k_s = time_sknngp(x1, x2, arch, depth, args.repeats)
            t_n, ntk_n, nt_info = time_nt(args.nt_python, x1, x2, arch, depth,
                                          min(nt_batch, n), args.repeats)
            err = float(np.max(np.abs(k_s.ntk - ntk_n)) / np.max(np.abs(ntk_n)))
            row = dict(case=name, block=block, n=n, sknngp_entries_per_s=n * n / t_s,
                       nt_entries_per_s=n * n / t_n, ratio=t_n / t_s,
                       ntk_max_rel_diff=err, nt_batch_size=min(nt_batch, n))
            rows.append(row)
            print(f"{name:20s} {block:11s} n={n:5d} sknngp {row['sknngp_entries_per_s']:12.1f}/s "
                  f"nt {row['nt_entries_per_s']:12.1f}/s ratio {row['ratio']:5.2f} "
                  f"max rel diff {err:.1e}", flush=True)
    meta = dict(
        machine=platform.platform(), processor=platform.processor(),
        cpu_count=os.cpu_count(), python=sys.version.split()[0],
        jax=jax.__version__, sknngp=sknngp.__version__,
        neural_tangents=nt_info.get("nt_version"), nt_jax=nt_info.get("jax_version"),
        devices=[str(d) for d in jax.devices()], dtype="float64",
        date=time.strftime("%Y-%m-%d"),
    )
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump({"meta": meta, "results": rows}, fh, indent=1)
    print("\n| case | block | n | sknngp entries/s | neural-tangents entries/s | ratio |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['case']} | {r['block']} | {r['n']} | {r['sknngp_entries_per_s']:.0f} "
              f"| {r['nt_entries_per_s']:.0f} | {r['ratio']:.2f} |")


if __name__ == "__main__":
    main()
