"""Time GaussianProcessRegressor with scikit-ntk's kernel, bias fitted by marginal likelihood.

Usage: python _skntk_gp_worker.py IN.npz OUT.json (runs in scikit-ntk's own
venv; called by bench_gp_kernels.py). Reads Xtr, ytr, Xte, yte and a JSON
config (depth, bias, alpha, repeats); writes the fit + predict seconds of each
run (the first is the cold one), the seconds of each evaluation of the train
kernel with its gradient (after one untimed), the fitted kernel, the log marginal
likelihood, the test accuracy (arg-max of the one-hot prediction) and the
versions.
"""
import json
import sys
import time
from importlib.metadata import version

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from skntk import NeuralTangentKernel



class CountingGPR(GaussianProcessRegressor):
    """Counts the log-marginal-likelihood evaluations of a fit (``n_lml_``)."""

    def log_marginal_likelihood(self, *args, **kwargs):
        self.n_lml_ = getattr(self, "n_lml_", 0) + 1
        return super().log_marginal_likelihood(*args, **kwargs)

def main(inp, out):
    data = np.load(inp)
    cfg = json.loads(str(data["config"]))
    seconds = []
    for _ in range(cfg["repeats"]):
        t = time.perf_counter()
        gpr = CountingGPR(
            NeuralTangentKernel(depth=cfg["depth"], bias=cfg["bias"]), alpha=cfg["alpha"])
        pred = gpr.fit(data["Xtr"], data["ytr"]).predict(data["Xte"])
        seconds.append(time.perf_counter() - t)
    kernel = NeuralTangentKernel(depth=cfg["depth"], bias=cfg["bias"])
    kernel(data["Xtr"], eval_gradient=True)
    gradient_seconds = []
    for _ in range(cfg["repeats"]):
        t = time.perf_counter()
        kernel(data["Xtr"], eval_gradient=True)
        gradient_seconds.append(time.perf_counter() - t)
    with open(out, "w") as fh:
        json.dump({
            "seconds": seconds, "kernel_gradient_seconds": gradient_seconds, "kernel": repr(gpr.kernel_),
            "log_marginal_likelihood": float(gpr.log_marginal_likelihood_value_),
            "lml_evaluations": gpr.n_lml_,
            "accuracy": float(np.mean(pred.argmax(1) == data["yte"].argmax(1))),
            "versions": {p: version(p) for p in ("scikit-ntk", "scikit-learn", "numpy", "scipy")},
            "python": sys.version.split()[0],
        }, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
