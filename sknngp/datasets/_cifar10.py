"""CIFAR-10 from the publisher's python archive ``cifar-10-python.tar.gz``."""

import io
import pickle
import tarfile
from numbers import Integral
from os import PathLike

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
    unreadable,
)

ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
    "c58f30108f718f92721af3b95e74349a",
)
MEMBER_DIR = "cifar-10-batches-py"
#: A published batch file is 31 MB (10,000 images of 3,072 bytes plus labels
#: and names); anything much larger is not a CIFAR-10 batch, so neither its
#: bytes nor the arrays it describes are ever allocated.
MAX_BATCH_BYTES = 40 * 2**20
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
TARGET_NAMES = np.array(
    ["airplane", "automobile", "bird", "cat", "deer",
     "dog", "frog", "horse", "ship", "truck"]
)
DESCR = """CIFAR-10 (Krizhevsky, 2009)

60,000 colour images of 32x32 pixels in 10 classes, 6,000 per class: 50,000
for training (five batches, in the published order) and 10,000 for test.
Images are float arrays of shape (n, 32, 32, 3) (NHWC), scaled to [0, 1];
labels are integers 0-9 indexing ``target_names``.

Source: https://www.cs.toronto.edu/~kriz/cifar.html
A. Krizhevsky, "Learning Multiple Layers of Features from Tiny Images", 2009.
"""


class _BatchUnpickler(pickle.Unpickler):
    """Unpickle a CIFAR batch without running arbitrary code.

    A batch is a dict of bytes, lists and one uint8 ndarray; only the globals
    that rebuild an ndarray (and bytes, when pickled by Python 3 with protocol
    2) are allowed.
    """

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            return _bounded_reconstruct
        if (module, name) in {("numpy", "ndarray"), ("numpy", "dtype")}:
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):
            import codecs

            return codecs.encode
        raise pickle.UnpicklingError(
            f"a CIFAR-10 batch only holds arrays, lists and bytes, but this file "
            f"asks for {module}.{name}; it is not from the published archive. "
            f"Replace it with the publisher's {ARCHIVE.filename}."
        )


def _reconstruct():
    try:
        from numpy._core.multiarray import _reconstruct as fn  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct as fn
    return fn


def _bounded_reconstruct(subtype, shape, dtype):
    """numpy's pickle constructor, refusing an empty array larger than a batch.

    numpy pickles an array as ``_reconstruct(ndarray, (0,), b"b")`` followed by
    ``__setstate__`` with the real shape and bytes (whose size numpy checks);
    ``_reconstruct`` itself allocates ``shape``, so a crafted file could ask for
    any amount of memory here.
    """
    try:
        n_items = int(np.prod(shape, dtype=np.int64))
    except (TypeError, ValueError, OverflowError):
        n_items = -1
    if subtype is not np.ndarray or not 0 <= n_items <= MAX_BATCH_BYTES:
        raise pickle.UnpicklingError(
            f"a CIFAR-10 batch holds plain arrays of at most {MAX_BATCH_BYTES} bytes, but "
            f"this file asks for a {getattr(subtype, '__name__', subtype)} of shape {shape}; "
            f"it is not from the published archive. Replace it with the publisher's "
            f"{ARCHIVE.filename}."
        )
    return _reconstruct()(subtype, shape, dtype)


def _parse_batch(raw, where):
    try:
        batch = _BatchUnpickler(io.BytesIO(raw), encoding="bytes").load()
    except pickle.UnpicklingError as err:
        raise pickle.UnpicklingError(f"{where}: {err}") from None
    except Exception as err:  # any other failure of a damaged pickle stream
        raise ValueError(
            f"{where} is not a CIFAR-10 batch: unpickling failed ({type(err).__name__}: "
            f"{err}). Replace it with the publisher's {ARCHIVE.filename}."
        ) from None
    if not isinstance(batch, dict):
        raise ValueError(
            f"{where} is not a CIFAR-10 batch: it holds a {type(batch).__name__}, not a dict."
        )
    try:
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except (TypeError, KeyError) as err:
        raise ValueError(f"{where} is not a CIFAR-10 batch: no {err} entry.") from None
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(
            f"{where} is not a CIFAR-10 batch: b'data' should be uint8 of shape "
            f"(n, 3072), got {data.dtype} of shape {data.shape}."
        )
    if labels.shape != (data.shape[0],) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
        raise ValueError(
            f"{where} is not a CIFAR-10 batch: expected {data.shape[0]} labels in "
            f"0..9, got {labels.shape[0]} with range [{labels.min()}, {labels.max()}]."
        )
    return data, labels


