"""The plain-Python architecture layer: registries, shape inference, imports."""

import subprocess
import sys

import numpy as np
import pytest

from sknngp.architecture import (
    ABRelu,
    ARCHITECTURE_PARAMS,
    Conv,
    Dense,
    Flatten,
    Registry,
    build_architecture,
    infer_shapes,
    serial,
)


class MyRelu(ABRelu):
    """A subclass with (hypothetically) another kernel: must not inherit maps."""


def test_registry_lookup_is_by_exact_type():
    reg = Registry("demo map")
    reg.register(ABRelu)(lambda layer: "abrelu")
    assert reg(ABRelu()) == "abrelu"
    with pytest.raises(TypeError, match=r"no demo map is registered for layer type MyRelu "
                                        r"\(MyRelu\(a=0\.0, b=1\.0\)\)\. Registered types: "
                                        r"\['ABRelu'\]"):
        reg(MyRelu())


def test_unregistered_subclass_raises_in_the_kernel_engine():
    from sknngp import kernel_matrix

    stack = serial(Dense(), MyRelu(), Dense())
    with pytest.raises(TypeError, match="no kernel map is registered for layer type MyRelu"):
        kernel_matrix(np.ones((3, 2)), architecture=stack)


def test_unregistered_subclass_raises_in_the_torch_builder():
    pytest.importorskip("torch")
    from sknngp.finite._modules import build_layers

    stack = serial(Dense(width=4), MyRelu(), Dense())
    with pytest.raises(TypeError, match="no torch module builder is registered for layer "
                                        "type MyRelu"):
        build_layers(stack, (3,), 2)


def test_every_spec_in_the_named_architectures_is_registered_in_both_engines():
    from sknngp.kernels._propagate import KERNEL_MAPS

    types = {type(layer) for arch in ("fc", "cnn-vec", "cnn-gap") for act in ("relu", "erf")
             for layer in build_architecture(arch, 2, act).layers}
    assert all(t in KERNEL_MAPS for t in types)
    torch_modules = pytest.importorskip("sknngp.finite._modules")
    assert all(t in torch_modules.TORCH_BUILDERS for t in types)


def test_shape_inference_records_fan_in_and_channels():
    stack = build_architecture("cnn-vec", depth=2, width=5)
    shapes = infer_shapes(stack, (4, 3, 2), n_outputs=7)
    assert [s.spatial_in for s in shapes] == [(4, 3)] * 5 + [()]
    assert [s.channels_out for s in shapes] == [5, 5, 5, 5, 60, 7]
    assert shapes[0].fan_in == 2 * 9 and shapes[2].fan_in == 5 * 9 and shapes[5].fan_in == 60
    # without n_outputs the readout keeps its own width (None: unknown)
    assert infer_shapes(stack, (4, 3, 2))[-1].channels_out is None


def test_shape_inference_errors_name_the_problem():
    with pytest.raises(ValueError, match=r"a Conv with filter_shape=\(3, 3\) needs inputs "
                                         r"with 2 spatial axes, but its input has spatial "
                                         r"shape \(\)"):
        infer_shapes(serial(Conv(), Flatten(), Dense()), (12,))
    with pytest.raises(ValueError, match=r"ends with spatial shape \(4, 4\)"):
        infer_shapes(serial(Conv(), Dense()), (4, 4, 1))
    with pytest.raises(ValueError, match="the layer stack is empty"):
        infer_shapes(serial(), (3,))


def test_parameters_are_defined_once_and_shared():
    """Every estimator exposes the architecture parameters with the defaults of
    build_architecture (the one place that interprets them)."""
    import inspect

    import sknngp

    defaults = inspect.signature(build_architecture).parameters
    classes = [sknngp.NNGPRegressor, sknngp.NTKRegressor, sknngp.NNGPClassifier,
               sknngp.NTKClassifier]
    for cls in classes:
        params = inspect.signature(cls).parameters
        for name in ARCHITECTURE_PARAMS:
            assert params[name].default == defaults[name].default, (cls, name)
        assert set(ARCHITECTURE_PARAMS) <= set(cls._parameter_constraints)
    for cls in (sknngp.NNGPKernel, sknngp.NTKKernel, sknngp.kernel_matrix):
        params = inspect.signature(cls).parameters
        for name in ARCHITECTURE_PARAMS:
            assert params[name].default == defaults[name].default, (cls, name)


def test_fit_builds_the_stack_once_from_the_parameters():
    import sknngp

    X = np.random.default_rng(0).normal(size=(12, 3))
    est = sknngp.NNGPRegressor(depth=2, activation="erf", W_std=1.1).fit(X, X[:, 0])
    assert est.architecture_ == build_architecture("fc", 2, "erf", 1.1, 0.1, "ntk", None)


def test_import_finite_does_not_import_jax():
    pytest.importorskip("torch")
    code = "import sys, sknngp.finite; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"
