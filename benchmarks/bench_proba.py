"""predict_proba: leave-one-out temperature scaling against CalibratedClassifierCV.

For NNGPClassifier and NTKClassifier (FC-3 on Fashion-MNIST rows when its
files are on disk, else digits; CNN-VEC-3 on digits), one run compares:

- ours: ``fit`` + ``predict_proba`` (the temperature is fitted inside ``fit``
  from closed-form leave-one-out outputs);
- ``CalibratedClassifierCV(clf, method="sigmoid", cv=5)`` around the same
  classifier (5 refits on 4/5 of the data, one-vs-rest Platt scaling);

reporting held-out log-loss, accuracy and wall time (kernel bank emptied
before each side, best of ``--repeats``). It also times the leave-one-out step
against the Cholesky factorization it follows (the floor of a fit's solve),
at n = 2,000 and 6,000, to show its share of the fit budget.

    python benchmarks/bench_proba.py [--quick] [--out benchmarks/results/proba.json]
"""

import argparse
import os
import sys
import time

import numpy as np
import scipy.linalg
from sklearn.calibration import CalibratedClassifierCV
from sklearn.datasets import load_digits
from sklearn.metrics import accuracy_score, log_loss
from sklearn.model_selection import train_test_split

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_fit import meta, write  # noqa: E402

from sknngp import NNGPClassifier, NTKClassifier, _bank, _loo  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def fashion(n_train, n_test):
    try:
        from sknngp.datasets import load_fashion_mnist

        d = load_fashion_mnist(download=False, n_train=n_train, n_test=n_test)
    except FileNotFoundError:
        return None
    return (d.X_train.reshape(n_train, -1), d.y_train, d.X_test.reshape(n_test, -1), d.y_test,
            "fashion-mnist")


def digits(n_train):
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X / 16, y, train_size=n_train, random_state=0,
                                          stratify=y)
    return Xtr, ytr, Xte, yte, "digits"


def best_of(fn, repeats):
    best, out = np.inf, None
    for _ in range(repeats):
        _bank.clear()
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def compare(name, est, data, repeats):
    Xtr, ytr, Xte, yte, source = data

    def ours():
        clf = est.fit(Xtr, ytr)
        return clf.predict_proba(Xte), clf.temperature_

    def platt():
        cal = CalibratedClassifierCV(est, method="sigmoid", cv=5).fit(Xtr, ytr)
        return cal.predict_proba(Xte), None

    ours(), platt()  # compile
    t_ours, (P, T) = best_of(ours, repeats)
    t_platt, (Q, _) = best_of(platt, repeats)
    labels = np.unique(ytr)
    row = dict(case=name, data=source, n_train=len(Xtr), n_test=len(Xte), temperature=T,
               ours=dict(seconds=t_ours, log_loss=log_loss(yte, P, labels=labels),
                         accuracy=accuracy_score(yte, labels[P.argmax(1)])),
               calibrated_cv_sigmoid=dict(seconds=t_platt,
                                          log_loss=log_loss(yte, Q, labels=labels),
                                          accuracy=accuracy_score(yte, labels[Q.argmax(1)])))
    row["log_loss_ratio_ours_over_calibrated"] = row["ours"]["log_loss"] / \
        row["calibrated_cv_sigmoid"]["log_loss"]
    row["time_ratio_calibrated_over_ours"] = t_platt / t_ours
    print(f"{name:34s} {source:13s} log-loss ours {row['ours']['log_loss']:.4f} vs "
          f"CalibratedCV {row['calibrated_cv_sigmoid']['log_loss']:.4f}; time ours "
          f"{t_ours:.2f} s vs {t_platt:.2f} s ({row['time_ratio_calibrated_over_ours']:.1f}x)",
          flush=True)
    return row


def loo_share(n, repeats, n_classes=10):
    """The leave-one-out step (up to LOO_ROWS triangular solves + temperature)
    against the Cholesky factorization of the same n x n matrix."""
    rng = np.random.RandomState(0)
    B = rng.normal(size=(n, n // 4))
    A = B @ B.T / n + np.eye(n)
    y = rng.randint(0, n_classes, n)
    Y = np.eye(n_classes)[y] - 1 / n_classes
    t_chol, U = best_of(lambda: scipy.linalg.cholesky(A, lower=False, check_finite=False),
                        repeats)
    alpha = scipy.linalg.cho_solve((U, False), Y)
    op = type("Op", (), {"U": U})()

    def loo():
        rows = _loo.loo_rows(n)
        return _loo.fit_temperature(_loo.loo_outputs(op, Y, alpha, rows), y[rows])

    t_loo, _ = best_of(loo, repeats)
    print(f"n={n}: Cholesky {t_chol:.3f} s, leave-one-out step {t_loo:.3f} s "
          f"({t_loo / t_chol:.1%})", flush=True)
    return dict(n=n, cholesky_seconds=t_chol, loo_seconds=t_loo, loo_over_cholesky=t_loo / t_chol)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results", "proba.json"))
    args = ap.parse_args()
    repeats = 1 if args.quick else args.repeats
    n_fm = (300, 200) if args.quick else (2000, 1000)
    fm = fashion(*n_fm) or digits(1000)
    dg = digits(300 if args.quick else 1000)
    cnn = dict(architecture="cnn-vec", depth=3, input_shape=(8, 8, 1))
    doc = dict(meta=meta(fm[-1]), rows=[], loo_share=[])
    cases = [("NNGPClassifier FC-3", NNGPClassifier(architecture="fc", depth=3), fm),
             ("NTKClassifier FC-3", NTKClassifier(architecture="fc", depth=3), fm),
             ("NTKClassifier FC-3 t=100", NTKClassifier(architecture="fc", depth=3, t=100.0),
              fm),
             ("NNGPClassifier CNN-VEC-3", NNGPClassifier(**cnn), dg),
             ("NTKClassifier CNN-VEC-3", NTKClassifier(**cnn), dg)]
    for name, est, data in cases:
        doc["rows"].append(compare(name, est, data, repeats))
        write(args.out, doc)
    for n in ((500, 1000) if args.quick else (2000, 6000)):
        doc["loo_share"].append(loo_share(n, repeats))
        write(args.out, doc)


if __name__ == "__main__":
    main()
