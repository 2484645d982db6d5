"""Finite-width networks as scikit-learn estimators, trained through skorch.

The network is built from the same layer specification as the analytic kernel
(:func:`sknngp.architecture.build_architecture`), so a :class:`FiniteNetRegressor`
and an ``NTKRegressor`` with equal architecture arguments describe the same
model at finite and infinite width. Training is skorch's loop
(``skorch.NeuralNet``): full-batch gradient descent by default, on
``0.5 * mean((f - y)**2)``, neural-tangents' MSE normalisation, so that
``max_epochs`` full-batch steps of learning rate ``lr`` correspond to the NTK
prediction at ``t=max_epochs, learning_rate=lr`` (see :class:`FiniteNetRegressor`).
"""

from __future__ import annotations

import copy
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
from skorch.callbacks import Callback

from .._images import check_input_shape, check_rows_match_shape, to_rows
from ..architecture import AvgPool, Conv, architecture_from_params
from ..architecture.params import ARCHITECTURE_CONSTRAINTS, ARCHITECTURE_DOC, INPUT_SHAPE_DOC
from ._modules import EnsembleCrossEntropyLoss, EnsembleMSELoss, FiniteNetModule

#: rows per forward pass at prediction time (bounds memory on large test sets)
_PREDICT_BATCH = 1024


class _RaiseOnDivergence(Callback):
    """Stop training with advice as soon as the training loss is not finite."""

    def __init__(self, owner, lr, parameterization):
        self.owner, self.lr, self.parameterization = owner, lr, parameterization

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1, "train_loss"]
        if not np.isfinite(loss):
            hint = (
                " In standard parameterization the NTK grows with the width, so "
                "lr must shrink like 1/width."
                if self.parameterization == "standard" else ""
            )
            raise FloatingPointError(
                f"{self.owner}: training diverged (train loss {loss} at epoch "
                f"{len(net.history)}) with lr={self.lr!r}. Lower lr: gradient "
                "descent on the MSE is stable for lr < 2 * n_targets / "
                f"lambda_max(NTK), where n_targets = n_samples * n_outputs.{hint}"
            )


