"""
Finite networks against their infinite-width kernels, across width
===================================================================

Lee et al. (2020) compare finite networks with the NNGP and NT kernels of the
same architecture: centered and ensembled networks behave more like the
infinite ones (finding 3), NTK parameterization beats standard
parameterization (finding 5), and accuracy can depend non-monotonically on
width (finding 9).

This example trains :class:`sknngp.finite.FiniteNetClassifier` in the kernel
regime (``regime="kernel"``: fully connected, MSE on centered one-hot targets,
full-batch gradient descent, no early stopping) at several widths,
in NTK and standard parameterization, plain or centered and ensembled, on a
training subset of scikit-learn's 8x8 digits, and draws the accuracy of the
NNGP and NTK kernel classifiers of the same architecture beside it: the NTK
both converged (``t=None``) and at the networks' training time (``t`` =
number of gradient steps, same learning rate). Every model sees the same
standardized pixels. It prints a table and saves ``finite_vs_infinite.png``
in ``--out``.

Learning rates: NTK parameterization uses ``--lr``. The standard
parameterization's NTK grows with the width, so for it the learning rate is
rescaled per width by ``lambda_max(Theta_ntk) / lambda_max(Theta_std(width))``
(both infinite-width kernels of the training set), which gives both
parameterizations the same speed along the top eigendirection.

Run::

    python examples/plot_finite_vs_infinite.py --out /tmp

Measured with the defaults (300 training and 600 test images, fc depth 2,
widths 32/128/512, 300 full-batch steps of lr=1, ensembles of 4; about
2.5 minutes on two busy CPU cores with one torch thread):

======================================  =====  =====  =====
test accuracy                            32     128    512
======================================  =====  =====  =====
NTK param.                              0.422  0.428  0.482
NTK param., centered                    0.865  0.915  0.933
NTK param., centered + ensemble of 4    0.918  0.927  0.933
standard param.                         0.440  0.395  0.440
standard param., centered               0.865  0.918  0.920
standard param., centered + ensemble    0.922  0.928  0.933
======================================  =====  =====  =====

Kernels: NNGP 0.957, NTK converged 0.953, NTK at t=300 0.938 (finding 2:
NNGP ahead). A single uncentered network stays near 0.45 at every width,
which is what one *infinitely* wide network scores too (0.455: the NTK mean
plus its random initial function, which training does not remove at test
points): width alone does not bring a network to the kernel's accuracy.
Centering removes that noise and ensembling the rest of the fluctuation:
centered ensembles reach the NTK-at-t=300 accuracy within 0.005 at width 512
(finding 3). The parameterizations tie here except for centered single
networks at width 512 (0.933 vs 0.920, finding 5 only weakly), and no fully
connected network beats the kernels (finding 1).
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import sknngp  # noqa: E402
from sknngp.datasets import load_digits_images  # noqa: E402
from sknngp.finite import FiniteNetClassifier  # noqa: E402

VARIANTS = (  # (label, parameterization, center, n_ensemble; None: --n-ensemble)
    ("NTK param.", "ntk", False, 1),
    ("NTK param., centered", "ntk", True, 1),
    ("NTK param., centered + ensemble", "ntk", True, None),
    ("standard param.", "standard", False, 1),
    ("standard param., centered", "standard", True, 1),
    ("standard param., centered + ensemble", "standard", True, None),
)


def top_eigenvalue(X, architecture, depth, parameterization, width):
    theta = sknngp.kernel_matrix(
        X, get="ntk", architecture=architecture, depth=depth,
        parameterization=parameterization, width=width,
    )
    return float(np.linalg.eigvalsh(theta)[-1])


def single_network_accuracy(X_train, y_train, X_test, y_test, args, arch, draws=50):
    """Expected accuracy of ONE uncentered infinitely wide network after ``t`` steps.

    Its test outputs are Gaussian: the NTK-ensemble mean plus the random
    initial function that training does not remove, with the variance of Lee
    et al. (2019, eq. 16) (``NTKRegressor.predict(return_std=True)``); the
    accuracy is averaged over draws of that noise.
    """
    n_classes = len(np.unique(y_train))
    targets = np.eye(n_classes)[y_train] - 1.0 / n_classes
    reg = sknngp.NTKRegressor(t=args.epochs, learning_rate=args.lr, diag_reg=0.0, **arch)
    mean, std = reg.fit(X_train, targets).predict(X_test, return_std=True)
    rng = np.random.default_rng(args.seed)
    return float(np.mean([
        np.mean((mean + std[:, None] * rng.normal(size=mean.shape)).argmax(1) == y_test)
        for _ in range(draws)
    ]))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG")
    parser.add_argument("--n-train", type=int, default=300)
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--depth", type=int, default=2)
    parser.add_argument("--widths", type=int, nargs="+", default=[32, 128, 512])
    parser.add_argument("--lr", type=float, default=1.0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--n-ensemble", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (small networks run fastest on one)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    images, y = load_digits_images(return_X_y=True)
    rows = images.reshape(len(images), -1)
    X_train, X_test, y_train, y_test = train_test_split(
        rows, y, train_size=args.n_train, test_size=args.n_test,
        stratify=y, random_state=args.seed,
    )
    scaler = StandardScaler().fit(X_train)
    X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
    arch = dict(architecture="fc", depth=args.depth)

    kernels = {}
    for label, model in (
        ("NNGP kernel", sknngp.NNGPClassifier(**arch)),
        ("NTK kernel, converged", sknngp.NTKClassifier(**arch)),
        (f"NTK kernel, t={args.epochs}", sknngp.NTKClassifier(t=args.epochs, learning_rate=args.lr,
                                                       **arch)),
    ):
        start = time.perf_counter()
        kernels[label] = model.fit(X_train, y_train).score(X_test, y_test)
        print(f"  {label:38s} accuracy {kernels[label]:.3f}  "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
    kernels["one uncentered net, infinite width"] = single_network_accuracy(
        X_train, y_train, X_test, y_test, args, arch
    )
    print(f"  {'one uncentered net, infinite width':38s} accuracy "
          f"{kernels['one uncentered net, infinite width']:.3f}", flush=True)

    lam_ntk = top_eigenvalue(X_train, parameterization="ntk", width=None, **arch)
    finite = {label: [] for label, *_ in VARIANTS}
    for width in args.widths:
        lam_std = top_eigenvalue(X_train, parameterization="standard", width=width, **arch)
        for label, parameterization, center, n_ensemble in VARIANTS:
            lr = args.lr if parameterization == "ntk" else args.lr * lam_ntk / lam_std
            clf = FiniteNetClassifier(
                width=width, parameterization=parameterization, regime="kernel", lr=lr,
                max_epochs=args.epochs, center=center,
                n_ensemble=n_ensemble or args.n_ensemble, random_state=args.seed, **arch,
            )
            start = time.perf_counter()
            accuracy = clf.fit(X_train, y_train).score(X_test, y_test)
            finite[label].append(accuracy)
            print(f"  width {width:5d} {label:38s} lr {lr:.3g} accuracy {accuracy:.3f}  "
                  f"({time.perf_counter() - start:.1f} s)", flush=True)

    print(f"\nTest accuracy on digits (fc, depth {args.depth}, n_train={args.n_train}, "
          f"n_test={args.n_test}, {args.epochs} full-batch steps)")
    print(f"{'model':40s}" + "".join(f"{w:>8d}" for w in args.widths))
    for label, accs in finite.items():
        print(f"{label:40s}" + "".join(f"{a:8.3f}" for a in accs))
    for label, acc in kernels.items():
        print(f"{label:40s}{acc:8.3f}")

    fig, ax = plt.subplots(figsize=(9, 4.5))
    styles = ("o-", "s-", "^-", "o--", "s--", "^--")
    for k, ((label, accs), style) in enumerate(zip(finite.items(), styles)):
        ax.plot(args.widths, accs, style, color=f"C{k % 3}", label=label)
    for k, (label, acc) in enumerate(kernels.items()):
        ax.axhline(acc, color=f"C{3 + k}", ls=":", label=label)
    ax.set_xscale("log", base=2)
    ax.set_xticks(args.widths, [str(w) for w in args.widths])
    ax.set_xlabel("width")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"Finite vs infinite fc-{args.depth} on 8x8 digits "
                 f"({args.n_train} training images)")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.02, 0.5),
              title="finite (lines) / infinite width (dotted)", title_fontsize=8)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "finite_vs_infinite.png"
    fig.savefig(path, dpi=120)
    print(f"\nsaved {path}")
    return finite, kernels


if __name__ == "__main__":
    main()
