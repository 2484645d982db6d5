"""Finite-width networks as scikit-learn estimators, trained through skorch.

The network is built from the same layer specification as the analytic kernel
(:func:`sknngp.architecture.build_architecture`), so a :class:`FiniteNetRegressor`
and an ``NTKRegressor`` with equal architecture arguments describe the same
model at finite and infinite width. Training is skorch's loop
(``skorch.NeuralNet``) on ``0.5 * mean((f - y)**2)``, neural-tangents' MSE
normalisation. By default a network trains like an ordinary MLP (Adam,
mini-batches, early stopping on a validation split); ``regime="kernel"``
switches to full-batch gradient descent on a centered network, under which
``max_epochs`` steps of learning rate ``lr_`` correspond to the NTK
prediction at ``t=max_epochs, learning_rate=lr_``.
"""

from __future__ import annotations

import copy
from contextlib import contextmanager
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from skorch import NeuralNet
from skorch.callbacks import EarlyStopping
from skorch.utils import noop

from .._images import check_input_shape, check_rows_match_shape, to_rows
from ..architecture import AvgPool, Conv, architecture_from_params
from ..architecture.params import ARCHITECTURE_CONSTRAINTS
from ._critical import critical_lr_of_module
from ._docs import ATTRIBUTES_DOC as _ATTRIBUTES_DOC
from ._docs import COMMON_DOC as _COMMON_DOC
from ._modules import EnsembleCrossEntropyLoss, EnsembleMSELoss, FiniteNetModule
from ._training import (
    ADAM_AUTO_LR,
    SGD_AUTO_FRACTION,
    IndexSplit,
    RaiseOnDivergence,
    Training,
    ValidAccuracy,
    resolve,
    validation_indices,
)

#: rows per forward pass at prediction time (bounds memory on large test sets)
_PREDICT_BATCH = 1024
#: largest magnitude a float32 network can take as input
_FLOAT32_MAX = float(np.finfo(np.float32).max)


@contextmanager
def _torch_threads(n_jobs):
    """Run torch on ``n_jobs`` threads (None: 1, -1: all cores), then restore."""
    import os

    before = torch.get_num_threads()
    if n_jobs is None:
        n = 1
    elif n_jobs < 0:
        n = max(1, (os.cpu_count() or 1) + 1 + n_jobs)
    else:
        n = n_jobs
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _auto_or(*constraints):
    return [StrOptions({"auto"}), *constraints]


