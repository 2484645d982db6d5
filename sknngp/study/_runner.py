"""Run experiments into an output folder, resumably, and write the outputs."""

from __future__ import annotations

import hashlib
import io
import json
import math
import time
import traceback
from pathlib import Path

import numpy as np
import pandas as pd

from ._io import atomic_write
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


def fingerprint(data, config):
    """What an experiment's rows depend on: the data (hashed) and the configuration."""
    digest = hashlib.sha256()
    for array in (data.X_pool, data.y_pool, data.X_test, data.y_test):
        digest.update(np.ascontiguousarray(array).tobytes())
    ident = dict(dataset=data.name, n_train=data.n_train, n_test=len(data.X_test),
                 input_shape=list(data.input_shape), data_sha256=digest.hexdigest(),
                 config=config.as_dict())
    text = json.dumps(ident, sort_keys=True, default=list)
    return hashlib.sha256(text.encode()).hexdigest()


def _rows_csv(rows):
    buffer = io.StringIO()
    rows.to_csv(buffer, index=False)
    return buffer.getvalue()


def save_rows(out, name, rows, fp, seconds):
    """``<name>.csv`` and its record ``<name>.json`` (checksum, row count, fingerprint)."""
    text = _rows_csv(rows)
    atomic_write(out / f"{name}.csv", text)
    record = dict(experiment=name, fingerprint=fp, rows=len(rows), seconds=seconds,
                  sha256=hashlib.sha256(text.encode()).hexdigest())
    atomic_write(out / f"{name}.json", json.dumps(record, indent=1))


def load_rows(out, name, fp):
    """``(rows, seconds)`` of a valid earlier run of ``name``, or ``(None, reason)``.

    Valid means: the record exists, names this configuration, and the CSV
    matches its checksum, has the result columns and the recorded number of
    rows, and no duplicated row.
    """
    path, record_path = out / f"{name}.csv", out / f"{name}.json"
    if not path.exists():
        return None, "no results yet"
    try:
        record = json.loads(record_path.read_text())
        expected = (record["fingerprint"], record["sha256"], int(record["rows"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{record_path.name} is missing or unreadable"
    if expected[0] != fp:
        return None, "they are from another configuration or data set"
    raw = path.read_bytes()
    if hashlib.sha256(raw).hexdigest() != expected[1]:
        return None, f"{path.name} does not match its checksum (truncated or edited)"
    try:
        rows = pd.read_csv(io.BytesIO(raw), keep_default_na=False, na_values=[""])
    except (ValueError, pd.errors.ParserError) as exc:
        return None, f"{path.name} does not parse ({exc})"
    if list(rows.columns) != list(COLUMNS) or len(rows) != expected[2]:
        return None, f"{path.name} has other columns or another number of rows"
    if rows.duplicated().any():
        return None, f"{path.name} has duplicated rows"
    return rows, record.get("seconds", float("nan"))


def run_study(data, config, out, *, experiments=None, device="auto", preset=None,
              progress=True, log=None):
    """Run experiments on ``data`` and write tables, plots and the report to ``out``.

    An experiment whose results are already in ``out`` is not run again when
    they are valid: written by this configuration on this data (a
    fingerprint of both is recorded with them), matching their checksum, with
    the expected columns and number of rows and no duplicates. Otherwise it
    is rerun and its files replaced. Every file is written atomically (a
    temporary file renamed into place). An experiment that raises is
    reported, its traceback saved as ``<name>.error.txt``, and the others
    still run. The tables and the report cover every valid result of this
    configuration in ``out``, including experiments run earlier and not
    requested now.

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
        ``failed`` (experiment name to error message) and ``stale``
        (experiments in ``out`` from another configuration, left out).
    """
    from tqdm.auto import tqdm

    log = log or tqdm.write
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    names = list(EXPERIMENTS) if experiments is None else list(experiments)
    unknown = [n for n in names if n not in EXPERIMENTS]
    if unknown:
        raise ValueError(f"unknown experiments {unknown}; choose from {list(EXPERIMENTS)}.")
    fp = fingerprint(data, config)
    frames, failed, plots, seconds, stale = {}, {}, [], {}, {}
    bar = tqdm(names, desc="study", disable=not progress)
    for name in bar:
        bar.set_postfix_str(name)
        rows, info = load_rows(out, name, fp)
        if rows is not None:
            log(f"{name}: valid results found in {out / (name + '.csv')}, not rerun")
            seconds[name] = info
        else:
            if info != "no results yet":
                log(f"{name}: earlier results not used ({info}); rerunning")
            start = time.perf_counter()
            try:
                rows = pd.DataFrame(
                    EXPERIMENTS[name](data, config, device=device, progress=progress),
                    columns=list(COLUMNS),
                )
            except Exception as exc:  # keep going: one broken experiment must not cost the others
                failed[name] = f"{type(exc).__name__}: {exc}"
                atomic_write(out / f"{name}.error.txt", traceback.format_exc())
                log(f"{name}: FAILED ({failed[name]})")
                continue
            seconds[name] = time.perf_counter() - start
            save_rows(out, name, rows, fp, seconds[name])
            rows, _ = load_rows(out, name, fp)  # the tables show what was stored
            (out / f"{name}.error.txt").unlink(missing_ok=True)
            log(f"{name}: {len(rows)} rows in {seconds[name]:.0f} s -> {out / (name + '.csv')}")
        frames[name] = rows
    for name in EXPERIMENTS:  # earlier results of this configuration, not requested now
        if name in frames or name in failed or not (out / f"{name}.csv").exists():
            continue
        rows, info = load_rows(out, name, fp)
        if rows is None:
            stale[name] = info
            log(f"{name}: results in {out} left out of the report ({info})")
            continue
        frames[name], seconds[name] = rows, info
    frames = {name: frames[name] for name in EXPERIMENTS if name in frames}
    meta = dict(dataset=data.name, n_train=data.n_train, n_test=len(data.X_test),
                input_shape=data.input_shape, preset=preset, depth=config.depth,
                seed=config.random_state, failed=failed, stale=stale, seconds=seconds)
    for name, rows in frames.items():
        if len(rows):
            plots.append(save_plot(name, rows, out / f"{name}.png", meta))
    results = (pd.concat(list(frames.values()), ignore_index=True) if frames
               else pd.DataFrame(columns=COLUMNS))
    atomic_write(out / "results.csv", _rows_csv(results))
    atomic_write(out / "results.md", results_markdown(results))
    atomic_write(out / "report.md", make_report(results, meta))
    atomic_write(out / "config.json", json.dumps(
        {**{k: v for k, v in meta.items() if k not in ("failed", "stale", "seconds")},
         "device": device, "fingerprint": fp, "config": config.as_dict()},
        indent=1, default=list))
    return dict(results=out / "results.csv", table=out / "results.md",
                report=out / "report.md", plots=plots, failed=failed, stale=stale)
