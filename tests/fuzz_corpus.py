"""A deterministic corpus of careless and hostile calls over the public API.

Each :class:`Case` is one call and what a correct library does with it:

- ``expect="error"``: refuse it with a ``ValueError``, ``TypeError`` or
  ``MemoryError`` whose message names the culprit (one of ``names``).
- ``expect="ok"``: return finite values (and pass ``check`` when given,
  e.g. agreement with a result computed independently).

:func:`classify` turns an outcome into ``"clean"`` or one of the unclean
classes: ``"silent"`` (a bad call accepted), ``"nan"`` (non-finite output),
``"wrong"`` (a check failed), ``"raw"`` (an error of another type, or one that
does not name the culprit), ``"refused"`` (a valid call refused) and
``"hang"`` (over the time limit; set by the runner, ``tools/fuzz_api.py``).
``tests/test_robustness.py`` runs the cases marked ``cheap``.
"""

from __future__ import annotations

import glob
import math
import os
import pickle
import shutil
import tempfile
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import numpy as np

INF, NAN = math.inf, math.nan
CLEAN_ERRORS = (ValueError, TypeError, MemoryError)


@dataclass
class Case:
    name: str
    fn: Callable
    expect: str = "error"
    names: Tuple[str, ...] = ()
    check: Optional[Callable] = None
    cheap: bool = True


def _finite(value):
    """True if every number in ``value`` (arrays, tuples, floats) is finite."""
    if value is None or isinstance(value, (str, bool)):
        return True
    if isinstance(value, (tuple, list)):
        return all(_finite(v) for v in value)
    if isinstance(value, dict):
        return all(_finite(v) for v in value.values())
    if hasattr(value, "get_params"):  # a fitted estimator returned by fit
        return True
    arr = np.asarray(value)
    if arr.dtype == object or not np.issubdtype(arr.dtype, np.number):
        return True
    return bool(np.all(np.isfinite(arr)))


def classify(case, result=None, error=None):
    """``(outcome, detail)`` for a case that returned ``result`` or raised ``error``."""
    if error is not None:
        detail = f"{type(error).__name__}: {str(error)[:300]}"
        if case.expect == "ok":
            return "refused", detail
        if isinstance(error, MemoryError):
            return "clean", detail
        if isinstance(error, CLEAN_ERRORS) and any(n in str(error) for n in case.names):
            return "clean", detail
        return "raw", detail
    if not _finite(result):
        return "nan", "returned non-finite values"
    if case.expect == "error":
        return "silent", f"accepted; returned {type(result).__name__}"
    if case.check is not None:
        problem = case.check(result)
        if problem:
            return "wrong", problem
    return "clean", "ok"


# ---------------------------------------------------------------- data
_rng = np.random.default_rng(0)
X = _rng.normal(size=(8, 4))
Y = X[:, 0] + 0.5 * X[:, 1]
YC = np.array([0, 1] * 4)
XT = _rng.normal(size=(3, 4))
IMG = _rng.normal(size=(6, 4, 4, 1))


def _close(reference, rtol=1e-7, atol=0.0):
    def check(result):
        ref = reference() if callable(reference) else reference
        if not np.allclose(result, ref, rtol=rtol, atol=atol):
            err = np.max(np.abs(np.asarray(result, float) - np.asarray(ref, float)))
            return f"differs from the reference by {err:.3g}"
        return None

    return check


def _km(**kw):
    from sknngp import kernel_matrix

    return kernel_matrix(X, **kw)


