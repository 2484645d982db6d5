"""Conjugate gradients (sknngp._cg), solver="cg" in the estimators, memory plans.

Oracles: dense SciPy solves of the same regularized kernels, and the
estimators' own Cholesky path (itself checked against closed forms in
test_estimators.py).
"""

import numpy as np
import pytest
import scipy.linalg

from sknngp import (
    NNGPClassifier,
    NNGPRegressor,
    NTKClassifier,
    NTKRegressor,
    _bank,
    _cg,
    _memory,
    kernel_matrix,
)

ARCH = dict(architecture="fc", depth=2, W_std=1.3, b_std=0.2)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 5))
    Y = np.stack([np.sin(X[:, 0]), X[:, 1] * X[:, 2], np.zeros(60)], axis=1)
    Xt = rng.normal(size=(9, 5))
    return X, Y, Xt


def _lam(K, diag_reg):
    return diag_reg * np.trace(K) / len(K)


@pytest.mark.parametrize("kw", [
    dict(get="nngp", **ARCH),
    dict(get="ntk", **ARCH),
    dict(get="ntk", architecture="fc", depth=4, activation="erf"),
    dict(get="nngp", architecture="cnn-vec", depth=1, input_shape=(3, 3, 1)),
])
def test_cg_matches_dense_solve(kw):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(80, 9))
    K = kernel_matrix(X, **kw)
    lam = _lam(K, 1e-3)
    B = rng.normal(size=(80, 4))
    B[:, 2] = 0.0  # a zero column: x = 0, no iterations
    op = _cg.DenseOperator(K)
    X_cg, info = _cg.cg_solve(op, B, lam, tol=1e-10, max_iter=1000,
                              precond=_cg.build_preconditioner(op, lam, rank=10))
    oracle = scipy.linalg.solve(K + lam * np.eye(80), B, assume_a="pos")
    np.testing.assert_allclose(X_cg, oracle, rtol=0, atol=1e-7 * np.abs(oracle).max())
    assert np.all(X_cg[:, 2] == 0) and info.n_iter_per_column[2] == 0
    assert info.max_residual <= 1e-10  # true residuals, recomputed at return
    true = np.linalg.norm(B - (K + lam * np.eye(80)) @ X_cg, axis=0)
    np.testing.assert_allclose(info.residuals[[0, 1, 3]],
                               true[[0, 1, 3]] / np.linalg.norm(B[:, [0, 1, 3]], axis=0),
                               rtol=1e-3, atol=1e-14)
    # one vector: same answer as its column
    x1, _ = _cg.cg_solve(op, B[:, 0], lam, tol=1e-10, max_iter=1000)
    np.testing.assert_allclose(x1, oracle[:, 0], rtol=0, atol=1e-7 * np.abs(oracle).max())


def test_cg_ill_conditioned():
    """A nearly singular kernel (duplicate rows, tiny ridge: cond ~ 1e9)."""
    rng = np.random.default_rng(2)
    X = rng.normal(size=(50, 3))
    X = np.vstack([X, X[:10] + 1e-6])
    K = kernel_matrix(X, **ARCH)
    lam = _lam(K, 1e-8)
    A = K + lam * np.eye(len(K))
    assert np.linalg.cond(A) > 1e8
    B = rng.normal(size=(len(K), 2))
    op = _cg.DenseOperator(K)
    P = _cg.build_preconditioner(op, lam, rank=20)
    X_cg, _ = _cg.cg_solve(op, B, lam, tol=1e-6, max_iter=5000, precond=P)
    oracle = scipy.linalg.solve(A, B, assume_a="pos")
    np.testing.assert_allclose(A @ X_cg, B, rtol=0, atol=1e-6 * np.abs(B).max())
    # forward error <= cond * tol: the nearly duplicated rows' directions are
    # determined only to ~1e-6 * 1e9; the solution as a whole far better
    assert np.abs(X_cg - oracle).max() <= 1e-2 * np.abs(oracle).max()
    # a tol below float64's attainable residual at cond ~ 1e9 stalls, and says so
    with pytest.raises(_cg.CGConvergenceError, match=r"stalled after \d+ iterations and 3 "
                                                     r"restarts.*round-off"):
        _cg.cg_solve(op, B, lam, tol=1e-13, max_iter=5000, precond=P)


