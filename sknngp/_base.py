"""The base of the kernel estimators: parameters, input, kernels, solves.

Data flows one way: parameters -> architecture (built once in ``fit``) ->
bank -> engine tiles -> solver -> fitted state (what ``predict`` needs: the
dual coefficients, ``X_fit_`` and the row hashes, no kernel matrices).
Regressors and classifiers are siblings on this base; the inference (NNGP
posterior or NTK ensemble) is a strategy object.
"""

from __future__ import annotations

import numbers
from types import SimpleNamespace

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _bank, _cg, _disk_cache, _memory, _solvers
from .architecture import ARCHITECTURE_PARAMS, architecture_from_params
from .architecture.params import ARCHITECTURE_CONSTRAINTS, ARCHITECTURE_DOC, INPUT_SHAPE_DOC
from .kernels import _engine, _progress
from .kernels._validation import parse_input_shape, resolve_devices

#: test rows per block of kernel entries at prediction time (bounds memory:
#: 2**23 entries are 64 MiB of float64)
PREDICT_ENTRIES = 2**23

KERNEL_CONSTRAINTS = {
    **ARCHITECTURE_CONSTRAINTS,
    "diag_reg": [Interval(numbers.Real, 0, np.inf, closed="left")],
    "diag_reg_absolute_scale": ["boolean"],
    "solver": [StrOptions(set(_solvers.SOLVERS))],
    "tol": [Interval(numbers.Real, 0, 1, closed="neither")],
    "max_iter": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "dtype": [StrOptions({"float32", "float64"})],
    "batch_size": [Interval(numbers.Integral, 1, None, closed="left"), None],
    "device": "no_validation",
    "kernel_cache": [str],
    "verbose": ["verbose"],
}

NTK_CONSTRAINTS = {
    "t": [Interval(numbers.Real, 0, np.inf, closed="left"), None],
    "learning_rate": [Interval(numbers.Real, 0, np.inf, closed="neither")],
}

PARAMS_DOC = (
    ARCHITECTURE_DOC
    + """    width : int, default=None
        Hidden width; only the standard-parameterization NTK depends on it."""
    + INPUT_SHAPE_DOC
    + """    diag_reg : float, default=1e-4
        Diagonal regularization. Relative by default: the train kernel becomes
        ``K + diag_reg * tr(K) / n * I`` (neural-tangents' convention).
    diag_reg_absolute_scale : bool, default=False
        If True, ``K + diag_reg * I`` (sklearn's ``alpha``).
    solver : {"auto", "cholesky", "eigh", "cg"}, default="auto"
        ``"cholesky"`` factors the regularized train kernel once;
        ``"eigh"`` eigendecomposes it (15-100x the cost on CPUs), which only
        the finite-time NTK (``t`` not None) needs; ``"cg"`` solves by
        preconditioned conjugate gradients (pivoted-Cholesky preconditioner)
        without factoring, for train kernels too large to factor in memory
        (not for a finite ``t``). ``"auto"`` uses Cholesky (eigh for a finite
        ``t``) when the kernel and its factor fit comfortably in the available
        host memory, else CG where it needs less memory (a streamed kernel); a
        solve that does not fit is refused with a ``MemoryError`` before any
        kernel is computed. Eigendecompositions are kept in the bank, so a
        grid over ``t`` (or over ``diag_reg`` with ``solver="eigh"``)
        decomposes each fold once.
    tol : float, default=1e-7
        Only for CG: the relative residual ``||b - (K + lambda I) x|| / ||b||``
        every right-hand side must reach. Predictions then differ from the
        Cholesky solve's by about ``tol`` relative (measured on Fashion-MNIST,
        n = 2,000-5,000, ``diag_reg`` 1e-4 and 1e-3); each factor of 10 costs
        about 10% more iterations there.
    max_iter : int, default=None
        Only for CG: the most iterations (passes over the train kernel);
        None means ``max(100, 10 * ceil(sqrt(n_samples)))``. A solve that does not
        reach ``tol`` raises an error with the residual it reached.
    dtype : {"float64", "float32"}, default="float64"
        Precision of the kernel computation; solves are always float64. A
        float32 kernel whose solve is ill-conditioned gives a warning with the
        estimated error; only a solve that fails raises.
    batch_size : int, default=None
        Kernel tile size (see :func:`sknngp.kernel_matrix`).
    device : None, str or jax.Device, default=None
        Where kernels are computed; None uses JAX's default backend (a GPU when
        JAX has one).
    kernel_cache : {"memory", "off"} or str, default="memory"
        ``"memory"``: reuse kernel entries across fits in this process (what
        makes ``GridSearchCV`` over ``diag_reg``, ``t`` or ``depth`` cost about
        one kernel). Entries are keyed by the architecture, the kernel dtype
        and the exact bytes of each sample, never by ``batch_size`` or
        ``device``. ``"off"``: compute every kernel afresh. A directory path (its parent
        folder must exist): keep kernel entries on disk in a row-keyed kernel
        store (checksummed blocks keyed by each row's hash, grown as new rows
        arrive), shared by the worker processes of ``n_jobs > 1``, by Dask
        workers and by later fits; with ``solver="cg"`` the solve streams
        the stored kernel instead of holding it (see the user guide's "Kernel
        stores, Dask and large problems" and "Security and data safety"
        pages).
    verbose : int, default=0
        ``1``: a progress bar (tqdm, on stderr) for each kernel computation
        that takes longer than a couple of seconds; ``2``: for every one;
        ``0``: silent.
""")

NTK_PARAMS_DOC = """    t : float, default=None
        Training time; None means converged. Grid-searchable: the fold's
        eigendecomposition is computed once and serves every value.
    learning_rate : float, default=1.0
        Gradient-descent learning rate, in neural-tangents' time convention
        ``exp(-learning_rate * Theta * t / y.size)``.
"""


#: the state ``fit`` sets; a failed refit restores the previous values
_FITTED = ("architecture_", "_fitted", "_cache", "X_fit_", "_fit_keys", "y_train_",
           "dual_coef_", "regularization_", "solver_", "n_iter_", "solver_info_")


class KernelEstimatorBase(BaseEstimator):
    """Architecture in, kernels out; subclasses set ``_strategy``."""

    _parameter_constraints: dict = dict(KERNEL_CONSTRAINTS)
    _strategy = None

    def __init__(
        self,
        *,
        architecture="fc",
        depth=3,
        activation="relu",
        W_std=2**0.5,
        b_std=0.1,
        parameterization="ntk",
        width=None,
        input_shape=None,
        diag_reg=1e-4,
        diag_reg_absolute_scale=False,
        solver="auto",
        tol=1e-7,
        max_iter=None,
        dtype="float64",
        batch_size=None,
        device=None,
        kernel_cache="memory",
        verbose=0,
    ):
        self.architecture = architecture
        self.depth = depth
        self.activation = activation
        self.W_std = W_std
        self.b_std = b_std
        self.parameterization = parameterization
        self.width = width
        self.input_shape = input_shape
        self.diag_reg = diag_reg
        self.diag_reg_absolute_scale = diag_reg_absolute_scale
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.dtype = dtype
        self.batch_size = batch_size
        self.device = device
        self.kernel_cache = kernel_cache
        self.verbose = verbose

    # ------------------------------------------------------------------ input
    def _rows(self, X, reset, y="no_validation", **y_kw):
        """Validate 2-D rows or 4-D NHWC images; return 2-D float64 rows (and y)."""
        shape = parse_input_shape(self.input_shape)
        if getattr(X, "ndim", 2) == 4:
            image = tuple(int(s) for s in X.shape[1:])
            if shape is not None and shape != image:
                raise ValueError(
                    f"input_shape={shape} does not match the images' shape {image}; "
                    "pass input_shape=None with 4-D input."
                )
            shape = image
            X = np.asarray(X).reshape(len(X), -1)
        no_y = isinstance(y, str) and y == "no_validation"
        if no_y:
            X = validate_data(self, X, reset=reset, dtype=np.float64)
        else:
            X, y = validate_data(self, X, y, reset=reset, dtype=np.float64, **y_kw)
        if shape is not None and int(np.prod(shape)) != X.shape[1]:
            raise ValueError(
                f"input_shape={shape} holds {int(np.prod(shape))} values per sample but X "
                f"has {X.shape[1]} features; input_shape must satisfy H*W*C == n_features."
            )
        if reset:
            self.image_shape_ = shape
        elif shape is not None and shape != self.image_shape_:
            fitted = ("2-D rows (no input_shape)" if self.image_shape_ is None
                      else f"images of shape {self.image_shape_}")
            raise ValueError(
                f"X has image shape {shape} but the estimator was fitted on {fitted}; "
                "pass X in the layout used in fit, or refit."
            )
        return X if no_y else (X, y)

    # ------------------------------------------------------------- parameters
    def _check_params(self):
        """What the constraint table cannot check; run by ``fit`` and again at
        prediction time (parameters may have been set after ``fit``)."""
        _disk_cache.check_location(self.kernel_cache)
        resolve_devices(self.device)
        parse_input_shape(self.input_shape)

    def _check_predict(self):
        """Validate the parameters again before using the fitted state.

        ``set_params`` after ``fit`` is not validated by scikit-learn; invalid
        values get the same errors as in ``fit``, and a changed architecture
        (whose kernels the fitted state cannot be mixed with) asks for a refit.
        """
        check_is_fitted(self)
        self._validate_params()
        self._check_params()
        params = self.get_params(deep=False)
        if architecture_from_params(params) != self.architecture_:
            before = self._fitted.architecture_params
            changed = ", ".join(
                f"{name}: {before[name]!r} -> {params[name]!r}"
                for name in ARCHITECTURE_PARAMS if before[name] != params[name]
            )
            raise ValueError(
                f"The architecture parameters changed since fit ({changed}); the fitted "
                "state belongs to the architecture it was fitted with. Call fit again "
                "(refit) to use the new parameters, or set them back."
            )

    @staticmethod
    def _finite(arr, what):
        if not np.all(np.isfinite(arr)):
            raise ValueError(
                f"{what} overflowed to inf or NaN; rescale y (e.g. divide by its "
                "standard deviation) or X."
            )
        return arr

    def _sample_shape(self):
        return self.image_shape_ or (self.n_features_in_,)

    def _plan(self):
        """The canonical kernel plan (rebuilt, not stored: plans are cached)."""
        return _engine.plan_for(self.architecture_, self._sample_shape())

    def _engine_input(self, X):
        plan, flat = self._plan()
        return plan, (X if flat or self.image_shape_ is None
                      else X.reshape((len(X),) + self.image_shape_))

    # ---------------------------------------------------------------- kernels
    def _kernels(self, X1, keys1, X2, keys2, kinds):
        """``{kind: K(X1, X2)}`` (``X2=None``: symmetric) through the bank."""
        with _progress.reporting(self.verbose):
            return self._kernels_quietly(X1, keys1, X2, keys2, kinds)

    def _kernels_quietly(self, X1, keys1, X2, keys2, kinds):
        plan, x1 = self._engine_input(X1)
        x2 = None if X2 is None else self._engine_input(X2)[1]
        mode = self.kernel_cache
        if mode not in ("memory", "off"):
            from ._disk_cache import disk_kernels

            out = disk_kernels(mode, plan, self._fitted.dtype, x1, x2, kinds,
                               batch_size=self.batch_size, device=self.device)
        else:
            out = _bank.kernels(plan, self._fitted.dtype, x1, keys1, x2, keys2, kinds,
                                batch_size=self.batch_size, device=self.device,
                                use_bank=mode == "memory")
        return out  # finite: the engine refuses kernels that overflow

    def _train_kernels(self, kinds):
        """Train kernels, fetched again from the bank (or recomputed); owned copies."""
        return self._kernels(self.X_fit_, self._fit_keys, None, None, kinds)

    def _eigh(self, kind, K):
        key = (self._plan()[0], self._fitted.dtype, kind, _bank.rows_digest(self._fit_keys))
        if self.kernel_cache == "off":
            return _solvers.eigh(K)
        return _bank.cached_eigh(K, key, _solvers.eigh)

    def _self_kernels(self, X, kinds):
        plan, x = self._engine_input(X)
        with _progress.reporting(self.verbose):
            return _engine.diagonal(plan, x, tuple(kinds), self._fitted.dtype,
                                    self.batch_size, self.device)

    def _train_operator(self, kind):
        """The train kernel of ``kind`` as a :class:`sknngp._cg.KernelOperator`,
        the only way CG (and the NTK's covariance) reach it: by default a
        :class:`~sknngp._cg.DenseOperator` over the kernel from the bank. An
        override may stream the kernel instead (then also override
        :meth:`_operator_bytes`)."""
        if self.kernel_cache in ("memory", "off"):
            return _cg.DenseOperator(self._train_kernels((kind,))[kind])
        from ._rowstore import RowKernel

        plan, x = self._engine_input(self.X_fit_)
        store = _disk_cache.row_store(self.kernel_cache, plan, self._fitted.dtype, x.shape[1:])
        with _progress.reporting(self.verbose):
            return RowKernel(store, kind, store.indices(x), self.batch_size, self.device)

    def _streams(self):
        """Whether :meth:`_train_operator` streams the kernel from disk."""
        return self.kernel_cache not in ("memory", "off")

    def _operator_bytes(self, n):
        """Host bytes one :meth:`_train_operator` of ``n`` rows holds: the
        kernel (``8 n^2``), or a few stored blocks when it streams from a
        ``kernel_cache`` directory."""
        if self.kernel_cache in ("memory", "off"):
            return _memory.kernel_bytes(n)
        from ._rowstore import ROW_BLOCK

        return 4 * 8 * ROW_BLOCK * ROW_BLOCK

    # ---------------------------------------------------------- memory plans
    def _choose_solver(self, n, n_rhs, t):
        """The solve of a fit (``"cholesky"``, ``"eigh"`` or ``"cg"``), planned
        against the available memory before any kernel is computed."""
        n_kinds = len(self._strategy.mean_kinds)
        dense = _memory.dense_bytes(n, n_kinds, eigh=self.solver == "eigh" or t is not None,
                                    bank=self.kernel_cache == "memory")
        op_bytes = n_kinds * self._operator_bytes(n)
        cg = _memory.cg_bytes(n, n_rhs, op_bytes, _cg.default_rank(n, self._streams()),
                              bank_bytes=op_bytes if self.kernel_cache == "memory" else 0)
        return _memory.choose_solver(self.solver, t, n, dense=dense, cg=cg,
                                     kernel_cache=self.kernel_cache)

    def _check_dense_memory(self, n_kinds, what):
        """Refuse a dense use of ``n_kinds`` train kernels that does not fit."""
        n = len(self.X_fit_)
        need, avail = _memory.dense_bytes(n, n_kinds, eigh=False), _memory.available_bytes()
        if avail is not None and need > avail:
            raise _memory.refuse(f"{what} (n={n})", need, avail, "use fewer samples.")

    def _check_spread_memory(self, n_test, cov):
        """Refuse a standard deviation / covariance that does not fit, before
        any kernel is computed (see :func:`sknngp._memory.check_spread`)."""
        n = len(self.X_fit_)
        _memory.check_spread(
            n, n_test, cov, method=self._fitted.method,
            n_train_kernels=len(self._strategy.cov_kinds)
            - (("op", self._strategy.main) in self._cache),
            operator_bytes=self._operator_bytes(n), rank=_cg.default_rank(n, self._streams()))

    # -------------------------------------------------------------------- fit
    def _fit_targets(self, X, Y):
        """Build the architecture, compute the train kernel, solve; set state.

        If any step fails, the previous fitted attributes are restored, so a
        failed refit never leaves a mix of old and new state.
        """
        t = getattr(self, "t", None)
        if self.solver in ("cholesky", "cg") and t is not None:
            raise ValueError(
                f"solver={self.solver!r} cannot give the finite-time NTK (t={t!r}): it "
                "needs the spectrum of the train NTK. Use solver='auto' or 'eigh', or "
                "t=None."
            )
        self._check_params()
        params = self.get_params(deep=False)
        architecture = architecture_from_params(params)
        fitted = SimpleNamespace(
            diag_reg=self.diag_reg, diag_reg_absolute_scale=self.diag_reg_absolute_scale,
            solver=self.solver, dtype=self.dtype, t=t, tol=self.tol, max_iter=self.max_iter,
            learning_rate=getattr(self, "learning_rate", None),
            architecture_params={name: params[name] for name in ARCHITECTURE_PARAMS},
        )
        previous = {name: self.__dict__[name] for name in _FITTED if name in self.__dict__}
        try:
            self.architecture_, self._fitted, self._cache = architecture, fitted, {}
            self.X_fit_, self._fit_keys, self.y_train_ = X, _bank.row_keys(X), Y
            self._plan()  # validate the stack against the input shape before any work
            n_rhs = Y.shape[1] + len(self._loo_rows(len(Y)))
            fitted.method = self._choose_solver(len(Y), n_rhs, t)  # before any kernel
            K = None  # CG reaches the kernel through _train_operator
            if fitted.method != "cg":
                K = self._kernels(X, self._fit_keys, None, None, self._strategy.mean_kinds)
                K = K[self._strategy.main]  # the caller's own array: the bank keeps copies
            self.dual_coef_, self.regularization_, info = self._strategy.fit(self, K, Y)
            self.solver_, self.solver_info_ = fitted.method, info
            self.n_iter_ = 1 if info is None else info.n_iter
            self._finite(self.dual_coef_, "The dual coefficients")
        except BaseException:
            for name in _FITTED:
                self.__dict__.pop(name, None)
            self.__dict__.update(previous)
            raise
        return self

    def _loo_rows(self, n):
        """Training rows whose ``[(K + lambda I)^-1]_ii`` the fit needs (classifiers'
        leave-one-out temperature); CG solves for their unit vectors with ``Y``."""
        return ()

    # ---------------------------------------------------------------- predict
    def _test_rows(self, X):
        self._check_predict()
        return self._rows(X, reset=False)

    def _mean(self, X, keys):
        """Posterior / ensemble mean in blocks of test rows (bounded memory)."""
        n_fit = len(self.X_fit_)
        step = max(1, PREDICT_ENTRIES // max(n_fit, 1))
        out = np.empty((len(X), self.dual_coef_.shape[1]))
        for i in range(0, len(X), step):
            cross = self._kernels(X[i:i + step], keys[i:i + step], self.X_fit_,
                                  self._fit_keys, self._strategy.mean_kinds)
            out[i:i + step] = self._strategy.mean(self, cross)
        return self._finite(out, "The predictions")

    def __getstate__(self):
        state = dict(super().__getstate__())  # a copy: the live estimator keeps its cache
        state.pop("_cache", None)  # factors are rebuilt from the bank on demand
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        self._cache = {}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
