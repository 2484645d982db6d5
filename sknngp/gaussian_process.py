"""The NNGP and NTK kernels as scikit-learn :class:`~sklearn.gaussian_process.kernels.Kernel` objects.

:class:`NNGPKernel` and :class:`NTKKernel` plug the infinite-width kernels of
an architecture into everything scikit-learn builds on kernels:
``GaussianProcessRegressor`` / ``GaussianProcessClassifier`` (which fit
``W_std`` and ``b_std`` by maximizing the log marginal likelihood, with
gradients from JAX autodiff), sums and products with ``ConstantKernel`` and
``WhiteKernel``, ``SVC(kernel=...)`` and ``KernelRidge(kernel=...)``.

Values come from the tiled kernel engine (and, with ``kernel_cache="memory"``,
from the in-process kernel bank, so refits on the same rows reuse entries);
``eval_gradient=True`` runs the same kernel maps with ``W_std`` and ``b_std``
as traced values (:mod:`sknngp.kernels._autodiff`).
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.gaussian_process.kernels import Hyperparameter, Kernel

from . import _bank
from .architecture import ARCHITECTURE_PARAMS, Serial
from .architecture.params import ARCHITECTURE_DOC
from .kernels import _autodiff, _engine
from .kernels._validation import _parse_dtype

_DEFAULT_BOUNDS = {"W_std": (1e-2, 1e2), "b_std": (1e-5, 1e2)}
_CACHE_MODES = ("memory", "off")


class _NeuralKernel(Kernel):
    """Shared implementation; subclasses set ``_kind``."""

    _kind = None

    def __init__(
        self,
        architecture="fc",
        *,
        depth=3,
        activation="relu",
        W_std=2**0.5,
        b_std=0.1,
        parameterization="ntk",
        width=None,
        input_shape=None,
        W_std_bounds=_DEFAULT_BOUNDS["W_std"],
        b_std_bounds=_DEFAULT_BOUNDS["b_std"],
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
        self.W_std_bounds = W_std_bounds
        self.b_std_bounds = b_std_bounds
        self.dtype = dtype
        self.batch_size = batch_size
        self.device = device
        self.kernel_cache = kernel_cache

    # ---------------------------------------------------------- hyperparameters
    @property
    def hyperparameter_W_std(self):
        return Hyperparameter("W_std", "numeric", self._bounds("W_std"))

    @property
    def hyperparameter_b_std(self):
        return Hyperparameter("b_std", "numeric", self._bounds("b_std"))

    def _explicit(self):
        return isinstance(self.architecture, Serial)

    def _bounds(self, name):
        """Validated bounds of a hyperparameter, ``"fixed"`` for explicit stacks."""
        bounds = getattr(self, f"{name}_bounds")
        fixed = isinstance(bounds, str) and bounds == "fixed"
        if self._explicit():
            if not fixed and _as_pair(bounds) != _DEFAULT_BOUNDS[name]:
                raise ValueError(
                    f"{name}_bounds={bounds!r} cannot apply: architecture is an explicit "
                    f"layer stack, whose layers carry their own W_std and b_std, so "
                    f"{type(self).__name__} exposes no hyperparameters for it. Leave "
                    f"{name}_bounds at its default, or use a named architecture "
                    "('fc', 'cnn-vec', 'cnn-gap') to fit W_std and b_std."
                )
            return "fixed"
        if fixed:
            return "fixed"
        pair = _as_pair(bounds)
        if pair is None or not 0 < pair[0] < pair[1] < np.inf:
            raise ValueError(
                f"{name}_bounds must be 'fixed' or a pair (low, high) with "
                f"0 < low < high < inf (bounds of {name}, searched in log space); "
                f"got {bounds!r}."
            )
        value = getattr(self, name)
        if not isinstance(value, numbers.Real) or not value > 0:
            raise ValueError(
                f"{name}={value!r} cannot be a hyperparameter: it is searched in log "
                f"space, so it must be positive. Pass {name}_bounds='fixed' to keep "
                f"{name}={value!r} fixed, or a positive {name}."
            )
        return pair

    def _free(self):
        """Names of the hyperparameters that are not fixed, in ``theta``'s order."""
        return tuple(h.name for h in self.hyperparameters if not h.fixed)

    # ------------------------------------------------------------------ kernel
    def __call__(self, X, Y=None, eval_gradient=False):
        """Return the kernel ``k(X, Y)`` and optionally its gradient.

        Parameters
        ----------
        X : array-like of shape (n_samples_X, n_features) or (n_samples_X, H, W, C)
            Left argument. 2-D rows are reshaped to ``input_shape`` when given.
        Y : array-like of shape (n_samples_Y, ...), default=None
            Right argument; ``None`` means ``X`` (each unordered pair once).
        eval_gradient : bool, default=False
            Also return the gradient with respect to the log of the non-fixed
            hyperparameters (``log W_std``, ``log b_std``, in this order).
            Only supported when ``Y`` is None.

        Returns
        -------
        K : ndarray of shape (n_samples_X, n_samples_Y)
        K_gradient : ndarray of shape (n_samples_X, n_samples_X, n_dims)
            Only when ``eval_gradient`` is True.
        """
        if eval_gradient and Y is not None:
            raise ValueError("Gradient can only be evaluated when Y is None.")
        plan, x1, x2 = self._prepare(X, Y)
        dkey = _parse_dtype(self.dtype)
        free = self._free() if eval_gradient else ()
        if free:
            K, dK = _autodiff.kernel_and_gradient(
                plan, x1, x2, (self._kind,), self.W_std, self.b_std, free, dkey,
                self.batch_size, self.device)[self._kind]
        else:
            K = self._values(plan, x1, x2, dkey)
            dK = np.empty(K.shape + (0,))
        bad = ~np.isfinite(K) if not free else ~np.isfinite(K) | ~np.isfinite(dK).all(-1)
        if bad.any():
            raise ValueError(
                f"The {self._kind} kernel{' or its gradient' if free else ''} contains "
                f"{int(bad.sum())} NaN or infinite value(s) (W_std={self.W_std!r}, "
                f"b_std={self.b_std!r}, dtype={self.dtype!r}). Use dtype='float64', "
                "standardize X, or narrow W_std_bounds / b_std_bounds."
            )
        return (K, dK) if eval_gradient else K

    def diag(self, X):
        """Return ``k(x, x)`` for each row of ``X``, in O(n) kernel evaluations.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, H, W, C)

        Returns
        -------
        K_diag : ndarray of shape (n_samples,)
        """
        plan, x, _ = self._prepare(X, None)
        dkey = _parse_dtype(self.dtype)
        return _engine.diagonal(plan, x, (self._kind,), dkey, self.batch_size,
                                self.device)[self._kind]

    def is_stationary(self):
        """False: the kernel depends on the inputs' norms, not only on ``x - y``."""
        return False

    def _prepare(self, X, Y):
        """The plan and engine inputs; ``x2`` is None for a symmetric block."""
        if self.kernel_cache not in _CACHE_MODES:
            raise ValueError(
                f"kernel_cache must be one of {list(_CACHE_MODES)}; got {self.kernel_cache!r}."
            )
        arch = {name: getattr(self, name) for name in ARCHITECTURE_PARAMS}
        plan, x1, x2 = _engine._prepare(X, Y, arch, self.input_shape, "X", "Y")
        if Y is None or Y is X or (x2.shape == x1.shape and np.array_equal(x1, x2)):
            x2 = None  # k(X, X): compute each unordered pair once
        return plan, x1, x2

    def _values(self, plan, x1, x2, dkey):
        kinds = (self._kind,)
        if self.kernel_cache == "off":
            K, _ = _autodiff.kernel_and_gradient(
                plan, x1, x2, kinds, self.W_std, self.b_std, (), dkey, self.batch_size,
                self.device)[self._kind]
            return K
        else:
            keys1 = _bank.row_keys(x1)
            keys2 = None if x2 is None else _bank.row_keys(x2)
            out = _bank.kernels(plan, dkey, x1, keys1, x2, keys2, kinds,
                                batch_size=self.batch_size, device=self.device)
        return out[self._kind]

    def __repr__(self):
        if self._explicit():
            return f"{type(self).__name__}(architecture={self.architecture!r})"
        shown = [f"architecture={self.architecture!r}", f"depth={self.depth!r}",
                 f"activation={self.activation!r}",
                 f"W_std={_num(self.W_std)}", f"b_std={_num(self.b_std)}"]
        defaults = type(self)().get_params()
        for name in ("parameterization", "width", "input_shape"):
            value = getattr(self, name)
            if value != defaults[name]:
                shown.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(shown)})"


