"""The study's report: for each finding of the paper, what this run says.

:func:`make_report` is a pure function of the result rows (and a little
metadata for the header): it never reruns anything, so a report can be
regenerated from ``results.csv`` alone and is tested on fixed results.

Each finding has a check that reads the rows of the experiments covering it
and returns a verdict with the numbers behind it, or ``None`` when this run
did not cover it. The rules are stated in the evidence they print; they are
deliberately simple comparisons of test accuracies (one seed, one split), so
differences of a test image or two are noise.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

SUPPORTED = "supported"
NOT_SUPPORTED = "not supported"
MIXED = "mixed"
NOT_COVERED = "not covered"
PARTLY = "partly covered"
CV = "diag_reg by CV"

#: A difference of test accuracy (or agreement) counts only from this size on;
#: smaller ones are ties (one seed, one split: they are within noise).
MARGIN = 0.01
_EPS = 1e-9

#: The findings of Lee et al. (2020), as listed in the design brief.
FINDINGS = {
    1: "Kernel methods beat fully-connected finite networks but lose to convolutional "
       "finite networks.",
    2: "NNGP kernels frequently beat NT kernels.",
    3: "Centered and ensembled finite networks have reduced posterior variance and behave "
       "more like infinite ones.",
    4: "Weight decay and large learning rates break the finite/infinite correspondence.",
    5: "NTK parameterization beats standard parameterization for finite networks.",
    6: "Diagonal regularization of kernels acts like early stopping.",
    7: "Floating-point precision limits kernel performance beyond a critical dataset size "
       "(float32 vs float64).",
    8: "Regularized ZCA whitening improves accuracy.",
    9: "Finite-network performance depends non-monotonically on width.",
    10: "CNN equivariance helps only narrow networks far from the kernel regime.",
    11: "A layer-wise scaling of weight decay improves finite networks.",
    12: "Best practices for kernel prediction, including ensembling kernel predictors over "
        "augmented data.",
}

#: Which experiment covers which finding (for "not covered" hints).
COVERED_BY = {1: "finite_vs_infinite", 2: "finite_vs_infinite, regularization",
              3: "finite_width", 4: "weight_decay", 5: "finite_width", 6: "regularization",
              7: "precision", 8: "zca", 9: "finite_width",
              10: "finite_width with --finite-architectures fc cnn-vec",
              11: "weight_decay", 12: "augmentation"}


def _f(x):
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _pts(diff):
    return f"{100 * diff:+.1f} pts"


def _g(x):
    return f"{x:.3g}"


def _beats(a, b):
    """``a`` ahead of ``b`` by at least :data:`MARGIN`."""
    return bool(float(a) - float(b) >= MARGIN - _EPS)


def _tally(parts):
    """Verdict from a list of booleans: all, none or some of them hold."""
    if not parts:
        return None
    if all(parts):
        return SUPPORTED
    return MIXED if any(parts) else NOT_SUPPORTED


def _ok(df, experiment):
    return df[(df["experiment"] == experiment) & (df["status"] == "ok")]


def _acc(rows):
    """Accuracy of the single row in ``rows`` (NaN when there is none)."""
    return float(rows["accuracy"].iloc[0]) if len(rows) else float("nan")


def _by_cv(rows):
    """The row with the best cross-validation accuracy (model selection)."""
    return rows.loc[rows["cv_accuracy"].astype(float).idxmax()]


# ----------------------------------------------------------------- the checks


def _finding_1(df):
    rows = _ok(df, "finite_vs_infinite")
    parts, lines, kinds = [], [], set()
    for arch, sub in rows.groupby("architecture", sort=False):
        kernel = sub[sub["model"].isin(["nngp", "ntk"]) & (sub["variant"] == CV)]
        finite = sub[sub["model"] == "finite"]
        at_t = sub[(sub["model"] == "ntk") & (sub["param"] == "t")]
        if not len(kernel) or not len(finite):
            continue
        best_k = kernel.loc[kernel["accuracy"].idxmax()]
        best_f = finite.loc[finite["accuracy"].idxmax()]
        conv = arch != "fc"
        finite_ahead = best_f["accuracy"] > best_k["accuracy"]
        holds = (_beats(best_f["accuracy"], best_k["accuracy"]) if conv
                 else _beats(best_k["accuracy"], best_f["accuracy"]))
        parts.append(bool(holds))
        lines.append(
            f"{arch}: best kernel {_f(best_k['accuracy'])} ({best_k['model'].upper()}), "
            f"best finite network {_f(best_f['accuracy'])} ({best_f['variant']}): "
            f"{'finite ahead' if finite_ahead else 'kernel ahead'} by "
            f"{_pts(abs(best_f['accuracy'] - best_k['accuracy']))[1:]}"
            f"{'' if holds else ', contrary to the finding'}"
            f" for {'a convolutional' if conv else 'a fully connected'} network"
            + (f" (the NTK at the networks' training time t={at_t['value'].iloc[0]:g}: "
               f"{_f(_acc(at_t))})." if len(at_t) else ".")
        )
        kinds.add("convolutional" if conv else "fully connected")
    missing = sorted({"convolutional", "fully connected"} - kinds) if kinds else []
    for kind in missing:
        lines.append(f"No {kind} architecture in this run: that half of the finding is "
                     "untested.")
    if lines:
        lines.insert(0, "Rule: the best kernel (NNGP or NTK, diag_reg by CV) beats the best "
                        "finite network (learning rate, weight decay and training time "
                        "chosen on validation data) for fc, and the best finite network "
                        "beats the best kernel for convolutional architectures.")
    verdict = _tally(parts)
    if missing and verdict is not None:
        lines.insert(1, f"Only half of the finding ran; that half is {verdict}.")
        return PARTLY, lines
    return verdict, lines


def _finding_2(df):
    lines, wins, losses = [], 0, 0
    comparisons = []
    rows = _ok(df, "finite_vs_infinite")
    rows = rows[rows["variant"] == CV]
    for arch, sub in rows.groupby("architecture", sort=False):
        nngp, ntk = _acc(sub[sub["model"] == "nngp"]), _acc(sub[sub["model"] == "ntk"])
        comparisons.append((f"{arch} (finite_vs_infinite, diag_reg by CV)", nngp, ntk))
    rows = _ok(df, "regularization")
    rows = rows[rows["param"] == "diag_reg"]
    for arch, sub in rows.groupby("architecture", sort=False):
        models = {m: sub[sub["model"] == m] for m in ("nngp", "ntk")}
        if all(len(r) for r in models.values()):
            nngp, ntk = (float(_by_cv(models[m])["accuracy"]) for m in ("nngp", "ntk"))
            comparisons.append((f"{arch} (regularization, diag_reg by CV)", nngp, ntk))
    for label, nngp, ntk in comparisons:
        if math.isnan(nngp) or math.isnan(ntk):
            continue
        wins += _beats(nngp, ntk)
        losses += _beats(ntk, nngp)
        lines.append(f"{label}: NNGP {_f(nngp)}, NTK {_f(ntk)} ({_pts(nngp - ntk)} for NNGP).")
    if not lines:
        return None, []
    ties = len(lines) - wins - losses
    lines.insert(0, f"NNGP ahead in {wins}, behind in {losses}, tied in {ties} of "
                    f"{len(lines)} comparisons (rule: supported when NNGP is ahead at least "
                    "as often as behind).")
    if wins == 0:
        return NOT_SUPPORTED, lines
    return (SUPPORTED if wins >= losses else MIXED), lines


def _finding_3(df):
    rows = _ok(df, "finite_width")
    parts, lines = [], []
    finite = rows[rows["model"] == "finite"]
    for (arch, width), sub in finite.groupby(["architecture", "value"], sort=False):
        plain = sub[sub["variant"] == "NTK param."]
        ens = sub[sub["variant"] == "NTK param., centered + ensemble"]
        if not len(plain) or not len(ens):
            continue
        a_p, a_e = float(plain["agreement"].iloc[0]), float(ens["agreement"].iloc[0])
        parts.append(_beats(a_e, a_p))
        lines.append(
            f"{arch}, width {width:g}: agreement with the NTK prediction {_f(a_e)} centered + "
            f"ensembled vs {_f(a_p)} plain; accuracy {_f(_acc(ens))} vs {_f(_acc(plain))}."
        )
    if lines:
        lines.insert(0, "Rule: at each width, the centered and ensembled network agrees with the "
                        "infinite-width NTK prediction more often than the plain one.")
    return _tally(parts), lines


def _finding_4(df):
    rows = _ok(df, "weight_decay")
    parts, lines = [], []
    for arch, sub in rows.groupby("architecture", sort=False):
        base = sub[sub["variant"] == "small lr"]
        if not len(base):
            continue
        a0 = float(base["agreement"].iloc[0])
        lines.append(f"{arch}: small learning rate, no weight decay: agreement with the NTK "
                     f"prediction {_f(a0)}, accuracy {_f(_acc(base))}.")
        large = sub[sub["variant"] == "large lr"]
        if len(large):
            a1 = float(large["agreement"].iloc[0])
            parts.append(_beats(a0, a1))
            lines.append(f"{arch}: large learning rate ({_g(float(large['value'].iloc[0]))}): "
                         f"agreement {_f(a1)}, accuracy {_f(_acc(large))}.")
        l2 = sub[sub["variant"].str.startswith("L2")]
        if len(l2):
            a2 = float(l2["agreement"].min())
            parts.append(_beats(a0, a2))
            for _, r in l2.iterrows():
                lines.append(f"{arch}: {r['variant']} weight decay {_g(r['value'])} (chosen on a "
                             f"validation split): agreement {_f(r['agreement'])}, accuracy "
                             f"{_f(r['accuracy'])}.")
    if parts:
        lines.insert(0, "Rule: the large learning rate and the (best) weight decay each lower "
                        "the agreement with the NTK prediction at the same training time.")
    return _tally(parts), lines


def _finding_5(df):
    rows = _ok(df, "finite_width")
    parts, lines = [], []
    finite = rows[rows["model"] == "finite"]
    for (arch, width), sub in finite.groupby(["architecture", "value"], sort=False):
        ntk, std = sub[sub["variant"] == "NTK param."], sub[sub["variant"] == "standard param."]
        if not len(ntk) or not len(std):
            continue
        a_n, a_s = _acc(ntk), _acc(std)
        parts.append(_beats(a_n, a_s))
        lines.append(f"{arch}, width {width:g}: NTK parameterization {_f(a_n)}, standard "
                     f"{_f(a_s)} ({_pts(a_n - a_s)}).")
    if lines:
        lines.insert(0, "Rule: the plain NTK-parameterized network is more accurate than the "
                        "plain standard-parameterized one at each width (learning rates matched "
                        "along the top NTK eigendirection).")
    return _tally(parts), lines


def _finding_6(df):
    rows = _ok(df, "regularization")
    rows = rows[rows["model"] == "ntk"]
    parts, lines = [], []
    for arch, sub in rows.groupby("architecture", sort=False):
        # weak to strong regularization; long to short training (mirrored grids)
        reg = sub[sub["param"] == "diag_reg"].sort_values("value")
        stop = sub[sub["param"] == "t"].sort_values("value", ascending=False)
        if not len(reg) or len(reg) != len(stop):
            continue
        a_reg = reg["accuracy"].astype(float).to_numpy()
        a_stop = stop["accuracy"].astype(float).to_numpy()
        gap = float(np.mean(np.abs(a_reg - a_stop)))
        moves = min(np.ptp(a_reg), np.ptp(a_stop)) >= MARGIN - _EPS
        parts.append(bool(gap <= MARGIN and moves))
        best_r, best_t = _by_cv(reg), _by_cv(stop)
        lines.append(
            f"{arch}: NTK test accuracy across diag_reg (weak to strong, "
            f"{_g(reg['value'].iloc[0])} to {_g(reg['value'].iloc[-1])}): "
            f"{', '.join(_f(a) for a in a_reg)}; across t (long to short, "
            f"{_g(stop['value'].iloc[0])} to {_g(stop['value'].iloc[-1])}): "
            f"{', '.join(_f(a) for a in a_stop)}; mean "
            f"difference {100 * gap:.1f} pts"
            f"{'' if moves else ' (a flat curve: the knobs barely matter here)'}. Chosen by CV: "
            f"diag_reg={_g(best_r['value'])} {_f(best_r['accuracy'])}, t={_g(best_t['value'])} "
            f"{_f(best_t['accuracy'])}."
        )
    if lines:
        lines.insert(0, "Rule: on grids mirrored by t = m / (diag_reg * tr(Theta) / n), the test "
                        "accuracy curves of the NTK over diag_reg and over training time t "
                        "differ by at most 1 point on average, and each moves by at least 1 "
                        "point across its grid.")
    return _tally(parts), lines


def _finding_7(df):
    rows = df[df["experiment"] == "precision"]
    parts, lines = [], []
    for arch, sub in rows.groupby("architecture", sort=False):
        sizes = sorted(sub["value"].astype(float).unique())

        def broken(n):
            r32 = sub[(sub["value"] == n) & (sub["variant"] == "float32")]
            r64 = sub[(sub["value"] == n) & (sub["variant"] == "float64")]
            if not len(r32) or not len(r64) or r64["status"].iloc[0] != "ok":
                return None
            if r32["status"].iloc[0] != "ok":
                return True
            return _beats(float(r64["accuracy"].iloc[0]), float(r32["accuracy"].iloc[0]))

        states = [(n, broken(n)) for n in sizes]
        states = [(n, b) for n, b in states if b is not None]
        if len(states) < 2:
            continue
        desc = []
        for n, b in states:
            r32 = sub[(sub["value"] == n) & (sub["variant"] == "float32")].iloc[0]
            r64 = sub[(sub["value"] == n) & (sub["variant"] == "float64")].iloc[0]
            a32 = "failed" if r32["status"] != "ok" else _f(r32["accuracy"])
            desc.append(f"n={n:g}: float32 {a32}, float64 {_f(r64['accuracy'])}")
        first_broken = next((n for n, b in states if b), None)
        holds = not states[0][1] and states[-1][1]
        parts.append(bool(holds))
        where = (f"float32 breaks down from n={first_broken:g} on" if first_broken is not None
                 else f"float32 matches float64 up to n={states[-1][0]:g}")
        lines.append(f"{arch}: {where}. " + "; ".join(desc) + ".")
    if lines:
        notes = rows["note"].map(lambda v: v if isinstance(v, str) else "")
        failed = notes.str.contains("positive definite").any()
        warned = notes.str.contains("condition number").any()
        lines.insert(0, "Rule: float32 matches float64 (within 1 point) at the smallest size and "
                        "fails or falls more than 1 point behind at the largest. Kernels are "
                        "computed in each precision and solved in float64." +
                        (" 'failed' means the float64 solve of the float32 train kernel failed "
                         "at the fixed diag_reg." if failed else "") +
                        (" Where the float32 solve was ill-conditioned the classifier warned "
                         "with its estimated error (see the table's notes)." if warned else ""))
    return _tally(parts), lines


def _finding_8(df):
    rows = _ok(df, "zca")
    parts, lines = [], []
    for arch, sub in rows.groupby("architecture", sort=False):
        off, on = sub[sub["variant"] == "no ZCA"], sub[sub["variant"] == "ZCA"]
        if not len(off) or not len(on):
            continue
        chosen = _by_cv(on)
        best = on.loc[on["accuracy"].idxmax()]
        parts.append(_beats(chosen["accuracy"], _acc(off)))
        lines.append(
            f"{arch}: no ZCA {_f(_acc(off))}; ZCA with zca_reg chosen by CV "
            f"({_g(chosen['value'])}) {_f(chosen['accuracy'])} "
            f"({_pts(chosen['accuracy'] - _acc(off))}); best zca_reg on test "
            f"{_g(best['value'])} ({_f(best['accuracy'])}); across zca_reg "
            f"{', '.join(f'{_g(v)}: {_f(a)}' for v, a in zip(on['value'], on['accuracy']))}."
        )
    if lines:
        lines.insert(0, "Rule: the ZCA pipeline, with zca_reg and diag_reg chosen by CV, beats "
                        "the same classifier without whitening.")
    return _tally(parts), lines


def _finding_9(df):
    rows = _ok(df, "finite_width")
    rows = rows[rows["model"] == "finite"]
    found, lines = [], []
    for (arch, variant), sub in rows.groupby(["architecture", "variant"], sort=False):
        sub = sub.sort_values("value")
        if len(sub) < 3:
            continue
        steps = np.diff(sub["accuracy"].astype(float).to_numpy())
        bumpy = bool(np.any(steps >= MARGIN - _EPS) and np.any(steps <= -MARGIN + _EPS))
        found.append(bumpy)
        curve = ", ".join(f"{w:g}: {_f(a)}" for w, a in zip(sub["value"], sub["accuracy"]))
        lines.append(f"{arch}, {variant}: {curve}{' (non-monotonic)' if bumpy else ''}.")
    if not found:
        return None, []
    lines.insert(0, "Rule: some accuracy-vs-width curve both rises and falls by at least 1 "
                    "point between neighbouring widths.")
    return (SUPPORTED if any(found) else NOT_SUPPORTED), lines


def _finding_10(df):
    rows = _ok(df, "finite_width")
    fc, cnn = rows[rows["architecture"] == "fc"], rows[rows["architecture"] == "cnn-vec"]
    plain = "NTK param."
    fc_f = fc[fc["variant"] == plain].sort_values("value")
    cnn_f = cnn[cnn["variant"] == plain].sort_values("value")
    fc_k, cnn_k = fc[fc["model"] == "ntk"], cnn[cnn["model"] == "ntk"]
    if len(fc_f) < 2 or len(cnn_f) < 2 or not len(fc_k) or not len(cnn_k):
        ran = [a for a, f in (("fc", fc_f), ("cnn-vec", cnn_f)) if len(f)]
        if ran:
            return PARTLY, [f"Only {ran[0]} networks ran in finite_width; the finding "
                            "compares fc with cnn-vec (--finite-architectures fc cnn-vec)."]
        return None, []
    narrow = float(cnn_f["accuracy"].iloc[0] - fc_f["accuracy"].iloc[0])
    wide = float(cnn_f["accuracy"].iloc[-1] - fc_f["accuracy"].iloc[-1])
    kernel = _acc(cnn_k) - _acc(fc_k)
    holds = _beats(narrow, wide) and _beats(narrow, kernel)
    lines = [
        "Rule: the advantage of CNN-VEC over FC (plain NTK-parameterized networks) is larger "
        "for the narrowest networks than for the widest and than between their NTKs.",
        f"narrowest (cnn-vec {cnn_f['value'].iloc[0]:g} channels, fc "
        f"{fc_f['value'].iloc[0]:g} units): {_pts(narrow)}; widest "
        f"({cnn_f['value'].iloc[-1]:g}, {fc_f['value'].iloc[-1]:g}): {_pts(wide)}; NTK at the "
        "same training time: " + _pts(kernel) + ".",
    ]
    return (SUPPORTED if holds else NOT_SUPPORTED), lines


def _finding_11(df):
    rows = _ok(df, "weight_decay")
    parts, lines = [], []
    for arch, sub in rows.groupby("architecture", sort=False):
        base, lw = sub[sub["variant"] == "small lr"], sub[sub["variant"] == "L2 layerwise"]
        uni = sub[sub["variant"] == "L2 uniform"]
        if not len(base) or not len(lw):
            continue
        a0, a_lw = _acc(base), _acc(lw)
        parts.append(_beats(a_lw, a0))
        text = f"{arch}: no weight decay {_f(a0)}; layer-wise {_f(a_lw)} ({_pts(a_lw - a0)})"
        if len(uni):
            parts.append(not _beats(_acc(uni), a_lw))
            text += f"; uniform {_f(_acc(uni))}"
        lines.append(text + ".")
    if lines:
        lines.insert(0, "Rule: the network with layer-wise scaled weight decay beats the one "
                        "without, and is at least as accurate as with uniform weight decay "
                        "(strengths chosen on a validation split).")
    return _tally(parts), lines


def _finding_12(df):
    rows = _ok(df, "augmentation")
    parts, lines = [], []
    for arch, sub in rows.groupby("architecture", sort=False):
        single, ens = sub[sub["variant"] == "single"], sub[sub["param"] == "n_draws"]
        if not len(single) or not len(ens):
            continue
        full = ens.loc[ens["value"].astype(float).idxmax()]
        parts.append(_beats(full["accuracy"], _acc(single)))
        curve = ", ".join(f"{v:g}: {_f(a)}" for v, a in zip(ens["value"], ens["accuracy"]))
        lines.append(f"{arch}: single NNGP {_f(_acc(single))}; {full['variant']} of "
                     f"{full['value']:g} draws {_f(full['accuracy'])} "
                     f"({_pts(full['accuracy'] - _acc(single))}); by number of draws {curve}.")
    if lines:
        lines.insert(0, "Rule: the ensemble over augmented draws beats the single predictor "
                        "trained on the original images (same training-set size).")
    return _tally(parts), lines


CHECKS = {n: globals()[f"_finding_{n}"] for n in FINDINGS}


def assess(results):
    """Verdict and evidence lines for every finding.

    Parameters
    ----------
    results : pandas.DataFrame or list of dict
        Result rows (the columns of :data:`sknngp.study.experiments.COLUMNS`).

    Returns
    -------
    dict
        ``{finding number: (verdict, lines)}``; verdict is ``"supported"``,
        ``"not supported"``, ``"mixed"``, ``"partly covered"`` (only part of
        the finding ran; the evidence says what that part shows) or
        ``"not covered"``.
    """
    df = pd.DataFrame(results)
    out = {}
    for number, check in CHECKS.items():
        verdict, lines = (None, [])
        if len(df):
            verdict, lines = check(df)
        out[number] = (verdict or NOT_COVERED, lines)
    return out


def make_report(results, meta=None):
    """The Markdown report of a study run.

    Parameters
    ----------
    results : pandas.DataFrame or list of dict
        Result rows of the experiments that ran.
    meta : dict, default=None
        Header information: ``dataset``, ``n_train``, ``n_test``,
        ``input_shape``, ``preset``, ``depth``, ``seed``, ``failed``
        (experiment name to error message), ``stale`` (experiment name to
        why its results were left out) and ``seconds`` (experiment name to
        wall time) are used when present.

    Returns
    -------
    str
        Markdown: a summary table (finding, verdict) and one section per
        finding with the numbers behind its verdict.
    """
    meta = dict(meta or {})
    df = pd.DataFrame(results)
    verdicts = assess(df)
    out = ["# sknngp study report", ""]
    if meta.get("dataset"):
        shape = "x".join(str(s) for s in meta.get("input_shape") or ())
        out.append(
            f"Data: {meta['dataset']}, {meta.get('n_train', '?')} training and "
            f"{meta.get('n_test', '?')} test images{f' ({shape})' if shape else ''}; preset "
            f"`{meta.get('preset', '?')}`, depth {meta.get('depth', '?')}. "
            "Findings are those of Lee et al., *Finite Versus Infinite Neural Networks: an "
            "Empirical Study* (NeurIPS 2020). One seed and one split: in the rules below, "
            f"'beats', 'ahead', 'more' and 'lower' mean by at least {100 * MARGIN:g} point of "
            "test accuracy (or agreement); smaller differences count as ties."
        )
        out.append("")
    counts = {v: sum(1 for verdict, _ in verdicts.values() if verdict == v)
              for v in (SUPPORTED, MIXED, NOT_SUPPORTED, PARTLY, NOT_COVERED)}
    out.append(", ".join(f"{counts[v]} {v}" for v in counts) + ".")
    out.append("")
    out.append("| # | finding | this run |")
    out.append("|---|---|---|")
    for number, title in FINDINGS.items():
        out.append(f"| {number} | {title} | {verdicts[number][0]} |")
    out.append("")
    for number, title in FINDINGS.items():
        verdict, lines = verdicts[number]
        out.append(f"## {number}. {title}")
        out.append("")
        if verdict == NOT_COVERED:
            out.append(f"**Not covered** by this run (experiment: {COVERED_BY[number]}).")
        else:
            out.append(f"**{verdict.capitalize()}.**")
            out.append("")
            out.extend(f"- {line}" for line in lines)
        out.append("")
    failed = meta.get("failed") or {}
    if failed:
        out.append("## Experiments that did not run")
        out.append("")
        out.extend(f"- `{name}`: {message}" for name, message in failed.items())
        out.append("")
    stale = meta.get("stale") or {}
    if stale:
        out.append("## Results in the folder left out")
        out.append("")
        out.extend(f"- `{name}`: {reason}" for name, reason in stale.items())
        out.append("")
    wall = {k: v for k, v in (meta.get("seconds") or {}).items()
            if isinstance(v, (int, float)) and not math.isnan(v)}
    if wall:
        out.append("## Time spent")
        out.append("")
        out.append("Wall time of each experiment when it ran (as logged): "
                   + ", ".join(f"{name} {s:.0f} s" for name, s in wall.items())
                   + f"; total {sum(wall.values()):.0f} s.")
        out.append("")
    elif len(df) and "seconds" in df:
        seconds = df.groupby("experiment", sort=False)["seconds"].sum(min_count=1)
        out.append("## Time spent fitting")
        out.append("")
        out.append("Sum of the rows' fit-and-score times: "
                   + ", ".join(f"{name} {s:.0f} s" for name, s in seconds.items()
                               if not math.isnan(s)) + ".")
        out.append("")
    return "\n".join(out)
