"""NNGPKernel / NTKKernel: scikit-learn kernels with autodiff hyperparameter gradients.

References are independent of the code under test: central finite differences
in float64 of the kernel values (``d K / d log h``), the engine's
``kernel_matrix``, a closed form (ReLU networks without biases are positively
homogeneous: ``K(c W_std) = c^(2 L) K``, so ``d K / d log W_std = 2 L K`` with
``L`` Dense / Conv layers), and scikit-learn's own estimators on the
precomputed kernel.
"""

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.gaussian_process import GaussianProcessClassifier, GaussianProcessRegressor
from sklearn.gaussian_process.kernels import ConstantKernel, WhiteKernel
from sklearn.kernel_ridge import KernelRidge
from sklearn.svm import SVC

from sknngp import NNGPKernel, NTKKernel, kernel_matrix
from sknngp import _bank
from sknngp.kernels import Dense, Flatten, Relu, kernel_diagonal, serial
from sknngp.kernels import _autodiff, _engine

IMAGE = (3, 3, 2)
CASES = [("fc", None, 2), ("cnn-vec", IMAGE, 1), ("cnn-gap", IMAGE, 1)]  # (arch, input_shape, depth)
W, B = 1.3, 0.4  # shared values: the engine compiles once per value


def _rows(n, shape, seed=0):
    d = int(np.prod(shape)) if shape else 3
    return np.random.default_rng(seed).normal(size=(n, d))


@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("arch,input_shape,depth", CASES)
def test_gradient_matches_central_differences(arch, input_shape, depth, activation):
    """d K / d log h from forward-mode autodiff against central differences of
    the kernel values, h = W_std and b_std, NNGP and NTK, float64; the values
    equal the engine's; ReLU without bias: the homogeneity closed form."""
    X = _rows(5, input_shape)
    plan, x, _ = _engine._prepare(X, None, dict(
        architecture=arch, depth=depth, activation=activation, W_std=W, b_std=B,
        parameterization="ntk", width=None), input_shape, "X")
    both, wrt = ("nngp", "ntk"), ("W_std", "b_std")

    def kernels(w, b):  # one compiled program for every value
        return _autodiff.kernel_and_gradient(plan, x, None, both, w, b, wrt, "float64")

    grads, step = kernels(W, B), 1e-4
    e = np.exp(step)
    for k, (up, down) in enumerate([(kernels(W * e, B), kernels(W / e, B)),
                                    (kernels(W, B * e), kernels(W, B / e))]):
        for kind in both:
            fd = (up[kind][0] - down[kind][0]) / (2 * step)
            scale = np.abs(fd).max()
            assert scale > 1e-3  # the derivative is not trivially zero
            np.testing.assert_allclose(grads[kind][1][..., k], fd, rtol=0, atol=1e-7 * scale)
    ref = kernel_matrix(X, get=both, architecture=arch, activation=activation, depth=depth,
                        W_std=W, b_std=B, input_shape=input_shape)
    for kind in both:
        np.testing.assert_allclose(grads[kind][0], getattr(ref, kind), rtol=1e-13, atol=1e-15)
    if activation == "relu":  # K(c W_std) = c^(2 L) K with L = depth + 1 layers
        for kind, (K, dK) in kernels(1.7, 0.0).items():
            np.testing.assert_allclose(dK[..., 0], 2 * (depth + 1) * K, rtol=1e-12,
                                       atol=1e-14 * np.abs(K).max())
            assert not dK[..., 1].any()


@pytest.mark.parametrize("cls,get,arch,input_shape,depth", [
    (NNGPKernel, "nngp", "fc", None, 2), (NTKKernel, "ntk", "cnn-gap", IMAGE, 1)])