class _BaseFiniteNet(BaseEstimator):
    """Shared parameters, validation, training and forward pass."""

    _parameter_constraints: dict = {
        **ARCHITECTURE_CONSTRAINTS,
        "width": [Interval(Integral, 1, None, closed="left")],
        "regime": [None, StrOptions({"kernel"})],
        "optimizer": _auto_or(StrOptions({"sgd", "adam"})),
        "momentum": _auto_or(Interval(Real, 0, 1, closed="left")),
        "lr": _auto_or(Interval(Real, 0, None, closed="neither")),
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": _auto_or(None, Interval(Integral, 1, None, closed="left")),
        "early_stopping": _auto_or("boolean"),
        "train_split": [None, Interval(Real, 0, 1, closed="neither"), callable],
        "patience": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "weight_decay_scaling": [StrOptions({"layerwise", "uniform"})],
        "center": _auto_or("boolean"),
        "n_ensemble": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "n_jobs": [None, Integral],
        "random_state": ["random_state"],
        "warm_start": ["boolean"],
        "verbose": ["verbose"],
        "callbacks": [None, list],
    }

    def __init__(
        self,
        *,
        architecture="fc",
        depth=3,
        activation="relu",
        W_std=2**0.5,
        b_std=0.1,
        parameterization="ntk",
        width=256,
        input_shape=None,
        regime=None,
        optimizer="auto",
        momentum="auto",
        lr="auto",
        max_epochs=200,
        batch_size="auto",
        loss="mse",
        early_stopping="auto",
        train_split=0.1,
        patience=20,
        weight_decay=0.0,
        weight_decay_scaling="layerwise",
        center="auto",
        n_ensemble=1,
        device="cpu",
        n_jobs=None,
        random_state=None,
        warm_start=False,
        verbose=0,
        callbacks=None,
    ):
        self.architecture = architecture
        self.depth = depth
        self.activation = activation
        self.W_std = W_std
        self.b_std = b_std
        self.parameterization = parameterization
        self.width = width
        self.input_shape = input_shape
        self.regime = regime
        self.optimizer = optimizer
        self.momentum = momentum
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.loss = loss
        self.early_stopping = early_stopping
        self.train_split = train_split
        self.patience = patience
        self.weight_decay = weight_decay
        self.weight_decay_scaling = weight_decay_scaling
        self.center = center
        self.n_ensemble = n_ensemble
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.callbacks = callbacks

    # ------------------------------------------------------------------ fit

    def _check_device(self):
        owner = type(self).__name__
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError) as exc:
            raise ValueError(
                f"{owner}: device={self.device!r} is not a torch device ({exc}); "
                "use 'cpu', 'cuda' or 'cuda:<index>'."
            ) from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(
                f"{owner}: device={self.device!r} but torch.cuda.is_available() is "
                "False (no GPU, or a CPU-only torch build); use device='cpu'."
            )
        return device

    def _check_rows(self, X, y, reset, **kwargs):
        """Validate X (2-D rows or 4-D NHWC images) and, when fitting, y."""
        owner = type(self).__name__
        if reset:
            shape = check_input_shape(self.input_shape, owner)
        else:
            shape = self.input_shape_ if len(self.input_shape_) == 3 else None
        X, image_shape, _ = to_rows(X, shape, owner)
        dtype = [np.float32, np.float64]
        if reset:
            X, y = validate_data(self, X, y, dtype=dtype, **kwargs)
            check_rows_match_shape(X.shape[1], image_shape, owner)
            self.input_shape_ = image_shape if image_shape else (X.shape[1],)
        else:
            X = validate_data(self, X, dtype=dtype, reset=False)
        big = float(np.max(np.abs(X))) if X.size else 0.0
        if big > _FLOAT32_MAX:
            raise ValueError(
                f"{owner}: X holds values up to {big:.3g}, beyond the float32 range "
                f"({_FLOAT32_MAX:.3g}) in which the network computes. Rescale X "
                "(e.g. sklearn.preprocessing.StandardScaler)."
            )
        return (X, y) if reset else X

    def _stack(self):
        stack = architecture_from_params(self.get_params())
        spatial = any(isinstance(layer, (Conv, AvgPool)) for layer in stack.layers)
        if spatial and len(self.input_shape_) != 3:
            raise ValueError(
                f"{type(self).__name__}: architecture={self.architecture!r} "
                "convolves images, but X is 2-D and input_shape is None. Pass "
                "input_shape=(height, width, channels) with rows in NHWC order, "
                "or X as a 4-D (n_samples, height, width, channels) array."
            )
        return stack

    def _optimizer_kwargs(self, optimizer, momentum, module_kwargs):
        if optimizer == "adam":
            kwargs = {"optimizer": torch.optim.Adam}
        else:
            kwargs = {"optimizer": torch.optim.SGD, "optimizer__momentum": momentum}
        if self.weight_decay == 0:
            return kwargs
        if self.weight_decay_scaling == "uniform":
            kwargs["optimizer__weight_decay"] = float(self.weight_decay)
            return kwargs
        # Built on the meta device only to read the parameter names and their
        # fan-ins (allocates no memory, draws no random numbers).
        with torch.device("meta"):
            probe = FiniteNetModule(**{**module_kwargs, "seed": None})
        kwargs["optimizer__param_groups"] = [
            (name, {"weight_decay": float(self.weight_decay) * factor})
            for name, factor in probe.weight_decay_scales().items()
        ]
        return kwargs

    def _module_kwargs(self, n_outputs, center, seed):
        return dict(stack=self._stack(), input_shape=self.input_shape_, n_outputs=n_outputs,
                    n_ensemble=int(self.n_ensemble), center=bool(center), seed=seed)

    def _seed(self):
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _learning_rate(self, optimizer, module_kwargs, X):
        """``(lr, rule, critical lr or None)`` for this fit."""
        if not (isinstance(self.lr, str) and self.lr == "auto"):
            return float(self.lr), "given", None
        if optimizer == "adam":
            affine = [layer for layer in module_kwargs["stack"].layers if layer.affine]
            standard = any(layer.parameterization == "standard" for layer in affine)
            key = "standard" if standard else "ntk"
            return ADAM_AUTO_LR[key], f"adam auto ({key} parameterization)", None
        module = FiniteNetModule(**module_kwargs)
        crit = critical_lr_of_module(module, np.asarray(X, dtype=np.float32),
                                     random_state=module_kwargs["seed"])
        fraction = SGD_AUTO_FRACTION[self.regime]
        return fraction * crit, f"{fraction} x critical", crit

    def _split(self, n_samples, seed, labels):
        """skorch ``train_split`` and the number of validation rows."""
        if self.train_split is None:
            return None, 0
        if callable(self.train_split):
            return self.train_split, -1
        idx = validation_indices(n_samples, float(self.train_split), seed, labels)
        if idx is None:
            return None, 0
        return IndexSplit(*idx), len(idx[1])

    def _fit_net(self, X, targets, n_outputs, criterion, labels=None):
        owner = type(self).__name__
        device = self._check_device()
        params = self.get_params(deep=False)
        optimizer, momentum, batch_size, center, early_stopping = resolve(params, owner)
        early_stopping = early_stopping and self.max_epochs > 0
        X = torch.tensor(np.asarray(X, dtype=np.float32))
        warm = self.warm_start and hasattr(self, "net_") and self._warm_compatible(n_outputs)
        seed = self._seed()
        split, n_valid = self._split(len(X), seed, labels) if early_stopping else (None, 0)
        if warm:
            net = self.net_
            net.set_params(max_epochs=int(self.max_epochs), train_split=split)
            with _torch_threads(self.n_jobs):
                self._train(net, X, targets, device, seed, partial=True)
            self.history_ = net.history
            return self
        module_kwargs = self._module_kwargs(n_outputs, center, seed)
        with _torch_threads(self.n_jobs):
            lr, rule, crit = self._learning_rate(optimizer, module_kwargs, X)
        monitor = None
        callbacks = [("sknngp_divergence", RaiseOnDivergence(owner, self.lr if rule == "given"
                                                            else lr, self.parameterization))]
        if early_stopping:
            monitor = "train_loss"
            if split is not None:
                monitor = "valid_acc" if labels is not None else "valid_loss"
                if labels is not None:
                    callbacks.insert(0, ("sknngp_valid_acc", ValidAccuracy()))
            callbacks.insert(len(callbacks) - 1, ("sknngp_early_stopping", EarlyStopping(
                monitor=monitor, patience=int(self.patience), threshold=1e-4,
                lower_is_better=monitor != "valid_acc", load_best=True,
                sink=print if self.verbose else noop,
            )))
        callbacks += copy.deepcopy(list(self.callbacks or []))
        full_batch = batch_size is None
        net = NeuralNet(
            module=FiniteNetModule,
            **{f"module__{k}": v for k, v in module_kwargs.items()},
            criterion=criterion,
            lr=lr,
            max_epochs=int(self.max_epochs),
            batch_size=-1 if full_batch else int(batch_size),
            iterator_train__shuffle=not full_batch,
            iterator_valid__batch_size=_PREDICT_BATCH,
            train_split=split,
            callbacks=callbacks,
            device=str(device),
            verbose=int(self.verbose),
            **self._optimizer_kwargs(optimizer, momentum, module_kwargs),
        )
        with _torch_threads(self.n_jobs):
            self._train(net, X, targets, device, seed, partial=False)
        self.net_ = net
        self.history_ = net.history
        self.architecture_ = module_kwargs["stack"]
        self.lr_ = lr
        self.training_ = Training(
            optimizer=optimizer, momentum=momentum, lr=lr, lr_rule=rule, critical_lr=crit,
            batch_size=batch_size, center=center, early_stopping=early_stopping,
            monitor=monitor, n_valid=n_valid,
        ).as_dict()
        return self

    def _warm_compatible(self, n_outputs):
        module = self.net_.module_
        return (module.n_outputs == n_outputs
                and tuple(module.input_shape) == tuple(self.input_shape_))

    @staticmethod
    def _train(net, X, targets, device, seed, partial):
        cuda = [device] if device.type == "cuda" else []
        # Mini-batch shuffling draws from torch's global generator: seed it
        # inside a fork so that the caller's random state is left untouched.
        with torch.random.fork_rng(devices=cuda, device_type="cuda"):
            torch.manual_seed(seed)
            (net.partial_fit if partial else net.fit)(X, targets)

    # -------------------------------------------- critical learning rate

    def _initial_module(self, n_outputs):
        """The network ``fit`` would start from (same seed) for ``n_outputs``."""
        params = self.get_params(deep=False)
        _, _, _, center, _ = resolve(params, type(self).__name__)
        return FiniteNetModule(**self._module_kwargs(n_outputs, center, self._seed()))

    def _module_for_critical_lr(self, X, y):
        """Module and float32 rows for :func:`critical_learning_rate`."""
        if hasattr(self, "net_"):
            rows = self._check_rows(X, None, reset=False)
            return self.net_.module_, np.asarray(rows, dtype=np.float32)
        if y is None:
            raise ValueError(
                f"critical_learning_rate: {type(self).__name__} is not fitted, so y is "
                "needed to know the number of outputs; pass y."
            )
        probe = copy.deepcopy(self)
        rows, n_outputs = probe._rows_and_outputs(X, y)
        return probe._initial_module(n_outputs), np.asarray(rows, dtype=np.float32)

    # -------------------------------------------------------------- predict

    def _outputs(self, X):
        """Ensemble-mean network outputs, float64 array of shape (n, n_outputs)."""
        check_is_fitted(self)
        X = self._check_rows(X, None, reset=False)
        X = torch.tensor(np.asarray(X, dtype=np.float32))
        with _torch_threads(self.n_jobs):
            out = self.net_.forward(X, training=False, device="cpu")
        out = out.mean(dim=1).double().numpy()
        bad = ~np.isfinite(out).all(axis=1)
        if bad.any():
            raise FloatingPointError(
                f"{type(self).__name__}: the network's outputs are not finite for "
                f"{int(bad.sum())} of {len(out)} rows (first: row {int(np.argmax(bad))}); "
                "their inputs overflow the float32 network. Rescale X as the training "
                "data was scaled."
            )
        return out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


