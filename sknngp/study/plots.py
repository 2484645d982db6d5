"""One figure per experiment, drawn from its result rows (matplotlib, Agg).

Every figure carries a subtitle with the data set, training-set size and
seed; bars start at zero and carry their values; curves compared with each
other share their y axis; legends sit below the axes, off the data.
"""

from __future__ import annotations

import io

import numpy as np
import pandas as pd

from ._io import atomic_write

AGREEMENT = ("agreement: fraction of test images on which the network and the "
             "NTK prediction at the same training time pick the same class")


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _panels(n, ncols=1, size=(5.0, 3.6), sharey=False):
    plt = _pyplot()
    fig, axes = plt.subplots(n, ncols, figsize=(size[0] * ncols, size[1] * n), squeeze=False,
                             sharey=sharey)
    return plt, fig, axes


def _ok(rows):
    return rows[rows["status"] == "ok"]


def _legend_below(ax, ncol=2):
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=ncol,
                  frameon=False)


def _bars(ax, groups, series, values):
    """Grouped bars from 0 with their values written on top."""
    step = 0.8 / max(1, len(series))
    for k, label in enumerate(series):
        heights = np.array([values.get((g, label), np.nan) for g in groups], dtype=float)
        x = np.arange(len(groups)) + (k - (len(series) - 1) / 2) * step
        bars = ax.bar(x, np.nan_to_num(heights), step, label=label)
        for bar, h in zip(bars, heights):
            if np.isfinite(h):
                ax.annotate(f"{h:.3f}", (bar.get_x() + bar.get_width() / 2, h),
                            ha="center", va="bottom", fontsize=6, rotation=90,
                            xytext=(0, 2), textcoords="offset points")
    ax.set_xticks(np.arange(len(groups)), groups, fontsize=8)
    ax.set_ylim(0.0, 1.12)
    ax.set_yticks(np.linspace(0, 1, 6))


def plot_finite_vs_infinite(rows):
    plt, fig, axes = _panels(1, size=(7.0, 4.2))
    ax = axes[0, 0]
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    series = {("finite", "plain, tuned"): "finite, plain (tuned)",
              ("finite", "centered, tuned"): "finite, centered (tuned)",
              ("nngp", "diag_reg by CV"): "NNGP (diag_reg by CV)",
              ("ntk", "diag_reg by CV"): "NTK (diag_reg by CV)"}
    values = {}
    for _, r in rows.iterrows():
        label = series.get((r["model"], r["variant"]))
        if label:
            values[(r["architecture"], label)] = float(r["accuracy"])
    _bars(ax, archs, list(series.values()), values)
    ax.set_ylabel("test accuracy")
    ax.set_title("Finite networks vs their infinite-width kernels", fontsize=10)
    _legend_below(ax, ncol=2)
    return fig


def plot_regularization(rows):
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    plt, fig, axes = _panels(len(archs), 2, size=(5.0, 3.8), sharey=True)
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
        sel = sub[sub["param"] == "t"].sort_values("value")
        right.semilogx(sel["value"], sel["accuracy"], "s-", color="C1", label="NTK test")
        right.semilogx(sel["value"], sel["cv_accuracy"], "--", color="C1", label="NTK CV")
        right.set(xlabel="training time t, short to long",
                  title=f"{arch}: early stopping")
        right.tick_params(labelleft=True)
        for ax in (left, right):
            ax.title.set_fontsize(9)
            _legend_below(ax)
    return fig


def plot_zca(rows):
    rows = _ok(rows)
    plt, fig, axes = _panels(1, size=(6.0, 4.2))
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
    _legend_below(ax)
    return fig


def plot_precision(rows):
    plt, fig, axes = _panels(1, size=(6.0, 4.2))
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
                        label=f"{arch}, {dtype}: solve failed")
    sizes = sorted(rows["value"].astype(float).unique())
    ax.set_xticks(sizes, [f"{n:g}" for n in sizes])
    ax.minorticks_off()
    ax.set(xlabel="training-set size", ylabel="test accuracy (NNGP)",
           title="Kernel precision: float32 vs float64")
    _legend_below(ax)
    return fig


def plot_finite_width(rows):
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    plt, fig, axes = _panels(len(archs), 2, size=(5.4, 4.2))
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
            ax.title.set_fontsize(9)
            _legend_below(ax, ncol=1)
        left.set(xlabel="width", ylabel="test accuracy", title=f"{arch}: finite vs infinite")
        right.set(xlabel="width", ylabel="agreement with NTK(t)", ylim=(0, 1.02),
                  title=f"{arch}: agreement with the kernel")
    fig.text(0.5, 0.005, AGREEMENT, ha="center", fontsize=7, style="italic")
    return fig


def plot_weight_decay(rows):
    rows = _ok(rows)
    archs = list(dict.fromkeys(rows["architecture"]))
    plt, fig, axes = _panels(len(archs), size=(7.0, 4.2))
    for i, arch in enumerate(archs):
        ax = axes[i, 0]
        sub = rows[rows["architecture"] == arch]
        groups = list(sub["variant"])
        values = {}
        for _, r in sub.iterrows():
            values[(r["variant"], "test accuracy")] = float(r["accuracy"])
            values[(r["variant"], "agreement with NTK(t)")] = float(r["agreement"])
        _bars(ax, groups, ["test accuracy", "agreement with NTK(t)"], values)
        ax.set_title(f"{arch}: centered networks, learning rate and weight decay", fontsize=9)
        _legend_below(ax)
    fig.text(0.5, 0.005, AGREEMENT, ha="center", fontsize=7, style="italic")
    return fig


def plot_augmentation(rows):
    from matplotlib.ticker import MaxNLocator

    rows = _ok(rows)
    plt, fig, axes = _panels(1, size=(6.0, 4.2))
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
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="augmented draws averaged", ylabel="test accuracy (NNGP)",
           title="Kernel ensembles over augmented draws")
    _legend_below(ax)
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


def subtitle(meta):
    """``"<dataset>, n_train=..., n_test=..., seed ..."`` from run metadata."""
    meta = meta or {}
    parts = [str(meta["dataset"])] if meta.get("dataset") else []
    for key in ("n_train", "n_test"):
        if meta.get(key) is not None:
            parts.append(f"{key}={meta[key]}")
    if meta.get("depth") is not None:
        parts.append(f"depth {meta['depth']}")
    if meta.get("seed") is not None:
        parts.append(f"seed {meta['seed']}")
    return ", ".join(parts)


def save_plot(experiment, rows, path, meta=None):
    """Draw ``experiment``'s figure from its rows into ``path`` (PNG, written atomically)."""
    plt = _pyplot()
    fig = PLOTS[experiment](pd.DataFrame(rows))
    text = subtitle(meta)
    if text:
        fig.suptitle(text, fontsize=8, color="0.3")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    buffer = io.BytesIO()
    fig.savefig(buffer, dpi=110, format="png")
    plt.close(fig)
    atomic_write(path, buffer.getvalue())
    return path
