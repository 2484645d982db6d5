"""Shared machinery of the kernel estimators: parameters, validation, kernels."""

from __future__ import annotations

import numbers
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from . import _inference
from ._kernel_cache import cached_eigh, cached_kernel, train_key
from .kernels import ARCHITECTURES, Serial, kernel_diagonal


KERNEL_PARAMS = dict(
    architecture=[StrOptions(set(ARCHITECTURES)), Serial],
    depth=[Interval(numbers.Integral, 1, None, closed="left")],
    activation=[StrOptions({"relu", "erf"})],
    W_std=[Interval(numbers.Real, 0, None, closed="left")],
    b_std=[Interval(numbers.Real, 0, None, closed="left")],
    parameterization=[StrOptions({"ntk", "standard"})],
    width=[Interval(numbers.Integral, 1, None, closed="left"), None],
    input_shape=[tuple, list, None],
    diag_reg=[Interval(numbers.Real, 0, None, closed="left")],
    diag_reg_absolute_scale=["boolean"],
    dtype=[StrOptions({"float32", "float64"})],
    batch_size=[Interval(numbers.Integral, 1, None, closed="left"), None],
    device="no_validation",
    kernel_cache=[str],
)


class KernelEstimatorBase(BaseEstimator):
    """Base of the NNGP / NTK estimators: architecture in, kernels out.

    Subclasses set ``_kinds`` (which kernels they need) and implement the
    inference. Fitted state is NumPy only (the jitted kernel functions are
    rebuilt on demand), so estimators pickle and clone cleanly.
    """

    _parameter_constraints: dict = dict(KERNEL_PARAMS)
    _kinds = ("nngp",)
    _main_kind = "nngp"

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
        dtype="float64",
        batch_size=None,
        device=None,
        kernel_cache="memory",
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
        self.dtype = dtype
        self.batch_size = batch_size
        self.device = device
        self.kernel_cache = kernel_cache

    # ------------------------------------------------------------------ input
    def _flatten_input(self, X, reset, y="no_validation", **y_kw):
        """Accept 2-D rows or 4-D NHWC images; return 2-D rows and the image shape
        (and the validated ``y`` when one is given)."""
        if hasattr(X, "ndim") and getattr(X, "ndim", 2) == 4:
            shape = tuple(int(s) for s in X.shape[1:])
            if self.input_shape is not None and tuple(self.input_shape) != shape:
                raise ValueError(
                    f"input_shape={tuple(self.input_shape)} does not match the images' "
                    f"shape {shape}; pass input_shape=None with 4-D input."
                )
            X = np.asarray(X).reshape(len(X), -1)
        else:
            shape = None if self.input_shape is None else tuple(self.input_shape)
        if isinstance(y, str) and y == "no_validation":
            X = validate_data(self, X, reset=reset, dtype=np.float64)
        else:
            X, y = validate_data(self, X, y, reset=reset, dtype=np.float64, **y_kw)
        if not reset and shape is not None and self.image_shape_ is not None:
            if tuple(shape) != tuple(self.image_shape_):
                raise ValueError(
                    f"X has image shape {shape} but the estimator was fitted on "
                    f"{tuple(self.image_shape_)}."
                )
        if shape is not None and int(np.prod(shape)) != X.shape[1]:
            raise ValueError(
                f"input_shape={shape} holds {int(np.prod(shape))} values per sample but X "
                f"has {X.shape[1]} features; input_shape must satisfy H*W*C == n_features."
            )
        if isinstance(y, str) and y == "no_validation":
            return X, shape
        return X, y, shape

    def _kernel_kwargs(self):
        return dict(
            architecture=self.architecture,
            depth=self.depth,
            activation=self.activation,
            W_std=self.W_std,
            b_std=self.b_std,
            parameterization=self.parameterization,
            width=self.width,
            input_shape=self.image_shape_,
            dtype=self.dtype,
            batch_size=self.batch_size,
            device=self.device,
        )

    def _kernels(self, X1, X2, kinds):
        res = cached_kernel(
            X1, X2, kinds, self._kernel_kwargs(), use_cache=self._cache_mode()
        )
        for kind, K in res.items():
            if not np.all(np.isfinite(K)):
                raise ValueError(
                    f"The {kind} kernel contains NaN or infinite values "
                    f"(dtype={self.dtype!r}, diag_reg={self.diag_reg!r}). Use "
                    "dtype='float64' and standardize X."
                )
        return res

    def _cache_mode(self):
        """True (in-process bank), False, or a directory for the on-disk cache."""
        if self.kernel_cache == "memory":
            return True
        if self.kernel_cache == "off":
            return False
        if not self.kernel_cache:
            raise ValueError(
                "kernel_cache must be 'memory', 'off' or a directory path for the "
                "on-disk cache; got ''."
            )
        return self.kernel_cache

    def _self_kernels(self, X, kinds):
        kw = self._kernel_kwargs()
        res = kernel_diagonal(X, get=tuple(kinds), **kw)
        return {k: getattr(res, k) for k in kinds}

    # -------------------------------------------------------------------- fit
    def _fit_kernels(self, X, Y):
        """Validate, compute and decompose the train kernels; store fitted state."""
        self.X_fit_ = X
        self.y_train_ = Y
        Ks = self._kernels(X, None, self._kinds)
        use = self._cache_mode() is True
        self.train_kernels_ = Ks
        self.eigen_ = {}
        for kind, K in Ks.items():
            w, V = cached_eigh(K, train_key(self._kernel_kwargs(), kind, X), use_cache=use)
            self.eigen_[kind] = (w, V)
        w, _ = self.eigen_[self._main_kind]
        lam = _inference.regularizer(w, self.diag_reg, self.diag_reg_absolute_scale)
        _inference.check_positive(
            w, lam, kind=self._main_kind.upper(), diag_reg=self.diag_reg, dtype=self.dtype
        )
        return self

    def _filter(self, kind):
        w, V = self.eigen_[kind]
        lam = _inference.regularizer(w, self.diag_reg, self.diag_reg_absolute_scale)
        return w + lam, V

    def _test_input(self, X):
        check_is_fitted(self)
        X, _ = self._flatten_input(X, reset=False)
        return X

    def _warn(self, msg):
        warnings.warn(msg, RuntimeWarning, stacklevel=3)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags
