"""One prepared check of sknngp on a GPU machine (at most ~8 minutes on one GPU).

(a) the GPU-marked tests (``pytest -m gpu tests/test_gpu.py``);
(b) kernel throughput: FC, CNN-VEC and CNN-GAP kernel matrices (NNGP and NTK)
    on 32x32x3 inputs, depths 3-8, float32 and float64: kernel entries per
    second and the fraction of the device's peak FLOP/s reached, the FLOPs
    counted by XLA (``cost_analysis()`` of the compiled steps of one tile),
    the peak from a table of vendor figures by ``device_kind`` (vector, not
    tensor-core rates: the kernel maps are elementwise) or ``--peak-tflops``;
(c) fits at n = 20,000 (FC-3 NNGP on 32x32x3 rows): the kernel, a SciPy
    Cholesky on the host, :mod:`sknngp._device_solve` on the device, and
    ``NNGPRegressor`` with ``solver="cholesky"`` and ``solver="cg"`` (the
    error is recorded where a solver is not available);
(d) one epoch of :class:`sknngp.finite.FiniteNetClassifier` on CUDA.

Each part imports only what it needs and is skipped, with the reason
recorded, when an import fails or the time budget is spent. The record,
``gpu.json`` (machine, versions, figures), is written atomically after
each part.

    PYTHONPATH=. python3 benchmarks/gpu_check.py               # on the GPU machine
    python benchmarks/gpu_check.py --dry-run --out /tmp/gpu    # toy sizes, CPU, < 1 min
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:  # run from anywhere: this checkout's sknngp
    sys.path.insert(0, ROOT)

SCHEMA = 1
ARCHS = ("fc", "cnn-vec", "cnn-gap")
FULL = dict(image=(32, 32, 3), depths=(3, 4, 5, 6, 7, 8), dtypes=("float32", "float64"),
            n_kernel={"fc": 8192, "cnn-vec": 1024, "cnn-gap": 64}, n_fit=20_000,
            n_finite=10_000, finite_width=256, device="gpu", torch_device="cuda",
            budget_s={"tests": 150, "kernels": 170, "fits": 100, "finite": 40})
DRY = dict(image=(6, 6, 3), depths=(1, 2), dtypes=("float32", "float64"),
           n_kernel={"fc": 16, "cnn-vec": 8, "cnn-gap": 4}, n_fit=300,
           n_finite=64, finite_width=8, device="cpu", torch_device="cpu",
           budget_s={"tests": 60, "kernels": 30, "fits": 20, "finite": 20})

#: peak FLOP/s (float32, float64) of the vector units, from vendors' data
#: sheets; the first key contained in ``device_kind`` wins
PEAK_TFLOPS = (
    ("H200", 67.0, 34.0),
    ("H100 PCIe", 51.2, 25.6),
    ("H100", 67.0, 34.0),
    ("A100", 19.5, 9.7),
    ("L40S", 91.6, 1.43),
    ("L4", 30.3, 0.47),
    ("A10", 31.2, 0.98),
    ("V100", 15.7, 7.8),
    ("T4", 8.1, 0.25),
    ("RTX 4090", 82.6, 1.29),
)


class Skip(Exception):
    """A part or item that cannot run here; its reason is recorded."""


# ------------------------------------------------------------------ record


def write_atomically(path, record):
    """Write ``record`` as JSON to ``path`` through a temporary file and a rename."""
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".gpu-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(record, fh, indent=1, sort_keys=True, default=str)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _version(module):
    try:
        mod = __import__(module)
    except Exception as exc:  # noqa: BLE001 - any import failure is recorded
        return f"not importable: {type(exc).__name__}: {exc}"
    return getattr(mod, "__version__", "unknown")


def machine_and_versions():
    machine = {"platform": platform.platform(), "python": sys.version.split()[0],
               "cpu_count": os.cpu_count(), "processor": platform.processor()}
    try:
        machine["host_memory_bytes"] = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        pass
    versions = {m: _version(m) for m in ("numpy", "scipy", "sklearn", "jax", "jaxlib", "torch",
                                         "skorch", "pytest", "sknngp")}
    try:
        import jax

        devices = []
        for d in jax.devices():
            stats = d.memory_stats() if d.platform != "cpu" else None
            devices.append({"id": d.id, "platform": d.platform, "device_kind": d.device_kind,
                            "bytes_limit": (stats or {}).get("bytes_limit")})
        machine["jax_devices"] = devices
        machine["jax_backend"] = jax.default_backend()
        try:
            versions["xla_platform_version"] = jax.devices()[0].client.platform_version
        except Exception:  # noqa: BLE001 - informative only
            pass
    except Exception as exc:  # noqa: BLE001
        machine["jax_devices"] = f"unavailable: {exc}"
    try:
        import torch

        versions["torch_cuda"] = torch.version.cuda
        machine["torch_cuda_devices"] = [torch.cuda.get_device_name(i)
                                         for i in range(torch.cuda.device_count())]
    except Exception:  # noqa: BLE001
        pass
    return machine, versions


# ------------------------------------------------------------------ (a) tests


def run_gpu_tests(cfg, deadline):
    try:
        import pytest  # noqa: F401
    except ImportError as exc:
        raise Skip(f"pytest is not importable: {exc}") from None
    xml = os.path.join(tempfile.mkdtemp(prefix="gpu-check-"), "junit.xml")
    cmd = [sys.executable, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider",
           "-o", "addopts=", "--strict-markers", f"--junitxml={xml}",
           os.path.join(ROOT, "tests", "test_gpu.py")]
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    start = time.perf_counter()
    try:
        done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=max(10, deadline - time.perf_counter()))
    except subprocess.TimeoutExpired:
        raise Skip(f"pytest -m gpu did not finish within the budget "
                   f"({cfg['budget_s']['tests']} s)") from None
    out = {"returncode": done.returncode, "seconds": round(time.perf_counter() - start, 2),
           "tail": (done.stdout + done.stderr)[-2000:]}
    if os.path.exists(xml):
        suite = ET.parse(xml).getroot()
        suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
        counts = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
        counts["passed"] = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
        out.update(counts)
        out["failed"] = [f"{c.get('classname')}::{c.get('name')}" for c in suite.iter("testcase")
                         if c.find("failure") is not None or c.find("error") is not None]
    out["status"] = "passed" if done.returncode == 0 else (
        "no tests selected" if done.returncode == 5 else "failed")
    return out


# ------------------------------------------------------------------ (b) kernels


def peak_flops(device_kind, dtype, override):
    """(FLOP/s, source) of the device's vector units, or (None, reason)."""
    if override is not None:
        return override * 1e12, "--peak-tflops"
    for key, f32, f64 in PEAK_TFLOPS:
        if key.lower() in device_kind.lower():
            return (f32 if dtype == "float32" else f64) * 1e12, f"table: {key}"
    return None, f"no peak known for {device_kind!r}; pass --peak-tflops"