def _kernel_cases():
    from sknngp import kernel_matrix
    from sknngp.kernels import kernel_diagonal

    bad = {
        "W_std": [INF, -1.0, NAN, 1e200, "2", None, True, -INF],
        "b_std": [INF, -0.1, NAN, 1e200, "0.1", None],
        "depth": [0, -1, 1.5, "3", 10**6, None, True, 2**70],
        "activation": ["tanh", None, 3, "RELU"],
        "architecture": ["resnet", None, 3, "FC"],
        "parameterization": ["foo", None, "NTK"],
        "width": [0, -3, 2.5, "8"],
        "get": [None, "foo", (), ("nngp", "nngp"), 3, "NNGP"],
        "dtype": ["float16", None, "int32", "f8x", np.int64],
        "batch_size": [0, -1, 2.5, "8", True],
        "device": [[], "tpu", "gpu:9", 3, "cpu:9", "cpu:x", ()],
        "input_shape": [(-1, 1, 4), ("a", 1, 1), (2, 3), "abc", (0, 2, 2), 5, (2, 2, 2)],
    }
    out = []
    for param, values in bad.items():
        for v in values:
            out.append(Case(f"kernel_matrix({param}={v!r})",
                            lambda p=param, v=v: _km(**{p: v}), names=(param,)))
    for param in ("batch_size", "get", "dtype", "device"):
        for v in bad[param][:3]:
            out.append(Case(f"kernel_diagonal({param}={v!r})",
                            lambda p=param, v=v: kernel_diagonal(X, **{p: v}), names=(param,)))
    # data
    x_names = ("X1", "X2")
    data = {
        "X*1e300": X * 1e300, "X*1e160": X * 1e160, "X with NaN": np.where(X > 1, NAN, X),
        "X with inf": np.where(X > 1, INF, X), "zero features": np.zeros((5, 0)),
        "zero samples": np.zeros((0, 4)), "1-D": X[0], "3-D": X.reshape(8, 2, 2),
        "strings": np.array([["a", "b"], ["c", "d"]]), "complex": X + 1j,
        "object": np.array([[1, "a"], [2, 3]], dtype=object),
    }
    for label, arr in data.items():
        out.append(Case(f"kernel_matrix({label})",
                        lambda a=arr: kernel_matrix(a), names=x_names))
        out.append(Case(f"kernel_diagonal({label})",
                        lambda a=arr: kernel_diagonal(a), names=("X",)))
    out += [
        Case("kernel_matrix(sparse X)", lambda: kernel_matrix(_sparse(X)), names=("sparse",)),
        Case("kernel_matrix(float32 overflow)",
             lambda: kernel_matrix(X * 1e20, dtype="float32"), names=("float32", "X1")),
        Case("kernel_matrix(float32, X*1e300)",
             lambda: kernel_matrix(X * 1e300, dtype="float32"), names=("X1",)),
        Case("kernel_matrix(X2 other features)",
             lambda: kernel_matrix(X, X[:, :3]), names=("X2",)),
        Case("kernel_matrix(X2 with NaN)",
             lambda: kernel_matrix(X, np.full((2, 4), NAN)), names=("X2",)),
        Case("kernel_matrix(ntk, X*1e160)",
             lambda: kernel_matrix(X * 1e160, get="ntk"), names=x_names),
        Case("kernel_matrix(erf, X*1e300)",
             lambda: kernel_matrix(X * 1e300, activation="erf"), names=x_names),
        Case("kernel_matrix(huge n)",
             lambda: kernel_matrix(np.zeros((2_000_000, 1))), names=("X1",)),
        # valid calls whose results can be checked independently
        Case("kernel_matrix(X*1e150, b_std=0) homogeneous", expect="ok",
             fn=lambda: kernel_matrix(X * 1e150, b_std=0.0) / 1e300,
             check=_close(lambda: kernel_matrix(X, b_std=0.0))),
        Case("kernel_matrix(X*1e-150, b_std=0) homogeneous", expect="ok",
             fn=lambda: kernel_matrix(X * 1e-150, b_std=0.0) * 1e300,
             check=_close(lambda: kernel_matrix(X, b_std=0.0))),
        Case("kernel_matrix(zeros, b_std=0)", expect="ok",
             fn=lambda: kernel_matrix(np.zeros((3, 2)), b_std=0.0), check=_close(np.zeros((3, 3)))),
        Case("kernel_matrix(bool X)", expect="ok", fn=lambda: kernel_matrix(X > 0)),
        Case("kernel_matrix(list X)", expect="ok", fn=lambda: kernel_matrix(X.tolist()),
             check=_close(lambda: kernel_matrix(X))),
        Case("kernel_matrix(input_shape=(2, 2, 1))", expect="ok",
             fn=lambda: kernel_matrix(X, input_shape=(2, 2, 1)),
             check=_close(lambda: kernel_matrix(X))),
        Case("kernel_matrix(batch_size=3) == default", expect="ok",
             fn=lambda: kernel_matrix(X, batch_size=3), check=_close(lambda: kernel_matrix(X))),
        Case("kernel_diagonal == diag(kernel_matrix)", expect="ok",
             fn=lambda: kernel_diagonal(X, batch_size=3),
             check=_close(lambda: np.diag(kernel_matrix(X)))),
        Case("kernel_matrix(depth=1000) in bounded time", expect="ok", cheap=False,
             fn=lambda: kernel_matrix(X[:3], depth=1000)),
        Case("kernel_diagonal(depth=1000) in bounded time", expect="ok", cheap=False,
             fn=lambda: kernel_diagonal(X[:3], depth=1000)),
    ]
    return out


