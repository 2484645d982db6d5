"""What a fit costs: estimators against their floor and against scikit-ntk.

Every figure is a ratio of two times from the same run (the machine is shared
and noisy), float64: each side runs once untimed at full size (JAX compilation
excluded), then ``--repeats`` rounds alternate the sides; each keeps its best.
sknngp's kernel bank is emptied before each timed estimator run (cold runs).
Rows: Fashion-MNIST (784 pixels in [0, 1]) when its files are on disk, else
``rng.normal`` rows (the JSON says which).

(a) fit + predict / floor, target <= 1.3: NNGP/NTK Regressor/Classifier, FC-3,
    3,000 and 6,000 train and 1,000 test rows. Floor (NNGP or NTK, as the model
    needs; each component at its best): symmetric train kernel, test kernel,
    Cholesky solve of ``K + 1e-4 tr(K)/n I`` for 10 one-hot columns, ``Kte @ alpha``.
(b) scikit-ntk 1.2.1 / sknngp, target >= 2: GaussianProcessRegressor with its
    NeuralTangentKernel (depth 3, bias 0.1, alpha=1e-4; own venv, through
    ``_skntk_worker.py``) against NTKRegressor(FC-3, b_std=0.1, absolute
    diag_reg=1e-4), fit + predict, unit-norm rows, 3,000 train / 1,000 test.
    The kernels are normalized differently: times only.
(c) GridSearchCV(NNGPClassifier FC-3, 10 diag_reg, cv=5) on 4,000 rows / a
    hand-written loop (one kernel, a Cholesky per fold and value, a refit),
    target <= 1.3.
(d) GridSearchCV(NTKClassifier CNN-VEC, depth 1-6 x 2 diag_reg, cv=3) on 900
    digits / one depth-6 NTK kernel_matrix of them, target <= 1.5.
(e) NNGPClassifier(FC-3) fit(8,000) + predict(8,000) in a fresh process: peak
    memory above baseline / one 8,000^2 float64 matrix, target <= 3.

    make bench-fit        # or
    python benchmarks/bench_fit.py --skntk-python .skntk-venv/bin/python
    python benchmarks/bench_fit.py --quick --only a,e --out /tmp/fit.json

Writes benchmarks/results/fit.json (after each measurement) and prints a table.
"""

import argparse
import functools
import gc
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import tempfile
import threading
import time
import traceback

import jax
import numpy as np
import scipy
import scipy.linalg
import sklearn
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV, StratifiedKFold

import sknngp

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FC = dict(architecture="fc", depth=3)
MEASUREMENTS = {"a": "fit_predict", "b": "peer", "c": "grid_diag_reg",
                "d": "grid_depth", "e": "memory"}
FULL = dict(a_train=(3000, 6000), n_test=1000, b_train=3000, c_n=4000, d_n=900,
            d_depths=(1, 2, 3, 4, 5, 6), e_n=8000)
QUICK = dict(a_train=(200, 400), n_test=100, b_train=200, c_n=300, d_n=90,
             d_depths=(1, 2), e_n=1000)


class Skip(Exception):
    """A measurement that cannot run here; its reason is recorded."""


def _clear_bank():
    """Empty sknngp's in-process kernel bank (``_bank``, formerly ``_kernel_cache``)."""
    here = {m.name for m in pkgutil.iter_modules(sknngp.__path__)}  # this copy of sknngp only
    importlib.import_module("sknngp._bank" if "_bank" in here else "sknngp._kernel_cache").clear()


def load_rows(n_train, n_test):
    """(Xtr, Xte, ytr, yte, source): 784-feature rows in [0, 1] and labels."""
    try:
        from sknngp.datasets import load_fashion_mnist
        Xtr, Xte, ytr, yte = load_fashion_mnist(n_train=n_train, n_test=n_test,
                                                download=False, return_X_y=True)
        return Xtr.reshape(n_train, -1), Xte.reshape(n_test, -1), ytr, yte, "fashion-mnist"
    except Exception as exc:  # files missing, or the loader is being refactored
        rng = np.random.default_rng(0)
        X, y = rng.normal(size=(n_train + n_test, 784)), rng.integers(0, 10, n_train + n_test)
        why = f"rng.normal rows, random labels (Fashion-MNIST unavailable: {exc!r})"
        return X[:n_train], X[n_train:], y[:n_train], y[n_train:], why


def onehot(y):
    """Centered one-hot targets ``onehot - 1/C`` (the classifiers' regression targets)."""
    C = int(y.max()) + 1
    return np.eye(C)[y] - 1.0 / C


def timed(fn, before=None):
    """A pass for :func:`rounds`: ``fn()`` timed, ``before()`` (untimed) first."""
    def run():
        if before is not None:
            before()
        t = time.perf_counter()
        out = fn()
        return {"seconds": time.perf_counter() - t}, out
    return run


def rounds(passes, repeats):
    """Run each pass once untimed (the warm-up: compilation at full size), then
    ``repeats`` rounds with the passes in turn, so that numerator and denominator
    see the same load. A pass returns ({timer: seconds}, result); returns the
    best time of each timer of each pass, and each pass's last result."""
    best, last = {key: {} for key in passes}, {}
    for r in range(repeats + 1):
        for key, run in passes.items():
            times, last[key] = run()
            if r:
                best[key] = {k: min(v, best[key].get(k, np.inf)) for k, v in times.items()}
    return best, last


def cholesky_solve(A, Y):
    """``A^-1 Y`` for symmetric positive definite C-ordered ``A`` (overwritten).

    ``A.T`` is the same matrix in Fortran order, which LAPACK factors in place
    (``cho_factor(A)`` on a C-ordered array would copy it first): the cheapest
    float64 solve SciPy offers, so that the floor is a floor.
    """
    return scipy.linalg.cho_solve(scipy.linalg.cho_factor(A.T, lower=False, overwrite_a=True), Y)


def solve(K, lam, Y):
    """``(K + lam I)^-1 Y`` by Cholesky, leaving ``K`` as it is."""
    A = K.copy()
    A.flat[:: len(A) + 1] += lam
    return cholesky_solve(A, Y)


def row(measurement, case, raw, ratio, op, target, **extra):
    met = ratio <= target if op == "<=" else ratio >= target
    return dict(measurement=measurement, case=case, raw=raw, ratio=float(ratio),
                target=f"{op} {target}", target_met=bool(met), **extra)


# ---------------------------------------------------------------- (a) floor
def floor(Xtr, Y, Xte, kind):
    """One floor pass: the time of each component, and the floor's prediction."""
    t0 = time.perf_counter()
    K = sknngp.kernel_matrix(Xtr, get=kind, **FC)
    t1 = time.perf_counter()
    Kte = sknngp.kernel_matrix(Xte, Xtr, get=kind, **FC)
    t2 = time.perf_counter()
    K.flat[:: len(K) + 1] += 1e-4 * np.trace(K) / len(K)
    alpha = cholesky_solve(K, Y)
    t3 = time.perf_counter()
    pred = Kte @ alpha
    t4 = time.perf_counter()
    return dict(kernel_train=t1 - t0, kernel_test=t2 - t1, cholesky_solve=t3 - t2,
                test_product=t4 - t3), pred


def measure_fit_predict(data, sz, repeats):
    Xtr_all, Xte, ytr_all, _ = data
    rows, names = [], ("NNGPRegressor", "NTKRegressor", "NNGPClassifier", "NTKClassifier")
    for n in sz["a_train"]:
        Xtr, ytr = Xtr_all[:n], ytr_all[:n]
        Y = onehot(ytr)
        passes = {kind: functools.partial(floor, Xtr, Y, Xte, kind) for kind in ("nngp", "ntk")}
        for name in names:
            est, target = getattr(sknngp, name)(**FC), ytr if "Classifier" in name else Y
            passes[name] = timed(functools.partial(
                lambda e, t: e.fit(Xtr, t).predict(Xte), est, target), _clear_bank)
        best, last = rounds(passes, repeats)
        for name in names:
            kind = "ntk" if "NTK" in name else "nngp"
            comp, fpred, pred = dict(best[kind]), last[kind], last[name]
            comp["floor"] = sum(comp.values())
            t_est = best[name]["seconds"]
            if "Classifier" in name:
                check = dict(argmax_agreement=float(np.mean(pred == fpred.argmax(1))))
            else:
                check = dict(max_rel_diff=float(np.abs(pred - fpred).max() / np.abs(fpred).max()))
            rows.append(row("a", f"{name} n_train={n}", dict(estimator=t_est, **comp),
                            t_est / comp["floor"], "<=", 1.3, **check))
            print(f"  (a) {name} n={n}: {t_est:.2f} s, floor {comp['floor']:.2f} s", flush=True)
    return rows