def _cost(compiled):
    ca = compiled.cost_analysis()
    if isinstance(ca, (list, tuple)):  # older JAX: one dict per program
        ca = ca[0] if ca else {}
    return {k: float(ca.get(k, 0.0)) for k in ("flops", "transcendentals", "bytes accessed")}


def tile_costs(plan, tile, dkey, want_ntk, device, sample_shape, cache):
    """XLA's FLOP counts of one diagonal and one off-diagonal tile (the chain
    of compiled steps); per-step costs are cached by step and input shape,
    so the identical hidden steps of deeper stacks are counted once."""
    import jax
    import numpy as np

    from sknngp.kernels import _tiles

    pipe = _tiles.pipeline(plan, want_ntk)
    np_dtype = np.float32 if dkey == "float32" else np.float64
    head = _tiles._sub_plan(plan, pipe.bounds[0])  # the first step, by content

    def cost(key, fn, *args):
        key = (key, want_ntk, tuple((a.shape, str(a.dtype))
                                    for a in jax.tree_util.tree_leaves(args)))
        if key not in cache:
            cache[key] = _cost(fn.lower(*args).compile())
        return cache[key]

    with jax.enable_x64(dkey == "float64"):
        a = jax.device_put(np.ones((tile,) + sample_shape, np_dtype), device)
        first_same = cost(("same", head), pipe.first_same, a)
        first = cost(("pair", head), pipe.first, a, a)
        state = pipe.first_same(a)
        rest = {"flops": 0.0, "transcendentals": 0.0, "bytes accessed": 0.0}
        for s in range(1, len(pipe.bounds)):
            step = pipe.rest[s]  # shared by identical steps (jitted_step's cache)
            for k, v in cost(("step", id(step)), step, state).items():
                rest[k] += v
            state = step(state)
    add = lambda c: {k: c[k] + rest[k] for k in rest}  # noqa: E731
    return add(first_same), add(first)


