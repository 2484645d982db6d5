"""sknngp's kernels against neural-tangents 0.6.5, the reference implementation.

The arrays in ``tests/reference/nt_reference.npz`` were written by
``tests/reference/make_nt_reference.py`` (``make nt-reference``, in the separate
``.nt-venv``; see that script's docstring for the format and for why its
x1-vs-x1 block is computed with ``diagonal_batch=False``). neural-tangents is
not needed to run these tests.

Each config is a layer stack (JSON) that maps one to one onto
:mod:`sknngp.kernels` layer classes; where it is a named architecture the
named path (``architecture="cnn-gap", depth=...``) is checked too. Both the
symmetric block ``kernel_matrix(x1)`` and the cross block ``kernel_matrix(x2,
x1)`` must agree with the reference to float64 round-off: max abs error
<= 1e-9 * max abs of the reference array, for NNGP and NTK alike.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

REF_PATH = os.path.join(os.path.dirname(__file__), "reference", "nt_reference.npz")
RTOL = 1e-9  # relative to max |reference|; float64 round-off is ~1e-15

with np.load(REF_PATH) as _ref:
    REF = {key: _ref[key] for key in _ref.files}
CONFIGS = json.loads(str(REF["configs_json"]))
BY_NAME = {cfg["name"]: cfg for cfg in CONFIGS}
NAMED = [cfg["name"] for cfg in CONFIGS if "named" in cfg]


def build_stack(layers):
    """The :class:`sknngp.kernels.Serial` stack of a JSON layer list."""
    from sknngp import kernels as K

    classes = {
        "Dense": K.Dense, "Conv": K.Conv, "ABRelu": K.ABRelu, "Erf": K.Erf,
        "Flatten": K.Flatten, "GlobalAvgPool": K.GlobalAvgPool, "AvgPool": K.AvgPool,
    }
    out = []
    for kind, params in layers:
        params = {
            k: tuple(v) if isinstance(v, list) else v for k, v in params.items()
        }
        out.append(classes[kind](**params))
    return K.serial(*out)


def rel_err(got, ref):
    got = np.asarray(got)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    assert got.dtype == np.float64, got.dtype
    return float(np.max(np.abs(got - ref)) / np.max(np.abs(ref)))


def check_against_reference(name, **arch):
    import sknngp

    x1, x2 = REF[f"{name}/x1"], REF[f"{name}/x2"]
    common = dict(get=("nngp", "ntk"), dtype="float64", **arch)
    k11 = sknngp.kernel_matrix(x1, **common)
    k21 = sknngp.kernel_matrix(x2, x1, **common)
    errors = {
        "nngp_11": rel_err(k11.nngp, REF[f"{name}/nngp_11"]),
        "ntk_11": rel_err(k11.ntk, REF[f"{name}/ntk_11"]),
        "nngp_21": rel_err(k21.nngp, REF[f"{name}/nngp_21"]),
        "ntk_21": rel_err(k21.ntk, REF[f"{name}/ntk_21"]),
    }
    bad = {k: v for k, v in errors.items() if not v <= RTOL}
    assert not bad, (
        f"{name}: max relative error above {RTOL:g} in {bad} (all: {errors})"
    )
    return errors


def test_reference_file_is_complete():
    assert len(CONFIGS) >= 20
    keys = ("x1", "x2", "nngp_11", "ntk_11", "nngp_21", "ntk_21")
    for cfg in CONFIGS:
        for key in keys:
            assert f"{cfg['name']}/{key}" in REF
        n1, n2 = cfg["n1"], cfg["n2"]
        assert REF[f"{cfg['name']}/nngp_11"].shape == (n1, n1)
        assert REF[f"{cfg['name']}/ntk_21"].shape == (n2, n1)
    # Required coverage of the named architectures.
    seen = {
        (c["named"]["architecture"], c["named"]["activation"], c["named"]["parameterization"])
        for c in CONFIGS if "named" in c
    }
    for arch in ("fc", "cnn-vec", "cnn-gap"):
        for act in ("relu", "erf"):
            for par in ("ntk", "standard"):
                assert (arch, act, par) in seen


@pytest.mark.parametrize("name", [cfg["name"] for cfg in CONFIGS])
def test_stack_matches_neural_tangents(name):
    stack = build_stack(BY_NAME[name]["layers"])
    check_against_reference(name, architecture=stack)


@pytest.mark.parametrize("name", NAMED)
def test_named_architecture_matches_neural_tangents(name):
    named = BY_NAME[name]["named"]
    check_against_reference(name, **named)


@pytest.mark.parametrize("name", NAMED)
def test_named_architecture_is_its_layer_stack(name):
    """The JSON layer list of a named config is what build_architecture builds."""
    from sknngp.kernels import build_architecture

    assert build_architecture(**BY_NAME[name]["named"]) == build_stack(
        BY_NAME[name]["layers"]
    )