def test_values_and_diag_equal_the_engine(cls, get, arch, input_shape, depth):
    X, Z = _rows(5, input_shape), _rows(3, input_shape, seed=3)
    arch_kw = dict(depth=depth, activation="erf", W_std=W, b_std=B, input_shape=input_shape)
    kernel = cls(arch, **arch_kw)
    kw = dict(get=get, architecture=arch, **arch_kw)
    np.testing.assert_array_equal(kernel(X), kernel_matrix(X, **kw))
    np.testing.assert_array_equal(kernel(Z, X), kernel_matrix(Z, X, **kw))
    np.testing.assert_array_equal(kernel.diag(Z), kernel_diagonal(Z, **kw))
    np.testing.assert_allclose(kernel.diag(X), np.diag(kernel(X)), rtol=1e-13)
    K, dK = kernel(X, eval_gradient=True)
    np.testing.assert_allclose(K, kernel(X), rtol=1e-13, atol=1e-15)
    assert dK.shape == (5, 5, 2) and np.allclose(dK, dK.transpose(1, 0, 2), rtol=1e-13)
    if input_shape is not None:  # 4-D images: the same kernel as rows with input_shape
        images = X.reshape((-1,) + input_shape)
        np.testing.assert_array_equal(clone(kernel).set_params(input_shape=None)(images),
                                      kernel(X))


def test_float32_gradient_close_to_float64():
    X = _rows(5, None)
    k64, d64 = NTKKernel(depth=2, W_std=W, b_std=B)(X, eval_gradient=True)
    k32, d32 = NTKKernel(depth=2, W_std=W, b_std=B, dtype="float32")(X, eval_gradient=True)
    np.testing.assert_allclose(k32, k64, rtol=1e-5)
    np.testing.assert_allclose(d32, d64, rtol=1e-4, atol=1e-5 * np.abs(d64).max())


def test_sklearn_kernel_protocol():
    k = NNGPKernel("cnn-gap", depth=2, W_std=1.5, b_std=0.2, input_shape=IMAGE)
    assert [h.name for h in k.hyperparameters] == ["W_std", "b_std"]
    np.testing.assert_allclose(k.theta, np.log([1.5, 0.2]))
    np.testing.assert_allclose(k.bounds, np.log([[1e-2, 1e2], [1e-5, 1e2]]))
    assert k.n_dims == 2 and not k.is_stationary() and k.requires_vector_input
    c = clone(k)
    assert c == k and c is not k and c.get_params() == k.get_params()
    assert c.set_params(depth=3) != k
    moved = k.clone_with_theta(np.log([2.0, 0.5]))
    assert (moved.W_std, moved.b_std) == pytest.approx((2.0, 0.5))
    assert (k.W_std, k.b_std) == (1.5, 0.2)
    assert NNGPKernel() != NTKKernel()
    assert repr(k) == ("NNGPKernel(architecture='cnn-gap', depth=2, activation='relu', "
                       "W_std=1.5, b_std=0.2, input_shape=(3, 3, 2))")
    fixed = NTKKernel(depth=2, W_std=W, b_std=B, W_std_bounds="fixed")
    assert [h.name for h in fixed.hyperparameters if not h.fixed] == ["b_std"]
    assert fixed.theta.shape == (1,)
    X = _rows(5, None)
    _, dK = fixed(X, eval_gradient=True)
    _, both = NTKKernel(depth=2, W_std=W, b_std=B)(X, eval_gradient=True)
    np.testing.assert_allclose(dK[..., 0], both[..., 1], rtol=1e-13)
    # every hyperparameter fixed: the engine's values and an empty gradient
    K, dK = fixed.set_params(b_std_bounds="fixed")(X, eval_gradient=True)
    assert dK.shape == (5, 5, 0)
    np.testing.assert_array_equal(K, kernel_matrix(X, get="ntk", depth=2, W_std=W, b_std=B))


def test_explicit_stack_exposes_no_hyperparameters():
    stack = serial(Flatten(), Dense(W_std=1.5, b_std=0.1), Relu(), Dense(W_std=0.8))
    k = NNGPKernel(stack)
    assert k.theta.shape == (0,) and k.n_dims == 0
    assert all(h.fixed for h in k.hyperparameters)
    assert repr(k).startswith("NNGPKernel(architecture=Serial(")
    X = _rows(5, None)
    K, dK = k(X, eval_gradient=True)
    assert dK.shape == (5, 5, 0)
    np.testing.assert_array_equal(K, kernel_matrix(X, architecture=stack))
    with pytest.raises(ValueError, match=r"W_std_bounds=\(0\.1, 10\.0\) cannot apply: "
                                         r"architecture is an explicit layer stack"):
        NNGPKernel(stack, W_std_bounds=(0.1, 10.0)).theta


def test_errors_name_the_parameter_and_the_fix():
    X = _rows(4, IMAGE)
    with pytest.raises(ValueError, match=r"input_shape=\(4, 4, 2\) holds 32 values per "
                                         r"sample but X has 18 features"):
        NNGPKernel("cnn-vec", input_shape=(4, 4, 2))(X)
    with pytest.raises(ValueError, match=r"needs inputs with 2 spatial axes.*input_shape"):
        NNGPKernel("cnn-vec")(X)
    with pytest.raises(ValueError, match=r"input_shape=\(4, 4, 2\) holds 32 values per "
                                         r"sample but Y has 18 features"):
        NNGPKernel("cnn-vec", input_shape=(4, 4, 2))(_rows(2, (4, 4, 2)), X)
    with pytest.raises(ValueError, match="Gradient can only be evaluated when Y is None"):
        NNGPKernel()(X, X[:2], eval_gradient=True)
    with pytest.raises(ValueError, match=r"b_std=0\.0 cannot be a hyperparameter.*"
                                         r"b_std_bounds='fixed'"):
        NNGPKernel(b_std=0.0).theta
    with pytest.raises(ValueError, match=r"W_std_bounds must be 'fixed' or a pair \(low, high\)"
                                         r".*got \(10\.0, 1\.0\)"):
        NNGPKernel(W_std_bounds=(10.0, 1.0)).bounds
    with pytest.raises(ValueError, match=r"b_std_bounds must be .*got 'free'"):
        NNGPKernel(b_std_bounds="free").theta
    with pytest.raises(ValueError, match=r"kernel_cache must be one of \['memory', 'off'\]"):
        NNGPKernel(kernel_cache="disk")(X)
    with pytest.raises(ValueError, match=r"dtype must be 'float32' or 'float64'; got 'float16'"):
        NNGPKernel(dtype="float16")(X)
    with pytest.raises(ValueError, match=r"activation must be one of \['relu', 'erf'\]"):
        NNGPKernel(activation="tanh")(X)


def test_gpr_marginal_likelihood_recovers_W_std():
    """Targets drawn from the GP of a known kernel: the fit raises the log
    marginal likelihood above the start and the truth, and finds W_std."""
    X = _rows(150, None, seed=1)
    # kernel_cache="off": one compiled program for every value of W_std, b_std
    true = NNGPKernel(depth=2, W_std=1.6, b_std=0.5, kernel_cache="off")
    noise = 1e-2
    y = np.linalg.cholesky(true(X) + noise * np.eye(len(X))) @ np.random.default_rng(0).normal(
        size=len(X))
    start = NNGPKernel(depth=2, W_std=1.0, b_std=1.0, kernel_cache="off")
    gpr = GaussianProcessRegressor(start, alpha=noise).fit(X, y)
    assert gpr.log_marginal_likelihood_value_ > gpr.log_marginal_likelihood(start.theta) + 10
    assert gpr.log_marginal_likelihood_value_ >= gpr.log_marginal_likelihood(true.theta) - 1e-6
    assert gpr.kernel_.W_std == pytest.approx(1.6, rel=0.1)
    # the LML gradient through the kernel gradient agrees with finite differences
    theta = np.log([1.3, 0.4])
    lml, grad = gpr.log_marginal_likelihood(theta, eval_gradient=True)
    step = 1e-5
    for k in range(2):
        e = np.eye(2)[k] * step
        fd = (gpr.log_marginal_likelihood(theta + e) - gpr.log_marginal_likelihood(theta - e))
        assert grad[k] == pytest.approx(fd / (2 * step), rel=1e-5)


def test_composition_with_constant_and_white_kernels():
    X = _rows(5, None)
    base = NTKKernel(depth=2, W_std=W, b_std=B)
    k = ConstantKernel(2.0) * base + WhiteKernel(0.1)
    np.testing.assert_allclose(k(X), 2.0 * base(X) + 0.1 * np.eye(5), rtol=1e-13)
    np.testing.assert_allclose(k.diag(X), 2.0 * base.diag(X) + 0.1, rtol=1e-13)
    assert [h.name for h in k.hyperparameters] == [
        "k1__k1__constant_value", "k1__k2__W_std", "k1__k2__b_std", "k2__noise_level"]
    K, dK = k(X, eval_gradient=True)
    _, dbase = base(X, eval_gradient=True)
    np.testing.assert_allclose(dK[..., 1:3], 2.0 * dbase, rtol=1e-13)
    np.testing.assert_allclose(dK[..., 0], 2.0 * base(X), rtol=1e-13)
    s = base + base
    np.testing.assert_allclose(s(X), 2 * base(X), rtol=1e-14)
    assert k.get_params()["k1__k2__depth"] == 2
    assert clone(k).set_params(k1__k2__depth=3).k1.k2.depth == 3


