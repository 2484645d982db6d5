"""The study command: experiments on tiny data, the report on fixed results, the CLI.

The experiments run on the ``tiny`` preset (40 training and 40 test digits,
networks of width <= 8 trained for 5 steps): the tests check what each
experiment computes and records, not the accuracies, which are meaningless
at that size. The report is checked on hand-written result rows whose
verdicts are known.
"""

import sys

import numpy as np
import pandas as pd
import pytest

from sknngp.__main__ import main
from sknngp.study import (
    COLUMNS,
    EXPERIMENTS,
    FINDINGS,
    PRESETS,
    assess,
    load_study_data,
    make_report,
    run_study,
)
from sknngp.study import experiments as ex
from sknngp.study._runner import markdown_table
from sknngp.study.plots import save_plot

FINITE = {"finite_vs_infinite", "finite_width", "weight_decay"}


def _finite_missing():
    try:
        ex.finite_classifier()
    except ex.FiniteModuleMissing as exc:
        return str(exc)
    return None


needs_finite = pytest.mark.skipif(
    _finite_missing() is not None,
    reason=f"finite-network module missing: {_finite_missing()}",
)


@pytest.fixture(scope="module")
def tiny():
    config = PRESETS["tiny"]
    data = load_study_data("digits", n_train=config.n_train, n_test=config.n_test,
                           n_pool=max(config.precision_sizes))
    return data, config


def _check_rows(rows, experiment):
    df = pd.DataFrame(rows)
    assert list(df.columns) == list(COLUMNS)
    assert (df["experiment"] == experiment).all()
    ok = df[df["status"] == "ok"]
    assert ok["accuracy"].between(0, 1).all()
    return df


# ------------------------------------------------------------------------ data


def test_data_is_standardized_with_training_statistics(tiny):
    data, config = tiny
    assert data.X_train.shape == (config.n_train, 64)
    assert data.X_pool.shape == (max(config.precision_sizes), 64)
    assert data.X_test.shape == (config.n_test, 64)
    assert abs(data.X_pool.mean()) < 1e-12 and abs(data.X_pool.std() - 1) < 1e-12
    assert data.n_classes == 10 and data.input_shape == (8, 8, 1)


def test_data_rejects_unknown_dataset_and_oversized_split():
    with pytest.raises(ValueError, match="not one of"):
        load_study_data("mnist")
    with pytest.raises(ValueError, match="do not fit"):
        load_study_data("digits", n_train=1500, n_test=500)


# ------------------------------------------------------------------ experiments


def test_regularization_mirrors_the_diag_reg_grid_in_time(tiny):
    data, config = tiny
    df = _check_rows(ex.regularization(data, config), "regularization")
    regs = df[df["param"] == "diag_reg"]
    times = df[df["param"] == "t"]
    assert len(regs) == 2 * len(config.diag_regs) and len(times) == len(config.diag_regs)
    assert (regs["status"] == "ok").all() and regs["cv_accuracy"].notna().all()
    # t = m / (diag_reg * tr(Theta) / n): the product t * diag_reg is constant
    prod = times["value"].to_numpy() * np.array(config.diag_regs)
    np.testing.assert_allclose(prod, prod[0])


def test_zca_has_a_baseline_and_one_row_per_zca_reg(tiny):
    data, config = tiny
    df = _check_rows(ex.zca(data, config), "zca")
    assert list(df["variant"]) == ["no ZCA"] + ["ZCA"] * len(config.zca_regs)
    assert list(df["value"].iloc[1:]) == list(config.zca_regs)


def test_precision_records_both_dtypes_per_size(tiny):
    data, config = tiny
    df = _check_rows(ex.precision(data, config), "precision")
    assert len(df) == 2 * len(config.precision_sizes)
    assert set(df["variant"]) == {"float32", "float64"}
    # float32 kernels are solved in float64: no refusals, every size has an
    # accuracy; an ill-conditioned float32 solve carries its warning as a note
    assert (df["status"] == "ok").all()
    assert df["accuracy"].notna().all()
    notes = df[df["note"] != ""]
    assert (notes["variant"] == "float32").all()
    assert notes["note"].str.contains("estimated condition number").all()