def _sparse(a):
    import scipy.sparse

    return scipy.sparse.csr_matrix(a)


# ---------------------------------------------------------- architecture
def _architecture_cases():
    from sknngp import kernel_matrix
    from sknngp.architecture import (
        ABRelu, AvgPool, Conv, Dense, Erf, Flatten, LeakyRelu, Relu, serial,
    )

    out = []
    for field, values in (("W_std", [NAN, INF, -1.0, "a", 1e200, None]),
                          ("b_std", [NAN, INF, "a", 1e200])):
        for v in values:
            out.append(Case(f"Dense({field}={v!r}) kernel",
                            lambda f=field, v=v: kernel_matrix(
                                X, architecture=serial(Dense(**{f: v}), Relu(), Dense())),
                            names=(field,)))
    out += [
        Case("Dense(width=0)", lambda: Dense(width=0), names=("width",)),
        Case("Dense(width=2.5)", lambda: Dense(width=2.5), names=("width",)),
        Case("Dense(parameterization='x')", lambda: Dense(parameterization="x"),
             names=("parameterization",)),
        Case("Conv(filter_shape=(0, 3))", lambda: Conv((0, 3)), names=("filter_shape",)),
        Case("Conv(filter_shape=(3.5, 3))", lambda: Conv((3.5, 3)), names=("filter_shape",)),
        Case("Conv(filter_shape='ab')", lambda: Conv("ab"), names=("filter_shape",)),
        Case("Conv(padding='same')", lambda: Conv(padding="same"), names=("padding",)),
        Case("Conv(strides=(1,))", lambda: Conv(strides=(1,)), names=("strides",)),
        Case("Conv(W_std=nan)", lambda: Conv(W_std=NAN), names=("W_std",)),
        Case("AvgPool(window_shape=())", lambda: AvgPool(()), names=("window_shape",)),
        Case("ABRelu(a=nan) kernel",
             lambda: kernel_matrix(X, architecture=serial(Dense(), ABRelu(NAN, 1.0), Dense())),
             names=("a",)),
        Case("Erf(b=inf) kernel",
             lambda: kernel_matrix(X, architecture=serial(Dense(), Erf(1.0, INF), Dense())),
             names=("b",)),
        Case("Erf(a='x')", lambda: Erf("x", 1.0), names=("a",)),
        Case("LeakyRelu('x')", lambda: LeakyRelu("x"), names=("alpha", "a")),
        Case("serial(3)", lambda: serial(3), names=("serial",)),
        Case("kernel_matrix(serial())", lambda: kernel_matrix(X, architecture=serial()),
             names=("stack",)),
        Case("conv stack on 2-D rows",
             lambda: kernel_matrix(X, architecture=serial(Conv(), Relu(), Flatten(), Dense())),
             names=("input_shape",)),
        Case("stack of 10**5 layers",
             lambda: kernel_matrix(X[:2], architecture=serial(
                 *([Dense(), Relu()] * 50_000), Dense())), names=("layers",)),
        Case("Conv on 1x1 images, VALID 3x3",
             lambda: kernel_matrix(IMG[:, :1, :1], architecture=serial(
                 Conv(padding="VALID"), Relu(), Flatten(), Dense())), names=("window",)),
    ]
    return out


# ------------------------------------------------------------ estimators
def _est(cls="NNGPRegressor", **kw):
    import sknngp

    return getattr(sknngp, cls)(**kw)


def _fit_predict(cls="NNGPRegressor", X_=None, y=None, **kw):
    X_ = X if X_ is None else X_
    y = (YC if "Classifier" in cls else Y) if y is None else y
    return _est(cls, **kw).fit(X_, y).predict(XT if X_.shape[1:] == (4,) else X_)


