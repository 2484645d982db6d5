"""The ``sknngp`` command line: version, argument checks, one-line failures.

Each failure must be one line naming the option (or the extra, or the data
file) and exit with status 2 before any work starts.
"""

import subprocess
import sys
import textwrap

import pytest

import sknngp
from sknngp.__main__ import main
from sknngp.datasets import _base


def _run(capsys, *argv):
    try:
        status = main(list(argv))
    except SystemExit as exit_:  # argparse's own errors and --version
        status = exit_.code
    out, err = capsys.readouterr()
    return status, out, err


def test_version(capsys):
    status, out, _ = _run(capsys, "--version")
    assert status == 0
    assert out.strip() == f"sknngp {sknngp.__version__}"


def test_version_matches_the_installed_metadata():
    from importlib.metadata import version

    assert version("sknngp") == sknngp.__version__


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--n-train", "0"], "argument --n-train: must be an integer >= 2, got 0"),
        (["--n-train", "ten"], "argument --n-train: expected an integer, got 'ten'"),
        (["--n-test", "-3"], "argument --n-test: must be an integer >= 1, got -3"),
        (["--seed", "-1"], "argument --seed: must be an integer in [0, 4294967295], got -1"),
        (["--seed", str(2**32)], "argument --seed: must be an integer in [0, 4294967295]"),
        (["--torch-threads", "-2"], "argument --torch-threads: must be an integer >= 0, got -2"),
        (["--depth", "0"], "argument --depth: must be an integer in [1, 1000], got 0"),
        (["--epochs", "0"], "argument --epochs: must be an integer >= 1, got 0"),
        (["--device", "tpu7"], "argument --device: expected auto, cpu, gpu, gpu:<index>"),
        (["--out", ""], "argument --out: must name a folder, got an empty string"),
        (["--out", " "], "argument --out: must name a folder, got an empty string"),
    ],
)
def test_out_of_range_values_refused_in_one_line(capsys, argv, message):
    status, _, err = _run(capsys, "study", *argv)
    assert status == 2
    assert message in err
    assert "Traceback" not in err


def test_out_pointing_at_a_file(capsys, tmp_path):
    target = tmp_path / "results.txt"
    target.write_text("keep me")
    status, _, err = _run(capsys, "study", "--out", str(target))
    assert status == 2
    assert f"--out '{target}' is an existing file, not a folder" in err
    assert target.read_text() == "keep me"


def test_out_that_cannot_be_created(capsys, tmp_path):
    (tmp_path / "file").write_text("")
    status, _, err = _run(capsys, "study", "--out", str(tmp_path / "file" / "sub"))
    assert status == 2
    assert "cannot create the folder" in err


def _has_gpu():
    import jax

    try:
        return bool(jax.devices("gpu"))
    except RuntimeError:
        return False


@pytest.mark.skipif(_has_gpu(), reason="this machine has a GPU")
@pytest.mark.parametrize("device", ["gpu", "cuda:0", "gpu:3"])
def test_gpu_without_gpu_fails_at_once_with_the_install_hint(capsys, tmp_path, device):
    status, _, err = _run(capsys, "study", "--device", device, "--out", str(tmp_path / "o"))
    assert status == 2
    assert f"--device {device}: JAX sees no GPU on this machine" in err
    assert 'pip install "sknngp[cuda]"' in err
    assert not (tmp_path / "o").exists()  # nothing started


def test_missing_data_is_one_message_listing_every_file(capsys, tmp_path, monkeypatch):
    import urllib.error

    def offline(url):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(_base, "_urlopen", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    monkeypatch.setattr("sknngp.datasets._fashion_mnist.SYSTEM_DIRS", ())
    status, _, err = _run(capsys, "study", "--dataset", "fashion-mnist", "--data-home",
                          str(tmp_path / "data"), "--out", str(tmp_path / "o"))
    assert status == 2
    assert "Traceback" not in err and "urllib" not in err
    assert "4 file(s) of the published data set not found (download failed" in err
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                 "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert f"{tmp_path / 'data' / 'fashion-mnist' / name}   <- http" in err


def _without(modules, code):
    """Run ``code`` in a fresh interpreter where ``modules`` cannot be imported."""
    blocker = textwrap.dedent(f"""
        import sys

        class Block:
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in {modules!r}:
                    raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)

        sys.meta_path.insert(0, Block())
    """)
    return subprocess.run([sys.executable, "-c", blocker + textwrap.dedent(code)],
                          capture_output=True, text=True, timeout=120)


def test_study_without_pandas_names_the_extra():
    result = _without(["pandas"], """
        from sknngp.__main__ import main
        raise SystemExit(main(["study", "--out", "unused-out"]))
    """)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        'sknngp study: error: sknngp study needs pandas, which is not installed; install it '
        'with: pip install "sknngp[study]"'
    ]


def test_study_without_torch_names_the_extra():
    result = _without(["torch"], """
        from sknngp.__main__ import main
        raise SystemExit(main(["study", "--out", "unused-out"]))
    """)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == [
        'sknngp study: error: sknngp study needs torch, which is not installed; install '
        'it with: pip install "sknngp[study]"'
    ]


def test_finite_networks_without_torch_name_the_extra():
    result = _without(["torch", "skorch"], """
        from sknngp.finite import FiniteNetClassifier
    """)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == (
        "sknngp._optional.MissingDependencyError: sknngp.finite (finite networks) needs "
        'torch, skorch, which are not installed; install it with: pip install "sknngp[torch]"'
    )
    # the kernel estimators do not need torch
    result = _without(["torch", "skorch", "pandas", "matplotlib"], """
        import numpy as np
        from sknngp import NNGPRegressor
        NNGPRegressor().fit(np.eye(3), np.arange(3.0))
    """)
    assert result.returncode == 0, result.stderr


def test_version_and_help_work_without_the_study_extra():
    result = _without(["pandas", "matplotlib"], """
        from sknngp.__main__ import main
        main(["--version"])
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sknngp {sknngp.__version__}"
