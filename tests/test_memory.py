"""Memory plan of the kernel engine, made before any work: tile sizes, host
and device estimates, refusals that name the option that fits.

The memory functions (``_memory.host_available``, ``_memory.device_free``)
are monkeypatched; accelerators are fake objects with ``memory_stats()``.
"""

import numpy as np
import pytest

from sknngp import kernel_matrix
from sknngp.kernels import _engine, _memory, _tiles, kernel_diagonal

GiB = 2**30


class FakeGPU:
    """What the planner reads of a jax.Device: platform, str and memory_stats()."""

    platform = "gpu"

    def __init__(self, limit, in_use=0, index=0):
        self.limit, self.in_use, self.id = limit, in_use, index

    def memory_stats(self):
        return {"bytes_limit": self.limit, "bytes_in_use": self.in_use}



def _plan(arch, shape, depth=1):
    return _engine._prepare(np.ones((1,) + shape), None,
                            dict(architecture=arch, depth=depth, activation="relu", W_std=1.5,
                                 b_std=0.1, parameterization="ntk", width=None), None, "X")[0]


class _Shapes:
    """The row counts of the tiles' inputs, read off ``tile_inputs``."""

    def __init__(self, calls):
        self.calls = calls

    def __eq__(self, other):
        return [(None if a is None else a.shape[0], None if b is None else b.shape[0])
                for a, b in self.calls] == other

    def clear(self):
        self.calls.clear()

    def __getitem__(self, k):
        a, b = self.calls[k]
        return (None if a is None else a.shape[0], None if b is None else b.shape[0])


@pytest.fixture
def spy_tiles(tile_inputs):
    """Row counts ``(rows of x1, rows of x2)`` of every tile the engine runs."""
    return _Shapes(tile_inputs)


# ------------------------------------------------------------------ padding


def test_tile_never_exceeds_the_rows(spy_tiles):
    """3 rows with batch_size=4096: one 3x3 tile, not a 4096-row padded one."""
    x = np.random.default_rng(0).normal(size=(3, 5))
    K = kernel_matrix(x, batch_size=4096)
    assert spy_tiles == [(3, None)]
    np.testing.assert_allclose(K, kernel_matrix(x, batch_size=1), rtol=1e-14)
    assert _tiles.choose_tile(_plan("fc", (5,)), 3, 3, 4096) == 3


def test_cross_tiles_are_cut_to_each_side(spy_tiles):
    """A 3 x 50 cross block with batch_size=4096: one 3 x 50 tile."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=(3, 4)), rng.normal(size=(50, 4))
    K = kernel_matrix(a, b, batch_size=4096)
    assert spy_tiles == [(3, 50)]
    np.testing.assert_allclose(K, kernel_matrix(np.vstack([a, b]))[:3, 3:], rtol=1e-12)
    spy_tiles.clear()
    K2 = kernel_matrix(a, b, batch_size=20)  # 3 x 20, 3 x 20, 3 x 10 (padded to 20)
    assert spy_tiles == [(3, 20)] * 3
    np.testing.assert_allclose(K2, K, rtol=1e-14)


def test_three_cnn_gap_images_with_a_huge_batch_size_run():
    """The issue's case: a 4096-row tile of CNN-GAP would need petabytes."""
    x = np.random.default_rng(2).normal(size=(3, 8, 8, 1))
    K = kernel_matrix(x, architecture="cnn-gap", depth=1, batch_size=4096)
    np.testing.assert_allclose(K, kernel_matrix(x, architecture="cnn-gap", depth=1,
                                                batch_size=1), rtol=1e-13)
    d = kernel_diagonal(x, architecture="cnn-gap", depth=1, batch_size=4096)
    np.testing.assert_allclose(d, np.diag(K), rtol=1e-12)


# ------------------------------------------------------------------ host


@pytest.fixture
def two_workers(monkeypatch):
    monkeypatch.setattr(_tiles, "_n_workers", lambda devices: 2)


