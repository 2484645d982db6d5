"""Fashion-MNIST from the publisher's four gzipped IDX files."""

import gzip
import struct
from numbers import Integral
from os import PathLike
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch
from sklearn.utils._param_validation import Interval, validate_params

from ._base import (
    READ_ERRORS,
    RemoteFile,
    check_count,
    check_float_dtype,
    fetch_all,
    get_data_home,
    keras_datasets_dir,
    missing_files_error,
    read_at_most,
    unreadable,
)

_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
# MD5s as published in the zalandoresearch/fashion-mnist README.
FILES = {
    "train_images": RemoteFile("train-images-idx3-ubyte.gz", _URL + "train-images-idx3-ubyte.gz",
                               "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": RemoteFile("train-labels-idx1-ubyte.gz", _URL + "train-labels-idx1-ubyte.gz",
                               "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": RemoteFile("t10k-images-idx3-ubyte.gz", _URL + "t10k-images-idx3-ubyte.gz",
                              "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": RemoteFile("t10k-labels-idx1-ubyte.gz", _URL + "t10k-labels-idx1-ubyte.gz",
                              "bb300cfdad3c16e7a12a480ee83cd310"),
}
#: System folders searched last: Debian's ``dataset-fashion-mnist`` package
#: installs the four files in the first.
SYSTEM_DIRS = (Path("/usr/share/datasets/fashion-mnist"),)
IMAGE_SHAPE = (28, 28)
N_CLASSES = 10
TARGET_NAMES = np.array(
    ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
)
DESCR = """Fashion-MNIST (Xiao, Rasul and Vollgraf, 2017)

70,000 grey-scale images of 28x28 pixels of Zalando articles in 10 classes:
60,000 for training and 10,000 for test, in the published order. Images are
float arrays of shape (n, 28, 28, 1) (NHWC), scaled to [0, 1]; labels are
integers 0-9 indexing ``target_names``.

Source: https://github.com/zalandoresearch/fashion-mnist
H. Xiao, K. Rasul and R. Vollgraf, "Fashion-MNIST: a Novel Image Dataset for
Benchmarking Machine Learning Algorithms", arXiv:1708.07747, 2017.
"""


def _read_idx(path, ndim, n, loader):
    """First ``n`` items (all when None) of a gzipped IDX file of unsigned bytes.

    IDX layout: two zero bytes, the type code (0x08 = unsigned byte), the number
    of dimensions, then each dimension as a big-endian uint32, then the data.
    """
    try:
        with gzip.open(path, "rb") as f:
            magic = f.read(4)
            if len(magic) != 4 or magic[:3] != b"\x00\x00\x08" or magic[3] != ndim:
                raise ValueError(
                    f"{loader}: {path} is not an IDX file of unsigned bytes with {ndim} "
                    f"dimension(s): its magic number is 0x{magic.hex()}, expected "
                    f"0x0000080{ndim}. Use the published file unchanged."
                )
            dims = struct.unpack(f">{ndim}I", f.read(4 * ndim))
            if ndim == 3 and dims[1:] != IMAGE_SHAPE:
                raise ValueError(
                    f"{loader}: {path} holds images of {dims[1]}x{dims[2]} pixels; "
                    f"Fashion-MNIST's are {IMAGE_SHAPE[0]}x{IMAGE_SHAPE[1]}. Use the "
                    "published file unchanged."
                )
            count = dims[0] if n is None else min(n, dims[0])
            size = count * int(np.prod(dims[1:], dtype=np.int64))
            data = read_at_most(f, size)
    except READ_ERRORS as err:
        raise unreadable(loader, path, err, "gzipped IDX file") from None
    if len(data) != size:
        raise ValueError(
            f"{loader}: {path} is truncated: its header announces {dims[0]} items of shape "
            f"{dims[1:]}, but the file ends after {len(data)} of the first "
            f"{size} bytes. Download it again."
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(count, *dims[1:]), dims[0]


def candidate_dirs(data_home):
    """Folders searched for the four files, in order: sknngp's own, the files
    directly in ``data_home``, torchvision's ``FashionMNIST/raw``, Keras'
    ``datasets/fashion-mnist``, then :data:`SYSTEM_DIRS`."""
    return (data_home / "fashion-mnist", data_home, data_home / "FashionMNIST" / "raw",
            keras_datasets_dir() / "fashion-mnist", *SYSTEM_DIRS)


def _locate(data_home, download, loader):
    """The folder holding all four files, downloading into ``<data_home>/fashion-mnist``
    if allowed."""
    names = [r.filename for r in FILES.values()]
    candidates = candidate_dirs(data_home)
    for candidate in candidates:
        if all((candidate / name).is_file() for name in names):
            return candidate
    folder = candidates[0]
    missing = [r for r in FILES.values() if not (folder / r.filename).is_file()]
    if not download:
        raise missing_files_error(loader, missing, folder, reason="download=False",
                                  searched=candidates[1:])
    fetch_all(missing, folder, loader, searched=candidates[1:])
    return folder


def _split(folder, which, n, dtype, loader, count_name):
    images, n_images = _read_idx(folder / FILES[f"{which}_images"].filename, 3, n, loader)
    labels_path = folder / FILES[f"{which}_labels"].filename
    labels, n_labels = _read_idx(labels_path, 1, n, loader)
    if labels.size and labels.max() >= N_CLASSES:
        raise ValueError(
            f"{loader}: {labels_path} holds label {int(labels.max())}; Fashion-MNIST's "
            f"labels are 0..{N_CLASSES - 1}. Use the published file unchanged."
        )
    if n_images != n_labels:
        raise ValueError(
            f"{loader}: {folder} holds {n_images} {which} images but {n_labels} "
            "labels; the files come from different releases. Replace both with "
            "the published ones."
        )
    check_count(loader, count_name, n, n_images)
    return images[..., None].astype(dtype) / dtype.type(255), labels.astype(np.int64)


@validate_params(
    {
        "data_home": [str, PathLike, None],
        "download": ["boolean"],
        "n_train": [Interval(Integral, 1, None, closed="left"), None],
        "n_test": [Interval(Integral, 1, None, closed="left"), None],
        "dtype": "no_validation",
        "return_X_y": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def load_fashion_mnist(data_home=None, *, download=True, n_train=None, n_test=None,
                       dtype=np.float64, return_X_y=False):
    """Load Fashion-MNIST with its published train/test split, as NHWC images.

    Reads the four published files ``train-images-idx3-ubyte.gz``,
    ``train-labels-idx1-ubyte.gz``, ``t10k-images-idx3-ubyte.gz`` and
    ``t10k-labels-idx1-ubyte.gz`` from the first of these folders that holds
    all four:

    1. ``<data_home>/fashion-mnist``;
    2. ``<data_home>`` itself;
    3. ``<data_home>/FashionMNIST/raw`` (torchvision's layout, with
       ``data_home`` as torchvision's ``root``);
    4. ``$KERAS_HOME/datasets/fashion-mnist`` (default
       ``~/.keras/datasets/fashion-mnist``, where Keras downloads them);
    5. ``/usr/share/datasets/fashion-mnist`` (Debian's
       ``dataset-fashion-mnist`` package).

    When none does and ``download=True``, downloads the missing ones into
    ``<data_home>/fashion-mnist`` and verifies their MD5 first.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home` (``SKNNGP_DATA`` or
        ``~/sknngp_data``).

    download : bool, default=True
        Download missing files (30 MB in all). If False, missing files raise
        ``FileNotFoundError`` saying which file to put where.

    n_train : int, default=None
        Keep the first ``n_train`` training images, in the published order;
        only those bytes are decompressed. None keeps all 60,000.

    n_test : int, default=None
        Keep the first ``n_test`` test images. None keeps all 10,000.

    dtype : numpy dtype, default=np.float64
        Floating dtype of the images.

    return_X_y : bool, default=False
        If True, return ``(X_train, X_test, y_train, y_test)``, the order of
        :func:`sklearn.model_selection.train_test_split`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With ``X_train`` (n_train, 28, 28, 1) and ``X_test`` (n_test, 28, 28,
        1) in [0, 1], ``y_train`` and ``y_test`` int64 labels in 0..9,
        ``target_names`` and ``DESCR``.

    (X_train, X_test, y_train, y_test) : tuple of ndarray
        When ``return_X_y=True``.

    Raises
    ------
    FileNotFoundError
        If files are missing and cannot be downloaded; the message lists each
        missing file with its URL, MD5 and the exact path to put it at.

    ValueError
        If a file is truncated, not gzip, or not the published content (IDX
        header, 28x28 images, labels 0..9); the message names the file.

    Notes
    -----
    MD5s are checked after a download. Files already on disk are not
    re-hashed, because redistributors rewrite the gzip wrapper: Debian's copies
    lack the stored file name (24 bytes shorter each), so their MD5s differ
    from the published ones. Their IDX headers and sizes are validated
    instead.

    Examples
    --------
    >>> from sknngp.datasets import load_fashion_mnist
    >>> fmnist = load_fashion_mnist(n_train=500, n_test=100)  # doctest: +SKIP
    >>> fmnist.X_train.shape, fmnist.target_names[fmnist.y_train[0]]  # doctest: +SKIP
    ((500, 28, 28, 1), 'Ankle boot')
    """
    loader = "load_fashion_mnist"
    dtype = check_float_dtype(loader, dtype)
    folder = _locate(get_data_home(data_home), download, loader)
    X_train, y_train = _split(folder, "train", n_train, dtype, loader, "n_train")
    X_test, y_test = _split(folder, "test", n_test, dtype, loader, "n_test")
    if return_X_y:
        return X_train, X_test, y_train, y_test
    return Bunch(X_train=X_train, X_test=X_test, y_train=y_train, y_test=y_test,
                 target_names=TARGET_NAMES.copy(), DESCR=DESCR)
