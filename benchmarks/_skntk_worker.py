"""Time scikit-ntk's GaussianProcessRegressor fit + predict (runs in its own venv).

Usage: python _skntk_worker.py IN.npz OUT.json -- called by bench_fit.py with
the python of the scikit-ntk venv (`make .skntk-venv/.installed` builds it).
Reads Xtr, ytr, Xte and a JSON config (depth, bias, alpha, repeats); prints
nothing, writes {"seconds": [...], "versions": {...}}. One untimed warm-up run
comes first, as on the sknngp side.
"""
import json
import sys
import time
from importlib.metadata import version

import numpy as np
from sklearn.gaussian_process import GaussianProcessRegressor
from skntk import NeuralTangentKernel


def fit_predict(cfg, Xtr, ytr, Xte):
    kernel = NeuralTangentKernel(depth=cfg["depth"], bias=cfg["bias"])
    gpr = GaussianProcessRegressor(kernel=kernel, optimizer=None, alpha=cfg["alpha"])
    return gpr.fit(Xtr, ytr).predict(Xte)


def main(inp, out):
    data = np.load(inp)
    cfg = json.loads(str(data["config"]))
    Xtr, ytr, Xte = data["Xtr"], data["ytr"], data["Xte"]
    pred = fit_predict(cfg, Xtr, ytr, Xte)  # warm-up
    seconds = []
    for _ in range(cfg["repeats"]):
        t = time.perf_counter()
        pred = fit_predict(cfg, Xtr, ytr, Xte)
        seconds.append(time.perf_counter() - t)
    versions = {p: version(p) for p in ("scikit-ntk", "scikit-learn", "numpy", "scipy")}
    with open(out, "w") as fh:
        json.dump({"seconds": seconds, "versions": versions,
                   "python": sys.version.split()[0],
                   "prediction_shape": list(np.shape(pred))}, fh)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
