"""Run experiments into an output folder, resumably, and write the outputs."""

from __future__ import annotations

import json
import math
import time
import traceback
from pathlib import Path

import pandas as pd

from .experiments import COLUMNS, EXPERIMENTS
from .plots import save_plot
from .report import make_report


def markdown_table(df, columns=None):
    """A GitHub-flavoured Markdown table of ``df`` (numbers to 4 significant digits)."""
    columns = list(columns or df.columns)

    def cell(x):
        if isinstance(x, float):
            return "" if math.isnan(x) else f"{x:.4g}"
        return str(x).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for _, r in df[columns].iterrows():
        lines.append("| " + " | ".join(cell(r[c]) for c in columns) + " |")
    return "\n".join(lines)


def results_markdown(df):
    """One table per experiment (without the constant columns)."""
    out = ["# Study results", ""]
    shown = [c for c in COLUMNS if c not in ("experiment", "seconds")]
    for name, sub in df.groupby("experiment", sort=False):
        cols = [c for c in shown if sub[c].astype(str).replace({"nan": ""}).ne("").any()]
        out += [f"## {name}", "", markdown_table(sub, cols), ""]
    return "\n".join(out)


def run_study(data, config, out, *, experiments=None, device="auto", preset=None,
              progress=True, log=None):
    """Run experiments on ``data`` and write tables, plots and the report to ``out``.

    An experiment whose ``<name>.csv`` is already in ``out`` is not run again:
    its rows are read back (delete the file to rerun it). An experiment that
    raises is reported, its traceback saved as ``<name>.error.txt``, and the
    others still run.

    Parameters
    ----------
    data : StudyData
    config : StudyConfig
    out : str or path
        Output folder (created).
    experiments : list of str, default=None
        Names from :data:`~sknngp.study.EXPERIMENTS` (all when None).
    device : str, default="auto"
        ``"auto"``, ``"cpu"``, ``"gpu"`` or ``"gpu:<i>"`` (``"cuda"`` is an alias).
    preset : str, default=None
        Name recorded in the report.
    progress : bool, default=True
        tqdm progress bars.
    log : callable, default=None
        Called with one line per experiment; None prints it above the
        progress bars (``tqdm.write``).

    Returns
    -------
    dict
        Paths of ``results.csv``, ``results.md``, ``report.md``, the plots,
        and ``failed`` (experiment name to error message).
    """
    from tqdm.auto import tqdm

    log = log or tqdm.write
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(EXPERIMENTS) if experiments is None else list(experiments)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; choose from {list(EXPERIMENTS)}.")
    frames, failed, plots = [], {}, []
    bar = tqdm(names, desc="study", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        path = out / f"{name}.csv"
        if path.exists():
            log(f"{name}: results found in {path}, not rerun")
            rows = pd.read_csv(path, keep_default_na=False, na_values=[""])
        else:
            start = time.perf_counter()
            try:
                rows = pd.DataFrame(
                    EXPERIMENTS[name](data, config, device=device, progress=progress),
                    columns=list(COLUMNS),
                )
            except Exception as exc:  # keep going: one broken experiment must not cost the others
                failed[name] = f"{type(exc).__name__}: {exc}"
                (out / f"{name}.error.txt").write_text(traceback.format_exc())
                log(f"{name}: FAILED ({failed[name]})")
                continue
            rows.to_csv(path, index=False)
            (out / f"{name}.error.txt").unlink(missing_ok=True)
            log(f"{name}: {len(rows)} rows in {time.perf_counter() - start:.0f} s -> {path}")
        frames.append(rows)
        if len(rows):
            plots.append(save_plot(name, rows, out / f"{name}.png"))
    results = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=COLUMNS)
    meta = dict(dataset=data.name, n_train=data.n_train, n_test=len(data.X_test),
                input_shape=data.input_shape, preset=preset, depth=config.depth, failed=failed)
    results.to_csv(out / "results.csv", index=False)
    (out / "results.md").write_text(results_markdown(results))
    (out / "report.md").write_text(make_report(results, meta))
    (out / "config.json").write_text(json.dumps(
        {**{k: v for k, v in meta.items() if k != "failed"},
         "device": device, "config": config.__dict__}, indent=1, default=list))
    return dict(results=out / "results.csv", table=out / "results.md",
                report=out / "report.md", plots=plots, failed=failed)