# ----------------------------------------------------------------- (b) peer
def measure_peer(data, sz, repeats, skntk_python):
    Xtr, Xte, ytr, _ = data
    n = sz["b_train"]
    unit = lambda X: X / np.linalg.norm(X, axis=1, keepdims=True)  # noqa: E731
    Xtr, Xte, Y = unit(Xtr[:n]), unit(Xte), onehot(ytr[:n])
    if not skntk_python or not os.path.exists(skntk_python):
        raise Skip(f"no scikit-ntk python at {skntk_python!r} (make .skntk-venv/.installed)")
    est = sknngp.NTKRegressor(architecture="fc", depth=3, b_std=0.1, diag_reg=1e-4,
                              diag_reg_absolute_scale=True)
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.json")
        cfg = dict(depth=3, bias=0.1, alpha=1e-4, repeats=1)  # one warm-up + 1 timed run
        np.savez(inp, Xtr=Xtr, ytr=Y, Xte=Xte, config=json.dumps(cfg))

        def peer_pass():
            subprocess.run([skntk_python, os.path.join(HERE, "_skntk_worker.py"), inp, outp],
                           check=True)
            with open(outp) as fh:
                res = json.load(fh)
            return {"seconds": min(res["seconds"])}, res
        best, last = rounds({"skntk": peer_pass, "sknngp": timed(
            lambda: est.fit(Xtr, Y).predict(Xte), _clear_bank)}, repeats)
    t_peer, t_ours, peer = best["skntk"]["seconds"], best["sknngp"]["seconds"], last["skntk"]
    print(f"  (b) scikit-ntk {t_peer:.2f} s, sknngp {t_ours:.2f} s", flush=True)
    return [row("b", f"scikit-ntk / NTKRegressor n_train={n}",
                dict(skntk=t_peer, sknngp=t_ours), t_peer / t_ours, ">=", 2,
                peer_versions=peer["versions"], n_targets=Y.shape[1])]


# ------------------------------------------------------- (c) diag_reg search
def hand_loop(X, y, values):
    """One kernel, a Cholesky per (fold, value), accuracy, a refit at the best value."""
    K, Y = sknngp.kernel_matrix(X, get="nngp", **FC), onehot(y)
    acc = np.zeros((len(values), 5))
    for f, (tr, te) in enumerate(StratifiedKFold(5).split(X, y)):
        Ktr, Kte = K[np.ix_(tr, tr)], K[np.ix_(te, tr)]
        scale = np.trace(Ktr) / len(tr)
        for i, v in enumerate(values):
            acc[i, f] = np.mean(np.argmax(Kte @ solve(Ktr, v * scale, Y[tr]), axis=1) == y[te])
    best = values[int(np.argmax(acc.mean(axis=1)))]
    solve(K, best * np.trace(K) / len(K), Y)
    return best, float(acc.mean(axis=1).max())