def test_preconditioner_reduces_iterations():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 10)) @ rng.normal(size=(10, 10))
    K = kernel_matrix(X, architecture="fc", depth=3)
    lam = _lam(K, 1e-4)
    op = _cg.DenseOperator(K)
    B = rng.normal(size=(300, 3))
    counts = {}
    for rank in (0, 20, 100):
        P = _cg.build_preconditioner(op, lam, rank=rank)
        assert (P is None) == (rank == 0)
        _, info = _cg.cg_solve(op, B, lam, tol=1e-8, max_iter=5000, precond=P)
        counts[rank] = info.n_iter
    # measured: 213 / 122 / 47 iterations
    assert counts[20] < 0.75 * counts[0] and counts[100] < counts[20] / 2, counts


def test_pivoted_cholesky():
    rng = np.random.default_rng(4)
    K = kernel_matrix(rng.normal(size=(40, 3)), **ARCH)
    op = _cg.DenseOperator(K)
    L = _cg.pivoted_cholesky(op, 40)
    np.testing.assert_allclose(L @ L.T, K, atol=1e-10 * np.abs(K).max())
    L5 = _cg.pivoted_cholesky(op, 5)
    assert L5.shape == (40, 5)
    resid = np.diag(K - L5 @ L5.T)
    assert np.all(resid >= -1e-12) and resid.sum() < np.trace(K)
    # the first pivot is the largest diagonal entry, taken exactly
    i = int(np.argmax(np.diag(K)))
    np.testing.assert_allclose(L5[:, 0] * L5[i, 0], K[:, i], rtol=1e-12)
    # stops once the remaining trace is small
    L_stop = _cg.pivoted_cholesky(op, 40, stop_trace=0.05 * np.trace(K))
    assert 0 < L_stop.shape[1] < 40
    assert np.trace(K - L_stop @ L_stop.T) <= 0.05 * np.trace(K)
    # the Woodbury form is the inverse of L L^T + lam I
    P = _cg.LowRankPreconditioner(L5, 0.1)
    V = rng.normal(size=(40, 2))
    np.testing.assert_allclose(P(V), np.linalg.solve(L5 @ L5.T + 0.1 * np.eye(40), V),
                               rtol=1e-9)


def test_non_convergence_message():
    rng = np.random.default_rng(5)
    K = kernel_matrix(rng.normal(size=(100, 4)), **ARCH)
    with pytest.raises(_cg.CGConvergenceError) as exc:
        _cg.cg_solve(_cg.DenseOperator(K), rng.normal(size=(100, 2)), _lam(K, 1e-6),
                     tol=1e-12, max_iter=3)
    msg = str(exc.value)
    assert "did not converge in 3 iterations (max_iter=3)" in msg
    assert "worst relative residual" in msg and "tol=1e-12" in msg
    for hint in ("larger diag_reg", "larger max_iter or tol", "solver='cholesky'"):
        assert hint in msg
    assert exc.value.info.max_residual > 1e-12
    assert isinstance(exc.value, RuntimeError)
    # an indefinite system breaks down with its own reason
    with pytest.raises(_cg.CGConvergenceError, match="not positive definite"):
        _cg.cg_solve(_cg.DenseOperator(-np.eye(5)), np.ones(5), 0.5, tol=1e-8)


def test_default_iterations_and_rank():
    assert _cg.default_max_iter(4) == 100
    assert _cg.default_max_iter(5000) == 710
    assert _cg.default_rank(50) == 50
    assert _cg.default_rank(10**5) == _cg.PRECOND_RANK