def test_augmentation_curve_over_draws(tiny):
    data, config = tiny
    df = _check_rows(ex.augmentation(data, config), "augmentation")
    assert df["variant"].iloc[0] == "single"
    ens = df[df["param"] == "n_draws"]
    assert list(ens["value"]) == list(range(1, config.n_draws + 1))
    assert (ens["variant"] == "crop ensemble").all()  # digits: crops, not mirror images


@needs_finite
def test_finite_vs_infinite_rows(tiny):
    data, config = tiny
    df = _check_rows(ex.finite_vs_infinite(data, config), "finite_vs_infinite")
    for arch in config.architectures:
        sub = df[df["architecture"] == arch]
        assert sorted(sub["model"]) == ["finite", "finite", "nngp", "ntk"]
        finite = sub[sub["model"] == "finite"]
        assert set(finite["variant"]) == {"plain, tuned", "centered, tuned"}
        assert (finite["param"] == "lr").all() and (finite["value"] > 0).all()
        # the chosen lr is one of the searched multiples of the network's critical rate
        fractions = finite["note"].str.extract(r"lr ([0-9.e-]+) x critical")[0].astype(float)
        assert fractions.isin(config.lr_fractions).all()
        assert finite["cv_accuracy"].between(0, 1).all()
        kernels = sub[sub["variant"] == "diag_reg by CV"]
        assert sorted(kernels["model"]) == ["nngp", "ntk"]
        assert kernels["value"].isin(config.diag_regs).all()


@needs_finite
def test_finite_width_rows(tiny):
    data, config = tiny
    df = _check_rows(ex.finite_width(data, config), "finite_width")
    finite = df[df["model"] == "finite"]
    assert len(finite) == len(config.widths) * len(ex.VARIANTS)
    assert finite["agreement"].between(0, 1).all()
    assert set(df["model"]) == {"finite", "nngp", "ntk"}


@needs_finite
def test_weight_decay_rows(tiny):
    data, config = tiny
    df = _check_rows(ex.weight_decay(data, config), "weight_decay")
    assert list(df["variant"]) == ["small lr", "large lr", "L2 layerwise", "L2 uniform"]
    lr_small, lr_large = df["value"].iloc[:2]
    assert lr_large / lr_small == pytest.approx(config.large_lr_fraction / config.lr_fraction)
    assert df["value"].iloc[2:].isin(config.weight_decays).all()


def test_finite_experiments_say_what_is_missing(monkeypatch, tiny, tmp_path):
    monkeypatch.setitem(sys.modules, "sknngp.finite", None)  # makes the import fail
    with pytest.raises(ex.FiniteModuleMissing, match=r"sknngp\[torch\]"):
        ex.finite_classifier()
    data, config = tiny
    paths = run_study(data, config, tmp_path, experiments=["weight_decay", "zca"],
                      progress=False, log=lambda *a: None)
    assert list(paths["failed"]) == ["weight_decay"]
    assert "finite-network module" in paths["failed"]["weight_decay"]
    assert (tmp_path / "weight_decay.error.txt").exists()
    assert not (tmp_path / "weight_decay.csv").exists()  # retried by the next run
    report = (tmp_path / "report.md").read_text()
    assert "Experiments that did not run" in report and "`weight_decay`" in report


def test_devices_map_to_each_framework():
    assert ex.jax_device("auto") is None and ex.jax_device("cpu") == "cpu"
    assert ex.jax_device("cuda:1") == "gpu:1" and ex.jax_device("gpu") == "gpu"
    assert ex.torch_device("cpu") == "cpu" and ex.torch_device("gpu:0") == "cuda:0"