def time_kernels(cfg, deadline, args):
    import jax
    import numpy as np

    from sknngp import kernel_matrix
    from sknngp.kernels import _engine, _tiles

    devices = _engine.resolve_devices(cfg["device"])
    kind = devices[0].device_kind
    rng = np.random.default_rng(0)
    rows, cache = [], {}
    for arch in ARCHS:
        n = cfg["n_kernel"][arch]
        x = rng.normal(size=(n,) + cfg["image"])
        for dkey in cfg["dtypes"]:
            peak, peak_source = peak_flops(kind, dkey, args.peak_tflops)
            for depth in cfg["depths"]:
                row = dict(architecture=arch, depth=depth, dtype=dkey, n=n,
                           input_shape=list(cfg["image"]), device_kind=kind,
                           n_devices=len(devices))
                rows.append(row)
                if time.perf_counter() > deadline:
                    row["skipped"] = "time budget of the kernel part spent"
                    continue
                kw = dict(architecture=arch, depth=depth, get=("nngp", "ntk"), dtype=dkey,
                          device=cfg["device"])
                try:
                    t0 = time.perf_counter()
                    kernel_matrix(x, **kw)  # compiles every tile shape
                    t1 = time.perf_counter()
                    kernel_matrix(x, **kw)
                    t2 = time.perf_counter()
                    plan, xp, _ = _engine._prepare(x, None, dict(
                        architecture=arch, depth=depth, activation="relu", W_std=2**0.5,
                        b_std=0.1, parameterization="ntk", width=None), None, "X")
                    itemsize = 4 if dkey == "float32" else 8
                    tile = _tiles.choose_tile(plan, n, n, None, devices, itemsize)
                    jobs = _tiles.tile_jobs(n, n, tile, True)
                    n_diag = sum(i == j for i, j in jobs)
                    diag, off = tile_costs(plan, tile, dkey, True, devices[0],
                                           xp.shape[1:], cache)
                    flops = n_diag * diag["flops"] + (len(jobs) - n_diag) * off["flops"]
                    seconds = t2 - t1
                    row.update(
                        seconds=round(seconds, 4), first_call_seconds=round(t1 - t0, 3),
                        tile=tile, tiles=len(jobs), entries_per_s=n * n / seconds,
                        flops_per_tile=diag["flops"],
                        transcendentals_per_tile=diag["transcendentals"],
                        flops=flops, flops_per_s=flops / seconds, peak_flops_per_s=peak,
                        peak_source=peak_source,
                        fraction_of_peak=None if peak is None else flops / seconds / peak,
                    )
                except Exception as exc:  # noqa: BLE001 - recorded, the next row runs
                    row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                print(_kernel_line(row), flush=True)
    jax.clear_caches()
    return rows


def _kernel_line(row):
    head = f"  {row['architecture']:8s} depth {row['depth']} {row['dtype']} n={row['n']}"
    if "seconds" in row:
        frac = row["fraction_of_peak"]
        return (head + f": {row['seconds']:.3f} s, {row['entries_per_s']:.3g} entries/s, "
                f"{row['flops_per_s'] / 1e12:.3g} TFLOP/s"
                + ("" if frac is None else f" ({frac:.1%} of peak)"))
    return head + ": " + row.get("error", row.get("skipped", ""))


# ------------------------------------------------------------------ (c) fits


def time_fits(cfg, deadline):
    import numpy as np
    import scipy.linalg

    from sknngp import NNGPRegressor, _device_solve, kernel_matrix
    from sknngp.kernels import _engine

    n = cfg["n_fit"]
    rng = np.random.default_rng(1)
    X = rng.normal(size=(n, int(np.prod(cfg["image"])))).astype(np.float32)
    y = rng.normal(size=n)
    kw = dict(architecture="fc", depth=3)
    out = {"n": n, "architecture": "fc", "depth": 3, "n_features": X.shape[1]}

    def timed(name, fn):
        if time.perf_counter() > deadline:
            out[name] = {"skipped": "time budget of the fit part spent"}
            return None
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - recorded
            out[name] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
            return None
        out[name] = {"seconds": round(time.perf_counter() - t0, 3)}
        return value

    kernel_matrix(X[:64], device=cfg["device"], **kw)  # compile outside the timings
    K = timed("kernel", lambda: kernel_matrix(X, device=cfg["device"], **kw))
    if K is not None:
        lam = 1e-4 * np.trace(K) / n
        B = y[:, None]
        ref = timed("scipy_cholesky_solve", lambda: scipy.linalg.cho_solve(
            scipy.linalg.cho_factor(K + lam * np.eye(n), check_finite=False), B,
            check_finite=False))
        dev = _engine.resolve_devices(cfg["device"])[0]
        out["device_solve_fits"] = _device_solve.fits(n, 1, device=dev)
        _device_solve.solve(K[:64, :64], B[:64], lam, device=dev)  # compile
        sol = timed("device_solve", lambda: _device_solve.solve(K, B, lam, device=dev))
        if ref is not None and sol is not None:
            out["device_solve"]["max_rel_diff_vs_scipy"] = float(
                np.max(np.abs(sol - ref)) / np.max(np.abs(ref)))
        del K
    for solver in ("cholesky", "cg"):
        timed(f"fit_{solver}", lambda s=solver: NNGPRegressor(
            solver=s, kernel_cache="off", device=cfg["device"], **kw).fit(X, y))
    return out


