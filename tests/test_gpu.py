"""GPU checks (marker ``gpu``, skipped where JAX sees no GPU; run them with
``pytest -m gpu``) and the record of ``benchmarks/gpu_check.py --dry-run``."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest
import scipy.linalg

from sknngp import _device_solve, kernel_matrix
from sknngp.kernels import _engine, _memory, _tiles, kernel_diagonal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _gpus():
    try:
        return jax.devices("gpu")
    except RuntimeError:  # no GPU backend
        return []


GPUS = _gpus()
needs_gpu = [pytest.mark.gpu, pytest.mark.skipif(not GPUS, reason="JAX sees no GPU")]


def gpu_test(fn):
    for mark in needs_gpu:
        fn = mark(fn)
    return fn


@gpu_test
@pytest.mark.parametrize("arch", ["fc", "cnn-vec", "cnn-gap"])
@pytest.mark.parametrize("dtype, rtol", [("float64", 1e-11), ("float32", 2e-4)])
def test_kernel_on_gpu_equals_cpu(arch, dtype, rtol):
    x = np.random.default_rng(0).normal(size=(9, 6, 5, 3))
    kw = dict(architecture=arch, depth=3, get=("nngp", "ntk"), dtype=dtype)
    gpu = kernel_matrix(x, device="gpu", batch_size=4, **kw)
    cpu = kernel_matrix(x, device="cpu", **kw)
    for g, c in zip(gpu, cpu):
        np.testing.assert_allclose(g, c, rtol=rtol, atol=rtol * np.abs(c).max())
        np.testing.assert_array_equal(g, g.T)
    diag = kernel_diagonal(x, device="gpu", **kw)
    np.testing.assert_allclose(diag.ntk, np.diag(cpu.ntk), rtol=rtol)


@gpu_test
def test_float64_on_gpu_is_float64():
    """float64 on the GPU agrees with the CPU to round-off, float32 does not."""
    x = np.random.default_rng(1).normal(size=(12, 20))
    k64 = kernel_matrix(x, depth=5, device="gpu", dtype="float64")
    k32 = kernel_matrix(x, depth=5, device="gpu", dtype="float32")
    ref = kernel_matrix(x, depth=5, device="cpu", dtype="float64")
    np.testing.assert_allclose(k64, ref, rtol=1e-12)
    assert np.max(np.abs(k32 - ref) / np.abs(ref)) > 1e-9


@gpu_test
def test_device_solve_on_gpu_equals_scipy():
    rng = np.random.default_rng(2)
    A = rng.normal(size=(400, 420))
    K, B = A @ A.T / 420, rng.normal(size=(400, 3))
    X = _device_solve.solve(K, B, 1e-3, device=GPUS[0])
    np.testing.assert_allclose(X, scipy.linalg.solve(K + 1e-3 * np.eye(400), B, assume_a="pos"),
                               rtol=1e-9, atol=1e-11)
    U = _device_solve.factor(K, 1e-3, device=GPUS[0])
    np.testing.assert_allclose(U, scipy.linalg.cholesky(K + 1e-3 * np.eye(400)), rtol=1e-10,
                               atol=1e-12)
    assert _device_solve.fits(400, 3, device=GPUS[0])
    assert _device_solve.accelerator().platform == "gpu"


@gpu_test
def test_tile_size_from_gpu_memory():
    dev = GPUS[0]
    free = _memory.device_free(dev)
    assert free is not None and free > 0
    x = np.zeros((2, 32, 32, 3))
    plan, _, _ = _engine._prepare(x, None, dict(
        architecture="cnn-gap", depth=2, activation="relu", W_std=2**0.5, b_std=0.1,
        parameterization="ntk", width=None), None, "X")
    tile = _tiles.choose_tile(plan, 10**6, 10**6, None, [dev], 8)
    assert _memory.tile_bytes(plan, tile, tile, 8) <= _memory.DEVICE_SHARE * free
    assert tile == _memory.MAX_DEVICE_TILE or \
        _memory.tile_bytes(plan, tile + 1, tile + 1, 8) > _memory.DEVICE_SHARE * free
    # a CNN-GAP tile of 4096 32x32 images would need petabytes: refused at once
    with pytest.raises(MemoryError, match=r"on gpu:0 .*pass batch_size=\d+"):
        kernel_matrix(np.zeros((5000, 32, 32, 3)), architecture="cnn-gap", depth=2,
                      batch_size=4096, device=dev)


@gpu_test
def test_tiles_on_every_gpu(tile_inputs):
    if len(GPUS) < 2:
        pytest.skip("one GPU: round robin over GPUs needs two")
    x = np.random.default_rng(3).normal(size=(20, 6))
    K = kernel_matrix(x, batch_size=4, device="gpu")
    assert {next(iter(x1.devices())) for x1, _ in tile_inputs} == set(GPUS)
    np.testing.assert_allclose(K, kernel_matrix(x, device="cpu"), rtol=1e-12)


# ------------------------------------------------------------------ the record


def test_gpu_check_dry_run_writes_its_record(tmp_path):
    env = dict(os.environ, PYTHONPATH=ROOT, JAX_PLATFORMS="cpu")
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, "benchmarks", "gpu_check.py"), "--dry-run",
         "--out", str(tmp_path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert sorted(os.listdir(tmp_path)) == ["gpu.json"]  # no temporary file left
    record = json.loads((tmp_path / "gpu.json").read_text())
    assert record["schema"] == 1 and record["dry_run"] is True
    assert {"platform", "python", "cpu_count", "jax_devices"} <= set(record["machine"])
    assert {"jax", "numpy", "scipy", "sklearn", "sknngp"} <= set(record["versions"])
    parts = record["parts"]
    assert set(parts) == {"tests", "kernels", "fits", "finite"}
    for part in parts.values():
        assert part["status"] in ("ok", "skipped") and part["seconds"] >= 0
        assert part["status"] == "ok" or part["reason"]
    tests = parts["tests"]
    if tests["status"] == "ok":  # no GPU here: every selected test is skipped
        assert tests["result"]["status"] == "passed" and tests["result"]["failures"] == 0
        assert tests["result"]["tests"] >= 5 and tests["result"]["skipped"] == tests["result"]["tests"]
    rows = parts["kernels"]["result"]
    assert {(r["architecture"], r["dtype"], r["depth"]) for r in rows} == {
        (a, d, k) for a in ("fc", "cnn-vec", "cnn-gap") for d in ("float32", "float64")
        for k in (1, 2)}
    for r in rows:
        assert "error" not in r and "skipped" not in r, r
        assert r["seconds"] > 0 and r["entries_per_s"] > 0
        assert r["flops_per_tile"] > 0 and r["flops_per_s"] > 0
        assert r["fraction_of_peak"] is None and "no peak known" in r["peak_source"]
    # deeper stacks cost more FLOPs per tile
    by = {(r["architecture"], r["dtype"], r["depth"]): r["flops_per_tile"] for r in rows}
    assert all(by[a, d, 2] > by[a, d, 1] for a, d, _ in by)
    fits = parts["fits"]["result"]
    assert fits["n"] == 300
    for name in ("kernel", "scipy_cholesky_solve", "device_solve", "fit_cholesky"):
        assert fits[name]["seconds"] > 0, (name, fits[name])
    assert fits["device_solve"]["max_rel_diff_vs_scipy"] < 1e-8
    assert "seconds" in fits["fit_cg"] or "error" in fits["fit_cg"]
    finite = parts["finite"]
    if finite["status"] == "ok":
        assert len(finite["result"]["epoch_seconds"]) == 2
    else:
        assert "not importable" in finite["reason"]