def test_row_rejects_unknown_fields():
    with pytest.raises(KeyError, match="unknown result fields"):
        ex.row("x", "fc", "nngp", acuracy=1.0)


# ------------------------------------------------------------------------- CLI


def test_cli_runs_end_to_end_and_resumes(tmp_path, capsys):
    out = tmp_path / "study"
    argv = ["study", "--preset", "tiny", "--out", str(out), "--no-progress",
            "--torch-threads", "0"]  # leave the test process's torch settings alone
    code = main(argv)
    printed = capsys.readouterr().out
    missing = _finite_missing()
    assert code == (0 if missing is None else 1)
    ran = [n for n in EXPERIMENTS if missing is None or n not in FINITE]
    for name in ran:
        assert (out / f"{name}.csv").exists() and (out / f"{name}.png").exists()
    for name in ("results.csv", "results.md", "report.md", "config.json"):
        assert (out / name).exists()
    assert f"report: {out / 'report.md'}" in printed
    results = pd.read_csv(out / "results.csv")
    assert list(results["experiment"].unique()) == ran
    report = (out / "report.md").read_text()
    for number, title in FINDINGS.items():
        assert f"## {number}. {title}" in report

    # a rerun reads every valid finished experiment back instead of recomputing
    # it, and the report still covers the experiments not requested this time
    main(argv + ["--experiments", "zca", "precision"])
    printed = capsys.readouterr().out
    assert "zca: valid results found" in printed and "precision: valid results found" in printed
    assert list(pd.read_csv(out / "results.csv")["experiment"].unique()) == ran
    assert "Wall time of each experiment" in (out / "report.md").read_text()


def test_cli_without_command_prints_help(capsys):
    assert main([]) == 2
    assert "study" in capsys.readouterr().out


def test_cli_rejects_unknown_experiment():
    with pytest.raises(SystemExit):
        main(["study", "--experiments", "nonsense"])


# ------------------------------------------------------- report on fixed results


def R(experiment, architecture, model, **fields):
    return ex.row(experiment, architecture, model, **fields)


def _supporting_rows():
    """Results that support every finding (numbers made up for the test)."""
    rows = []
    fvi = "finite_vs_infinite"
    for arch, kernel, finite in (("fc", 0.90, 0.80), ("cnn-vec", 0.90, 0.95)):
        cv = dict(variant="diag_reg by CV", param="diag_reg", value=1e-4)
        rows += [R(fvi, arch, "nngp", accuracy=kernel, **cv),
                 R(fvi, arch, "ntk", accuracy=kernel - 0.02, **cv),
                 R(fvi, arch, "finite", variant="plain, tuned", accuracy=finite - 0.1),
                 R(fvi, arch, "finite", variant="centered, tuned", accuracy=finite)]
    regs = [1e-6, 1e-3, 1.0]
    for model, accs in (("nngp", [0.90, 0.93, 0.85]), ("ntk", [0.88, 0.92, 0.84])):
        rows += [R("regularization", "fc", model, param="diag_reg", value=r, accuracy=a,
                   cv_accuracy=a) for r, a in zip(regs, accs)]
    rows += [R("regularization", "fc", "ntk", param="t", value=t, accuracy=a, cv_accuracy=a)
             for t, a in zip((1e6, 1e3, 1.0), (0.88, 0.915, 0.83))]
    rows += [R("zca", "fc", "nngp", variant="no ZCA", accuracy=0.80)]
    rows += [R("zca", "fc", "nngp", variant="ZCA", param="zca_reg", value=z, accuracy=a,
               cv_accuracy=a) for z, a in ((0.01, 0.75), (0.1, 0.86), (10.0, 0.81))]
    for n, a32 in ((100, 0.80), (400, 0.85), (1600, None)):
        rows.append(R("precision", "fc", "nngp", variant="float64", param="n_train", value=n,
                      accuracy=a32 or 0.9))
        rows.append(R("precision", "fc", "nngp", variant="float32", param="n_train", value=n,
                      accuracy=a32 if a32 else np.nan, status="ok" if a32 else "failed",
                      note="" if a32 else "The NNGP train kernel is not positive definite"))
    fw = "finite_width"
    for arch, shift in (("fc", 0.0), ("cnn-vec", 0.0)):
        rows += [R(fw, arch, "nngp", accuracy=0.9), R(fw, arch, "ntk", accuracy=0.9)]
        curves = {"NTK param.": ([0.70, 0.80, 0.75], [0.6, 0.7, 0.8]),
                  "NTK param., centered + ensemble": ([0.85, 0.88, 0.89], [0.8, 0.9, 0.95]),
                  "standard param.": ([0.65, 0.70, 0.70], [0.5, 0.6, 0.6])}
        if arch == "cnn-vec":  # narrow CNNs far ahead of narrow FC nets, wide ones level
            curves["NTK param."] = ([0.85, 0.82, 0.76], [0.6, 0.7, 0.8])
        for variant, (accs, agrees) in curves.items():
            rows += [R(fw, arch, "finite", variant=variant, param="width", value=w,
                       accuracy=a + shift, agreement=g)
                     for w, a, g in zip((16, 64, 256), accs, agrees)]
    wd = "weight_decay"
    rows += [R(wd, "fc", "finite", variant="small lr", param="lr", value=1.0, accuracy=0.80,
               agreement=0.95),
             R(wd, "fc", "finite", variant="large lr", param="lr", value=3.0, accuracy=0.84,
               agreement=0.85),
             R(wd, "fc", "finite", variant="L2 layerwise", param="weight_decay", value=0.01,
               accuracy=0.86, agreement=0.88),
             R(wd, "fc", "finite", variant="L2 uniform", param="weight_decay", value=0.001,
               accuracy=0.82, agreement=0.9)]
    rows += [R("augmentation", "fc", "nngp", variant="single", accuracy=0.80)]
    rows += [R("augmentation", "fc", "nngp", variant="hflip ensemble", param="n_draws", value=k,
               accuracy=a) for k, a in ((1, 0.79), (2, 0.81), (3, 0.82))]
    return pd.DataFrame(rows)


def test_report_supports_every_finding_on_supporting_results():
    verdicts = assess(_supporting_rows())
    assert {n: v for n, (v, _) in verdicts.items()} == dict.fromkeys(FINDINGS, "supported")


def test_report_states_the_numbers():
    report = make_report(_supporting_rows(), dict(dataset="digits", n_train=300, n_test=300,
                                                  input_shape=(8, 8, 1), preset="demo", depth=3))
    assert report.startswith("# sknngp study report")
    assert "digits, 300 training and 300 test images (8x8x1)" in report
    assert "12 supported, 0 mixed, 0 not supported, 0 partly covered, 0 not covered." in report
    assert ("fc: best kernel 0.900 (NNGP), best finite network 0.800 (centered, tuned): kernel "
            "ahead by 10.0 pts for a fully connected network.") in report
    assert "mean by at least 1 point of test accuracy (or agreement)" in report
    assert ("cnn-vec: best kernel 0.900 (NNGP), best finite network 0.950 (centered, tuned)"
            in report)
    assert "float32 breaks down from n=1600 on" in report
    assert "no ZCA 0.800; ZCA with zca_reg chosen by CV (0.1) 0.860 (+6.0 pts)" in report
    assert "fc, NTK param.: 16: 0.700, 64: 0.800, 256: 0.750 (non-monotonic)" in report
    assert "hflip ensemble of 3 draws 0.820 (+2.0 pts)" in report


def test_report_refutes_on_contrary_results():
    df = _supporting_rows()
    df.loc[(df["experiment"] == "zca") & (df["variant"] == "no ZCA"), "accuracy"] = 0.95
    df.loc[(df["experiment"] == "augmentation") & (df["variant"] == "single"), "accuracy"] = 0.9
    df = df[~((df["experiment"] == "precision") & (df["value"] == 1600))]  # float32 never breaks
    big = (df["experiment"] == "finite_vs_infinite") & (df["model"] == "finite")
    df.loc[big, "accuracy"] = 0.99  # finite beats kernels everywhere: only the CNN half holds
    flat = (df["experiment"] == "regularization") & (df["model"] == "ntk")
    df.loc[flat, "accuracy"] = 0.9  # neither knob changes anything: no evidence either way
    verdicts = {n: v for n, (v, _) in assess(df).items()}
    assert verdicts[6] == verdicts[7] == verdicts[8] == verdicts[12] == "not supported"
    assert verdicts[1] == "mixed"
    report = make_report(df)
    assert "float32 matches float64 up to n=400" in report
    assert "a flat curve: the knobs barely matter here" in report
    assert "kernel ahead by 9.0 pts, contrary to the finding for a convolutional" not in report
    assert "finite ahead by 9.0 pts for a convolutional network" in report


def test_report_counts_differences_below_one_point_as_ties():
    df = _supporting_rows()
    aug = (df["experiment"] == "augmentation") & (df["value"] == 3)
    df.loc[aug, "accuracy"] = 0.809  # 0.9 points ahead of the single predictor: a tie
    zca = (df["experiment"] == "zca") & (df["value"] == 0.1)
    df.loc[zca, "accuracy"] = 0.81  # exactly 1 point: counts
    verdicts = assess(df)
    assert verdicts[12][0] == "not supported" and verdicts[8][0] == "supported"


def test_report_on_no_results_covers_nothing():
    report = make_report([], {"failed": {"zca": "ImportError: no"}})
    assert "0 supported, 0 mixed, 0 not supported, 0 partly covered, 12 not covered." in report
    assert "- `zca`: ImportError: no" in report
    verdicts = assess(_supporting_rows().query("experiment == 'zca'"))
    assert verdicts[8][0] == "supported" and verdicts[1][0] == "not covered"
    fc_only = _supporting_rows().query("architecture == 'fc'")
    verdict, lines = assess(fc_only)[1]
    assert verdict == "partly covered"  # only the fully connected half ran
    assert lines[1] == "Only half of the finding ran; that half is supported."
    assert lines[-1] == ("No convolutional architecture in this run: that half of the "
                         "finding is untested.")
    verdict, lines = assess(fc_only)[10]
    assert verdict == "partly covered" and "--finite-architectures fc cnn-vec" in lines[0]


def test_report_ignores_failed_rows():
    df = _supporting_rows()
    df.loc[(df["experiment"] == "zca") & (df["variant"] == "ZCA"), "status"] = "failed"
    assert assess(df)[8][0] == "not covered"


# ------------------------------------------------------------- tables and plots


def test_markdown_table_formats_and_escapes():
    df = pd.DataFrame({"a": ["x|y", "z"], "b": [0.123456, np.nan]})
    assert markdown_table(df).splitlines() == [
        "| a | b |", "|---|---|", "| x\\|y | 0.1235 |", "| z |  |"]


@pytest.mark.parametrize("experiment", list(EXPERIMENTS))
def test_every_experiment_plots_from_fixed_rows(experiment, tmp_path):
    rows = _supporting_rows()
    rows = rows[rows["experiment"] == experiment]
    path = save_plot(experiment, rows, tmp_path / f"{experiment}.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ------------------------------------------------ resuming: what is reused, what redone


@pytest.fixture
def fake_zca(monkeypatch):
    """The zca experiment replaced by a fast fake that counts its runs."""
    from sknngp.study import _runner

    calls = []

    def fake(data, config, device="auto", progress=False):
        calls.append(config)
        return [ex.row("zca", "fc", "nngp", variant="no ZCA", accuracy=0.8),
                ex.row("zca", "fc", "nngp", variant="ZCA", param="zca_reg", value=0.1,
                       accuracy=0.85, cv_accuracy=0.84)]

    monkeypatch.setitem(_runner.EXPERIMENTS, "zca", fake)
    return calls


def _run(out, data, config):
    lines = []
    run_study(data, config, out, experiments=["zca"], progress=False, log=lines.append)
    return "\n".join(lines)


@pytest.mark.parametrize("damage", ["truncate", "cut_row", "duplicate", "edit", "record"])
def test_resume_redoes_damaged_results(fake_zca, tiny, tmp_path, damage):
    data, config = tiny
    _run(tmp_path, data, config)
    csv = tmp_path / "zca.csv"
    text = csv.read_text()
    lines = text.splitlines(keepends=True)
    if damage == "truncate":
        csv.write_text("".join(lines[:2]))
    elif damage == "cut_row":
        csv.write_text(text[: len(text) - 10])
    elif damage == "duplicate":
        csv.write_text(text + lines[-1])
    elif damage == "edit":
        csv.write_text(text.replace("0.85", "0.95"))
    else:
        (tmp_path / "zca.json").write_text("{not json")
    log = _run(tmp_path, data, config)
    assert "earlier results not used" in log and "rerunning" in log
    assert len(fake_zca) == 2
    assert csv.read_text() == text  # redone and rewritten whole
    assert not list(tmp_path.glob(".*.tmp"))  # no temporary file left behind


def test_resume_reuses_valid_results_and_redoes_another_configuration(fake_zca, tiny,
                                                                       tmp_path):
    data, config = tiny
    _run(tmp_path, data, config)
    assert "valid results found" in _run(tmp_path, data, config)
    assert len(fake_zca) == 1
    log = _run(tmp_path, data, config.replace(zca_regs=(0.5,)))
    assert "another configuration" in log and len(fake_zca) == 2
    # the report of a run that did not request zca leaves the stale one out, and says so
    lines = []
    paths = run_study(data, config, tmp_path, experiments=[], progress=False,
                      log=lines.append)
    assert "zca" in paths["stale"]
    assert "Results in the folder left out" in (tmp_path / "report.md").read_text()


def test_precision_sizes_follow_n_train():
    config = PRESETS["demo"]
    assert config.precision_sizes == (100, 200, 400, 800, 1400)
    assert config.replace(n_train=600).precision_sizes == (200, 400, 800, 1600, 2800)
    assert PRESETS["record"].precision_sizes == (250, 500, 1000, 2000, 4000)


def test_plots_are_ready_for_a_talk(tmp_path):
    from sknngp.study import plots

    rows = _supporting_rows()
    meta = dict(dataset="digits", n_train=300, n_test=300, depth=3, seed=0)
    assert plots.subtitle(meta) == "digits, n_train=300, n_test=300, depth 3, seed 0"
    # bars start at zero (no truncated bars) and carry their values
    fig = plots.plot_finite_vs_infinite(rows[rows["experiment"] == "finite_vs_infinite"])
    ax = fig.axes[0]
    assert ax.get_ylim()[0] == 0.0
    assert any(t.get_text() == "0.950" for t in ax.texts)
    # the diag_reg and t panels share one y scale
    fig = plots.plot_regularization(rows[rows["experiment"] == "regularization"])
    left, right = fig.axes[:2]
    assert left.get_shared_y_axes().joined(left, right)
    # "agreement" is defined in the figure
    fig = plots.plot_finite_width(rows[rows["experiment"] == "finite_width"])
    assert any("agreement: fraction of test images" in t.get_text() for t in fig.texts)
    # counts get integer ticks
    fig = plots.plot_augmentation(rows[rows["experiment"] == "augmentation"])
    ticks = fig.axes[0].get_xticks()
    assert np.allclose(ticks, np.round(ticks))
    path = plots.save_plot("zca", rows[rows["experiment"] == "zca"], tmp_path / "z.png", meta)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
