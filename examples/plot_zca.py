"""
Regularized ZCA whitening before an NNGP classifier
===================================================

Lee et al. (2020) report that regularized ZCA whitening of the inputs improves
the accuracy of NNGP and NT kernels (finding 8), with the regularizer
``zca_reg`` (relative to the mean eigenvalue of the pixel second-moment matrix)
as the knob: ``zca_reg -> 0`` whitens fully, ``zca_reg -> inf`` leaves the
(standardized) images unchanged up to a scale.

This example sweeps ``zca_reg`` for a ``Pipeline(ZCAWhitener, NNGPClassifier)``
on a small training subset of scikit-learn's 8x8 digits, for a fully connected
and a convolutional NNGP kernel, and compares with two baselines: raw pixels,
and per-image standardization alone (the whitener's first step, without the
whitening). It prints a table and saves ``zca_digits.png`` in ``--out``.

Run::

    python examples/plot_zca.py --out /tmp

On digits the measured effect is the opposite of the paper's CIFAR-10 finding
(defaults: 200 training and 600 test images, depth 3; about 30 s on two cores).
Accuracy rises monotonically with ``zca_reg``: fc 0.912 at ``zca_reg=0.001``,
0.923 at 0.1, 0.948 from 10 on; cnn-vec 0.923, 0.933, 0.948; raw pixels give
0.945 (fc) and 0.947 (cnn-vec), per-image standardization alone 0.948 for both.
So ZCA does not help here: 8x8 digits are centred, low-resolution glyphs whose
class signal sits in the high-variance directions that whitening flattens,
while the paper's gains come from natural images, where whitening removes
strong low-frequency pixel correlations.
"""

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

import sknngp  # noqa: E402
from sknngp.datasets import load_digits_images  # noqa: E402

SHAPE = (8, 8, 1)
ZCA_REGS = (1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0)


def nngp(architecture, depth):
    """The kernel classifier, identical in every pipeline."""
    return sknngp.NNGPClassifier(
        architecture=architecture, depth=depth, activation="relu",
        W_std=2**0.5, b_std=0.1, input_shape=SHAPE, diag_reg=1e-3, dtype="float64",
    )


def candidates(architecture, depth):
    """(label, zca_reg or None, estimator) for the baselines and the sweep."""
    yield "raw pixels", None, nngp(architecture, depth)
    yield "per-image std", None, make_pipeline(sknngp.PerImageStandardizer(),
                                               nngp(architecture, depth))
    for zca_reg in ZCA_REGS:
        zca = sknngp.ZCAWhitener(zca_reg=zca_reg, standardize_channels=True,
                                 per_image_standardize=True, input_shape=SHAPE)
        yield f"ZCA {zca_reg:g}", zca_reg, make_pipeline(zca, nngp(architecture, depth))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the PNG")
    parser.add_argument("--n-train", type=int, default=200)
    parser.add_argument("--n-test", type=int, default=600)
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--architectures", nargs="+", default=["fc", "cnn-vec"])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    images, y = load_digits_images(return_X_y=True)
    rows = images.reshape(len(images), -1)  # NHWC rows: what a Pipeline passes on
    X_train, X_test, y_train, y_test = train_test_split(
        rows, y, train_size=args.n_train, test_size=args.n_test,
        stratify=y, random_state=args.seed,
    )

    results = {}  # architecture -> list of (label, zca_reg, accuracy, seconds)
    for architecture in args.architectures:
        for label, zca_reg, model in candidates(architecture, args.depth):
            start = time.perf_counter()
            accuracy = model.fit(X_train, y_train).score(X_test, y_test)
            seconds = time.perf_counter() - start
            results.setdefault(architecture, []).append((label, zca_reg, accuracy, seconds))
            print(f"  {architecture:8s} {label:14s} accuracy {accuracy:.3f}  ({seconds:.1f} s)",
                  flush=True)

    print(f"\nNNGP test accuracy on digits (n_train={args.n_train}, n_test={args.n_test}, "
          f"depth={args.depth})")
    labels = [label for label, *_ in results[args.architectures[0]]]
    print(f"{'preprocessing':16s}" + "".join(f"{a:>10s}" for a in args.architectures))
    for i, label in enumerate(labels):
        print(f"{label:16s}" + "".join(f"{results[a][i][2]:10.3f}" for a in args.architectures))

    fig, ax = plt.subplots(figsize=(6, 4))
    for k, architecture in enumerate(args.architectures):
        rows_ = results[architecture]
        color = f"C{k}"
        regs = [r for _, r, _, _ in rows_ if r is not None]
        accs = [acc for _, r, acc, _ in rows_ if r is not None]
        ax.plot(regs, accs, "o-", color=color, label=f"{architecture}: ZCA")
        ax.axhline(rows_[0][2], color=color, ls=":", label=f"{architecture}: raw pixels")
        ax.axhline(rows_[1][2], color=color, ls="--", label=f"{architecture}: per-image std")
    ax.set_xscale("log")
    ax.set_xlabel("zca_reg (relative to tr(C)/d)")
    ax.set_ylabel("test accuracy")
    ax.set_title(f"NNGP on 8x8 digits, {args.n_train} training images")
    ax.legend(fontsize=7)
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "zca_digits.png"
    fig.savefig(path, dpi=120)
    print(f"\nsaved {path}")
    return results


if __name__ == "__main__":
    main()
