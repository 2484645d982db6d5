"""The study's data: a train/test split of images, standardized per channel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

DATASETS = ("digits", "fashion-mnist", "cifar10")

#: Label-preserving augmentations per data set for the ``augmentation``
#: experiment: ``(augmentations, crop_padding)``. A mirrored digit is not a
#: digit, so digits get one-pixel crops; clothes and CIFAR-10's objects are
#: roughly left-right symmetric.
AUGMENTATIONS = {
    "digits": (("crop",), 1),
    "fashion-mnist": (("hflip",), 0),
    "cifar10": (("hflip", "crop"), 4),
}


@dataclass(frozen=True)
class StudyData:
    """Images as 2-D NHWC rows, standardized with training statistics.

    ``X_train``/``y_train`` are the first ``n_train`` images of the training
    pool ``X_pool``/``y_pool`` (larger when an experiment needs more).
    """

    name: str
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple
    n_train: int

    @property
    def X_train(self):
        return self.X_pool[: self.n_train]

    @property
    def y_train(self):
        return self.y_pool[: self.n_train]

    @property
    def n_classes(self):
        return int(len(np.unique(self.y_pool)))


def load_study_data(dataset="digits", *, n_train=300, n_test=300, n_pool=None,
                    data_home=None, random_state=0):
    """Load a data set for the study.

    Parameters
    ----------
    dataset : {"digits", "fashion-mnist", "cifar10"}
        ``digits`` is scikit-learn's bundled 8x8 digits, split here (stratified);
        the others use their published split and read the publishers' files
        (see :mod:`sknngp.datasets`).
    n_train, n_test : int
        Training and test images.
    n_pool : int, default=None
        Training images to load (at least ``n_train``); the precision
        experiment uses them.
    data_home : str, default=None
        Folder of the data files (see :func:`sknngp.datasets.get_data_home`).
    random_state : int
        Seed of the digits split.

    Returns
    -------
    StudyData
        Channels standardized with the mean and standard deviation of the
        training pool (pixels and images pooled), the paper's preprocessing.
        Done once, outside the cross-validation, so that every fold kernel is
        a sub-block of one kernel and is reused across experiments.
    """
    n_pool = max(n_train, n_pool or 0)
    if dataset == "digits":
        from ..datasets import load_digits_images

        images, y = load_digits_images(return_X_y=True)
        if n_test + n_train > len(images):
            raise ValueError(
                f"digits has {len(images)} images; n_train={n_train} + n_test={n_test} "
                "do not fit. Lower them."
            )
        n_pool = min(n_pool, len(images) - n_test)
        X_pool, X_test, y_pool, y_test = train_test_split(
            images, y, train_size=n_pool, test_size=n_test, stratify=y,
            random_state=random_state,
        )
    elif dataset in ("fashion-mnist", "cifar10"):
        from .. import datasets

        loader = {"fashion-mnist": datasets.load_fashion_mnist,
                  "cifar10": datasets.load_cifar10}[dataset]
        bunch = loader(data_home, n_train=n_pool, n_test=n_test)
        X_pool, X_test, y_pool, y_test = bunch.X_train, bunch.X_test, bunch.y_train, bunch.y_test
    else:
        raise ValueError(f"dataset={dataset!r} is not one of {DATASETS}.")
    shape = tuple(int(s) for s in X_pool.shape[1:])
    mean = X_pool.mean(axis=(0, 1, 2))
    std = X_pool.std(axis=(0, 1, 2))
    std = np.where(std > 0, std, 1.0)

    def rows(X):
        return ((X - mean) / std).reshape(len(X), -1)

    return StudyData(
        name=dataset, X_pool=rows(X_pool), y_pool=np.asarray(y_pool),
        X_test=rows(X_test), y_test=np.asarray(y_test), input_shape=shape,
        n_train=min(n_train, len(X_pool)),
    )