def _estimator_cases():
    out = []
    fit_bad = {
        "W_std": [INF, NAN, -1.0, 1e200, "2"], "b_std": [NAN, INF],
        "depth": [0, 10**6, 1.5], "diag_reg": [NAN, -1.0, INF, "1"],
        "solver": ["foo"], "dtype": ["float16", None], "batch_size": [0, -1],
        "device": [[], "tpu", 3], "kernel_cache": ["MEMORY", "off ", "", " memory", None, "Off"],
        "input_shape": [(-1, 2, 2), "abc", (2, 2), (0, 2, 2), (2, 2, 2)],
        "width": [0], "architecture": ["x"], "activation": ["tanh"],
    }
    for param, values in fit_bad.items():
        for v in values:
            out.append(Case(f"NNGPRegressor({param}={v!r}).fit",
                            lambda p=param, v=v: _fit_predict(**{p: v}), names=(param,)))
    for param, values in {"t": [-5.0, NAN, INF], "learning_rate": [0.0, NAN, INF, -1.0]}.items():
        for v in values:
            out.append(Case(f"NTKRegressor({param}={v!r}).fit",
                            lambda p=param, v=v: _fit_predict("NTKRegressor", **{p: v}),
                            names=(param,)))
    for cls in ("NNGPClassifier", "NTKClassifier"):
        out.append(Case(f"{cls}(diag_reg=nan).fit",
                        lambda c=cls: _fit_predict(c, diag_reg=NAN), names=("diag_reg",)))
        out.append(Case(f"{cls}.fit(X*1e300)",
                        lambda c=cls: _fit_predict(c, X_=X * 1e300), names=("X",)))

    # parameters changed after fit
    after = {"diag_reg": [-1.0, NAN], "depth": [2, 0], "W_std": [3.0, NAN], "b_std": [0.5],
             "activation": ["erf"], "architecture": ["cnn-vec"], "parameterization": ["standard"],
             "dtype": ["float16"], "kernel_cache": ["MEMORY"], "batch_size": [0],
             "device": [[]], "solver": ["foo"], "width": [0]}

    def changed(cls, param, v, method="predict"):
        est = _est(cls, depth=1).fit(X, YC if "Classifier" in cls else Y)
        est.set_params(**{param: v})
        if method == "predict_std":
            return est.predict(XT, return_std=True)
        return getattr(est, method)(XT)

    refit = ("refit",)
    for param, values in after.items():
        for v in values:
            arch = param in ("depth", "W_std", "b_std", "activation", "architecture",
                             "parameterization", "width") and not (
                isinstance(v, float) and math.isnan(v)) and v != 0
            names = refit if arch else (param,)
            out.append(Case(f"NNGPRegressor set_params({param}={v!r}) then predict",
                            lambda p=param, v=v: changed("NNGPRegressor", p, v),
                            names=names))
    for param, values in {"t": [-5.0, NAN], "learning_rate": [0.0, NAN]}.items():
        for v in values:
            for method in ("predict", "predict_std"):
                out.append(Case(f"NTKRegressor set_params({param}={v!r}) then {method}",
                                lambda p=param, v=v, m=method: changed("NTKRegressor", p, v, m),
                                names=(param,)))
    for cls in ("NNGPClassifier", "NTKClassifier"):
        out.append(Case(f"{cls} set_params(depth=2) then predict",
                        lambda c=cls: changed(c, "depth", 2), names=refit))
        out.append(Case(f"{cls} set_params(diag_reg=-1) then decision_function",
                        lambda c=cls: changed(c, "diag_reg", -1.0, "decision_function"),
                        names=("diag_reg",)))
    out.append(Case("NNGPRegressor set_params(depth=2) then predict(return_std)",
                    lambda: changed("NNGPRegressor", "depth", 2, "predict_std"), names=refit))

    fitted = lambda cls="NNGPRegressor", **kw: _est(cls, depth=1, **kw).fit(  # noqa: E731
        X, YC if "Classifier" in cls else Y)
    out += [
        Case("predict before fit", lambda: _est().predict(XT), names=("fit",)),
        Case("predict(return_std, return_cov)",
             lambda: fitted().predict(XT, return_std=True, return_cov=True),
             names=("return_std",)),
        Case("sample_y(n_samples=-1)", lambda: fitted().sample_y(XT, n_samples=-1),
             names=("n_samples",)),
        Case("sample_y(n_samples=1.5)", lambda: fitted().sample_y(XT, n_samples=1.5),
             names=("n_samples",)),
        Case("sample_y(n_samples='3')", lambda: fitted().sample_y(XT, n_samples="3"),
             names=("n_samples",)),
        Case("log_marginal_likelihood(diag_reg=nan)",
             lambda: fitted().log_marginal_likelihood(diag_reg=NAN), names=("diag_reg",)),
        Case("log_marginal_likelihood(diag_reg=-1)",
             lambda: fitted().log_marginal_likelihood(diag_reg=-1.0), names=("diag_reg",)),
        Case("log_marginal_likelihood(diag_reg=inf)",
             lambda: fitted().log_marginal_likelihood(diag_reg=INF), names=("diag_reg",)),
        Case("log_marginal_likelihood(diag_reg='1')",
             lambda: fitted().log_marginal_likelihood(diag_reg="1"), names=("diag_reg",)),
        Case("log_marginal_likelihood(diag_reg=True)",
             lambda: fitted().log_marginal_likelihood(diag_reg=True), names=("diag_reg",)),
        Case("predict(X with NaN)", lambda: fitted().predict(np.full((2, 4), NAN)),
             names=("NaN",)),
        Case("predict(X*1e300)", lambda: fitted().predict(XT * 1e300), names=("X",)),
        Case("predict(X*1e160)", lambda: fitted().predict(XT * 1e160), names=("X",)),
        Case("predict(other n_features)", lambda: fitted().predict(XT[:, :3]),
             names=("features",)),
        Case("predict(sparse X)", lambda: fitted().predict(_sparse(XT)), names=("parse",)),
        Case("predict(strings)", lambda: fitted().predict(np.array([["a"] * 4])),
             names=("X", "string")),
        Case("predict(4-D, fitted on rows)",
             lambda: fitted().predict(XT.reshape(3, 2, 2, 1)), names=("input_shape", "image")),
        Case("fit(sparse X)", lambda: _fit_predict(X_=_sparse(X)), names=("parse",)),
        Case("regressor fit(string y)",
             lambda: _fit_predict(y=np.array(list("abababab"))), names=("y",)),
        Case("regressor fit(y with NaN)",
             lambda: _fit_predict(y=np.where(Y > 0, NAN, Y)), names=("y", "NaN")),
        Case("regressor fit(y*1e300) linear in y", expect="ok",
             fn=lambda: _fit_predict(y=Y * 1e300) / 1e300, check=_close(lambda: _fit_predict())),
        Case("regressor fit(X*1e300)", lambda: _fit_predict(X_=X * 1e300), names=("X",)),
        Case("regressor fit(X*1e160, ntk)",
             lambda: _fit_predict("NTKRegressor", X_=X * 1e160), names=("X",)),
        Case("fit(zero features)", lambda: _fit_predict(X_=np.zeros((8, 0))), names=("feature",)),
        Case("fit(1 sample)", lambda: _fit_predict(X_=X[:1], y=Y[:1]), expect="ok"),
        Case("classifier fit(1 class)",
             lambda: _fit_predict("NNGPClassifier", y=np.zeros(8)), names=("class",)),
        Case("classifier fit(continuous y)",
             lambda: _fit_predict("NNGPClassifier", y=Y), names=("y", "target")),
        Case("fit(duplicate rows), diag_reg=0",
             lambda: _fit_predict(X_=np.vstack([X, X]), y=np.r_[Y, Y], diag_reg=0.0),
             names=("diag_reg",)),
        Case("NTKRegressor(solver='cholesky', t=1)",
             lambda: _fit_predict("NTKRegressor", solver="cholesky", t=1.0), names=("solver",)),
        Case("cnn-vec without input_shape on rows",
             lambda: _fit_predict(architecture="cnn-vec"), names=("input_shape",)),
        Case("NNGPRegressor(depth=1000) fit in bounded time", expect="ok", cheap=False,
             fn=lambda: _fit_predict(depth=1000)),
        Case("NNGPRegressor(architecture=serial(...)) matches named", expect="ok",
             fn=lambda: _fit_predict(architecture=_named("fc", 2)),
             check=_close(lambda: _fit_predict(depth=2))),
    ]
    # cross-talk in the bank
    out += [
        Case("failed fit then fit: same as fresh", expect="ok",
             fn=lambda: _after_failure(), check=_close(lambda: _fresh())),
        Case("batch_size=1 estimator then default: same as fresh", expect="ok",
             fn=lambda: (_fit_predict(batch_size=1), _fit_predict())[1],
             check=_close(lambda: _fresh())),
        Case("float32 estimator then float64: same as fresh", expect="ok",
             fn=lambda: (_fit_predict(dtype="float32"), _fit_predict())[1],
             check=_close(lambda: _fresh())),
        Case("depth 2 then 3 (family reuse) == fresh", expect="ok",
             fn=lambda: (_fit_predict(depth=2), _fit_predict(depth=3))[1],
             check=_close(lambda: _fresh(depth=3))),
    ]
    return out