def measure_grid_diag_reg(data, sz, repeats):
    X, y = data[0][: sz["c_n"]], data[2][: sz["c_n"]]
    values = np.logspace(-6, 0, 10)
    search = lambda: GridSearchCV(sknngp.NNGPClassifier(**FC), {"diag_reg": values},  # noqa: E731
                                  cv=5).fit(X, y)
    best, last = rounds({"loop": timed(lambda: hand_loop(X, y, values)),
                         "search": timed(search, _clear_bank)}, repeats)
    t_loop, t_search = best["loop"]["seconds"], best["search"]["seconds"]
    (best_loop, acc_loop), gs = last["loop"], last["search"]
    print(f"  (c) search {t_search:.2f} s, loop {t_loop:.2f} s", flush=True)
    return [row("c", f"GridSearchCV NNGPClassifier FC-3 10 diag_reg x 5 folds n={len(X)}",
                dict(grid_search=t_search, hand_loop=t_loop), t_search / t_loop, "<=", 1.3,
                best_diag_reg_search=float(gs.best_params_["diag_reg"]),
                best_diag_reg_loop=float(best_loop), cv_accuracy_search=float(gs.best_score_),
                cv_accuracy_loop=acc_loop)]


# ---------------------------------------------------------- (d) depth search
def measure_grid_depth(sz, repeats):
    X, y = load_digits(return_X_y=True)
    X, y = X[: sz["d_n"]] / 16.0, y[: sz["d_n"]]
    arch = dict(architecture="cnn-vec", input_shape=(8, 8, 1))
    grid = {"depth": list(sz["d_depths"]), "diag_reg": [1e-4, 1e-2]}
    search = lambda: GridSearchCV(sknngp.NTKClassifier(**arch), grid, cv=3).fit(X, y)  # noqa: E731
    kernel = lambda: sknngp.kernel_matrix(  # noqa: E731
        X, get="ntk", depth=max(grid["depth"]), **arch)
    best, last = rounds({"kernel": timed(kernel), "search": timed(search, _clear_bank)}, repeats)
    t_kernel, t_search, gs = best["kernel"]["seconds"], best["search"]["seconds"], last["search"]
    print(f"  (d) search {t_search:.2f} s, kernel {t_kernel:.2f} s", flush=True)
    return [row("d", f"GridSearchCV NTKClassifier CNN-VEC depth {grid['depth']} x 2 "
                f"diag_reg x 3 folds n={len(X)} digits",
                dict(grid_search=t_search, kernel_matrix_depth_max=t_kernel),
                t_search / t_kernel, "<=", 1.5, best_params=gs.best_params_,
                cv_accuracy=float(gs.best_score_))]


# -------------------------------------------------------------- (e) memory
def _status_kib(field):
    with open("/proc/self/status") as fh:
        return next(int(ln.split()[1]) for ln in fh if ln.startswith(field + ":"))


def memory_child(n):
    """Run in a fresh process: print JSON {baseline, peak (bytes), method, data}."""
    Xtr, Xte, ytr, _, source = load_rows(n, n)
    w = min(n, 600)  # warm JAX up, with the full tile shape when tiles are capped
    sknngp.kernel_matrix(Xtr[:w], get="nngp", **FC)
    sknngp.kernel_matrix(Xte[:w], Xtr[:w], get="nngp", **FC)
    gc.collect()
    baseline = _status_kib("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        method = "VmHWM" if _status_kib("VmHWM") <= baseline + 1024 else None
    except OSError:
        method = None
    peak, stop = [baseline], threading.Event()
    if method is None:
        method = "VmRSS sampled every 10 ms"

        def sample():
            while not stop.wait(0.01):
                peak.append(_status_kib("VmRSS"))
        threading.Thread(target=sample, daemon=True).start()
    sknngp.NNGPClassifier(**FC).fit(Xtr, ytr).predict(Xte)
    stop.set()
    top = _status_kib("VmHWM") if method == "VmHWM" else max(peak + [_status_kib("VmRSS")])
    print(json.dumps(dict(baseline=baseline * 1024, peak=top * 1024, method=method,
                          data=source)))


def measure_memory(sz):
    n = sz["e_n"]
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--memory-child", str(n)],
                         check=True, capture_output=True, text=True)
    res = json.loads(out.stdout.strip().splitlines()[-1])
    unit = n * n * 8
    print(f"  (e) peak - baseline {(res['peak'] - res['baseline']) / 2**20:.0f} MiB", flush=True)
    return [row("e", f"NNGPClassifier FC-3 fit({n}) + predict({n}) peak memory",
                dict(baseline_bytes=res["baseline"], peak_bytes=res["peak"], unit_bytes=unit),
                (res["peak"] - res["baseline"]) / unit, "<=", 3, method=res["method"],
                data=res["data"])]


