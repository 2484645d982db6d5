"""Invariants and input validation of the kernel engine."""

import jax
import numpy as np
import pytest

from sknngp import kernel_matrix
from sknngp.kernels import (
    Conv,
    Dense,
    Flatten,
    GlobalAvgPool,
    Relu,
    kernel_diagonal,
    serial,
)
from sknngp.kernels import _nonlinear

ARCHS = ["fc", "cnn-vec", "cnn-gap"]


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    return rng.normal(size=(11, 5, 4, 2)), rng.normal(size=(7, 5, 4, 2))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("activation", ["relu", "erf"])
def test_symmetric_psd_and_tiling_invariant(images, arch, activation):
    x, z = images
    kw = dict(get=("nngp", "ntk"), architecture=arch, activation=activation, depth=2)
    full = kernel_matrix(x, **kw)
    for K in full:
        np.testing.assert_array_equal(K, K.T)  # mirrored tiles: exactly symmetric
        assert np.linalg.eigvalsh(K).min() > -1e-12 * np.abs(K).max()
    # awkward tile sizes: 11 = 4 + 4 + 3, 7 = 4 + 3
    for bs in (1, 4, 3):
        tiled = kernel_matrix(x, batch_size=bs, **kw)
        np.testing.assert_allclose(tiled.nngp, full.nngp, rtol=1e-13, atol=1e-15)
        np.testing.assert_allclose(tiled.ntk, full.ntk, rtol=1e-13, atol=1e-15)
    cross = kernel_matrix(z, x, batch_size=4, **kw)
    stacked = kernel_matrix(np.concatenate([x, z]), **kw)
    np.testing.assert_allclose(cross.ntk, stacked.ntk[11:, :11], rtol=1e-12, atol=1e-14)
    diag = kernel_diagonal(x, **kw)
    np.testing.assert_allclose(diag.ntk, np.diag(full.ntk), rtol=1e-12)


def test_ntk_dominates_nngp_and_get_single(images):
    x, _ = images
    k = kernel_matrix(x, get=("nngp", "ntk"), architecture="cnn-vec", depth=2)
    np.testing.assert_array_equal(kernel_matrix(x, get="nngp", architecture="cnn-vec", depth=2), k.nngp)
    assert np.all(np.diag(k.ntk) > np.diag(k.nngp))


@pytest.mark.parametrize("arch", ARCHS)
def test_float32_close_to_float64_and_x64_untouched(images, arch):
    x, _ = images
    before = jax.config.jax_enable_x64
    k64 = kernel_matrix(x, architecture=arch, depth=2, get="ntk")
    k32 = kernel_matrix(x, architecture=arch, depth=2, get="ntk", dtype="float32")
    assert jax.config.jax_enable_x64 == before
    assert k32.dtype == np.float64  # always returned as float64
    np.testing.assert_allclose(k32, k64, rtol=2e-5, atol=1e-6 * np.abs(k64).max())
    assert not np.array_equal(k32, k64)  # really computed in float32


def test_two_dim_with_input_shape_equals_images(images):
    x, _ = images
    a = kernel_matrix(x, architecture="cnn-gap", depth=1)
    b = kernel_matrix(x.reshape(11, -1), architecture="cnn-gap", depth=1, input_shape=(5, 4, 2))
    np.testing.assert_array_equal(a, b)


def test_fc_on_images_equals_fc_on_flattened_rows(images):
    x, _ = images
    a = kernel_matrix(x, architecture="fc", get="ntk")
    b = kernel_matrix(x.reshape(11, -1), architecture="fc", get="ntk")
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_expert_stack_equals_named_architecture(images):
    x, _ = images
    w, b = 2**0.5, 0.1
    stack = serial(Conv((3, 3), W_std=w, b_std=b), Relu(), Conv((3, 3), W_std=w, b_std=b), Relu(),
                   GlobalAvgPool(), Dense(W_std=w, b_std=b))
    np.testing.assert_array_equal(
        kernel_matrix(x, architecture=stack, get="ntk"),
        kernel_matrix(x, architecture="cnn-gap", depth=2, get="ntk"),
    )


def test_devices_are_used(images):
    """conftest fakes two CPU devices; each must produce the same tiles."""
    x, _ = images
    assert len(jax.local_devices()) == 2
    both = kernel_matrix(x, batch_size=3, architecture="cnn-vec", depth=1)
    one = kernel_matrix(x, batch_size=3, architecture="cnn-vec", depth=1, device=jax.local_devices()[1])
    np.testing.assert_allclose(both, one, rtol=1e-14)
    cpu0 = kernel_matrix(x, batch_size=3, architecture="cnn-vec", depth=1, device="cpu:0")
    np.testing.assert_allclose(both, cpu0, rtol=1e-14)


def test_branch_free_arccos_and_arcsin_accuracy():
    x = np.concatenate([np.linspace(-1, 1, 20001), [-1 + 1e-12, 1 - 1e-12, 0.5, -0.5]])
    with jax.enable_x64(True):
        ac = np.asarray(_nonlinear.arccos(x))
        asn = np.asarray(_nonlinear.arcsin(x))
    np.testing.assert_allclose(ac, np.arccos(x), rtol=4e-16, atol=4e-16)
    np.testing.assert_allclose(asn, np.arcsin(x), rtol=4e-16, atol=4e-16)