def test_host_refuses_the_kernel_and_names_the_rows_that_fit(monkeypatch):
    monkeypatch.setattr(_memory, "host_available", lambda: 60 * 8 * 20)
    with pytest.raises(MemoryError) as err:
        kernel_matrix(np.ones((50, 3)), np.ones((60, 3)))
    msg = str(err.value)
    assert "the kernel matrix needs 23.4 KiB on the host (50 x 60 x 1 float64)" in msg
    assert "only 9.4 KiB is available" in msg
    # half of the 9,600 bytes hold 10 rows of 60 float64 columns; or a kernel store
    assert "blocks of at most 10 rows" in msg and "kernel_cache=<directory>" in msg
    with pytest.raises(MemoryError, match="the kernel matrix needs 39.1 KiB on the host"):
        kernel_matrix(np.ones((50, 3)), get=("nngp", "ntk"))  # two kernels


def test_host_refuses_tiles_and_the_suggested_batch_size_fits(monkeypatch, two_workers):
    """The kernel fits, the concurrent CPU tiles do not: the batch_size the
    error suggests is accepted under the same memory."""
    x = np.random.default_rng(3).normal(size=(40, 4, 4, 1))
    plan = _plan("cnn-vec", (4, 4, 1))
    reference = kernel_matrix(x, architecture="cnn-vec", depth=1)
    kernel = 40 * 40 * 8
    avail = kernel + 2 * (_memory.tile_bytes(plan, 10, 10, 8) + 10 * 10 * 8)
    monkeypatch.setattr(_memory, "host_available", lambda: avail)
    with pytest.raises(MemoryError, match=r"the 40x40 tiles .* on the host .*pass batch_size=(\d+)") as err:
        kernel_matrix(x, architecture="cnn-vec", depth=1, batch_size=40)
    fit = int(err.value.args[0].rsplit("batch_size=", 1)[1].split()[0].rstrip(".,;"))
    assert 10 <= fit < 40
    K = kernel_matrix(x, architecture="cnn-vec", depth=1, batch_size=fit)
    np.testing.assert_allclose(K, reference, rtol=1e-13)


def test_kernel_diagonal_has_a_memory_check(monkeypatch, two_workers):
    monkeypatch.setattr(_memory, "host_available", lambda: 1000)
    x = np.ones((500, 3))
    with pytest.raises(MemoryError, match=r"the kernel diagonal needs .* on the host \(500 x 1 float64\)"):
        kernel_diagonal(x)
    monkeypatch.setattr(_memory, "host_available", lambda: 500 * 8 + 200_000)
    with pytest.raises(MemoryError, match=r"batch of 64 rows needs .* on the host.*batch_size=(\d+)") as err:
        kernel_diagonal(np.ones((500, 4, 4, 1)), architecture="cnn-gap", depth=1, batch_size=64)
    fit = int(err.value.args[0].rsplit("batch_size=", 1)[1].split()[0].rstrip(".,;"))
    d = kernel_diagonal(np.ones((500, 4, 4, 1)), architecture="cnn-gap", depth=1, batch_size=fit)
    assert d.shape == (500,) and 1 <= fit < 64


def test_unknown_host_memory_plans_nothing(monkeypatch):
    monkeypatch.setattr(_memory, "host_available", lambda: None)
    assert kernel_matrix(np.ones((2, 3))).shape == (2, 2)


# ------------------------------------------------------------------ devices


def test_device_free_reads_memory_stats():
    assert _memory.device_free(FakeGPU(10 * GiB, 4 * GiB)) == 6 * GiB
    assert _memory.device_free(FakeGPU(10 * GiB, 12 * GiB)) == 0

    class NoStats(FakeGPU):
        def memory_stats(self):
            return None

    assert _memory.device_free(NoStats(1)) is None
    import jax
    assert _memory.device_free(jax.devices("cpu")[0]) is None  # the host's memory


