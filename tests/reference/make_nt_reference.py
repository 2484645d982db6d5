"""Generate the neural-tangents reference kernels used by ``tests/test_reference.py``.

How to run
----------
From the repository root::

    make nt-reference

which creates the oracle virtual environment ``.nt-venv`` when missing (exactly
``neural-tangents==0.6.5 jax==0.5.3 jaxlib==0.5.3 tf2jax==0.3.6``; it does not
import on current JAX, hence its own venv) and runs::

    .nt-venv/bin/python tests/reference/make_nt_reference.py [--out PATH]

It runs on CPU in a few seconds, in float64 (``jax_enable_x64``), and is
deterministic (inputs come from ``numpy.random.default_rng(seed)``).

What it produces
----------------
``tests/reference/nt_reference.npz`` (a few hundred kB, committed), holding:

``configs_json``
    A JSON string: a list of configs, each
    ``{"name", "seed", "n1", "n2", "input_shape", "layers", ["named"]}``.
    ``layers`` is a list of ``[kind, params]`` pairs that map one to one onto
    the layer classes of :mod:`sknngp.kernels` (same names, same keyword
    arguments)::

        ["Dense", {"W_std", "b_std", "parameterization", "width"}]
        ["Conv", {"filter_shape", "strides", "padding", "W_std", "b_std",
                  "parameterization", "width"}]
        ["ABRelu", {"a", "b"}]      ["Erf", {"a", "b"}]
        ["Flatten", {}]             ["GlobalAvgPool", {}]
        ["AvgPool", {"window_shape", "strides", "padding"}]

    and onto neural-tangents' ``stax`` as: ``Dense(out_dim=width or 1, W_std,
    b_std, parameterization)``, ``Conv(out_chan=width or 1, filter_shape,
    strides, padding, W_std, b_std, parameterization)``, ``ABRelu(a, b)``,
    ``Erf(a, b, c=0)``, ``Flatten()``, ``GlobalAvgPool()``,
    ``AvgPool(window_shape, strides, padding, normalize_edges=False)``.
    ``b_std`` is passed through as given: ``b_std=0.0`` is a bias initialised at
    zero (neural-tangents' ``b_std=0.``, not ``None``), which under the standard
    parameterization still adds its gradient term (+1) to the NTK.
    ``width`` only matters for the standard-parameterization NTK (the fan-in of
    the next layer); the readout has ``width=None``.

    ``named`` (present when the stack is one of the package's named
    architectures) gives the ``kernel_matrix`` keywords ``{"architecture",
    "depth", "activation", "W_std", "b_std", "parameterization", "width"}``
    with these semantics: ``"fc"`` = Flatten, depth x [Dense, act], Dense;
    ``"cnn-vec"`` = depth x [Conv 3x3 SAME, act], Flatten, Dense; ``"cnn-gap"``
    = depth x [Conv 3x3 SAME, act], GlobalAvgPool, Dense; ``relu`` =
    ``ABRelu(0, 1)``, ``erf`` = ``Erf(1, 1)``; hidden layers carry ``width``.

``NAME/x1``, ``NAME/x2``
    float64 inputs (``n1`` resp. ``n2`` samples; NHWC images, or 2-D for pure
    fully connected inputs), seeded standard normal.
``NAME/nngp_11``, ``NAME/ntk_11``
    ``kernel_fn(x1, None)``: x1 against x1, shape ``(n1, n1)``.
``NAME/nngp_21``, ``NAME/ntk_21``
    ``kernel_fn(x2, x1)``: x2 against x1, shape ``(n2, n1)``.

``versions_json``
    The versions of neural-tangents, jax and numpy that wrote the file.

Why ``diagonal_batch=False`` for the x1-vs-x1 block
----------------------------------------------------
By default ``kernel_fn(x1, None)`` keeps only per-sample variances ``cov1``
(``diagonal_batch=True``), computed by different formulas (and summation
orders) than the diagonal of ``nngp``. For an ABRelu the angle of a pair is
``arctan2(sqrt(cov_i cov_j - nngp_ij**2), nngp_ij)``; on the diagonal
``i == j`` a one-ulp mismatch between ``cov_i`` and ``nngp_ii`` turns into an
angle of ``~sqrt(eps) ~ 1e-8`` instead of 0, and the NTK diagonal picks up a
relative error of ``~1e-8`` (measured: 1.0e-8 on ``fc-relu-ntk`` against a
40-digit mpmath evaluation, while the off-diagonal entries agree to 1e-16).
With ``diagonal_batch=False`` neural-tangents carries the full sample x sample
covariance, ``cov1`` and ``nngp`` are the same array, the diagonal angle is
exactly 0 and the whole block is exact to round-off. The script checks that
both settings agree off the diagonal to 1e-12 and prints the diagonal gap of
the default setting. The x2-vs-x1 block has no such coincident pairs.

Only neural-tangents' analytic ``kernel_fn`` is used; no code of it is copied
into sknngp.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "nt_reference.npz")

N1, N2 = 5, 3
SQRT2 = math.sqrt(2.0)


# ---------------------------------------------------------------------------
# Layer constructors (JSON form)


def dense(W_std, b_std, parameterization="ntk", width=None):
    return ["Dense", dict(W_std=W_std, b_std=b_std,
                          parameterization=parameterization, width=width)]


def conv(filter_shape=(3, 3), strides=(1, 1), padding="SAME", W_std=SQRT2,
         b_std=0.1, parameterization="ntk", width=None):
    return ["Conv", dict(filter_shape=list(filter_shape), strides=list(strides),
                         padding=padding, W_std=W_std, b_std=b_std,
                         parameterization=parameterization, width=width)]


def abrelu(a, b):
    return ["ABRelu", dict(a=a, b=b)]


def erf(a=1.0, b=1.0):
    return ["Erf", dict(a=a, b=b)]


def flatten():
    return ["Flatten", {}]


def gap():
    return ["GlobalAvgPool", {}]


def avgpool(window_shape=(2, 2), strides=(2, 2), padding="VALID"):
    return ["AvgPool", dict(window_shape=list(window_shape), strides=list(strides),
                            padding=padding)]


def named_layers(architecture, depth, activation, W_std, b_std,
                 parameterization, width):
    """The layer list of a named architecture (the package's semantics)."""
    act = abrelu(0.0, 1.0) if activation == "relu" else erf(1.0, 1.0)
    common = dict(W_std=W_std, b_std=b_std, parameterization=parameterization)
    if architecture == "fc":
        layers = [flatten()]
        for _ in range(depth):
            layers += [dense(width=width, **common), act]
        return layers + [dense(width=None, **common)]
    layers = []
    for _ in range(depth):
        layers += [conv((3, 3), (1, 1), "SAME", width=width, **common), act]
    pool = flatten() if architecture == "cnn-vec" else gap()
    return layers + [pool, dense(width=None, **common)]


# ---------------------------------------------------------------------------
# The configs


def build_configs():
    configs = []
    seed = [1000]

    def add(name, input_shape, layers, named=None, n1=N1, n2=N2):
        seed[0] += 1
        cfg = dict(name=name, seed=seed[0], n1=n1, n2=n2,
                   input_shape=list(input_shape), layers=layers)
        if named is not None:
            cfg["named"] = named
        configs.append(cfg)

    def add_named(name, input_shape, **named):
        add(name, input_shape, named_layers(**named), named=named)

    # Named architectures: {fc, cnn-vec, cnn-gap} x {relu, erf} x {ntk, standard}.
    # Mixed W_std / b_std (including b_std = 0) and two image shapes with H != W.
    hyper = {
        ("relu", "ntk"): dict(W_std=SQRT2, b_std=0.1),
        ("relu", "standard"): dict(W_std=1.3, b_std=0.0),
        ("erf", "ntk"): dict(W_std=1.7, b_std=0.3),
        ("erf", "standard"): dict(W_std=1.1, b_std=0.2),
    }
    shapes = {"fc": (5, 7, 3), "cnn-vec": (6, 6, 2), "cnn-gap": (5, 7, 3)}
    depths = {"fc": 3, "cnn-vec": 3, "cnn-gap": 2}
    for arch in ("fc", "cnn-vec", "cnn-gap"):
        for act in ("relu", "erf"):
            for par in ("ntk", "standard"):
                width = 64 if par == "standard" else None
                add_named(f"{arch}-{act}-{par}", shapes[arch], architecture=arch,
                          depth=depths[arch], activation=act,
                          parameterization=par, width=width, **hyper[act, par])

    # Depth extremes of cnn-gap relu.
    add_named("cnn-gap-relu-ntk-depth1", (6, 6, 2), architecture="cnn-gap",
              depth=1, activation="relu", W_std=1.2, b_std=0.05,
              parameterization="ntk", width=None)
    add_named("cnn-gap-relu-ntk-depth8", (5, 7, 3), architecture="cnn-gap",
              depth=8, activation="relu", W_std=SQRT2, b_std=0.1,
              parameterization="ntk", width=None)
    # Named fc on 2-D (non-image) inputs; ntk and standard, width given to ntk too
    # (it must be ignored there).
    add_named("fc-relu-ntk-2d", (12,), architecture="fc", depth=2,
              activation="relu", W_std=0.9, b_std=0.4, parameterization="ntk",
              width=32)
    add_named("fc-erf-standard-2d", (12,), architecture="fc", depth=4,
              activation="erf", W_std=1.5, b_std=0.0,
              parameterization="standard", width=128)

    # Custom stacks.
    # VALID padding, strides (2,2) and (1,2), non-square filters, LeakyRelu- and
    # Abs-like ABRelu, scaled Erf; Flatten readout (diagonal path).
    add("custom-valid-strides-vec", (7, 6, 3), [
        conv((3, 3), (1, 1), "VALID", W_std=1.3, b_std=0.2),
        abrelu(0.2, 1.0),
        conv((3, 2), (2, 2), "SAME", W_std=1.6, b_std=0.0),
        erf(1.3, 0.7),
        conv((2, 2), (1, 2), "VALID", W_std=0.8, b_std=0.5),
        abrelu(-1.0, 1.0),
        flatten(),
        dense(W_std=1.1, b_std=0.1),
    ])
    # The same kind of stack with a pooled readout (full position x position path).
    add("custom-valid-strides-gap", (7, 6, 3), [
        conv((3, 2), (1, 1), "VALID", W_std=1.3, b_std=0.2),
        abrelu(0.2, 1.0),
        conv((3, 3), (2, 2), "SAME", W_std=1.6, b_std=0.0),
        erf(1.3, 0.7),
        conv((2, 3), (1, 2), "SAME", W_std=0.8, b_std=0.5),
        abrelu(-1.0, 1.0),
        gap(),
        dense(W_std=1.1, b_std=0.1),
    ])
    # AvgPool (VALID) then more conv, then GAP.
    add("custom-avgpool-gap", (6, 8, 2), [
        conv((3, 3), (1, 1), "SAME", W_std=SQRT2, b_std=0.1),
        abrelu(0.0, 1.0),
        avgpool((2, 2), (2, 2), "VALID"),
        conv((3, 2), (1, 1), "SAME", W_std=1.2, b_std=0.3),
        erf(1.0, 1.0),
        gap(),
        dense(W_std=1.0, b_std=0.0),
    ])
    # AvgPool with SAME padding on odd sizes (edge windows divided by the full
    # window size: normalize_edges=False) and unequal window/stride.
    add("custom-avgpool-same-gap", (5, 7, 2), [
        conv((3, 3), (1, 1), "SAME", W_std=1.5, b_std=0.2),
        abrelu(0.2, 1.0),
        avgpool((3, 2), (2, 1), "SAME"),
        conv((2, 2), (1, 1), "SAME", W_std=1.1, b_std=0.0),
        abrelu(0.0, 1.0),
        gap(),
        dense(W_std=0.7, b_std=0.6),
    ])
    # A Dense acting on images (channel axis) before Flatten, then an MLP head.
    add("custom-dense-on-images", (5, 7, 3), [
        dense(W_std=1.4, b_std=0.2, width=16),
        abrelu(0.0, 1.0),
        conv((3, 3), (1, 1), "SAME", W_std=1.2, b_std=0.1),
        erf(1.3, 0.7),
        flatten(),
        dense(W_std=1.5, b_std=0.0),
        abrelu(-1.0, 1.0),
        dense(W_std=1.0, b_std=0.2),
    ])
    # GAP followed by an MLP head (nonlinearity after pooling).
    add("custom-gap-mlp-head", (6, 6, 2), [
        conv((3, 3), (1, 1), "SAME", W_std=SQRT2, b_std=0.1),
        abrelu(0.0, 1.0),
        gap(),
        dense(W_std=1.3, b_std=0.2),
        erf(1.0, 1.0),
        dense(W_std=1.0, b_std=0.1),
    ])
    # Pure fully connected net on 2-D inputs, assorted nonlinearities.
    add("custom-fc-2d", (10,), [
        dense(W_std=1.2, b_std=0.3),
        erf(1.3, 0.7),
        dense(W_std=SQRT2, b_std=0.0),
        abrelu(0.2, 1.0),
        dense(W_std=0.9, b_std=0.1),
        abrelu(-1.0, 1.0),
        dense(W_std=1.0, b_std=0.2),
    ])
    # Standard parameterization on custom stacks: non-square filters, strides,
    # VALID, Dense on images, per-layer widths; fan-in of the first layer is the
    # number of input channels times the filter size.
    add("custom-standard-conv-vec", (7, 6, 3), [
        conv((3, 2), (1, 2), "VALID", W_std=1.3, b_std=0.2,
             parameterization="standard", width=48),
        abrelu(0.2, 1.0),
        dense(W_std=1.1, b_std=0.0, parameterization="standard", width=24),
        erf(1.3, 0.7),
        conv((2, 2), (2, 2), "SAME", W_std=1.6, b_std=0.1,
             parameterization="standard", width=40),
        abrelu(0.0, 1.0),
        flatten(),
        dense(W_std=1.0, b_std=0.3, parameterization="standard"),
    ])
    add("custom-standard-avgpool-gap", (6, 8, 2), [
        conv((3, 3), (2, 1), "SAME", W_std=SQRT2, b_std=0.0,
             parameterization="standard", width=32),
        abrelu(-1.0, 1.0),
        avgpool((2, 2), (2, 2), "VALID"),
        conv((3, 2), (1, 1), "SAME", W_std=1.2, b_std=0.2,
             parameterization="standard", width=16),
        erf(1.0, 1.0),
        gap(),
        dense(W_std=0.9, b_std=0.1, parameterization="standard"),
    ])
    # Mixed parameterizations in one stack (each layer follows its own rule).
    add("custom-mixed-parameterization", (5, 7, 3), [
        conv((3, 3), (1, 1), "SAME", W_std=1.3, b_std=0.1,
             parameterization="ntk", width=20),
        abrelu(0.0, 1.0),
        conv((3, 3), (1, 1), "SAME", W_std=1.4, b_std=0.0,
             parameterization="standard", width=30),
        erf(1.0, 1.0),
        flatten(),
        dense(W_std=1.2, b_std=0.2, parameterization="ntk", width=50),
        abrelu(0.2, 1.0),
        dense(W_std=1.0, b_std=0.1, parameterization="standard"),
    ])
    return configs


# ---------------------------------------------------------------------------
# neural-tangents side


def nt_stack(layers):
    from neural_tangents import stax

    out = []
    for kind, p in layers:
        if kind == "Dense":
            out.append(stax.Dense(p["width"] or 1, W_std=p["W_std"], b_std=p["b_std"],
                                  parameterization=p["parameterization"]))
        elif kind == "Conv":
            out.append(stax.Conv(p["width"] or 1, tuple(p["filter_shape"]),
                                 strides=tuple(p["strides"]), padding=p["padding"],
                                 W_std=p["W_std"], b_std=p["b_std"],
                                 parameterization=p["parameterization"]))
        elif kind == "ABRelu":
            out.append(stax.ABRelu(p["a"], p["b"]))
        elif kind == "Erf":
            out.append(stax.Erf(a=p["a"], b=p["b"], c=0.0))
        elif kind == "Flatten":
            out.append(stax.Flatten())
        elif kind == "GlobalAvgPool":
            out.append(stax.GlobalAvgPool())
        elif kind == "AvgPool":
            out.append(stax.AvgPool(tuple(p["window_shape"]), strides=tuple(p["strides"]),
                                    padding=p["padding"], normalize_edges=False))
        else:
            raise ValueError(f"unknown layer kind {kind!r}")
    return stax.serial(*out)


def make_inputs(cfg):
    rng = np.random.default_rng(cfg["seed"])
    shape = tuple(cfg["input_shape"])
    x1 = rng.standard_normal((cfg["n1"],) + shape)
    x2 = rng.standard_normal((cfg["n2"],) + shape)
    return x1, x2


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    import jax

    jax.config.update("jax_enable_x64", True)
    jax.config.update("jax_platform_name", "cpu")
    import jax.numpy as jnp
    import neural_tangents as nt

    assert nt.__version__ == "0.6.5", nt.__version__
    configs = build_configs()
    names = [c["name"] for c in configs]
    assert len(set(names)) == len(names), "config names must be unique"
    arrays = {}
    for cfg in configs:
        _, _, kernel_fn = nt_stack(cfg["layers"])
        x1, x2 = make_inputs(cfg)
        # diagonal_batch=False: see "Why diagonal_batch=False" in the docstring.
        k11 = kernel_fn(jnp.asarray(x1), None, ("nngp", "ntk"), diagonal_batch=False)
        k21 = kernel_fn(jnp.asarray(x2), jnp.asarray(x1), ("nngp", "ntk"))
        k11_default = kernel_fn(jnp.asarray(x1), None, ("nngp", "ntk"))
        off = ~np.eye(cfg["n1"], dtype=bool)
        diag_gap = 0.0
        for a, b in ((k11.nngp, k11_default.nngp), (k11.ntk, k11_default.ntk)):
            a, b = np.asarray(a), np.asarray(b)
            scale = np.max(np.abs(a))
            assert np.max(np.abs(a - b)[off]) <= 1e-12 * scale, cfg["name"]
            diag_gap = max(diag_gap, np.max(np.abs(np.diag(a) - np.diag(b))) / scale)
        name = cfg["name"]
        arrays[f"{name}/x1"] = x1
        arrays[f"{name}/x2"] = x2
        for key, val in (("nngp_11", k11.nngp), ("ntk_11", k11.ntk),
                         ("nngp_21", k21.nngp), ("ntk_21", k21.ntk)):
            val = np.asarray(val)
            assert val.dtype == np.float64, (name, key, val.dtype)
            assert np.all(np.isfinite(val)), (name, key)
            arrays[f"{name}/{key}"] = val
        print(f"{name:34s} x1{x1.shape} nngp[0,0]={float(k11.nngp[0, 0]):.6g} "
              f"ntk[0,0]={float(k11.ntk[0, 0]):.6g} "
              f"diag gap of diagonal_batch=True: {diag_gap:.1e}")
    arrays["configs_json"] = np.array(json.dumps(configs))
    arrays["versions_json"] = np.array(json.dumps(
        {"neural_tangents": nt.__version__, "jax": jax.__version__,
         "numpy": np.__version__}))
    np.savez_compressed(args.out, **arrays)
    print(f"wrote {len(configs)} configs to {args.out} "
          f"({os.path.getsize(args.out) / 1024:.0f} kB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