def test_svc_and_kernel_ridge_take_the_kernel_as_a_callable():
    rng = np.random.default_rng(6)
    X, Z = rng.normal(size=(40, 3)), rng.normal(size=(10, 3))
    y = (X[:, 0] * X[:, 1] > 0).astype(int)
    kernel = NNGPKernel(depth=2, W_std=W, b_std=B)
    kw = dict(depth=2, W_std=W, b_std=B)
    K, Kz = kernel_matrix(X, **kw), kernel_matrix(Z, X, **kw)
    svc = SVC(kernel=kernel).fit(X, y)
    ref = SVC(kernel="precomputed").fit(K, y)
    np.testing.assert_allclose(svc.decision_function(Z), ref.decision_function(Kz), rtol=1e-9)
    kr = KernelRidge(kernel=NTKKernel(**kw), alpha=1e-2).fit(X, y)
    ref = KernelRidge(kernel="precomputed", alpha=1e-2).fit(kernel_matrix(X, get="ntk", **kw), y)
    np.testing.assert_allclose(kr.predict(Z), ref.predict(kernel_matrix(Z, X, get="ntk", **kw)),
                               rtol=1e-10)


def test_bank_serves_repeated_calls_on_known_rows():
    """Cross-validation refits call the kernel on sub-blocks of rows already
    seen: with kernel_cache='memory' nothing is computed again."""
    X = _rows(5, None)
    kernel = NNGPKernel(depth=2, W_std=W, b_std=B)
    full = kernel(X)
    before = _bank.stats["entries_computed"]
    np.testing.assert_array_equal(kernel(X[1:4]), full[1:4, 1:4])
    np.testing.assert_array_equal(kernel(X[:2], X[3:]), full[:2, 3:])
    assert _bank.stats["entries_computed"] == before
    # without the bank: the traced program (W_std, b_std are its arguments)
    off = clone(kernel).set_params(kernel_cache="off")
    np.testing.assert_allclose(off(X), full, rtol=1e-13)
    np.testing.assert_allclose(off(X[:2], X[3:]), full[:2, 3:], rtol=1e-13)
    assert _bank.stats["entries_computed"] == before


def test_gp_classifier_fits_the_hyperparameters():
    rng = np.random.default_rng(8)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # bounds warnings depend on the data
        gpc = GaussianProcessClassifier(NTKKernel(depth=2, W_std=W, b_std=B)).fit(X, y)
    start = np.log([W, B])
    assert gpc.log_marginal_likelihood_value_ > gpc.log_marginal_likelihood(start)
    assert gpc.score(X, y) >= 0.9
    proba = gpc.predict_proba(X[:5])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("cls,get", [(NNGPKernel, "nngp"), (NTKKernel, "ntk")])
@pytest.mark.parametrize("activation", ["relu", "erf"])
@pytest.mark.parametrize("arch,input_shape", [("fc", None), ("cnn-vec", IMAGE),
                                              ("cnn-gap", IMAGE)])
def test_gradient_matches_differences_of_the_engine(cls, get, activation, arch, input_shape):
    """The kernel object's gradient (depth 2) against central differences of
    ``kernel_matrix`` (the specialized engine, compiled per value)."""
    X = _rows(4, input_shape, seed=9)
    kernel = cls(arch, depth=2, activation=activation, W_std=W, b_std=B,
                 input_shape=input_shape)
    _, dK = kernel(X, eval_gradient=True)
    step = 1e-4

    def K(w, b):
        return kernel_matrix(X, get=get, architecture=arch, depth=2, activation=activation,
                             W_std=w, b_std=b, input_shape=input_shape)

    e = np.exp(step)
    for k, (up, down) in enumerate([(K(W * e, B), K(W / e, B)), (K(W, B * e), K(W, B / e))]):
        fd = (up - down) / (2 * step)
        np.testing.assert_allclose(dK[..., k], fd, rtol=0, atol=1e-7 * np.abs(fd).max())
