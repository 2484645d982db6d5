"""One figure per experiment, drawn from its result rows (matplotlib, Agg)."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(n, ncols=1, size=(5.0, 3.6)):
    plt = _pyplot()
    fig, axes = plt.subplots(n, ncols, figsize=(size[0] * ncols, size[1] * n), squeeze=False)
    return plt, fig, axes


def _ok(rows):
    return rows[rows["status"] == "ok"]


def plot_finite_vs_infinite(rows):
    plt, fig, axes = _panels(1, size=(6.5, 4.0))
    ax = axes[0, 0]
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    bars = [("finite", "plain", "finite, plain"), ("finite", "centered", "finite, centered"),
            ("ntk", "at the networks' training time", "NTK at the networks' t"),
            ("nngp", "diag_reg by CV", "NNGP"), ("ntk", "diag_reg by CV", "NTK")]
    step = 0.8 / len(bars)
    for k, (model, variant, label) in enumerate(bars):
        heights = []
        for arch in archs:
            sel = rows[(rows["architecture"] == arch) & (rows["model"] == model)]
            sel = sel[sel["variant"] == variant]
            heights.append(float(sel["accuracy"].iloc[0]) if len(sel) else np.nan)
        ax.bar(np.arange(len(archs)) + (k - (len(bars) - 1) / 2) * step, heights, step, label=label)
    ax.set_xticks(np.arange(len(archs)), archs)
    low = np.nanmin(rows["accuracy"].astype(float)) if len(rows) else 0.0
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_ylabel("test accuracy")
    ax.set_title("Finite networks vs their infinite-width kernels")
    ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=3)
    return fig


def plot_regularization(rows):
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    plt, fig, axes = _panels(len(archs), 2, size=(5.0, 3.4))
    for i, arch in enumerate(archs):
        sub = rows[rows["architecture"] == arch]
        left, right = axes[i]
        for model in ("nngp", "ntk"):
            sel = sub[(sub["model"] == model) & (sub["param"] == "diag_reg")].sort_values("value")
            line, = left.semilogx(sel["value"], sel["accuracy"], "o-",
                                  label=f"{model.upper()} test")
            left.semilogx(sel["value"], sel["cv_accuracy"], "--", color=line.get_color(),
                          label=f"{model.upper()} CV")
        left.invert_xaxis()
        left.set(xlabel="diag_reg (relative), strong to weak", ylabel="accuracy",
                 title=f"{arch}: diagonal regularization")
        left.legend(fontsize=7)
        sel = sub[sub["param"] == "t"].sort_values("value")
        right.semilogx(sel["value"], sel["accuracy"], "s-", color="C1", label="NTK test")
        right.semilogx(sel["value"], sel["cv_accuracy"], "--", color="C1", label="NTK CV")
        right.set(xlabel="training time t, short to long", ylabel="accuracy",
                  title=f"{arch}: early stopping")
        right.legend(fontsize=7)
    return fig


def plot_zca(rows):
    rows = _ok(rows)
    plt, fig, axes = _panels(1, size=(6.0, 4.0))
    ax = axes[0, 0]
    for k, arch in enumerate(dict.fromkeys(rows["architecture"])):
        sub = rows[rows["architecture"] == arch]
        on = sub[sub["variant"] == "ZCA"].sort_values("value")
        ax.semilogx(on["value"], on["accuracy"], "o-", color=f"C{k}", label=f"{arch}, ZCA")
        off = sub[sub["variant"] == "no ZCA"]
        if len(off):
            ax.axhline(float(off["accuracy"].iloc[0]), color=f"C{k}", ls=":",
                       label=f"{arch}, no ZCA")
    ax.set(xlabel="zca_reg (relative)", ylabel="test accuracy (NNGP)",
           title="Regularized ZCA whitening")
    ax.legend(fontsize=8)
    return fig


def plot_precision(rows):
    plt, fig, axes = _panels(1, size=(6.0, 4.0))
    ax = axes[0, 0]
    ok = _ok(rows)
    floor = np.nanmin(ok["accuracy"].astype(float)) - 0.05 if len(ok) else 0.0
    for k, arch in enumerate(dict.fromkeys(rows["architecture"])):
        for dtype, style in (("float64", "o-"), ("float32", "s--")):
            sel = rows[(rows["architecture"] == arch) & (rows["variant"] == dtype)]
            sel = sel.sort_values("value")
            good = sel[sel["status"] == "ok"]
            ax.semilogx(good["value"], good["accuracy"], style, color=f"C{k}",
                        label=f"{arch}, {dtype}", base=2)
            bad = sel[sel["status"] != "ok"]
            if len(bad):
                ax.plot(bad["value"], np.full(len(bad), floor), "x", color=f"C{k}", ms=9,
                        label=f"{arch}, {dtype}: failed")
    sizes = sorted(rows["value"].astype(float).unique())
    ax.set_xticks(sizes, [f"{n:g}" for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="training-set size", ylabel="test accuracy (NNGP)",
           title="Kernel precision: float32 vs float64")
    ax.legend(fontsize=7)
    return fig


def plot_finite_width(rows):
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    plt, fig, axes = _panels(len(archs), 2, size=(5.2, 3.6))
    for i, arch in enumerate(archs):
        sub = rows[rows["architecture"] == arch]
        left, right = axes[i]
        finite = sub[sub["model"] == "finite"]
        for k, variant in enumerate(dict.fromkeys(finite["variant"])):
            sel = finite[finite["variant"] == variant].sort_values("value")
            for ax, column in ((left, "accuracy"), (right, "agreement")):
                ax.semilogx(sel["value"], sel[column], "o-", color=f"C{k}", label=variant, base=2)
        for k, model in enumerate(("nngp", "ntk")):
            sel = sub[sub["model"] == model]
            if len(sel):
                left.axhline(float(sel["accuracy"].iloc[0]), color=f"C{5 + k}", ls=":",
                             label=f"{model.upper()} ({sel['variant'].iloc[0]})")
        widths = sorted(finite["value"].astype(float).unique())
        for ax in (left, right):
            ax.set_xticks(widths, [f"{w:g}" for w in widths])
            ax.minorticks_off()
        left.set(xlabel="width", ylabel="test accuracy", title=f"{arch}: finite vs infinite")
        right.set(xlabel="width", ylabel="agreement with NTK(t)",
                  title=f"{arch}: agreement with the kernel")
        left.legend(fontsize=6)
        right.legend(fontsize=6)
    return fig


def plot_weight_decay(rows):
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    plt, fig, axes = _panels(len(archs), size=(6.5, 3.6))
    for i, arch in enumerate(archs):
        ax = axes[i, 0]
        sub = rows[rows["architecture"] == arch]
        x = np.arange(len(sub))
        ax.bar(x - 0.2, sub["accuracy"], 0.4, label="test accuracy")
        ax.bar(x + 0.2, sub["agreement"], 0.4, label="agreement with NTK(t)")
        ax.set_xticks(x, sub["variant"], fontsize=8)
        low = np.nanmin(sub[["accuracy", "agreement"]].astype(float).to_numpy())
        ax.set_ylim(max(0.0, low - 0.1), 1.0)
        ax.set_title(f"{arch}: centered networks, learning rate and weight decay")
        ax.legend(fontsize=7, loc="lower right")
    return fig


def plot_augmentation(rows):
    rows = _ok(rows)
    plt, fig, axes = _panels(1, size=(6.0, 4.0))
    ax = axes[0, 0]
    for k, arch in enumerate(dict.fromkeys(rows["architecture"])):
        sub = rows[rows["architecture"] == arch]
        ens = sub[sub["param"] == "n_draws"].sort_values("value")
        ax.plot(ens["value"], ens["accuracy"], "o-", color=f"C{k}",
                label=f"{arch}, {ens['variant'].iloc[0]}" if len(ens) else arch)
        single = sub[sub["variant"] == "single"]
        if len(single):
            ax.axhline(float(single["accuracy"].iloc[0]), color=f"C{k}", ls=":",
                       label=f"{arch}, single predictor")
    ax.set(xlabel="augmented draws averaged", ylabel="test accuracy (NNGP)",
           title="Kernel ensembles over augmented draws")
    ax.legend(fontsize=8)
    return fig


PLOTS = {
    "finite_vs_infinite": plot_finite_vs_infinite,
    "regularization": plot_regularization,
    "zca": plot_zca,
    "precision": plot_precision,
    "finite_width": plot_finite_width,
    "weight_decay": plot_weight_decay,
    "augmentation": plot_augmentation,
}


def save_plot(experiment, rows, path):
    """Draw ``experiment``'s figure from its rows into ``path`` (PNG)."""
    fig = PLOTS[experiment](pd.DataFrame(rows))
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _pyplot().close(fig)
    return path