def _named(name, depth):
    from sknngp.architecture import build_architecture

    return build_architecture(name, depth=depth)


def _fresh(**kw):
    from sknngp import _bank

    _bank.clear()
    return _fit_predict(kernel_cache="off", **kw)


def _after_failure():
    try:
        _fit_predict(X_=np.vstack([X, X[:1] * 1e300]), y=np.r_[Y, 0.0])
    except Exception:
        pass
    try:
        _fit_predict(device=[])
    except Exception:
        pass
    return _fit_predict()


# ------------------------------------------------------------ disk cache
def _with_cache(action):
    """Fit with a fresh cache directory, ``action(folder)``, then predict anew."""
    folder = tempfile.mkdtemp(prefix="sknngp-fuzz-")
    try:
        _fit_predict(kernel_cache=folder)
        action(folder)
        return _fit_predict(kernel_cache=folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def block_files(folder):
    """The chunk files of every stored kernel block and of the stored rows."""
    return sorted(glob.glob(os.path.join(folder, "kernels-*", "data", "*", "c", "*", "*")))


def _each_block(folder, fn):
    for path in block_files(folder):
        fn(path)


def _flip(path):
    data = bytearray(open(path, "rb").read())
    for i in range(len(data) // 3, len(data) // 3 + 64):
        data[i] ^= 0xFF
    open(path, "wb").write(bytes(data))


def _flip_values(path):
    """Change one stored value and give the chunk a valid CRC again (a corrupted
    entry that decodes): only the block's seal can tell."""
    import google_crc32c

    data = bytearray(open(path, "rb").read())
    body = data[:-4]
    body[:8] = np.float64(1e181).tobytes()
    crc = google_crc32c.value(bytes(body)).to_bytes(4, "little")
    open(path, "wb").write(bytes(body) + crc)


MARKER = os.path.join(tempfile.gettempdir(), "sknngp-fuzz-pwned")


class _Payload:
    def __reduce__(self):
        return (open, (MARKER, "w"))


def _plant_pickle(path):
    """A pickle whose loading would run code, in place of a block's bytes."""
    open(path, "wb").write(pickle.dumps(_Payload()))


def _swap_blocks(folder):
    """Put another store's valid block (chunk and seal) under every block's name."""
    other = tempfile.mkdtemp(prefix="sknngp-fuzz-other-")
    try:
        _est(kernel_cache=other, depth=1).fit(X + 1.0, Y)
        donor = next(p for p in block_files(other) if "/nngp/" in p)
        donor_seal = os.path.join(donor.split("/data/")[0], "seals", "nngp", "0.0")
        for path in block_files(folder):
            if "/nngp/" in path:
                shutil.copyfile(donor, path)
                seal = os.path.join(path.split("/data/")[0], "seals", "nngp",
                                    ".".join(path.split("/")[-2:]))
                shutil.copyfile(donor_seal, seal)
    finally:
        shutil.rmtree(other, ignore_errors=True)


def _no_marker(result):
    return "a planted pickle was executed" if os.path.exists(MARKER) else None


def _cache_cases():
    ref = lambda: _fresh()  # noqa: E731
    a_file = os.path.join(tempfile.gettempdir(), "sknngp-fuzz-a-file")
    open(a_file, "w").close()
    out = [
        Case("cache: flipped bytes", expect="ok",
             fn=lambda: _with_cache(lambda f: _each_block(f, _flip)), check=_close(ref)),
        Case("cache: changed value with a valid CRC", expect="ok",
             fn=lambda: _with_cache(lambda f: _each_block(f, _flip_values)), check=_close(ref)),
        Case("cache: truncated file", expect="ok",
             fn=lambda: _with_cache(lambda f: _each_block(
                 f, lambda p: open(p, "r+b").truncate(100))), check=_close(ref)),
        Case("cache: junk text file", expect="ok",
             fn=lambda: _with_cache(lambda f: _each_block(
                 f, lambda p: open(p, "w").write("junk"))), check=_close(ref)),
        Case("cache: planted pickle", expect="ok",
             fn=lambda: (_remove(MARKER), _with_cache(lambda f: _each_block(f, _plant_pickle)))[1],
             check=lambda r: _no_marker(r) or _close(ref)(r)),
        Case("cache: another block's file under this name", expect="ok",
             fn=lambda: _with_cache(_swap_blocks), check=_close(ref)),
        Case("cache: directory deleted between fit and predict", expect="ok",
             fn=lambda: _with_cache(lambda f: shutil.rmtree(f)), check=_close(ref)),
        Case("cache: path is a file", lambda: _fit_predict(kernel_cache=a_file),
             names=("kernel_cache",)),
        Case("cache: missing parent",
             lambda: _fit_predict(kernel_cache="/nonexistent-sknngp/a/b"),
             names=("kernel_cache",)),
        Case("cache: unwritable location",
             lambda: _fit_predict(kernel_cache="/proc/sknngp-cache"), names=("kernel_cache",)),
    ]
    return out


def _remove(path):
    if os.path.exists(path):
        os.unlink(path)


# ---------------------------------------------------------- preprocessing
def _pre_cases():
    from sknngp import PerImageStandardizer, ZCAWhitener

    rows = IMG.reshape(6, -1)

    def scaled(make, c):
        return lambda: make().fit_transform(rows * c)

    out = []
    for c in (1e160, 1e-160, 1e300, 1e-300):
        out.append(Case(f"PerImageStandardizer(X*{c:g})", expect="ok",
                        fn=scaled(PerImageStandardizer, c),
                        check=_close(lambda: PerImageStandardizer().fit_transform(rows),
                                     rtol=1e-9, atol=1e-12)))
        out.append(Case(f"ZCAWhitener(X*{c:g})", expect="ok",
                        fn=scaled(lambda: ZCAWhitener(input_shape=(4, 4, 1)), c),
                        check=_close(lambda: ZCAWhitener(input_shape=(4, 4, 1)).fit_transform(
                            rows), rtol=1e-6, atol=1e-9)))
    out.append(Case("ZCAWhitener(per-image, X*1e160)", expect="ok",
                    fn=lambda: ZCAWhitener(input_shape=(4, 4, 1), per_image_standardize=True)
                    .fit_transform(rows * 1e160)))
    for param, values in {"zca_reg": [NAN, -1.0, INF, "a"],
                          "input_shape": [(-1, 4, 1), "abc", (4, 4)]}.items():
        for v in values:
            out.append(Case(f"ZCAWhitener({param}={v!r})",
                            lambda p=param, v=v: ZCAWhitener(**{p: v}).fit_transform(rows),
                            names=(param,)))
    out += [
        Case("ZCAWhitener(X with NaN)",
             lambda: ZCAWhitener().fit_transform(np.where(rows > 1, NAN, rows)), names=("NaN",)),
        Case("PerImageStandardizer(X with inf)",
             lambda: PerImageStandardizer().fit_transform(np.where(rows > 1, INF, rows)),
             names=("infinity", "inf")),
        Case("ZCAWhitener transform other features",
             lambda: ZCAWhitener().fit(rows).transform(rows[:, :5]), names=("features",)),
    ]
    return out


def _ensemble_cases():
    from sknngp import AugmentedEnsemble

    def ens(**kw):
        return AugmentedEnsemble(_est(depth=1), **kw).fit(IMG.reshape(6, -1), Y[:6])

    out = []
    for param, values in {"n_draws": [0, -1, 1.5], "augmentations": ["foo", ["bar"]],
                          "crop_padding": [-1], "input_shape": [(-1, 4, 1), (4, 4)]}.items():
        for v in values:
            out.append(Case(f"AugmentedEnsemble({param}={v!r})",
                            lambda p=param, v=v: ens(**{p: v}), names=(param,)))
    out.append(Case("AugmentedEnsemble(estimator=None)",
                    lambda: AugmentedEnsemble(None).fit(X, Y), names=("estimator",)))
    return out


def all_cases():
    """Every case, in a fixed order."""
    return (_kernel_cases() + _architecture_cases() + _estimator_cases() + _cache_cases()
            + _pre_cases() + _ensemble_cases())