def _as_pair(bounds):
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        return None
    return low, high


def _num(value):
    return f"{value:.3g}" if isinstance(value, numbers.Real) else repr(value)


_DOC = """
    Parameters
    ----------""" + ARCHITECTURE_DOC + """    width : int, default=None
        Hidden width; only the standard-parameterization NTK depends on it.
    input_shape : tuple (height, width, channels), default=None
        Image shape of 2-D input rows (NHWC order), as passed by
        ``GaussianProcessRegressor``, ``SVC`` and ``KernelRidge``. Needed by
        the convolutional architectures unless ``X`` is 4-D.
    W_std_bounds, b_std_bounds : pair of float or "fixed", default=(1e-2, 1e2), (1e-5, 1e2)
        Bounds of ``W_std`` and ``b_std`` for marginal-likelihood optimization
        (searched in log space, like every scikit-learn kernel hyperparameter);
        ``"fixed"`` keeps the value. An explicit layer stack exposes no
        hyperparameters: its bounds must stay at their defaults (or "fixed").
    dtype : {"float64", "float32"}, default="float64"
        Precision of the kernel computation (and of its gradient).
    batch_size : int, default=None
        Kernel tile size (see :func:`sknngp.kernel_matrix`).
    device : None, str or jax.Device, default=None
        Where kernels are computed; None uses JAX's default backend.
    kernel_cache : {"memory", "off"}, default="memory"
        ``"memory"``: kernel values (not gradients) go through the in-process
        kernel bank, so repeated calls on the same rows with the same
        hyperparameters (cross-validation folds of ``SVC``, ``KernelRidge``,
        a refit, ``predict`` after ``fit``) compute only missing entries; the
        engine compiles its program once per value of ``W_std`` and
        ``b_std``. ``"off"``: every call computes afresh, with ``W_std`` and
        ``b_std`` as arguments of a program compiled once for all values
        (the better choice for values at many hyperparameter settings
        without gradients, e.g. a grid over the log marginal likelihood or
        ``GridSearchCV`` over ``kernel__W_std``).

    Notes
    -----
    ``theta`` holds ``log W_std`` and ``log b_std`` (those not fixed, in this
    order). With ``eval_gradient=True`` the gradient ``d K / d theta`` is
    computed by forward-mode automatic differentiation through the same kernel
    maps as the values (one tangent per hyperparameter), so it is exact to
    round-off; ``diag`` costs one self-kernel per row. Every Dense / Conv
    layer shares the same ``W_std`` and ``b_std``, so a named architecture has
    at most two hyperparameters; an overall amplitude is better left to a
    ``ConstantKernel`` factor, and observation noise to ``WhiteKernel``
    (or the estimator's ``alpha``).

    The kernel is not stationary and needs fixed-length vector inputs
    (``requires_vector_input`` is True).
"""


