"""The paper's comparisons, one small function each.

Every experiment takes a :class:`~sknngp.study.StudyData` and a
:class:`~sknngp.study.StudyConfig` and returns tidy rows (a list of dicts
with the keys of :data:`COLUMNS`): one row per fitted model and setting, with
its test accuracy. They are composed from the package's public estimators
only (``Pipeline``, ``GridSearchCV``, the kernel classifiers, ``ZCAWhitener``,
``AugmentedEnsemble`` and ``FiniteNetClassifier``), so each one doubles as an
example of the API. Kernel regularization is always chosen by
``GridSearchCV`` over ``config.diag_regs`` on the training set; the test set
only scores.

Finite networks are compared with kernels best with best
(``finite_vs_infinite``): each network's learning rate (multiples of its
critical rate ``2 m / lambda_max`` from its empirical NTK, ``m = n_samples *
n_classes``), weight decay and training time (early stopping) are chosen on
validation data. The correspondence experiments (``finite_width``,
``weight_decay``) train in the kernel regime (``regime="kernel"``: full-batch
gradient descent on the MSE to centered one-hot targets, the paper's
setting) at a learning rate set relative to the critical rate of the
infinite-width NTK of the training set, so one ``lr_fraction`` means the same
thing for every architecture and data set. The NTK prediction at the
networks' training time, ``NTKClassifier(t=epochs, learning_rate=lr)``, is
their infinite-width counterpart; ``agreement`` is the fraction of test
images on which a network and that prediction pick the same class.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, ShuffleSplit
from sklearn.pipeline import make_pipeline

from .. import AugmentedEnsemble, NNGPClassifier, NTKClassifier, ZCAWhitener
from ._data import AUGMENTATIONS

#: Keys of every result row.
COLUMNS = (
    "experiment", "architecture", "model", "variant", "param", "value",
    "accuracy", "cv_accuracy", "agreement", "seconds", "status", "note",
)


class FiniteModuleMissing(ImportError):
    """The finite-network estimator (``sknngp.finite``) cannot be imported."""


def finite_classifier():
    """``sknngp.finite.FiniteNetClassifier``, or an error saying what is missing."""
    try:
        from ..finite import FiniteNetClassifier
    except ImportError as exc:
        raise FiniteModuleMissing(
            "this experiment trains finite networks with "
            "sknngp.finite.FiniteNetClassifier, which cannot be imported "
            f"({exc}). The finite-network module needs PyTorch and skorch: "
            "pip install 'sknngp[torch]'."
        ) from exc
    return FiniteNetClassifier


# --------------------------------------------------------------------- helpers


def row(experiment, architecture, model, **fields):
    """One result row; unspecified numbers are NaN, strings empty."""
    out = dict.fromkeys(COLUMNS, "")
    out.update(value=np.nan, accuracy=np.nan, cv_accuracy=np.nan, agreement=np.nan,
               seconds=np.nan, status="ok")
    out.update(experiment=experiment, architecture=architecture, model=model, **fields)
    unknown = set(out) - set(COLUMNS)
    if unknown:
        raise KeyError(f"unknown result fields {sorted(unknown)}; use {COLUMNS}")
    return out


def _progress(items, desc, enabled):
    from tqdm.auto import tqdm

    return tqdm(list(items), desc=desc, leave=False, disable=not enabled)


def jax_device(device):
    """The kernel estimators' ``device`` for the study's ``--device``."""
    if device in (None, "auto"):
        return None
    platform, _, index = device.partition(":")
    platform = "gpu" if platform in ("gpu", "cuda") else platform
    return f"{platform}:{index}" if index else platform


def torch_device(device):
    """``FiniteNetClassifier``'s ``device`` for the study's ``--device``."""
    if device in (None, "auto"):
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    platform, _, index = device.partition(":")
    platform = "cuda" if platform in ("gpu", "cuda") else platform
    return f"{platform}:{index}" if index else platform


def _spec(data, config, architecture, device):
    return dict(architecture=architecture, depth=config.depth,
                input_shape=data.input_shape, device=jax_device(device))


def _net_spec(data, config, architecture):
    return dict(architecture=architecture, depth=config.depth, input_shape=data.input_shape)


def _width(config, architecture):
    return config.width if architecture == "fc" else config.cnn_width


def _widths(config, architecture):
    return config.widths if architecture == "fc" else config.cnn_widths


def _tiny(config):
    """The ridge under early-stopped NTK predictions: the grid's smallest
    ``diag_reg``, negligible next to stopping, but it keeps a kernel with
    duplicate samples positive definite."""
    return min(config.diag_regs)


def _fit_score(model, data, X=None, y=None):
    """Fit on the training set (or ``X, y``); test accuracy and seconds."""
    start = time.perf_counter()
    model.fit(data.X_train if X is None else X, data.y_train if y is None else y)
    accuracy = model.score(data.X_test, data.y_test)
    return float(accuracy), time.perf_counter() - start


def _search_diag_reg(estimator, data, config):
    """``GridSearchCV`` over ``diag_reg``: the fitted search, test accuracy, seconds."""
    search = GridSearchCV(estimator, {"diag_reg": list(config.diag_regs)}, cv=config.cv)
    accuracy, seconds = _fit_score(search, data)
    return search, accuracy, seconds


def top_eigenvalue(ntk):
    """``lambda_max(Theta)`` of the train NTK of a fitted ``NTKClassifier``.

    The train kernel comes from the kernel bank (computed once by ``fit``);
    Lanczos iterations (``eigsh``) cost O(n^2) each, not a full spectrum.
    """
    from scipy.sparse.linalg import eigsh

    theta = ntk._train_kernels(("ntk",))["ntk"]
    return float(eigsh(theta, k=1, which="LA", return_eigenvectors=False)[0])


def critical_lr(ntk, n_targets):
    """``2 m / lambda_max(Theta)`` from a fitted ``NTKClassifier``: the largest
    learning rate at which gradient descent on the MSE of the linearized
    network converges (``m`` = number of target entries)."""
    return 2.0 * n_targets / top_eigenvalue(ntk)


def _train_finite(net, data, experiment, architecture, *, reference=None, **fields):
    """Fit and score a finite network; a diverged run becomes a failed row."""
    try:
        accuracy, seconds = _fit_score(net, data)
    except FloatingPointError as exc:
        return row(experiment, architecture, "finite", status="failed",
                   note=str(exc).split(". ")[0], **fields)
    agreement = np.nan
    if reference is not None:
        agreement = float(np.mean(net.predict(data.X_test) == reference))
    return row(experiment, architecture, "finite", accuracy=accuracy, agreement=agreement,
               seconds=seconds, **fields)


# ----------------------------------------------------------------- experiments


def _tuned_finite(FiniteNetClassifier, data, config, arch, center, device):
    """A finite network with lr, weight decay and training time chosen on validation.

    SGD with momentum on mini-batches (the estimator's ``optimizer="sgd"``),
    learning rates ``config.lr_fractions`` times the critical rate of the
    network's own empirical NTK (:func:`sknngp.finite.critical_learning_rate`),
    weight decays ``config.tuned_weight_decays``: one ``GridSearchCV`` on a
    validation split (a fifth of the training set); training time by early
    stopping on the estimator's own validation split. Returns the fitted
    search, test accuracy and seconds.
    """
    from ..finite import critical_learning_rate

    width = _width(config, arch)
    net = FiniteNetClassifier(
        **_net_spec(data, config, arch), width=width, optimizer="sgd", center=center,
        max_epochs=config.epochs, device=torch_device(device),
        random_state=config.random_state,
    )
    lr_crit = critical_learning_rate(net, data.X_train, data.y_train)
    grid = {"lr": [f * lr_crit for f in config.lr_fractions],
            "weight_decay": list(config.tuned_weight_decays)}
    split = ShuffleSplit(n_splits=1, test_size=0.2, random_state=config.random_state)
    search = GridSearchCV(net, grid, cv=split, error_score=np.nan)
    with warnings.catch_warnings():
        # a diverging grid point scores NaN (FloatingPointError) and is not chosen
        warnings.filterwarnings("ignore", category=UserWarning, module="sklearn")
        warnings.filterwarnings("ignore", category=RuntimeWarning, module="sklearn")
        accuracy, seconds = _fit_score(search, data)
    return search, lr_crit, accuracy, seconds


def finite_vs_infinite(data, config, *, device="auto", progress=False):
    """Finite networks against the NNGP and NTK of the same architecture, best with best.

    Findings 1 (kernels beat fully connected networks, lose to convolutional
    ones) and 2 (NNGP often beats NTK). Per architecture: ``NNGPClassifier``
    and ``NTKClassifier`` with ``diag_reg`` chosen by ``GridSearchCV``, and a
    finite network of width ``config.width`` (``cnn_width`` channels for
    convolutions), plain and centered, each with its learning rate (multiples
    of its critical rate), weight decay and training time (early stopping)
    chosen on validation data, as the paper tuned its networks.
    """
    FiniteNetClassifier = finite_classifier()
    name = "finite_vs_infinite"
    rows = []
    for arch in _progress(config.architectures, name, progress):
        spec = _spec(data, config, arch, device)
        for model, estimator in (("nngp", NNGPClassifier(**spec)), ("ntk", NTKClassifier(**spec))):
            search, accuracy, seconds = _search_diag_reg(estimator, data, config)
            rows.append(row(name, arch, model, variant="diag_reg by CV", param="diag_reg",
                            value=search.best_params_["diag_reg"], accuracy=accuracy,
                            cv_accuracy=search.best_score_, seconds=seconds))
        for variant, center in (("plain", False), ("centered", True)):
            fields = dict(variant=f"{variant}, tuned", param="lr")
            try:
                search, lr_crit, accuracy, seconds = _tuned_finite(
                    FiniteNetClassifier, data, config, arch, center, device)
            except (FloatingPointError, ValueError) as exc:
                rows.append(row(name, arch, "finite", status="failed",
                                note=str(exc).split(". ")[0], **fields))
                continue
            best = search.best_estimator_
            rows.append(row(
                name, arch, "finite", value=best.lr_, accuracy=accuracy,
                cv_accuracy=search.best_score_, seconds=seconds,
                note=(f"width {_width(config, arch)}; lr {best.lr_ / lr_crit:g} x critical "
                      f"({lr_crit:.3g}), weight_decay {best.weight_decay:g}, "
                      f"{len(best.history_)} epochs (early stopping)"),
                **fields))
    return rows


def regularization(data, config, *, device="auto", progress=False):
    """NNGP and NTK across ``diag_reg``; the NTK across training time ``t``.

    Findings 6 (diagonal regularization acts like early stopping) and 2.
    Each curve is one ``GridSearchCV`` (its cross-validation accuracies) plus
    the test accuracy of every grid point. The ``t`` grid mirrors the
    ``diag_reg`` grid: early stopping at ``t`` damps the kernel's
    eigendirections below ``m / t``, a ridge of ``diag_reg * tr(Theta) / n``
    those below it, so ``t = m / (diag_reg * tr(Theta) / n)``.
    """
    name = "regularization"
    rows = []
    for arch in _progress(config.sweep_architectures, name, progress):
        spec = _spec(data, config, arch, device)
        for model, estimator in (("nngp", NNGPClassifier(**spec)), ("ntk", NTKClassifier(**spec))):
            search = GridSearchCV(estimator, {"diag_reg": list(config.diag_regs)}, cv=config.cv)
            search.fit(data.X_train, data.y_train)
            cv_scores = search.cv_results_["mean_test_score"]
            for reg, cv_accuracy in zip(config.diag_regs, cv_scores):
                accuracy, seconds = _fit_score(clone(estimator).set_params(diag_reg=reg), data)
                rows.append(row(name, arch, model, variant="diag_reg", param="diag_reg",
                                value=reg, accuracy=accuracy, cv_accuracy=cv_accuracy,
                                seconds=seconds))
        ntk = NTKClassifier(**spec, diag_reg=_tiny(config)).fit(data.X_train, data.y_train)
        mean_diag = float(np.mean(ntk._self_kernels(ntk.X_fit_, ("ntk",))["ntk"]))
        m = data.n_train * data.n_classes
        times = [m / (reg * mean_diag) for reg in config.diag_regs]
        search = GridSearchCV(ntk, {"t": times}, cv=config.cv).fit(data.X_train, data.y_train)
        for t, cv_accuracy in zip(times, search.cv_results_["mean_test_score"]):
            accuracy, seconds = _fit_score(clone(ntk).set_params(t=t), data)
            rows.append(row(name, arch, "ntk", variant="early stopping", param="t", value=t,
                            accuracy=accuracy, cv_accuracy=cv_accuracy, seconds=seconds))
    return rows


def zca(data, config, *, device="auto", progress=False):
    """``Pipeline(ZCAWhitener, NNGPClassifier)`` across ``zca_reg``, and no ZCA.

    Finding 8 (regularized ZCA whitening improves accuracy). One
    ``GridSearchCV`` over ``zca_reg`` x ``diag_reg``; for each ``zca_reg``
    the pipeline is refitted with its best ``diag_reg`` and scored on test.
    """
    name = "zca"
    rows = []
    for arch in _progress(config.sweep_architectures, name, progress):
        nngp = NNGPClassifier(**_spec(data, config, arch, device))
        search, accuracy, seconds = _search_diag_reg(nngp, data, config)
        rows.append(row(name, arch, "nngp", variant="no ZCA", accuracy=accuracy,
                        cv_accuracy=search.best_score_, seconds=seconds))
        pipe = make_pipeline(ZCAWhitener(input_shape=data.input_shape), nngp)
        grid = {"zcawhitener__zca_reg": list(config.zca_regs),
                "nngpclassifier__diag_reg": list(config.diag_regs)}
        search = GridSearchCV(pipe, grid, cv=config.cv).fit(data.X_train, data.y_train)
        results = search.cv_results_
        for zca_reg in config.zca_regs:
            mine = [i for i, p in enumerate(results["params"])
                    if p["zcawhitener__zca_reg"] == zca_reg]
            best = max(mine, key=lambda i: results["mean_test_score"][i])
            accuracy, seconds = _fit_score(clone(pipe).set_params(**results["params"][best]), data)
            rows.append(row(name, arch, "nngp", variant="ZCA", param="zca_reg", value=zca_reg,
                            accuracy=accuracy, cv_accuracy=results["mean_test_score"][best],
                            seconds=seconds))
    return rows


def precision(data, config, *, device="auto", progress=False):
    """NNGP kernels computed in float32 and float64 across training-set size.

    Finding 7 (precision limits kernel performance beyond a critical data-set
    size). ``diag_reg`` is fixed at ``config.precision_diag_reg``. Kernels
    are computed in each precision and solved in float64; where the float32
    kernel leaves the solve ill-conditioned the classifier warns with the
    estimated error (kept in the row's note), and a solve that fails is
    recorded as a failed row.
    """
    name = "precision"
    rows = []
    sizes = [n for n in config.precision_sizes if n <= len(data.X_pool)]
    for arch in _progress(config.sweep_architectures, name, progress):
        for n in sizes:
            X, y = data.X_pool[:n], data.y_pool[:n]
            for dtype in ("float32", "float64"):
                nngp = NNGPClassifier(**_spec(data, config, arch, device), dtype=dtype,
                                      diag_reg=config.precision_diag_reg)
                fields = dict(variant=dtype, param="n_train", value=n)
                try:
                    with warnings.catch_warnings(record=True) as caught:
                        warnings.simplefilter("always", RuntimeWarning)
                        accuracy, seconds = _fit_score(nngp, data, X, y)
                except ValueError as exc:
                    rows.append(row(name, arch, "nngp", status="failed",
                                    note=str(exc).split(": ")[0], **fields))
                    continue
                note = "; ".join(str(w.message).split(": ")[0] for w in caught
                                 if issubclass(w.category, RuntimeWarning))
                rows.append(row(name, arch, "nngp", accuracy=accuracy, seconds=seconds,
                                note=note, **fields))
    return rows


VARIANTS = (  # (variant, parameterization, center, ensembled)
    ("NTK param.", "ntk", False, False),
    ("NTK param., centered + ensemble", "ntk", True, True),
    ("standard param.", "standard", False, False),
)


def finite_width(data, config, *, device="auto", progress=False):
    """Finite networks across width: parameterization, centering and ensembling.

    Findings 3 (centered and ensembled networks behave more like infinite
    ones), 5 (NTK parameterization beats standard), 9 (non-monotonic width
    dependence) and, with ``fc`` and ``cnn-vec``, 10 (equivariance helps only
    narrow networks). The standard parameterization's NTK grows with the
    width, so its learning rate is rescaled per width by
    ``lambda_max(Theta_ntk) / lambda_max(Theta_standard(width))``, and its
    agreement is measured against its own NTK at that width.
    """
    FiniteNetClassifier = finite_classifier()
    name = "finite_width"
    rows = []
    n_targets = data.n_train * data.n_classes
    X, y = data.X_train, data.y_train
    for arch in config.finite_architectures:
        spec = _spec(data, config, arch, device)
        nngp, accuracy, seconds = _search_diag_reg(NNGPClassifier(**spec), data, config)
        rows.append(row(name, arch, "nngp", variant="diag_reg by CV", accuracy=accuracy,
                        seconds=seconds))
        ntk = NTKClassifier(**spec, diag_reg=_tiny(config)).fit(X, y)
        lr = config.lr_fraction * critical_lr(ntk, n_targets)
        reference = {}
        ntk_t = clone(ntk).set_params(t=config.epochs, learning_rate=lr)
        accuracy, seconds = _fit_score(ntk_t, data)
        reference["ntk"] = ntk_t.predict(data.X_test)
        rows.append(row(name, arch, "ntk", variant=f"t={config.epochs} steps",
                        accuracy=accuracy, seconds=seconds))
        for width in _progress(_widths(config, arch), f"{name} {arch}", progress):
            ntk_std = clone(ntk).set_params(parameterization="standard", width=width)
            lr_std = lr * top_eigenvalue(ntk) / top_eigenvalue(ntk_std.fit(X, y))
            ntk_std.set_params(t=config.epochs, learning_rate=lr_std).fit(X, y)
            reference["standard"] = ntk_std.predict(data.X_test)
            for variant, parameterization, center, ensembled in VARIANTS:
                net = FiniteNetClassifier(
                    **_net_spec(data, config, arch), width=width,
                    parameterization=parameterization,
                    lr=lr if parameterization == "ntk" else lr_std,
                    max_epochs=config.epochs, regime="kernel", center=center,
                    n_ensemble=config.n_ensemble if ensembled else 1,
                    device=torch_device(device), random_state=config.random_state,
                )
                rows.append(_train_finite(net, data, name, arch, variant=variant,
                                          param="width", value=width,
                                          reference=reference[parameterization]))
    return rows


def weight_decay(data, config, *, device="auto", progress=False):
    """Centered NTK-parameterized networks: large learning rate and weight decay.

    Findings 4 (large learning rates and weight decay break the finite /
    infinite correspondence) and 11 (layer-wise scaling of weight decay
    improves finite networks). The weight-decay strength of each scaling is
    chosen by ``GridSearchCV`` on one validation split (a quarter of the
    training set). Agreement is measured against the NTK prediction at each
    network's own training time ``t * lr``.
    """
    FiniteNetClassifier = finite_classifier()
    name = "weight_decay"
    rows = []
    n_targets = data.n_train * data.n_classes
    for arch in _progress(config.finite_architectures, name, progress):
        ntk = NTKClassifier(**_spec(data, config, arch, device), diag_reg=_tiny(config))
        ntk.fit(data.X_train, data.y_train)
        lr_crit = critical_lr(ntk, n_targets)
        lr, lr_large = config.lr_fraction * lr_crit, config.large_lr_fraction * lr_crit
        width = _width(config, arch)
        net = FiniteNetClassifier(
            **_net_spec(data, config, arch), width=width, lr=lr, max_epochs=config.epochs,
            regime="kernel", device=torch_device(device), random_state=config.random_state,
        )
        reference = {}
        for rate in (lr, lr_large):
            ntk_t = clone(ntk).set_params(t=config.epochs, learning_rate=rate)
            reference[rate] = ntk_t.fit(data.X_train, data.y_train).predict(data.X_test)
        for variant, rate in (("small lr", lr), ("large lr", lr_large)):
            rows.append(_train_finite(clone(net).set_params(lr=rate), data, name, arch,
                                      variant=variant, param="lr", value=rate,
                                      reference=reference[rate]))
        split = ShuffleSplit(n_splits=1, test_size=0.25, random_state=config.random_state)
        for scaling in ("layerwise", "uniform"):
            search = GridSearchCV(
                clone(net).set_params(weight_decay_scaling=scaling),
                {"weight_decay": list(config.weight_decays)}, cv=split,
            )
            fields = dict(variant=f"L2 {scaling}", param="weight_decay")
            try:
                accuracy, seconds = _fit_score(search, data)
            except FloatingPointError as exc:
                rows.append(row(name, arch, "finite", status="failed",
                                note=str(exc).split(". ")[0], **fields))
                continue
            agreement = float(np.mean(search.predict(data.X_test) == reference[lr]))
            rows.append(row(name, arch, "finite", value=search.best_params_["weight_decay"],
                            accuracy=accuracy, cv_accuracy=search.best_score_,
                            agreement=agreement, seconds=seconds, **fields))
    return rows


def augmentation(data, config, *, device="auto", progress=False):
    """``AugmentedEnsemble`` of NNGP classifiers against a single one.

    Finding 12 (ensembling kernel predictors over augmented draws). The
    augmentations suit the data set (``AUGMENTATIONS``). One ensemble of
    ``n_draws`` members gives the whole curve: the accuracy of the average
    of its first ``k`` members' decision functions, for ``k = 1..n_draws``.
    """
    name = "augmentation"
    rows = []
    augmentations, padding = AUGMENTATIONS[data.name]
    for arch in _progress(config.sweep_architectures, name, progress):
        nngp = NNGPClassifier(**_spec(data, config, arch, device))
        search, accuracy, seconds = _search_diag_reg(nngp, data, config)
        rows.append(row(name, arch, "nngp", variant="single", accuracy=accuracy,
                        cv_accuracy=search.best_score_, seconds=seconds))
        ensemble = AugmentedEnsemble(
            search.best_estimator_, augmentations=augmentations, n_draws=config.n_draws,
            crop_padding=padding, input_shape=data.input_shape,
            random_state=config.random_state,
        )
        start = time.perf_counter()
        ensemble.fit(data.X_train, data.y_train)
        scores = [member.decision_function(data.X_test) for member in ensemble.estimators_]
        seconds = time.perf_counter() - start
        for k in range(1, len(scores) + 1):
            predicted = ensemble.classes_[np.argmax(np.mean(scores[:k], axis=0), axis=1)]
            rows.append(row(name, arch, "nngp", variant="+".join(augmentations) + " ensemble",
                            param="n_draws", value=k,
                            accuracy=float(np.mean(predicted == data.y_test)),
                            seconds=seconds if k == len(scores) else np.nan))
    return rows


#: The experiments in the order a study runs them, by name.
EXPERIMENTS = {
    "finite_vs_infinite": finite_vs_infinite,
    "regularization": regularization,
    "zca": zca,
    "precision": precision,
    "finite_width": finite_width,
    "weight_decay": weight_decay,
    "augmentation": augmentation,
}