class _BaseFiniteNet(BaseEstimator):
    """Shared parameters, validation, training and forward pass."""

    _parameter_constraints: dict = {
        **ARCHITECTURE_CONSTRAINTS,
        "width": [Interval(Integral, 1, None, closed="left")],
        "optimizer": [StrOptions({"sgd", "adam"})],
        "momentum": [Interval(Real, 0, 1, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [None, Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "weight_decay_scaling": [StrOptions({"layerwise", "uniform"})],
        "center": ["boolean"],
        "n_ensemble": [Interval(Integral, 1, None, closed="left")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
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
        optimizer="sgd",
        momentum=0.0,
        lr=0.5,
        max_epochs=100,
        batch_size=None,
        loss="mse",
        weight_decay=0.0,
        weight_decay_scaling="layerwise",
        center=False,
        n_ensemble=1,
        device="cpu",
        random_state=None,
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
        self.optimizer = optimizer
        self.momentum = momentum
        self.lr = lr
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.loss = loss
        self.weight_decay = weight_decay
        self.weight_decay_scaling = weight_decay_scaling
        self.center = center
        self.n_ensemble = n_ensemble
        self.device = device
        self.random_state = random_state
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
            return X, y
        return validate_data(self, X, dtype=dtype, reset=False)

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

    def _optimizer_kwargs(self, module_kwargs):
        owner = type(self).__name__
        if self.optimizer == "adam":
            if self.momentum != 0:
                raise ValueError(
                    f"{owner}: momentum={self.momentum!r} applies to optimizer='sgd' "
                    "only (Adam has its own moment estimates); set momentum=0.0."
                )
            kwargs = {"optimizer": torch.optim.Adam}
        else:
            kwargs = {"optimizer": torch.optim.SGD,
                      "optimizer__momentum": float(self.momentum)}
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

    def _fit_net(self, X, targets, n_outputs, criterion):
        device = self._check_device()
        stack = self._stack()
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        module_kwargs = dict(
            stack=stack, input_shape=self.input_shape_, n_outputs=n_outputs,
            n_ensemble=int(self.n_ensemble), center=bool(self.center), seed=seed,
        )
        callbacks = copy.deepcopy(list(self.callbacks or []))
        callbacks.append((
            "sknngp_divergence",
            _RaiseOnDivergence(type(self).__name__, self.lr, self.parameterization),
        ))
        full_batch = self.batch_size is None
        net = NeuralNet(
            module=FiniteNetModule,
            **{f"module__{k}": v for k, v in module_kwargs.items()},
            criterion=criterion,
            lr=float(self.lr),
            max_epochs=int(self.max_epochs),
            batch_size=-1 if full_batch else int(self.batch_size),
            iterator_train__shuffle=not full_batch,
            iterator_valid__batch_size=_PREDICT_BATCH,
            train_split=None,
            callbacks=callbacks,
            device=str(device),
            verbose=int(self.verbose),
            **self._optimizer_kwargs(module_kwargs),
        )
        X = torch.tensor(np.asarray(X, dtype=np.float32))
        cuda = [device] if device.type == "cuda" else []
        # Mini-batch shuffling draws from torch's global generator: seed it
        # inside a fork so that the caller's random state is left untouched.
        with torch.random.fork_rng(devices=cuda, device_type="cuda"):
            torch.manual_seed(seed)
            net.fit(X, targets)
        self.net_ = net
        self.architecture_ = stack
        return self

    # -------------------------------------------------------------- predict

    def _outputs(self, X):
        """Ensemble-mean network outputs, float64 array of shape (n, n_outputs)."""
        check_is_fitted(self)
        X = self._check_rows(X, None, reset=False)
        X = torch.tensor(np.asarray(X, dtype=np.float32))
        out = self.net_.forward(X, training=False, device="cpu")
        return out.mean(dim=1).double().numpy()

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        return tags


_COMMON_DOC = ARCHITECTURE_DOC + """    width : int, default=256
        Number of units (channels for convolutions) of every hidden layer.
        Hidden Dense / Conv layers of an explicit stack need their own
        ``width``; the readout's ``width=None`` is set by the task. In standard
        parameterization the NTK grows with the width, so ``lr`` must shrink
        like ``1 / width``.""" + INPUT_SHAPE_DOC.rstrip("\n") + """
    optimizer : {"sgd", "adam"}, default="sgd"
        ``torch.optim.SGD`` (with ``momentum``) or ``torch.optim.Adam``.
    momentum : float in [0, 1), default=0.0
        SGD momentum; 0 is the plain gradient descent of the NTK correspondence.
    lr : float, default=0.5
        Learning rate. For MSE with NTK parameterization, gradient descent is
        stable below ``2 * n_samples * n_outputs / lambda_max(Theta)``; 0.5 is
        safe for standardized inputs and depth <= 3. A diverging run raises
        ``FloatingPointError`` with advice.
    max_epochs : int, default=100
        Training epochs (0 leaves the network at its initialization).
    batch_size : int or None, default=None
        Mini-batch size; None trains with full-batch gradient descent (one
        step per epoch), the setting of the infinite-width correspondence.
        Mini-batches are shuffled every epoch.
    weight_decay : float, default=0.0
        Strength ``lambda`` of the L2 penalty ``lambda / 2 * sum_p s_p *
        ||p||**2`` added through the optimizer (``torch.optim`` weight decay).
    weight_decay_scaling : {"layerwise", "uniform"}, default="layerwise"
        The factors ``s_p``. ``"layerwise"`` (Lee et al. 2020, Sec. 3.11): in
        NTK parameterization ``s = W_std**2 / fan_in`` for each ``omega`` and
        ``s = b_std**2`` for each ``beta``, so the penalty is the plain L2 of
        the effective weights and biases; in standard parameterization the
        trained tensors already are the effective weights, so ``s = 1`` and
        ``"layerwise"`` equals ``"uniform"``. ``"uniform"``: ``s = 1`` for
        every trained tensor.
    center : bool, default=False
        Train and predict with ``f(x) - f0(x)``, the output minus the output of
        the same network at initialization (its initial parameters are kept,
        frozen). Removes the random initial function from the predictions.
    n_ensemble : int, default=1
        Number of independently initialized networks, each trained on its own
        loss (one module holds them all); predictions are their mean output.
    device : str or torch.device, default="cpu"
        Where the network is trained ("cpu", "cuda", "cuda:1"). Predictions
        come back as NumPy arrays on the host.
    random_state : int, RandomState instance or None, default=None
        Seeds the initial weights and the mini-batch order; an int makes
        ``fit`` deterministic (on a given device and thread count).
    verbose : int, default=0
        skorch's per-epoch progress table when > 0.
    callbacks : list of skorch callbacks or None, default=None
        Passed to ``skorch.NeuralNet`` (copies: the list given here is not
        modified), e.g. ``[skorch.callbacks.EarlyStopping(monitor="train_loss")]``.
"""

_ATTRIBUTES_DOC = """
    net_ : skorch.NeuralNet
        The trained skorch net; ``net_.module_`` is the
        :class:`~sknngp.finite._modules.FiniteNetModule` and ``net_.history``
        the training record (``train_loss`` is summed over ensemble members).
    architecture_ : Serial
        The layer stack that was trained (the same object
        :func:`sknngp.kernel_matrix` takes as ``architecture``).
    input_shape_ : tuple of int
        One sample's shape: ``(height, width, channels)`` for images, else
        ``(n_features,)``.
    n_features_in_ : int
        Number of features seen during :term:`fit`.
"""


class FiniteNetRegressor(RegressorMixin, _BaseFiniteNet):
    __doc__ = f"""Finite-width network trained by gradient descent on the MSE.

    The finite counterpart of ``NTKRegressor``: same architecture parameters,
    same loss normalisation, so that as ``width`` grows a centered, ensembled
    network trained with a small ``lr`` for ``max_epochs`` full-batch steps
    predicts the infinite-width NTK mean at time ``t = max_epochs``.

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
        self._y_ndim = y.ndim
        Y = y.reshape(len(y), -1)
        self.n_outputs_ = Y.shape[1]
        targets = torch.tensor(np.asarray(Y, dtype=np.float32))
        return self._fit_net(X, targets, self.n_outputs_, EnsembleMSELoss)

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

    Trained by gradient descent on the MSE to centered one-hot targets
    ``onehot - 1/C`` (Lee et al. 2020's setting, shared with ``NTKClassifier``
    and ``NNGPClassifier``), or on the cross-entropy.

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
        return self._fit_net(X, targets, n_classes, criterion)

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