def test_identical_inputs_have_exact_relu_ntk_diagonal():
    """For identical inputs each ReLU layer has E[phi' phi'] = 1/2 exactly."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(6, 9))
    k = kernel_matrix(x, get="ntk", depth=3, W_std=1.5, b_std=0.3)
    K = (x**2).sum(1) / 9
    T = 0.0
    for _ in range(3):
        K = 1.5**2 * K + 0.3**2
        T = K + 1.5**2 * T
        K, T = K / 2, T / 2
    K = 1.5**2 * K + 0.3**2
    T = K + 1.5**2 * T
    np.testing.assert_allclose(np.diag(k), T, rtol=1e-14)


# ------------------------------------------------------------------ errors

@pytest.mark.parametrize(
    "kwargs, X, pattern",
    [
        (dict(input_shape=(3, 3, 1)), np.ones((4, 8)),
         r"input_shape=\(3, 3, 1\) holds 9 values per sample but X1 has 8 features"),
        (dict(architecture="resnet"), np.ones((4, 8)), r"architecture must be one of .* got 'resnet'"),
        (dict(activation="tanh"), np.ones((4, 8)), r"activation must be one of \['relu', 'erf'\]; got 'tanh'"),
        (dict(get="ntks"), np.ones((4, 8)), r"get must be 'nngp', 'ntk' or a tuple"),
        (dict(dtype="float16"), np.ones((4, 8)), r"dtype must be 'float32' or 'float64'; got 'float16'"),
        (dict(depth=0), np.ones((4, 8)), r"depth must be an integer in \[1, 1000\]; got 0"),
        (dict(batch_size=0), np.ones((4, 8)), r"batch_size must be a positive integer or None; got 0"),
        (dict(architecture="cnn-vec"), np.ones((4, 8)),
         r"Conv with filter_shape=\(3, 3\) needs inputs with 2 spatial axes.*input_shape"),
        (dict(parameterization="standard"), np.ones((4, 8)), r"pass width=<number of hidden units>"),
        (dict(device="tpu"), np.ones((4, 8)), r"device='tpu' is not available to JAX"),
        (dict(), np.ones((4, 2, 2)), r"3-D inputs of shape \(4, 2, 2\) are ambiguous"),
        (dict(), np.ones(4), r"X1 must be 2-D \(n_samples, n_features\) or 4-D"),
        (dict(), np.array([[1.0, np.nan], [0.0, 1.0]]), r"X1 contains 1 NaN or infinite value"),
        (dict(), np.array([[1.0, np.inf], [0.0, 1.0]]), r"X1 contains 1 NaN or infinite value"),
        (dict(), np.array([["a", "b"]]), r"X1 must be a numeric array"),
    ],
)
def test_bad_input_errors(kwargs, X, pattern):
    with pytest.raises(ValueError, match=pattern):
        kernel_matrix(X, **kwargs)


def test_mismatched_feature_counts():
    with pytest.raises(ValueError, match=r"X1 and X2 must have the same sample shape; got \(3,\) and \(4,\)"):
        kernel_matrix(np.ones((2, 3)), np.ones((2, 4)))


def test_stack_must_end_without_spatial_axes():
    with pytest.raises(ValueError, match=r"ends with spatial shape \(4, 4\); end it with Flatten"):
        kernel_matrix(np.ones((2, 4, 4, 1)), architecture=serial(Conv(), Relu(), Dense()))


def test_host_memory_estimate_refuses_impossible_job(monkeypatch):
    import os

    from sknngp.kernels import _tiles

    real = os.sysconf
    monkeypatch.setattr(_tiles.os, "sysconf",
                        lambda k: 1 if k == "SC_AVPHYS_PAGES" else real(k))
    with pytest.raises(MemoryError, match=r"kernel matrix needs .* on the host"):
        kernel_matrix(np.ones((50, 3)))


def test_flatten_layer_spec_errors():
    with pytest.raises(TypeError, match="serial\\(\\) takes layer specifications"):
        serial(Dense(), "relu")
    with pytest.raises(ValueError, match="padding must be one of \\['SAME', 'VALID'\\]; got 'same'"):
        Conv(padding="same")
    assert isinstance(serial(Flatten(), serial(Dense(), Relu())).layers[2], type(Relu()))


def test_avgpool_then_flatten(images):
    """AvgPool over the whole image then Flatten is GlobalAvgPool (an identity
    that needs the full covariance to flow through Flatten)."""
    from sknngp.kernels import AvgPool

    x, _ = images
    head = [Conv((3, 3), W_std=1.2, b_std=0.1), Relu()]
    pooled = serial(*head, AvgPool((5, 4), padding="VALID"), Flatten(), Dense())
    gap = serial(*head, GlobalAvgPool(), Dense())
    a = kernel_matrix(x, architecture=pooled, get=("nngp", "ntk"))
    b = kernel_matrix(x, architecture=gap, get=("nngp", "ntk"))
    np.testing.assert_allclose(a.nngp, b.nngp, rtol=1e-12)
    np.testing.assert_allclose(a.ntk, b.ntk, rtol=1e-12)
    # and a strided SAME pooling followed by Flatten runs and stays symmetric PSD
    k = kernel_matrix(x, architecture=serial(*head, AvgPool((2, 2), (1, 1), "SAME"), Flatten(), Dense()))
    np.testing.assert_array_equal(k, k.T)
    assert np.linalg.eigvalsh(k).min() > -1e-12