def _check_size(size, where):
    if size > MAX_BATCH_BYTES:
        raise ValueError(
            f"{where} is {size} bytes; a CIFAR-10 batch is about 31 MB. It is not from "
            f"the published archive; replace it with the publisher's {ARCHIVE.filename}."
        )


def _read_members(path, names, loader):
    """Raw bytes of the batch files ``names``, from the archive or its folder."""
    try:
        return _read_members_unchecked(path, names)
    except READ_ERRORS as err:
        raise unreadable(loader, path, err, ARCHIVE.filename) from None


def _read_members_unchecked(path, names):
    """The archive is read in one pass (its members are stored in no particular
    order, and seeking backwards in a gzip stream means decompressing again)."""
    if path.is_dir():
        found = {name: (path / name) for name in names}
        missing = [str(p) for p in found.values() if not p.is_file()]
        if missing:
            raise ValueError(
                f"{missing[0]} is missing from the extracted CIFAR-10 folder; "
                f"extract the whole {ARCHIVE.filename} there."
            )
        for p in found.values():
            _check_size(p.stat().st_size, p)
        return {name: (p.read_bytes(), str(p)) for name, p in found.items()}
    wanted = {f"{MEMBER_DIR}/{name}": name for name in names}
    members = {}
    with tarfile.open(path, "r:gz") as tar:
        for info in tar:
            if info.name in wanted and info.isfile():
                _check_size(info.size, f"{path}:{info.name}")
                members[wanted[info.name]] = (tar.extractfile(info).read(), f"{path}:{info.name}")
                if len(members) == len(wanted):
                    break
    missing = [m for m, name in wanted.items() if name not in members]
    if missing:
        raise ValueError(
            f"{path} has no member {missing[0]}; it is not the published "
            f"{ARCHIVE.filename}."
        )
    return members


def _read(members, names, n, dtype, loader, count_name):
    """Decode batches in order until ``n`` images (all when None) are collected."""
    datas, labels, total = [], [], 0
    for name in names:
        data, lab = _parse_batch(*members[name])
        datas.append(data)
        labels.append(lab)
        total += len(lab)
        if n is not None and total >= n:
            break
    check_count(loader, count_name, n, total)
    data, lab = np.concatenate(datas)[:n], np.concatenate(labels)[:n]
    # Rows are channel-major (1024 red, 1024 green, 1024 blue, each row-major):
    # CHW, turned here into the NHWC layout the estimators use.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return images.astype(dtype) / dtype.type(255), lab


