"""How a finite network is trained: resolved settings, validation split, callbacks.

:func:`resolve_training` turns the estimator's parameters (several of which
default to ``"auto"``) into the concrete settings of one ``fit``, for the
default regime or for ``regime="kernel"``; the callbacks stop a diverging run
with advice, score the validation split and stop early.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from numbers import Real

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.utils import data_from_dataset

#: Adam's ``lr="auto"`` per parameterization. In NTK parameterization the
#: trained tensors are ``omega ~ N(0, 1)``; in standard parameterization they
#: are the weights themselves, ``~ N(0, W_std**2 / fan_in)``. Adam moves every
#: entry by about ``lr`` per step, so the NTK parameterization takes a
#: larger ``lr`` for the same relative change (measured: see the finite
#: networks' user guide and ``benchmarks/results/finite.json``).
ADAM_AUTO_LR = {"ntk": 1e-2, "standard": 1e-3}
#: SGD's ``lr="auto"``: this fraction of the critical rate ``2 m / lambda_max``,
#: by regime. A kernel-regime network must stay close to its linearization,
#: so it takes a small step; a finite network's NTK can grow during training
#: (measured: half the critical rate diverged on unscaled inputs with targets
#: ~100), which a tenth of it leaves room for.
SGD_AUTO_FRACTION = {None: 0.5, "kernel": 0.1}
#: SGD momentum when ``momentum="auto"`` (0 in the kernel regime).
AUTO_MOMENTUM = 0.9
#: Mini-batch size when ``batch_size="auto"`` (full batch in the kernel regime).
AUTO_BATCH = 64
#: Smallest validation split (rows) for early stopping on validation data;
#: below it, early stopping watches the training loss and nothing is held out.
MIN_VALID_ROWS = 20
#: A training loss this many times its first value counts as diverged.
DIVERGENCE_FACTOR = 1e4

#: Settings ``regime="kernel"`` needs: parameter -> (required value, allowed inputs).
#: (``center`` is not among them: ``"auto"`` centers, an explicit False is kept
#: for comparing plain networks with centered ones.)
KERNEL_REGIME = {
    "optimizer": ("sgd", ("auto", "sgd")),
    "momentum": (0.0, ("auto", 0)),
    "batch_size": (None, ("auto", None)),
    "loss": ("mse", ("mse",)),
    "early_stopping": (False, ("auto", False)),
}


@dataclass
class Training:
    """The concrete settings of one fit (``training_`` of a fitted estimator)."""

    optimizer: str
    momentum: float
    lr: float
    lr_rule: str
    critical_lr: float | None
    batch_size: int | None
    center: bool
    early_stopping: bool
    monitor: str | None
    n_valid: int

    def as_dict(self):
        return asdict(self)


def check_regime(params, owner):
    """Refuse settings that contradict ``regime="kernel"``."""
    if params["regime"] != "kernel":
        return
    for name, (needed, allowed) in KERNEL_REGIME.items():
        value = params[name]
        if not any(value is a or (type(value) is type(a) and value == a)
                   or (isinstance(a, Real) and not isinstance(value, (bool, str))
                       and isinstance(value, Real) and value == a) for a in allowed):
            raise ValueError(
                f"{owner}: {name}={value!r} contradicts regime='kernel', which trains "
                f"with {name}={needed!r} (full-batch gradient descent on the MSE of a "
                f"centered network, no early stopping). Leave {name} at 'auto' or "
                "set regime=None."
            )


def resolve(params, owner):
    """``(optimizer, momentum, batch_size, center, early_stopping)`` for this fit."""
    check_regime(params, owner)
    kernel = params["regime"] == "kernel"

    def pick(name, default, kernel_value):
        value = params[name]
        if isinstance(value, str) and value == "auto":
            return kernel_value if kernel else default
        return value

    optimizer = pick("optimizer", "adam", "sgd")
    momentum = params["momentum"]
    if optimizer == "adam":
        if not (isinstance(momentum, str) or momentum == 0):
            raise ValueError(
                f"{owner}: momentum={momentum!r} applies to optimizer='sgd' only (Adam "
                "has its own moment estimates); leave momentum='auto' or set it to 0."
            )
        momentum = 0.0
    else:
        momentum = float(pick("momentum", AUTO_MOMENTUM, 0.0))
    batch_size = pick("batch_size", AUTO_BATCH, None)
    center = bool(pick("center", False, True))
    early_stopping = bool(pick("early_stopping", True, False))
    return optimizer, momentum, batch_size, center, early_stopping


class IndexSplit:
    """skorch ``train_split``: fixed train / validation row indices (picklable)."""

    def __init__(self, train_idx, valid_idx):
        self.train_idx, self.valid_idx = np.asarray(train_idx), np.asarray(valid_idx)

    def __call__(self, dataset, y=None, **fit_params):
        sub = torch.utils.data.Subset
        return sub(dataset, self.train_idx.tolist()), sub(dataset, self.valid_idx.tolist())


def validation_indices(n_samples, fraction, seed, labels=None):
    """Train / validation indices (stratified on ``labels``), or None when too small."""
    from sklearn.model_selection import ShuffleSplit, StratifiedShuffleSplit

    n_valid = int(np.ceil(fraction * n_samples))
    if n_valid < MIN_VALID_ROWS or n_samples - n_valid < MIN_VALID_ROWS:
        return None
    if labels is not None:
        counts = np.bincount(labels)
        if counts[counts > 0].min() >= 2:
            split = StratifiedShuffleSplit(1, test_size=n_valid, random_state=seed)
            return next(split.split(np.zeros(n_samples), labels))
    split = ShuffleSplit(1, test_size=n_valid, random_state=seed)
    return next(split.split(np.zeros(n_samples)))


class RaiseOnDivergence(Callback):
    """Stop training with advice as soon as the loss is not finite or explodes.

    Checks every batch's loss (so a blow-up is caught in the epoch where it
    happens) and, at the end of training, the loss of the final parameters on
    up to 1,024 training rows (the last step's effect shows in no epoch's
    loss, which is computed before the step).
    """

    def __init__(self, owner, lr, parameterization):
        self.owner, self.lr, self.parameterization = owner, lr, parameterization

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.first_ = None
        self.X_, self.y_ = X[:1024], y[:1024]

    def _check(self, net, loss, where):
        if self.first_ is None and np.isfinite(loss):
            self.first_ = max(float(loss), 1e-12)
        if np.isfinite(loss) and loss <= DIVERGENCE_FACTOR * self.first_:
            return
        hint = (
            " In standard parameterization the NTK grows with the width, so lr must "
            "shrink like 1/width." if self.parameterization == "standard" else ""
        )
        raise FloatingPointError(
            f"{self.owner}: training diverged (loss {loss:.3g} {where}, first loss "
            f"{self.first_ or float('nan'):.3g}) with lr={self.lr!r}. Lower lr (or use "
            "lr='auto'): gradient descent on the MSE is stable for lr < 2 * n_targets "
            "/ lambda_max(NTK), where n_targets = n_samples * n_outputs (see "
            f"sknngp.finite.critical_learning_rate).{hint}"
        )

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if training:
            epoch = len(net.history)
            self._check(net, float(loss.detach()), f"in epoch {epoch}")

    def on_train_end(self, net, **kwargs):
        with torch.no_grad():
            y_pred = net.infer(torch.as_tensor(self.X_))
            loss = float(net.get_loss(y_pred, torch.as_tensor(self.y_).to(y_pred.device)))
        self.X_ = self.y_ = None
        self._check(net, loss, "after the last step")


class ValidAccuracy(Callback):
    """Record ``valid_acc``: accuracy of the ensemble-mean outputs on the split."""

    def on_epoch_end(self, net, dataset_valid=None, **kwargs):
        if dataset_valid is None:
            return
        X, y = data_from_dataset(dataset_valid)
        with torch.no_grad():
            out = net.forward(X, training=False, device="cpu").mean(dim=1)
        y = torch.as_tensor(y)
        labels = y.argmax(dim=1) if y.ndim == 2 else y.long()
        net.history.record("valid_acc", float((out.argmax(dim=1) == labels).float().mean()))