# ------------------------------------------------------------------ estimators
def _rel(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.mark.parametrize("cls", [NNGPRegressor, NTKRegressor])
def test_regressor_cg_matches_cholesky(cls, data):
    X, Y, Xt = data
    chol = cls(diag_reg=1e-3, solver="cholesky", **ARCH).fit(X, Y)
    cg = cls(diag_reg=1e-3, solver="cg", **ARCH).fit(X, Y)
    assert (chol.solver_, chol.n_iter_, chol.solver_info_) == ("cholesky", 1, None)
    assert cg.solver_ == "cg" and cg.n_iter_ == cg.solver_info_.n_iter >= 1
    assert cg.solver_info_.max_residual <= cg.tol
    assert cg.regularization_ == pytest.approx(chol.regularization_, rel=1e-12)
    assert _rel(cg.predict(Xt), chol.predict(Xt)) < 1e-6
    m_c, s_c = chol.predict(Xt, return_std=True)
    m_g, s_g = cg.predict(Xt, return_std=True)
    assert _rel(m_g, m_c) < 1e-6 and _rel(s_g, s_c) < 1e-5
    _, c_c = chol.predict(Xt, return_cov=True)
    _, c_g = cg.predict(Xt, return_cov=True)
    assert _rel(c_g, c_c) < 1e-5
    np.testing.assert_allclose(c_g[..., 0], c_g[..., 0].T, rtol=0, atol=1e-14)


@pytest.mark.parametrize("cls", [NNGPClassifier, NTKClassifier])
def test_classifier_cg_matches_cholesky(cls):
    rng = np.random.default_rng(6)
    X = rng.normal(size=(70, 4))
    y = np.digitize(X[:, 0] + 0.3 * X[:, 1], [-0.5, 0.5])
    Xt = rng.normal(size=(15, 4))
    chol = cls(diag_reg=1e-3, solver="cholesky", **ARCH).fit(X, y)
    cg = cls(diag_reg=1e-3, solver="cg", **ARCH).fit(X, y)
    # the leave-one-out rows were solved with Y: 3 targets + 70 unit vectors
    assert len(cg.solver_info_.residuals) == 3 + 70
    assert cg.temperature_ == pytest.approx(chol.temperature_, rel=1e-5)
    assert cg.loo_log_loss_ == pytest.approx(chol.loo_log_loss_, rel=1e-6)
    assert _rel(cg.decision_function(Xt), chol.decision_function(Xt)) < 1e-6
    assert _rel(cg.predict_proba(Xt), chol.predict_proba(Xt)) < 1e-6
    np.testing.assert_array_equal(cg.predict(Xt), chol.predict(Xt))


def test_cg_refusals(data):
    X, Y, _ = data
    with pytest.raises(ValueError, match=r"solver='cg' cannot give the finite-time NTK "
                                         r"\(t=5.0\).*Use solver='auto' or 'eigh', or t=None"):
        NTKRegressor(solver="cg", t=5.0, **ARCH).fit(X, Y)
    reg = NNGPRegressor(solver="cg", **ARCH).fit(X, Y)
    with pytest.raises(ValueError, match=r"log_marginal_likelihood needs log\|K \+ lambda I\|"
                                         r".*fitted with solver='cg'.*solver='cholesky'"):
        reg.log_marginal_likelihood()
    with pytest.raises(ValueError, match=r"'tol' parameter of NNGPRegressor must be a float "
                                         r"in the range \(0.0, 1.0\). Got 0 instead"):
        NNGPRegressor(tol=0).fit(X, Y)
    with pytest.raises(ValueError, match="'max_iter' parameter of NTKClassifier must be"):
        NTKClassifier(max_iter=0).fit(X, Y[:, 0] > 0)

def test_estimator_non_convergence(monkeypatch, data):
    X, Y, _ = data
    monkeypatch.setattr(_cg, "PRECOND_RANK", 0)  # no preconditioner: 60 rows need > 2 steps
    with pytest.raises(_cg.CGConvergenceError,
                       match=r"did not converge in 2 iterations \(max_iter=2\): worst "
                             r"relative residual .* against tol=1e-07 \(preconditioner rank 0\)"):
        NNGPRegressor(solver="cg", max_iter=2, **ARCH).fit(X, Y)


def test_cg_fit_uses_only_the_operator(data):
    """The CG fit reaches the train kernel only through _train_operator (a
    streaming override never needs the n x n matrix)."""
    X, Y, Xt = data
    calls = []

    class Counting(_cg.DenseOperator):
        def matmul(self, V):
            calls.append(V.shape[1])
            return super().matmul(V)

    class Streaming(NNGPRegressor):
        def _train_operator(self, kind):
            K = kernel_matrix(self.X_fit_, get=kind, **ARCH)
            return Counting(K)

        def _train_kernels(self, kinds):
            raise AssertionError("the n x n train kernel was requested")

    reg = Streaming(solver="cg", diag_reg=1e-3, **ARCH).fit(X, Y)
    assert len(calls) == reg.solver_info_.passes > 0
    ref = NNGPRegressor(solver="cholesky", diag_reg=1e-3, **ARCH).fit(X, Y)
    assert _rel(reg.predict(Xt, return_std=True)[1], ref.predict(Xt, return_std=True)[1]) < 1e-5


# ---------------------------------------------------------------- memory plans
def test_choose_solver_logic(monkeypatch):
    monkeypatch.setattr(_memory, "available_bytes", lambda: 1000)
    choose = _memory.choose_solver
    assert choose("auto", None, 10, dense=400, cg=100, kernel_cache="memory") == "cholesky"
    assert choose("auto", None, 10, dense=600, cg=500, kernel_cache="memory") == "cg"
    assert choose("auto", None, 10, dense=1100, cg=900, kernel_cache="memory") == "cg"
    # CG only where it saves memory: the dense solve is kept while it fits
    assert choose("auto", None, 10, dense=600, cg=900, kernel_cache="memory") == "cholesky"
    assert choose("auto", None, 10, dense=600, cg=1100, kernel_cache="memory") == "cholesky"
    with pytest.raises(MemoryError, match=r"solver='auto' \(cholesky, n=10\) needs about"):
        choose("auto", None, 10, dense=1100, cg=1200, kernel_cache="memory")
    assert choose("auto", 1.0, 10, dense=900, cg=100, kernel_cache="memory") == "eigh"
    assert choose("eigh", None, 10, dense=900, cg=100, kernel_cache="memory") == "eigh"
    assert choose("cg", None, 10, dense=10, cg=1000, kernel_cache="memory") == "cg"
    with pytest.raises(MemoryError, match=r"solver='cg' \(n=10\) needs about .* GiB.*"
                                          r"pass kernel_cache=<a directory>"):
        choose("cg", None, 10, dense=10, cg=1001, kernel_cache="memory")
    with pytest.raises(MemoryError, match="finite-time NTK"):
        choose("auto", 2.0, 10, dense=1001, cg=1, kernel_cache="memory")
    monkeypatch.setattr(_memory, "available_bytes", lambda: None)  # unknown: no plan
    assert choose("auto", None, 10, dense=10**20, cg=10**20, kernel_cache="off") == "cholesky"


def test_auto_chooses_cg_when_memory_is_short(monkeypatch, data):
    """With a streaming operator (here a stand-in that reports holding nothing)
    "auto" turns to CG once the dense solve does not fit comfortably; with the
    in-memory operator (no saving) it keeps Cholesky while that fits."""
    X, Y, Xt = data
    n = len(X)

    class Streaming(NNGPRegressor):
        def _operator_bytes(self, n):
            return 0

    monkeypatch.setattr(_cg, "PRECOND_RANK", 5)  # at n=60 its blocks would outweigh K
    dense = _memory.dense_bytes(n, 1, eigh=False, bank=True)
    monkeypatch.setattr(_memory, "available_bytes", lambda: int(1.5 * dense))
    auto = Streaming(diag_reg=1e-3, **ARCH).fit(X, Y)
    assert auto.solver_ == "cg" and auto.n_iter_ >= 1
    assert NNGPRegressor(diag_reg=1e-3, **ARCH).fit(X, Y).solver_ == "cholesky"
    monkeypatch.setattr(_memory, "available_bytes", lambda: 100 * dense)
    chol = Streaming(diag_reg=1e-3, **ARCH).fit(X, Y)
    assert chol.solver_ == "cholesky"
    assert NTKRegressor(t=3.0, **ARCH).fit(X, Y).solver_ == "eigh"
    assert _rel(auto.predict(Xt), chol.predict(Xt)) < 1e-6


def test_memory_refusal_before_any_kernel(monkeypatch, data):
    X, Y, Xt = data
    monkeypatch.setattr(_memory, "available_bytes", lambda: 10_000)
    before = dict(_bank.stats)
    with pytest.raises(MemoryError) as exc:
        NNGPRegressor(solver="cholesky", kernel_cache="off", **ARCH).fit(X, Y)
    msg = str(exc.value)
    assert msg.startswith("The fit with solver='cholesky' (cholesky, n=60) needs about ")
    assert "GiB of host memory but only 0.0 GiB is available" in msg
    assert "use solver='cg' with kernel_cache=<a directory>" in msg and "fewer samples" in msg
    with pytest.raises(MemoryError, match="solver='auto'"):  # CG does not fit either
        NNGPClassifier(**ARCH).fit(X, Y[:, 0] > 0)
    assert _bank.stats == before  # refused before any kernel was requested
    # predictions that need the train kernels again are planned too
    monkeypatch.setattr(_memory, "available_bytes", lambda: 10**12)
    reg = NTKRegressor(solver="cholesky", **ARCH).fit(X, Y)
    monkeypatch.setattr(_memory, "available_bytes", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"predict\(return_cov=True\) on 9 samples "
                                          r"\(n_train=60, solver 'cholesky'\).*return_std"):
        reg.predict(Xt, return_cov=True)
    assert reg.predict(Xt).shape == Y[:9].shape  # the mean needs no train kernel
    monkeypatch.setattr(_memory, "available_bytes", lambda: 10**12)
    gp = NNGPRegressor(**ARCH).fit(X, Y)
    monkeypatch.setattr(_memory, "available_bytes", lambda: 10_000)
    with pytest.raises(MemoryError, match=r"log_marginal_likelihood \(n=60\) needs about"):
        gp.log_marginal_likelihood()


def test_batched_pivots_give_a_valid_factor():
    """A streaming operator asks for pivot columns in batches: the factor is
    still an exact partial Cholesky (K - L L^T positive semi-definite, the
    trace decreasing), near the one-at-a-time greedy's quality."""
    rng = np.random.default_rng(6)
    K = kernel_matrix(rng.normal(size=(120, 4)), **ARCH)
    reads = []

    class Batched(_cg.DenseOperator):
        column_batch = 16

        def columns(self, idx):
            reads.append(len(idx))
            return super().columns(idx)

    L = _cg.pivoted_cholesky(Batched(K), 48)
    assert L.shape == (120, 48) and reads and max(reads) == 16 and len(reads) <= 4
    R = K - L @ L.T
    assert np.linalg.eigvalsh(R).min() > -1e-10 * np.abs(K).max()
    greedy = _cg.pivoted_cholesky(_cg.DenseOperator(K), 48)
    assert np.trace(R) <= 3 * np.trace(K - greedy @ greedy.T)
    np.testing.assert_allclose(_cg.pivoted_cholesky(Batched(K), 120) @
                               _cg.pivoted_cholesky(Batched(K), 120).T, K,
                               atol=1e-9 * np.abs(K).max())


@pytest.mark.parametrize("cls", [NNGPRegressor, NTKClassifier])
def test_cg_streams_the_kernel_cache(cls, tmp_path, monkeypatch, data):
    """With kernel_cache=<directory>, CG reads the train kernel block by block
    from the row store (the n x n matrix is never requested) and predicts
    what the in-memory Cholesky solve predicts; "auto" picks CG when the
    dense solve does not fit comfortably."""
    from sknngp import _rowstore

    X, Y, Xt = data
    y = Y if cls is NNGPRegressor else (Y[:, 0] > 0).astype(int) + (Y[:, 1] > 0)
    monkeypatch.setattr(_rowstore, "ROW_BLOCK", 16)  # several blocks at n = 60

    class NoDense(cls):
        def _train_kernels(self, kinds):
            raise AssertionError("the n x n train kernel was requested")

    ref = cls(solver="cholesky", diag_reg=1e-3, **ARCH).fit(X, y)
    disk = NoDense(solver="cg", diag_reg=1e-3, kernel_cache=str(tmp_path), **ARCH).fit(X, y)
    out = "predict" if cls is NNGPRegressor else "predict_proba"
    assert _rel(getattr(disk, out)(Xt), getattr(ref, out)(Xt)) < 1e-6
    if cls is not NNGPRegressor:
        return  # at n = 60 the leave-one-out columns make CG's blocks outweigh K
    dense = _memory.dense_bytes(len(X), 1, eigh=False, bank=False)
    monkeypatch.setattr(_memory, "available_bytes", lambda: int(1.5 * dense))
    monkeypatch.setattr(_cg, "STREAMING_RANK", 5)
    auto = cls(diag_reg=1e-3, kernel_cache=str(tmp_path), **ARCH).fit(X, y)
    assert auto.solver_ == "cg"