class NNGPKernel(_NeuralKernel):
    __doc__ = """The NNGP kernel of an architecture as a scikit-learn kernel.

    The covariance of the outputs of an infinitely wide, randomly initialized
    network (Lee et al. 2018; Novak et al. 2019), usable wherever scikit-learn
    takes a :class:`~sklearn.gaussian_process.kernels.Kernel`.
""" + _DOC + """
    See Also
    --------
    NTKKernel : the neural tangent kernel of the same architecture.
    sknngp.NNGPRegressor : exact NNGP inference with relative regularization.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.gaussian_process import GaussianProcessRegressor
    >>> from sknngp import NNGPKernel
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(30, 3))
    >>> y = np.sin(X[:, 0])
    >>> gpr = GaussianProcessRegressor(NNGPKernel(depth=2), alpha=1e-3).fit(X, y)
    >>> gpr.kernel_.hyperparameter_W_std.name, gpr.kernel_.theta.shape
    ('W_std', (2,))
    >>> K, dK = NNGPKernel(depth=2)(X[:4], eval_gradient=True)
    >>> K.shape, dK.shape
    ((4, 4), (4, 4, 2))
    """
    _kind = "nngp"


class NTKKernel(_NeuralKernel):
    __doc__ = """The neural tangent kernel of an architecture as a scikit-learn kernel.

    The kernel that governs gradient-descent training of an infinitely wide
    network (Jacot et al. 2018; Lee et al. 2019), usable wherever
    scikit-learn takes a :class:`~sklearn.gaussian_process.kernels.Kernel`.
    Note that a Gaussian process with this kernel is a kernel method, not the
    posterior of the trained network ensemble (see :class:`sknngp.NTKRegressor`
    for that).
""" + _DOC + """
    See Also
    --------
    NNGPKernel : the NNGP kernel of the same architecture.
    sknngp.NTKRegressor : the mean and covariance of the trained infinite ensemble.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.svm import SVC
    >>> from sknngp import NTKKernel
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> SVC(kernel=NTKKernel(depth=2)).fit(X, y).score(X, y) > 0.9
    True
    """
    _kind = "ntk"