# ---------------------------------------------------------------- driver
def meta(source):
    src = os.path.dirname(os.path.abspath(sknngp.__file__))
    git = lambda *a: subprocess.run(  # noqa: E731
        ["git", "-C", src, *a], capture_output=True, text=True).stdout.strip()
    return dict(machine=platform.platform(), processor=platform.processor(),
                cpu_count=os.cpu_count(), python=sys.version.split()[0],
                numpy=np.__version__, scipy=scipy.__version__, jax=jax.__version__,
                sklearn=sklearn.__version__, sknngp=sknngp.__version__, sknngp_path=src,
                sknngp_commit=git("rev-parse", "HEAD") or None,
                sknngp_uncommitted=git("status", "--porcelain", ".").splitlines(),
                devices=[str(d) for d in jax.devices()], dtype="float64", data=source,
                date=time.strftime("%Y-%m-%d %H:%M:%S %z"))


def write(path, doc):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1, default=lambda o: o.item() if hasattr(o, "item") else str(o))
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default=None, help="comma-separated letters or names: "
                    + ", ".join(f"{k}={v}" for k, v in MEASUREMENTS.items()))
    ap.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    ap.add_argument("--skntk-python", default=os.path.join(ROOT, ".skntk-venv", "bin", "python"))
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "fit.json"))
    ap.add_argument("--memory-child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.memory_child is not None:
        return memory_child(args.memory_child)
    asked = list(MEASUREMENTS) if args.only is None else [o.strip() for o in args.only.split(",")]
    wanted = {k for k, v in MEASUREMENTS.items() if k in asked or v in asked}
    if len(wanted) < len(asked):
        ap.error(f"--only {args.only!r}: choose among {MEASUREMENTS}")
    sz = QUICK if args.quick else FULL
    n_load = max(max(sz["a_train"]), sz["b_train"], sz["c_n"])
    *data, source = load_rows(n_load, sz["n_test"])
    doc = dict(meta=meta(source), sizes=sz, repeats=args.repeats, quick=args.quick,
               results=[], skipped={}, wall_seconds={}, loadavg_after={"start": os.getloadavg()})
    steps = [("a", lambda: measure_fit_predict(data, sz, args.repeats)),
             ("b", lambda: measure_peer(data, sz, args.repeats, args.skntk_python)),
             ("c", lambda: measure_grid_diag_reg(data, sz, args.repeats)),
             ("d", lambda: measure_grid_depth(sz, args.repeats)),
             ("e", lambda: measure_memory(sz))]
    for key, step in steps:
        if key not in wanted:
            continue
        print(f"({key}) {MEASUREMENTS[key]} ...", flush=True)
        t = time.perf_counter()
        try:
            doc["results"] += step()
        except Exception as exc:  # record it and go on with the other measurements
            if not isinstance(exc, Skip):
                traceback.print_exc()
            doc["skipped"][key] = str(exc) if isinstance(exc, Skip) else f"failed: {exc!r}"
            print(f"  ({key}) skipped: {doc['skipped'][key]}", flush=True)
        doc["wall_seconds"][key] = time.perf_counter() - t
        doc["loadavg_after"][key] = os.getloadavg()  # other jobs on the machine
        write(args.out, doc)
    print("\n| | case | ratio | target | met | raw |\n|---|---|---|---|---|---|")
    for r in doc["results"]:
        raw = ", ".join(f"{k} {v:.3g}" for k, v in r["raw"].items())
        print(f"| {r['measurement']} | {r['case']} | {r['ratio']:.2f} | {r['target']} "
              f"| {'yes' if r['target_met'] else 'NO'} | {raw} |")
    print(f"\nWrote {args.out} ({source}).")


if __name__ == "__main__":
    main()
