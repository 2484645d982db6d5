"""What the scikit-learn kernels cost: gradients, and a GP fit against scikit-ntk.

Every figure is from one run on one machine (shared and noisy: compare the
ratios within a run), float64, on sklearn's digits (pixels / 16).

(a) Kernel + gradient / kernel alone, depth-3 ReLU NTK (the NTK carries the
    NNGP along): the symmetric train block computed by the engine
    (``kernel_matrix``, compiled for the value), by the traced program
    (``NTKKernel(kernel_cache="off")``: ``W_std``, ``b_std`` are arguments),
    and with the gradient in ``log W_std`` and ``log b_std`` (two tangents,
    ``eval_gradient=True``). Each timing is the best of ``--repeats`` after
    one untimed (compiling) call. FC on 1,000 rows, CNN-VEC on 200 and
    CNN-GAP on 48 images of 8x8.
(b) GaussianProcessRegressor fit (marginal-likelihood optimization, default
    L-BFGS-B, no restarts) + predict, FC depth 3 NTK on unit-norm rows,
    one-hot targets minus 0.1, ``alpha=1e-3``, 500 train / 500 test rows:
    sknngp's ``NTKKernel`` (``W_std`` and ``b_std`` fitted) against
    scikit-ntk 1.2.1's ``NeuralTangentKernel`` (``bias`` fitted; its own
    venv, through ``_skntk_gp_worker.py``). The first run of each side is
    cold (sknngp: JAX compilation; its kernel bank is emptied before every
    run), the others warm. The kernels are normalized differently, so their
    likelihoods are not comparable; test accuracy (arg-max) is reported.
    Most of a fit is GaussianProcessRegressor's own O(n^3) algebra (a
    Cholesky factorization and an inverse per optimizer step), the same on
    both sides; the part the kernels own is timed on its own: the train
    kernel with its gradient (sknngp: 2 hyperparameters, scikit-ntk: 1),
    best of ``--runs`` after one untimed call, and the number of
    log-marginal-likelihood evaluations of each fit is recorded.

    python benchmarks/bench_gp_kernels.py --skntk-python .skntk-venv/bin/python
    python benchmarks/bench_gp_kernels.py --quick --out /tmp/gp.json

Writes benchmarks/results/gp_kernels.json and prints a table.
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
import scipy
import sklearn
from sklearn.datasets import load_digits
from sklearn.gaussian_process import GaussianProcessRegressor

import sknngp
from sknngp import NTKKernel, _bank, kernel_matrix

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
FULL = dict(sizes={"fc": 1000, "cnn-vec": 200, "cnn-gap": 48}, n_train=500, n_test=500)
QUICK = dict(sizes={"fc": 100, "cnn-vec": 20, "cnn-gap": 8}, n_train=60, n_test=60)


def best_time(fn, repeats):
    fn()  # compiles
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def measure_gradient(X, sizes, repeats):
    rows = []
    for arch, n in sizes.items():
        shape = None if arch == "fc" else (8, 8, 1)
        x = X[:n]
        kw = dict(architecture=arch, depth=3, input_shape=shape)
        traced = NTKKernel(arch, depth=3, input_shape=shape, kernel_cache="off")
        t_engine = best_time(lambda: kernel_matrix(x, get="ntk", **kw), repeats)
        t_traced = best_time(lambda: traced(x), repeats)
        t_grad = best_time(lambda: traced(x, eval_gradient=True), repeats)
        rows.append(dict(architecture=arch, n=n, engine_s=t_engine, traced_s=t_traced,
                         gradient_s=t_grad, gradient_over_engine=t_grad / t_engine,
                         traced_over_engine=t_traced / t_engine))
        print(f"(a) {arch:8} n={n:5}  engine {t_engine:8.3f}s  traced {t_traced:8.3f}s  "
              f"value+grad {t_grad:8.3f}s  grad/engine {t_grad / t_engine:5.2f}")
    return rows


def gp_data(X, y, n_train, n_test):
    rng = np.random.default_rng(0)
    idx = rng.permutation(len(X))[:n_train + n_test]
    Xs = X[idx] / np.linalg.norm(X[idx], axis=1, keepdims=True)
    Y = np.eye(10)[y[idx]] - 0.1
    return Xs[:n_train], Y[:n_train], Xs[n_train:], Y[n_train:]



class CountingGPR(GaussianProcessRegressor):
    """Counts the log-marginal-likelihood evaluations of a fit (``n_lml_``)."""

    def log_marginal_likelihood(self, *args, **kwargs):
        self.n_lml_ = getattr(self, "n_lml_", 0) + 1
        return super().log_marginal_likelihood(*args, **kwargs)

def measure_gpr(data, runs):
    Xtr, Ytr, Xte, Yte = data
    seconds = []
    for _ in range(runs):
        _bank.clear()
        t = time.perf_counter()
        gpr = CountingGPR(NTKKernel(depth=3, b_std=0.1), alpha=1e-3)
        pred = gpr.fit(Xtr, Ytr).predict(Xte)
        seconds.append(time.perf_counter() - t)
    kernel = NTKKernel(depth=3, b_std=0.1)
    kernel(Xtr, eval_gradient=True)
    gradient_seconds = []
    for _ in range(runs):
        t = time.perf_counter()
        kernel(Xtr, eval_gradient=True)
        gradient_seconds.append(time.perf_counter() - t)
    return dict(seconds=seconds, kernel_gradient_seconds=gradient_seconds,
                kernel=repr(gpr.kernel_),
                log_marginal_likelihood=float(gpr.log_marginal_likelihood_value_),
                lml_evaluations=gpr.n_lml_,
                accuracy=float(np.mean(pred.argmax(1) == Yte.argmax(1))))


def measure_skntk(data, runs, python):
    if not python or not os.path.exists(python):
        return dict(skipped=f"no scikit-ntk python at {python!r}")
    Xtr, Ytr, Xte, Yte = data
    cfg = json.dumps(dict(depth=3, bias=0.1, alpha=1e-3, repeats=runs))
    with tempfile.TemporaryDirectory() as tmp:
        inp, outp = os.path.join(tmp, "in.npz"), os.path.join(tmp, "out.json")
        np.savez(inp, Xtr=Xtr, ytr=Ytr, Xte=Xte, yte=Yte, config=cfg)
        subprocess.run([python, os.path.join(HERE, "_skntk_gp_worker.py"), inp, outp],
                       check=True)
        with open(outp) as fh:
            return json.load(fh)


def meta():
    src = os.path.dirname(os.path.abspath(sknngp.__file__))
    commit = subprocess.run(["git", "-C", src, "rev-parse", "HEAD"], capture_output=True,
                            text=True).stdout.strip()
    return dict(machine=platform.platform(), processor=platform.processor(),
                cpu_count=os.cpu_count(), python=sys.version.split()[0],
                numpy=np.__version__, scipy=scipy.__version__, jax=jax.__version__,
                sklearn=sklearn.__version__, sknngp=sknngp.__version__,
                sknngp_commit=commit or None, devices=[str(d) for d in jax.devices()],
                dtype="float64", data="sklearn digits / 16", load_average=os.getloadavg(),
                date=time.strftime("%Y-%m-%d %H:%M:%S %z"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny sizes (a smoke test)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--runs", type=int, default=2, help="GP fits per side (first is cold)")
    ap.add_argument("--skntk-python", default=os.path.join(ROOT, ".skntk-venv", "bin", "python"))
    ap.add_argument("--out", default=os.path.join(HERE, "results", "gp_kernels.json"))
    args = ap.parse_args()
    sz = QUICK if args.quick else FULL
    X, y = load_digits(return_X_y=True)
    X = X / 16.0
    doc = dict(meta=meta(), config=dict(vars(args), **sz))
    doc["gradient"] = measure_gradient(X, sz["sizes"], args.repeats)
    data = gp_data(X, y, sz["n_train"], sz["n_test"])
    doc["gpr"] = dict(sknngp=measure_gpr(data, args.runs),
                      skntk=measure_skntk(data, args.runs, args.skntk_python))
    for side, res in doc["gpr"].items():
        if "seconds" in res:
            print(f"(b) {side:7} fit+predict {', '.join(f'{s:.2f}s' for s in res['seconds'])}"
                  f"  train kernel + gradient {min(res['kernel_gradient_seconds']):.3f}s"
                  f"  {res['lml_evaluations']} likelihood evaluations"
                  f"  accuracy {res['accuracy']:.3f}  {res['kernel']}")
        else:
            print(f"(b) {side:7} {res}")
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(args.out)), suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(doc, fh, indent=1)
    os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