def candidate_sources(data_home):
    """Where the archive or its extracted folder is looked for, in order: sknngp's
    ``<data_home>/cifar-10``, torchvision's root (``data_home`` itself), then
    Keras' download folder (which names the archive ``cifar-10-batches-py.tar.gz``)."""
    keras = keras_datasets_dir()
    return (
        data_home / "cifar-10" / ARCHIVE.filename, data_home / "cifar-10" / MEMBER_DIR,
        data_home / ARCHIVE.filename, data_home / MEMBER_DIR,
        keras / MEMBER_DIR, keras / f"{MEMBER_DIR}.tar.gz",
    )


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
def load_cifar10(data_home=None, *, download=True, n_train=None, n_test=None,
                 dtype=np.float64, return_X_y=False):
    """Load CIFAR-10 with its published train/test split, as NHWC images.

    Reads the publisher's archive ``cifar-10-python.tar.gz`` or the folder
    ``cifar-10-batches-py`` it extracts to, whichever it finds first among:

    1. ``<data_home>/cifar-10/`` (where this loader downloads);
    2. ``<data_home>/`` itself (torchvision's layout, with ``data_home`` as
       torchvision's ``root``);
    3. ``$KERAS_HOME/datasets/`` (default ``~/.keras/datasets/``, Keras'
       layout: the folder, or the archive it names
       ``cifar-10-batches-py.tar.gz``).

    When none is there and ``download=True``, downloads the archive from the
    publisher into ``<data_home>/cifar-10/`` and verifies its MD5 first.

    Parameters
    ----------
    data_home : str or path-like, default=None
        Data folder; see :func:`get_data_home` (``SKNNGP_DATA`` or
        ``~/sknngp_data``).

    download : bool, default=True
        Download the archive (163 MB) when it is missing. If False, a missing
        archive raises ``FileNotFoundError`` saying where to put it.

    n_train : int, default=None
        Keep the first ``n_train`` training images, in the published order
        (batches 1 to 5; the publisher shuffled them, so classes are mixed).
        Only the batches needed are decoded. None keeps all 50,000.

    n_test : int, default=None
        Keep the first ``n_test`` test images. None keeps all 10,000.

    dtype : numpy dtype, default=np.float64
        Floating dtype of the images; ``np.float32`` halves the memory (the
        full training set takes 1.2 GB in float64).

    return_X_y : bool, default=False
        If True, return ``(X_train, X_test, y_train, y_test)``, the order of
        :func:`sklearn.model_selection.train_test_split`.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        With ``X_train`` (n_train, 32, 32, 3) and ``X_test`` (n_test, 32, 32,
        3) in [0, 1], ``y_train`` and ``y_test`` int64 labels in 0..9,
        ``target_names`` and ``DESCR``.

    (X_train, X_test, y_train, y_test) : tuple of ndarray
        When ``return_X_y=True``.

    Raises
    ------
    FileNotFoundError
        If the archive is missing and cannot be downloaded; the message gives
        the URL, the MD5, the exact path to put the file at and the other
        places searched.

    ValueError
        If the archive or a batch is truncated, not gzip/tar, too large, or
        not the published content; the message names the file.

    Notes
    -----
    The archive's MD5 is checked after a download. An archive already on disk
    is not re-hashed; its members are validated instead (names, array shapes,
    label range), and they are unpickled with a restricted unpickler that can
    only rebuild arrays, so a foreign file cannot run code.

    Examples
    --------
    >>> from sknngp.datasets import load_cifar10
    >>> cifar = load_cifar10(n_train=1000, n_test=200)  # doctest: +SKIP
    >>> cifar.X_train.shape, cifar.y_test.shape  # doctest: +SKIP
    ((1000, 32, 32, 3), (200,))
    """
    loader = "load_cifar10"
    dtype = check_float_dtype(loader, dtype)
    data_home = get_data_home(data_home)
    searched = candidate_sources(data_home)
    source = next((path for path in searched if path.exists()), None)
    folder = data_home / "cifar-10"
    if source is None:
        if not download:
            raise missing_files_error(loader, [ARCHIVE], folder, reason="download=False",
                                      searched=searched[1:])
        fetch_all([ARCHIVE], folder, loader, searched=searched[1:])
        source = folder / ARCHIVE.filename
    members = _read_members(source, TRAIN_BATCHES + (TEST_BATCH,), loader)
    X_train, y_train = _read(members, TRAIN_BATCHES, n_train, dtype, loader, "n_train")
    X_test, y_test = _read(members, (TEST_BATCH,), n_test, dtype, loader, "n_test")
    if return_X_y:
        return X_train, X_test, y_train, y_test
    return Bunch(X_train=X_train, X_test=X_test, y_train=y_train, y_test=y_test,
                 target_names=TARGET_NAMES.copy(), DESCR=DESCR)