# ------------------------------------------------------------------ (d) finite


def time_finite_epoch(cfg):
    try:
        import torch
    except ImportError as exc:
        raise Skip(f"torch is not importable: {exc}") from None
    if cfg["torch_device"] == "cuda" and not torch.cuda.is_available():
        raise Skip("torch sees no CUDA device")
    try:
        from sknngp.finite import FiniteNetClassifier
    except ImportError as exc:
        raise Skip(f"sknngp.finite is not importable: {exc}") from None
    import numpy as np

    n = cfg["n_finite"]
    rng = np.random.default_rng(2)
    X = rng.normal(size=(n,) + cfg["image"]).astype(np.float32)
    y = rng.integers(0, 10, size=n)
    clf = FiniteNetClassifier(architecture="cnn-gap", depth=3, width=cfg["finite_width"],
                              max_epochs=2, batch_size=128, early_stopping=False,
                              device=cfg["torch_device"], random_state=0)
    t0 = time.perf_counter()
    clf.fit(X, y)
    total = time.perf_counter() - t0
    durations = [float(epoch["dur"]) for epoch in clf.history_]
    return {"n": n, "architecture": "cnn-gap", "depth": 3, "width": cfg["finite_width"],
            "batch_size": 128, "device": cfg["torch_device"], "epoch_seconds": durations,
            "second_epoch_seconds": durations[-1], "fit_seconds": round(total, 3)}


# ------------------------------------------------------------------ main


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="toy sizes on the CPU, every part, in well under a minute")
    parser.add_argument("--out", default=os.path.join(HERE, "results"),
                        help="folder of gpu.json (default: benchmarks/results)")
    parser.add_argument("--parts", default="tests,kernels,fits,finite",
                        help="comma-separated parts to run (default: all)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s, instead of the table's")
    args = parser.parse_args(argv)
    cfg = DRY if args.dry_run else FULL
    if not args.dry_run:
        try:
            import jax

            if not any(d.platform == "gpu" for d in jax.devices()):
                print("warning: JAX sees no GPU; the figures are the CPU's", file=sys.stderr)
                cfg = dict(cfg, device="cpu")
        except Exception:  # noqa: BLE001 - the parts record their own failures
            pass
    path = os.path.join(os.path.abspath(args.out), "gpu.json")
    machine, versions = machine_and_versions()
    record = {"schema": SCHEMA, "dry_run": args.dry_run, "created": time.strftime(
        "%Y-%m-%dT%H:%M:%S%z"), "machine": machine, "versions": versions,
        "config": {k: v for k, v in cfg.items()}, "parts": {}}
    parts = {"tests": lambda d: run_gpu_tests(cfg, d),
             "kernels": lambda d: time_kernels(cfg, d, args),
             "fits": lambda d: time_fits(cfg, d),
             "finite": lambda d: time_finite_epoch(cfg)}
    wanted = [p.strip() for p in args.parts.split(",") if p.strip()]
    unknown = sorted(set(wanted) - set(parts))
    if unknown:
        parser.error(f"--parts: unknown part(s) {unknown}; choose from {sorted(parts)}")
    start = time.perf_counter()
    for name in wanted:
        print(f"[{time.perf_counter() - start:6.1f} s] {name}", flush=True)
        t0 = time.perf_counter()
        try:
            result = {"status": "ok", "result": parts[name](t0 + cfg["budget_s"][name])}
        except Skip as why:
            result = {"status": "skipped", "reason": str(why)}
        except Exception as exc:  # noqa: BLE001 - one part's failure must not lose the others
            result = {"status": "error", "reason": f"{type(exc).__name__}: {exc}",
                      "traceback": traceback.format_exc()[-3000:]}
        result["seconds"] = round(time.perf_counter() - t0, 2)
        record["parts"][name] = result
        record["total_seconds"] = round(time.perf_counter() - start, 2)
        write_atomically(path, record)
        print(f"         {name}: {result['status']} "
              f"{result.get('reason', '')}"[:300], flush=True)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
