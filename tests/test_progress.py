"""Progress bars of kernel computations (``verbose``): one mechanism, tile counts."""

import numpy as np
import pytest

from sknngp import NNGPRegressor, NTKClassifier, kernel_matrix
from sknngp.kernels import _progress, kernel_diagonal


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(10, 3))


def test_kernel_matrix_bar_counts_tiles(capfd, X, monkeypatch):
    from sknngp.kernels import _tiles

    bars = []

    def spy(total, desc, unit="tile"):
        bars.append(_progress.tile_bar(total, desc, unit))
        return bars[-1]

    monkeypatch.setattr(_tiles, "tile_bar", spy)
    K = kernel_matrix(X, depth=2, batch_size=4, verbose=2)
    # 10 rows in tiles of 4: 3 x 3 tiles, 6 unordered pairs on a symmetric block
    assert [(b.total, b.n) for b in bars] == [(6, 6)]
    err = capfd.readouterr().err
    assert "kernel 10x10" in err and "/6 [" in err and "tile" in err
    assert np.allclose(K, kernel_matrix(X, depth=2))
    kernel_matrix(X[:7], X, depth=2, batch_size=4, verbose=2)
    assert "kernel 7x10" in capfd.readouterr().err
    kernel_diagonal(X, depth=2, verbose=2)
    assert "kernel diagonal 10" in capfd.readouterr().err


def test_silent_by_default_and_after_a_verbose_call(capfd, X):
    kernel_matrix(X, depth=2)
    kernel_matrix(X, depth=2, verbose=2)
    capfd.readouterr()
    kernel_matrix(X, depth=2)  # the setting does not leak out of the call
    assert capfd.readouterr().err == ""
    assert _progress._VERBOSE.get() == 0


def test_verbose_one_waits_before_showing(capfd, X, monkeypatch):
    kernel_matrix(X, depth=2, verbose=1)  # far below DELAY_S: nothing shown
    assert capfd.readouterr().err == ""
    monkeypatch.setattr(_progress, "DELAY_S", 0.0)
    kernel_matrix(X, depth=2, verbose=1)
    assert "kernel 10x10" in capfd.readouterr().err


def test_estimators_report_through_the_same_bars(capfd, X):
    y = np.arange(10) % 2
    NNGPRegressor(depth=2, verbose=2, kernel_cache="off").fit(X, y.astype(float))
    assert "kernel 10x10" in capfd.readouterr().err
    clf = NTKClassifier(depth=2, kernel_cache="off").fit(X, y)
    clf.predict(X)
    assert capfd.readouterr().err == ""
    clf.set_params(verbose=2).predict(X[:3])
    assert "kernel 3x10" in capfd.readouterr().err


def test_verbose_is_validated():
    with pytest.raises(ValueError, match=r"'verbose' parameter of NNGPRegressor must be"):
        NNGPRegressor(verbose="loud").fit(np.eye(3), np.arange(3.0))