@pytest.mark.parametrize("itemsize", [4, 8])
def test_accelerator_tile_from_device_memory(itemsize):
    plan = _plan("cnn-vec", (8, 8, 1))  # 64 entries per pair
    free = 6 * GiB
    devices = [FakeGPU(10 * GiB, 4 * GiB), FakeGPU(16 * GiB, 1 * GiB, 1)]  # the tighter one governs
    tile = _tiles.choose_tile(plan, 10**6, 10**6, None, devices, itemsize)
    budget = _memory.DEVICE_SHARE * free
    assert _memory.tile_bytes(plan, tile, tile, itemsize) <= budget
    assert _memory.tile_bytes(plan, tile + 1, tile + 1, itemsize) > budget or \
        tile == _memory.MAX_DEVICE_TILE
    assert tile > 512  # GPUs take far larger tiles than the CPU's cache-sized ones
    # float32 fits more entries than float64
    other = _tiles.choose_tile(plan, 10**6, 10**6, None, devices, 12 - itemsize)
    assert (other < tile) == (itemsize == 4)
    # capped by the rows, and the CPU choice unchanged
    assert _tiles.choose_tile(plan, 7, 7, None, devices, itemsize) == 7
    cpu = _tiles.choose_tile(plan, 10**6, 10**6, None)
    assert cpu == int(np.sqrt(_tiles.TILE_ENTRIES / 64))


def test_accelerator_without_stats_uses_the_cpu_choice():
    class NoStats(FakeGPU):
        def memory_stats(self):
            raise RuntimeError("not supported")

    plan = _plan("fc", (5,))
    assert _tiles.choose_tile(plan, 10**5, 10**5, None, [NoStats(1)], 8) == 512


def test_device_refuses_a_tile_and_names_the_batch_size_that_fits():
    plan = _plan("cnn-gap", (8, 8, 1))  # 4096 entries per pair
    gpu = FakeGPU(1 * GiB, 0)
    with pytest.raises(MemoryError) as err:
        _memory.check_matrix(plan, 1000, 1000, 1, (1000, 1000), 8, [gpu], 1)
    msg = str(err.value)
    assert "one 1000x1000 tile needs about" in msg and "on gpu:0" in msg
    fit = int(msg.rsplit("batch_size=", 1)[1].split()[0].rstrip(".,;"))
    assert _memory.tile_bytes(plan, fit, fit, 8) <= _memory.DEVICE_SHARE * GiB
    assert _memory.tile_bytes(plan, fit + 1, fit + 1, 8) > _memory.DEVICE_SHARE * GiB
    _memory.check_matrix(plan, 1000, 1000, 1, (fit, fit), 8, [gpu], 1)  # accepted
    # a single pair beyond the device: no batch_size helps
    tiny = FakeGPU(1000, 0)
    with pytest.raises(MemoryError, match=r"even a 1x1 tile does not fit.*\(device='cpu'\)"):
        _memory.check_matrix(plan, 10, 10, 1, (1, 1), 8, [tiny], 1)


def test_device_check_runs_before_any_work(monkeypatch, spy_tiles):
    """The CPU devices posing as accelerators with 64 KiB free: an explicit
    large batch_size is refused before a tile runs, None picks one that fits."""
    x = np.random.default_rng(4).normal(size=(30, 4, 4, 1))
    kw = dict(architecture="cnn-vec", depth=1)
    reference = kernel_matrix(x, **kw)
    spy_tiles.clear()
    monkeypatch.setattr(_memory, "device_free", lambda d: 64 * 1024)
    with pytest.raises(MemoryError, match=r"on cpu:\d.*pass batch_size=\d+"):
        kernel_matrix(x, batch_size=30, **kw)
    assert spy_tiles == []
    K = kernel_matrix(x, device="cpu:0", **kw)
    plan = _plan("cnn-vec", (4, 4, 1))
    side = spy_tiles[0][0]
    assert _memory.tile_bytes(plan, side, side, 8) <= _memory.DEVICE_SHARE * 64 * 1024 < \
        _memory.tile_bytes(plan, side + 1, side + 1, 8)
    np.testing.assert_allclose(K, reference, rtol=1e-13)
    with pytest.raises(MemoryError, match=r"batch of 30 rows needs .* on cpu:\d"):
        kernel_diagonal(x, batch_size=30, architecture="cnn-gap", depth=1)


def test_capture_state_that_does_not_fit_the_device_is_kept_on_the_host(monkeypatch):
    plan = _plan("cnn-vec", (4, 4, 1))
    gpu = FakeGPU(1 * GiB, 0)
    state = 2 * GiB
    assert _memory.check_matrix(plan, 100, 100, 1, (100, 100), 8, [gpu], 1,
                                state_bytes=state) == "host"
    assert _memory.check_matrix(plan, 100, 100, 1, (100, 100), 8, [gpu], 1,
                                state_bytes=1000) == "device"
