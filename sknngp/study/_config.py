"""What a study run computes: sizes, grids and training budgets, with named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class StudyConfig:
    """Sizes, grids and budgets of a study run (see :data:`PRESETS`).

    Parameters
    ----------
    n_train, n_test : int
        Training and test images of every experiment (the precision experiment
        also uses larger training sets, up to ``max(precision_sizes)``).
    depth : int
        Hidden layers of every architecture.
    architectures : tuple of str
        Architectures compared finite against infinite (experiment
        ``finite_vs_infinite``).
    sweep_architectures : tuple of str
        Architectures of the kernel sweeps (``regularization``, ``zca``,
        ``precision``, ``augmentation``).
    finite_architectures : tuple of str
        Architectures of the finite-network sweeps (``finite_width``,
        ``weight_decay``). Finding 10 needs both ``"fc"`` and ``"cnn-vec"``.
    diag_regs : tuple of float
        Relative ``diag_reg`` grid, searched with ``GridSearchCV`` wherever a
        kernel model is fitted, and swept by ``regularization``.
    cv : int
        Folds of those searches.
    zca_regs : tuple of float
        Relative ``zca_reg`` values of the ``zca`` experiment.
    precision_scales : tuple of float
        Training-set sizes of the ``precision`` experiment, as multiples of
        ``n_train`` (so that ``--n-train`` scales them); the sizes are
        :attr:`precision_sizes`.
    precision_diag_reg : float
        The fixed relative ``diag_reg`` of the ``precision`` experiment.
    width, cnn_width : int
        Width of the finite networks (channels for convolutions) where one
        width is used.
    widths, cnn_widths : tuple of int
        Widths of the ``finite_width`` sweep.
    epochs : int
        Full-batch gradient-descent steps of the kernel-regime networks
        (``finite_width``, ``weight_decay``); the most epochs of the tuned
        networks of ``finite_vs_infinite`` (early stopping ends them sooner).
    lr_fractions : tuple of float
        Learning rates searched for the tuned networks of
        ``finite_vs_infinite``, as multiples of each network's critical rate
        (SGD with momentum 0.9 on mini-batches of 64).
    tuned_weight_decays : tuple of float
        Weight decays (layer-wise scaled) searched for those networks.
    lr_fraction : float
        Learning rate of the finite networks as a fraction of the critical
        rate ``2 m / lambda_max(Theta)`` of MSE gradient descent (``m`` targets,
        ``Theta`` the infinite-width NTK of the training set).
    large_lr_fraction : float
        The same for the ``weight_decay`` experiment's large-learning-rate
        network (above 1: beyond the linearized network's stability limit).
    n_ensemble : int
        Networks averaged by the ensembled variants.
    weight_decays : tuple of float
        Weight-decay strengths searched (on one validation split) for each
        scaling in the ``weight_decay`` experiment.
    n_draws : int
        Augmented draws of the ``augmentation`` experiment.
    random_state : int
        Seed of the data split, the networks and the augmentations.
    """

    n_train: int = 300
    n_test: int = 300
    depth: int = 3
    architectures: tuple = ("fc", "cnn-vec", "cnn-gap")
    sweep_architectures: tuple = ("fc", "cnn-vec")
    finite_architectures: tuple = ("fc",)
    diag_regs: tuple = (1e-6, 1e-4, 1e-3, 1e-2, 1e-1, 1.0)
    cv: int = 3
    zca_regs: tuple = (1e-3, 1e-2, 1e-1, 1.0, 10.0)
    precision_scales: tuple = (1 / 3, 2 / 3, 4 / 3, 8 / 3, 14 / 3)
    precision_diag_reg: float = 1e-4
    width: int = 64
    cnn_width: int = 16
    widths: tuple = (16, 64, 256)
    cnn_widths: tuple = (4, 8, 16)
    epochs: int = 300
    lr_fractions: tuple = (0.25, 0.5, 1.0)
    tuned_weight_decays: tuple = (0.0, 1e-3)
    lr_fraction: float = 0.5
    large_lr_fraction: float = 1.5
    n_ensemble: int = 4
    weight_decays: tuple = (1e-4, 1e-3, 1e-2, 1e-1)
    n_draws: int = 4
    random_state: int = 0

    @property
    def precision_sizes(self):
        """Training-set sizes of the ``precision`` experiment (distinct, ascending)."""
        return tuple(sorted({max(2, int(round(s * self.n_train)))
                             for s in self.precision_scales}))

    def as_dict(self):
        """The fields, and the derived ``precision_sizes``, for ``config.json``."""
        return {**dataclasses.asdict(self), "precision_sizes": self.precision_sizes}

    def replace(self, **changes):
        """A copy with some fields changed; ``None`` values are ignored."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


#: Named configurations. ``demo`` is what ``make demo`` runs on digits (under
#: ten minutes on two CPU cores); ``tiny`` is for tests (seconds per
#: experiment); ``record`` is the real-data run on Fashion-MNIST kept under
#: ``benchmarks/results/`` (fully connected only: on two CPU cores a full-batch
#: epoch of a CNN of width 8 on 2,000 28x28 images takes ~3 s, and a CNN-VEC
#: kernel of that size several minutes); ``record-cnn`` is the convolutional
#: record on the whole digits set (1,257 training and 540 test images, a
#: 70/30 split), finite and infinite CNN-VEC and CNN-GAP next to FC.
PRESETS = {
    "demo": StudyConfig(),
    "tiny": StudyConfig(
        n_train=40, n_test=40, depth=2,
        architectures=("fc", "cnn-vec"), sweep_architectures=("fc",),
        diag_regs=(1e-4, 1e-2, 1.0), cv=2, zca_regs=(1e-2, 1.0),
        precision_scales=(1, 4, 16), width=8, cnn_width=4, widths=(4, 8),
        cnn_widths=(2, 4), epochs=5, lr_fractions=(0.5, 1.0), tuned_weight_decays=(0.0,),
        n_ensemble=2, weight_decays=(1e-3, 1e-1),
        n_draws=2,
    ),
    "record": StudyConfig(
        n_train=2000, n_test=1000,
        architectures=("fc",), sweep_architectures=("fc",),
        precision_scales=(0.125, 0.25, 0.5, 1, 2),
        width=128, cnn_width=8, widths=(32, 128, 512), epochs=200,
    ),
    "record-cnn": StudyConfig(
        n_train=1257, n_test=540,
        architectures=("fc", "cnn-vec", "cnn-gap"), sweep_architectures=("fc", "cnn-vec"),
        finite_architectures=("fc", "cnn-vec"),
        precision_scales=(0.125, 0.25, 0.5, 1), width=256, cnn_width=32,
        widths=(16, 64, 256), cnn_widths=(4, 8, 16), epochs=300,
        lr_fractions=(0.5, 1.0), tuned_weight_decays=(0.0,),
    ),
}