class FiniteNetRegressor(RegressorMixin, _BaseFiniteNet):
    __doc__ = f"""Finite-width network trained by gradient descent on the MSE.

    The finite counterpart of ``NTKRegressor``: same architecture parameters,
    same loss normalisation. By default it trains as an ordinary network
    (Adam, mini-batches, early stopping on a validation split); with
    ``regime="kernel"`` (full-batch gradient descent of a centered network,
    small ``lr``, exactly ``max_epochs`` steps) an ensemble of them predicts,
    as ``width`` grows, the infinite-width NTK mean at ``t = max_epochs`` and
    ``learning_rate = lr_``.

    Parameters
    ----------{_COMMON_DOC}    loss : {{"mse"}}, default="mse"
        ``0.5 * mean((f(x) - y)**2)`` over samples and outputs (each ensemble
        member's loss, summed over members).

    Attributes
    ----------{_ATTRIBUTES_DOC}    n_outputs_ : int
        Number of regression targets.

    See Also
    --------
    FiniteNetClassifier : The same network on one-hot targets.

    Notes
    -----
    With ``m = y.size``, full-batch gradient descent on ``0.5 / m *
    ||f - y||**2`` moves the outputs by ``-lr / m * Theta (f - y)`` per step,
    where ``Theta`` is the network's NTK. In the infinite-width limit ``Theta``
    is fixed and, for small ``lr``, the centered network after ``t`` steps
    predicts ``Theta_*X Theta^-1 (I - exp(-lr * Theta * t / m)) y`` (Lee et al.
    2019, arXiv:1902.06720, eq. 9; neural-tangents' time convention).

    References
    ----------
    Lee, Schoenholz, Pennington, Adlam, Xiao, Novak, Sohl-Dickstein (2020).
    Finite Versus Infinite Neural Networks: an Empirical Study. NeurIPS.

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp.finite import FiniteNetRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(20, 3))
    >>> y = X[:, 0] - X[:, 1]
    >>> reg = FiniteNetRegressor(depth=1, width=16, max_epochs=10, random_state=0)
    >>> reg.fit(X, y).predict(X[:2]).shape
    (2,)
    """

    _parameter_constraints = {
        **_BaseFiniteNet._parameter_constraints,
        "loss": [StrOptions({"mse"})],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network(s) on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Inputs, as rows or NHWC images.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        self : FiniteNetRegressor
            The fitted estimator.
        """
        X, y = self._check_rows(X, y, reset=True, multi_output=True, y_numeric=True)
        Y = y.reshape(len(y), -1)
        if self.warm_start and hasattr(self, "net_") and Y.shape[1] != self.n_outputs_:
            raise ValueError(
                f"FiniteNetRegressor: warm_start=True but y has {Y.shape[1]} output(s) "
                f"and the fitted network {self.n_outputs_}; set warm_start=False to "
                "train a new network."
            )
        big = float(np.max(np.abs(Y))) if Y.size else 0.0
        if big > 1e30:
            raise ValueError(
                f"FiniteNetRegressor: y holds values up to {big:.3g}, too large for "
                "the float32 network's squared loss; rescale y (e.g. with "
                "sklearn.compose.TransformedTargetRegressor)."
            )
        self._y_ndim = y.ndim
        self.n_outputs_ = Y.shape[1]
        targets = torch.tensor(np.asarray(Y, dtype=np.float32))
        return self._fit_net(X, targets, self.n_outputs_, EnsembleMSELoss)

    def _rows_and_outputs(self, X, y):
        X, y = self._check_rows(X, y, reset=True, multi_output=True, y_numeric=True)
        return X, int(np.prod(y.shape[1:], dtype=int))

    def predict(self, X):
        """Mean output of the ensemble.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
        """
        out = self._outputs(X)
        return out[:, 0] if self._y_ndim == 1 else out

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


class FiniteNetClassifier(ClassifierMixin, _BaseFiniteNet):
    __doc__ = f"""Finite-width network classifier, the paper's finite model.

    Trained on the MSE to centered one-hot targets ``onehot - 1/C`` (Lee et
    al. 2020's setting, shared with ``NTKClassifier`` and ``NNGPClassifier``),
    or on the cross-entropy; by default as an ordinary network (Adam,
    mini-batches, early stopping on the validation accuracy), with
    ``regime="kernel"`` by full-batch gradient descent as the infinite-width
    correspondence needs.

    Parameters
    ----------{_COMMON_DOC}    loss : {{"mse", "cross_entropy"}}, default="mse"
        ``"mse"``: ``0.5 * mean((f(x) - (onehot - 1/C))**2)`` over samples and
        the ``C`` outputs. ``"cross_entropy"``: softmax cross-entropy of the
        ``C`` outputs. Each ensemble member's loss, summed over members.

    Attributes
    ----------{_ATTRIBUTES_DOC}    classes_ : ndarray of shape (n_classes,)
        Class labels.

    See Also
    --------
    FiniteNetRegressor : The same network on real-valued targets.

    Notes
    -----
    ``decision_function`` returns the ensemble-mean outputs (one per class;
    ``f_1 - f_0`` for two classes), ``predict`` their arg-max, and
    ``predict_proba`` their softmax. With ``loss="cross_entropy"`` these are
    the model's probabilities; with ``loss="mse"`` the outputs estimate
    ``onehot - 1/C`` and their softmax is only a monotone squashing (same
    ranking and arg-max, not calibrated); wrap the classifier in
    :class:`sklearn.calibration.CalibratedClassifierCV` for calibrated ones.

    Examples
    --------
    >>> import numpy as np
    >>> from sknngp.finite import FiniteNetClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(30, 4))
    >>> y = (X[:, 0] > 0).astype(int)
    >>> clf = FiniteNetClassifier(depth=1, width=16, max_epochs=10, random_state=0)
    >>> clf.fit(X, y).predict_proba(X[:3]).shape
    (3, 2)
    """

    _parameter_constraints = {
        **_BaseFiniteNet._parameter_constraints,
        "loss": [StrOptions({"mse", "cross_entropy"})],
    }

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the network(s) on ``(X, y)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)
            Inputs, as rows or NHWC images.
        y : array-like of shape (n_samples,)
            Class labels.

        Returns
        -------
        self : FiniteNetClassifier
            The fitted estimator.
        """
        X, y = self._check_rows(X, y, reset=True)
        check_classification_targets(y)
        encoder = LabelEncoder().fit(y)
        if (self.warm_start and hasattr(self, "net_")
                and not np.array_equal(encoder.classes_, self.classes_)):
            raise ValueError(
                f"FiniteNetClassifier: warm_start=True but y has classes "
                f"{encoder.classes_.tolist()} and the fitted network "
                f"{self.classes_.tolist()}; set warm_start=False to train a new network."
            )
        self.classes_ = encoder.classes_
        codes = encoder.transform(y)
        n_classes = len(self.classes_)
        if self.loss == "cross_entropy":
            targets = torch.tensor(codes, dtype=torch.int64)
            criterion = EnsembleCrossEntropyLoss
        else:
            onehot = np.eye(n_classes, dtype=np.float32)[codes]
            targets = torch.tensor(onehot - np.float32(1.0 / n_classes))
            criterion = EnsembleMSELoss
        return self._fit_net(X, targets, n_classes, criterion, labels=codes)

    def _rows_and_outputs(self, X, y):
        X, y = self._check_rows(X, y, reset=True)
        check_classification_targets(y)
        return X, len(np.unique(y))

    def decision_function(self, X):
        """Ensemble-mean outputs.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes), or (n_samples,) for
            two classes (``f_1 - f_0``: positive means ``classes_[1]``).
        """
        out = self._outputs(X)
        if out.shape[1] == 2:
            return out[:, 1] - out[:, 0]
        return out

    def predict(self, X):
        """Class of the largest ensemble-mean output.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
        """
        out = self._outputs(X)
        return self.classes_[np.argmax(out, axis=1)]

    def predict_proba(self, X):
        """Softmax of the ensemble-mean outputs (see Notes on calibration).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
                (n_samples, height, width, channels)

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
        """
        out = self._outputs(X)
        out = np.exp(out - out.max(axis=1, keepdims=True))
        return out / out.sum(axis=1, keepdims=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags
