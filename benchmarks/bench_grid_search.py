"""GridSearchCV over diag_reg costs about one kernel computation.

GridSearchCV(NNGPClassifier(architecture="cnn-vec", depth=8), 10 diag_reg values, 5
folds) on 1000 digits images, against one ``kernel_matrix(X)`` call on the same
1000 images, in the same run (so the ratio, not the absolute time, is the
figure). BENCH_DEPTH=3 runs CNN-VEC-3. Writes
benchmarks/results/grid_search_cnn-vec-<depth>.json.

    .venv/bin/python benchmarks/bench_grid_search.py
"""

import json
import os
import platform
import sys
import time

import jax
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

import sknngp
from sknngp import _bank

HERE = os.path.dirname(os.path.abspath(__file__))
DEPTH = int(os.environ.get("BENCH_DEPTH", "8"))
ARCH = dict(architecture="cnn-vec", depth=DEPTH, input_shape=(8, 8, 1))


def main(n=1000, repeats=2):
    X, y = load_digits(return_X_y=True)
    X, y = X[:n] / 16.0, y[:n]
    sknngp.kernel_matrix(X[:300], get="nngp", **ARCH)  # compile
    t_kernel = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        sknngp.kernel_matrix(X, get="nngp", **ARCH)
        t_kernel = min(t_kernel, time.perf_counter() - t)
    grid = {"diag_reg": np.logspace(-6, 0, 10)}
    t_grid = np.inf
    for _ in range(repeats):
        _bank.clear()
        t = time.perf_counter()
        gs = GridSearchCV(sknngp.NNGPClassifier(**ARCH), grid, cv=5).fit(X, y)
        t_grid = min(t_grid, time.perf_counter() - t)
    stats = dict(_bank.stats)
    res = dict(
        n=n, folds=5, n_diag_reg=10, architecture=ARCH,
        kernel_matrix_seconds=t_kernel, grid_search_seconds=t_grid,
        ratio=t_grid / t_kernel, best_diag_reg=float(gs.best_params_["diag_reg"]),
        best_cv_accuracy=float(gs.best_score_), cache_stats=stats,
        entries_computed_over_n2=stats["entries_computed"] / n**2,
        meta=dict(machine=platform.platform(), cpu_count=os.cpu_count(),
                  python=sys.version.split()[0], jax=jax.__version__,
                  sknngp=sknngp.__version__, date=time.strftime("%Y-%m-%d")),
    )
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", f"grid_search_cnn-vec-{DEPTH}.json"), "w") as fh:
        json.dump(res, fh, indent=1)
    print(f"kernel_matrix(X): {t_kernel:.2f} s; GridSearchCV 10 x 5 folds: {t_grid:.2f} s; "
          f"ratio {t_grid / t_kernel:.2f}; entries computed / n^2 = "
          f"{res['entries_computed_over_n2']:.2f}; best diag_reg {res['best_diag_reg']:.1e}, "
          f"CV accuracy {res['best_cv_accuracy']:.3f}")


if __name__ == "__main__":
    main()
