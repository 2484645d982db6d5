"""Tests of sknngp.datasets on tiny files in the exact published formats.

No test touches the network: an autouse fixture makes any download attempt
fail the test, and the download tests serve bytes from memory.
"""

import gzip
import hashlib
import io
import pickle
import struct
import tarfile
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from sklearn.datasets import load_digits

from sknngp.datasets import (
    _base,
    _cifar10,
    _fashion_mnist,
    get_data_home,
    load_cifar10,
    load_digits_images,
    load_fashion_mnist,
)


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        pytest.fail("a dataset test tried to reach the network")

    monkeypatch.setattr(_base, "_urlopen", refuse)
    monkeypatch.setattr("urllib.request.urlopen", refuse)


@pytest.fixture(autouse=True)
def empty_keras_home(tmp_path_factory, monkeypatch):
    """Point Keras' download folder at an empty folder, so a user's real
    ``~/.keras/datasets`` never leaks into a test."""
    home = tmp_path_factory.mktemp("keras-home")
    monkeypatch.setenv("KERAS_HOME", str(home))
    return home


@pytest.fixture
def no_system_dirs(monkeypatch):
    """Hide Debian's real Fashion-MNIST files from tests about missing files."""
    monkeypatch.setattr(_fashion_mnist, "SYSTEM_DIRS", ())


# -- CIFAR-10: a tiny archive in the published format --------------------------------

BATCH = 3  # images per batch (10,000 in the real archive)


def _cifar_images(n, offset):
    """NHWC uint8 images whose pixel [0, 0, 0] is their label, whose channels
    differ, and whose rows and columns are distinguishable."""
    h = np.arange(32)[:, None]
    w = np.arange(32)[None, :]
    images = np.empty((n, 32, 32, 3), dtype=np.uint8)
    for i in range(n):
        k = offset + i
        images[i, :, :, 0] = (4 * h + k) % 256  # red varies down the rows
        images[i, :, :, 1] = (4 * w + 2 * k) % 256  # green across the columns
        images[i, :, :, 2] = (200 - 3 * k) % 256  # blue constant
        images[i, 0, 0, 0] = k % 10  # the label, for the alignment check
    return images, (np.arange(offset, offset + n) % 10).tolist()


def _batch_pickle(images, labels, name):
    # The published batches are protocol-2 pickles written by Python 2 with
    # numpy 1.x: byte-string keys, a list of labels, a uint8 array in CHW rows.
    batch = {
        b"batch_label": name.encode(),
        b"labels": labels,
        b"data": images.transpose(0, 3, 1, 2).reshape(len(images), -1),
        b"filenames": [f"img_{i}.png".encode() for i in range(len(images))],
    }
    raw = pickle.dumps(batch, protocol=2)
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def _write_cifar(folder, *, as_archive=True, member_order=None, drop=()):
    folder.mkdir(parents=True, exist_ok=True)
    members, expected = {}, {}
    for i, name in enumerate(_cifar10.TRAIN_BATCHES + (_cifar10.TEST_BATCH,)):
        images, labels = _cifar_images(BATCH, offset=BATCH * i)
        expected[name] = (images, labels)
        members[name] = _batch_pickle(images, labels, name)
    members["batches.meta"] = pickle.dumps({b"label_names": [b"airplane"]}, protocol=2)
    for name in drop:
        members.pop(name)
    # The published archive stores its members in no particular order.
    order = member_order or ["data_batch_4", "test_batch", "data_batch_3", "batches.meta",
                             "data_batch_2", "data_batch_5", "data_batch_1"]
    if as_archive:
        with tarfile.open(folder / "cifar-10-python.tar.gz", "w:gz") as tar:
            for name in order:
                if name in members:
                    info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                    info.size = len(members[name])
                    tar.addfile(info, io.BytesIO(members[name]))
    else:
        (folder / "cifar-10-batches-py").mkdir()
        for name, raw in members.items():
            (folder / "cifar-10-batches-py" / name).write_bytes(raw)
    return expected


def _expected_split(expected, names, n=None):
    images = np.concatenate([expected[name][0] for name in names])[:n]
    labels = np.concatenate([expected[name][1] for name in names])[:n]
    return images, labels


def test_cifar10_shapes_dtypes_ranges_and_alignment(tmp_path):
    expected = _write_cifar(tmp_path / "cifar-10")
    data = load_cifar10(tmp_path, download=False)
    assert data.X_train.shape == (5 * BATCH, 32, 32, 3)
    assert data.X_test.shape == (BATCH, 32, 32, 3)
    assert data.X_train.dtype == np.float64 and data.y_train.dtype == np.int64
    assert 0.0 <= data.X_train.min() and data.X_train.max() <= 1.0
    train, y_train = _expected_split(expected, _cifar10.TRAIN_BATCHES)
    assert_array_equal(data.y_train, y_train)  # batches 1..5, in order
    assert_allclose(data.X_train, train / 255.0)
    assert_array_equal(np.rint(data.X_train[:, 0, 0, 0] * 255), data.y_train)
    test, y_test = _expected_split(expected, (_cifar10.TEST_BATCH,))
    assert_array_equal(data.y_test, y_test)
    assert_allclose(data.X_test, test / 255.0)
    assert list(data.target_names[:2]) == ["airplane", "automobile"]
    assert "Krizhevsky" in data.DESCR


def test_cifar10_rows_are_chw_and_come_out_hwc(tmp_path):
    _write_cifar(tmp_path / "cifar-10")
    X = load_cifar10(tmp_path, download=False, n_train=1).X_train[0] * 255
    h, w = np.arange(32)[:, None], np.arange(32)[None, :]
    red = (4 * h + 0) % 256
    red[0, 0] = 0
    assert_allclose(X[:, :, 0], np.broadcast_to(red, (32, 32)))  # rows vary in red
    assert_allclose(X[:, :, 1], np.broadcast_to(4 * w % 256, (32, 32)))  # columns in green
    assert_allclose(X[:, :, 2], 200)  # blue constant


def test_cifar10_first_n_and_return_x_y(tmp_path):
    expected = _write_cifar(tmp_path / "cifar-10")
    X_train, X_test, y_train, y_test = load_cifar10(
        tmp_path, download=False, n_train=4, n_test=2, dtype=np.float32, return_X_y=True
    )
    train, labels = _expected_split(expected, _cifar10.TRAIN_BATCHES, n=4)
    assert X_train.shape == (4, 32, 32, 3) and X_test.shape == (2, 32, 32, 3)
    assert X_train.dtype == np.float32
    assert_array_equal(y_train, labels)  # the first 4: batch 1 and one of batch 2
    assert_allclose(X_train, train / np.float32(255))
    assert len(y_test) == 2


def test_cifar10_reads_the_extracted_folder(tmp_path):
    _write_cifar(tmp_path / "cifar-10", as_archive=False)
    assert load_cifar10(tmp_path, download=False).X_train.shape == (5 * BATCH, 32, 32, 3)


def test_cifar10_data_home_from_environment(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "cifar-10")
    monkeypatch.setenv("SKNNGP_DATA", str(tmp_path))
    assert load_cifar10(download=False, n_train=1).X_train.shape == (1, 32, 32, 3)


def test_cifar10_missing_archive_says_what_to_put_where(tmp_path):
    target = tmp_path / "cifar-10" / "cifar-10-python.tar.gz"
    with pytest.raises(FileNotFoundError) as excinfo:
        load_cifar10(tmp_path, download=False)
    message = str(excinfo.value)
    assert "download=False" in message
    assert f"{target}   <- https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "c58f30108f718f92721af3b95e74349a" in message
    assert "or call with download=True" in message


@pytest.fixture
def offline(monkeypatch):
    """Downloads fail as they do without a network."""
    def refuse(url):
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(_base, "_urlopen", refuse)


def test_cifar10_offline_download_says_what_to_put_where(tmp_path, offline):
    with pytest.raises(FileNotFoundError, match=r"download failed: .*name resolution.*\n.*"
                                                r"cifar-10-python\.tar\.gz   <- https://") as exc:
        load_cifar10(tmp_path)
    assert "download=True" not in str(exc.value)
    assert list((tmp_path / "cifar-10").iterdir()) == []  # no partial file left


def _serve(monkeypatch, payload):
    requested = []

    def serve(url):
        requested.append(url)
        return io.BytesIO(payload)

    monkeypatch.setattr(_base, "_urlopen", serve)
    return requested


def test_cifar10_download_verifies_md5_then_moves_in_place(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "made")
    payload = (tmp_path / "made" / "cifar-10-python.tar.gz").read_bytes()
    remote = _cifar10.ARCHIVE._replace(md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(_cifar10, "ARCHIVE", remote)
    requested = _serve(monkeypatch, payload)
    data = load_cifar10(tmp_path / "home", n_train=2)
    assert requested == [remote.url]
    assert data.X_train.shape == (2, 32, 32, 3)
    assert sorted(p.name for p in (tmp_path / "home" / "cifar-10").iterdir()) == [
        "cifar-10-python.tar.gz"
    ]
    load_cifar10(tmp_path / "home", n_train=2)  # now local: no second request
    assert len(requested) == 1


def test_cifar10_download_with_wrong_md5_is_discarded(tmp_path, monkeypatch):
    _serve(monkeypatch, b"<html>captive portal</html>")
    with pytest.raises(OSError, match=r"has MD5 [0-9a-f]{32}, but the publisher's is "
                                      r"c58f30108f718f92721af3b95e74349a; the file was discarded"):
        load_cifar10(tmp_path)
    assert list((tmp_path / "cifar-10").iterdir()) == []


def test_cifar10_archive_without_a_member(tmp_path):
    _write_cifar(tmp_path / "cifar-10", drop=("data_batch_3",))
    with pytest.raises(ValueError, match=r"has no member cifar-10-batches-py/data_batch_3; it "
                                         r"is not the published cifar-10-python\.tar\.gz"):
        load_cifar10(tmp_path, download=False)


def test_cifar10_refuses_pickles_that_run_code(tmp_path):
    folder = tmp_path / "cifar-10" / "cifar-10-batches-py"
    _write_cifar(tmp_path / "cifar-10", as_archive=False)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "data_batch_1").write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"data_batch_1: .*asks for "
                                                     r"(__builtin__|builtins)\.print; it is not "
                                                     r"from the published archive\. Replace it"):
        load_cifar10(tmp_path, download=False)


def test_cifar10_malformed_batch(tmp_path):
    folder = tmp_path / "cifar-10" / "cifar-10-batches-py"
    _write_cifar(tmp_path / "cifar-10", as_archive=False)
    batch = {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}
    (folder / "data_batch_1").write_bytes(pickle.dumps(batch, protocol=2))
    with pytest.raises(ValueError, match=r"data_batch_1 is not a CIFAR-10 batch: b'data' should "
                                         r"be uint8 of shape \(n, 3072\), got uint8 of shape "
                                         r"\(2, 100\)"):
        load_cifar10(tmp_path, download=False)


def test_cifar10_too_many_requested(tmp_path):
    _write_cifar(tmp_path / "cifar-10")
    with pytest.raises(ValueError, match=r"n_test=4 exceeds the 3 images the files hold\. Use "
                                         r"n_test <= 3, or n_test=None"):
        load_cifar10(tmp_path, download=False, n_test=4)


def test_loader_parameters_are_validated(tmp_path):
    with pytest.raises(ValueError, match=r"'n_train' parameter of load_cifar10 must be an int "
                                         r"in the range \[1, inf\) or None\. Got 0 instead"):
        load_cifar10(tmp_path, n_train=0)
    with pytest.raises(ValueError, match=r"dtype must be a floating type; got "
                                         r"dtype=dtype\('uint8'\)\. Use np\.float64"):
        load_fashion_mnist(tmp_path, dtype=np.uint8)


# -- Fashion-MNIST: tiny IDX files -----------------------------------------------------


def _idx(array):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def _write_fashion(folder, n_train=7, n_test=4):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(0)
    out = {}
    for which, n in (("train", n_train), ("test", n_test)):
        labels = rng.randint(0, 10, size=n)
        images = rng.randint(0, 256, size=(n, 28, 28))
        images[:, 0, 0] = labels  # alignment marker
        images[:, 27, 0] = 255  # orientation marker: bottom-left pixel
        images[:, 0, 27] = 0
        out[which] = images, labels
        (folder / _fashion_mnist.FILES[f"{which}_images"].filename).write_bytes(_idx(images))
        (folder / _fashion_mnist.FILES[f"{which}_labels"].filename).write_bytes(_idx(labels))
    return out


def test_fashion_mnist_shapes_dtypes_ranges_and_alignment(tmp_path, no_system_dirs):
    expected = _write_fashion(tmp_path / "fashion-mnist")
    data = load_fashion_mnist(tmp_path, download=False)
    assert data.X_train.shape == (7, 28, 28, 1) and data.X_test.shape == (4, 28, 28, 1)
    assert data.X_train.dtype == np.float64 and data.y_train.dtype == np.int64
    assert 0.0 <= data.X_train.min() and data.X_train.max() <= 1.0
    assert_allclose(data.X_train[..., 0], expected["train"][0] / 255.0)
    assert_array_equal(data.y_train, expected["train"][1])
    assert_array_equal(data.y_test, expected["test"][1])
    assert_array_equal(np.rint(data.X_train[:, 0, 0, 0] * 255), data.y_train)
    assert np.all(data.X_train[:, 27, 0, 0] == 1.0) and np.all(data.X_train[:, 0, 27, 0] == 0.0)
    assert data.target_names[9] == "Ankle boot"


def test_fashion_mnist_first_n_and_return_x_y(tmp_path, no_system_dirs):
    expected = _write_fashion(tmp_path / "fashion-mnist")
    X_train, X_test, y_train, y_test = load_fashion_mnist(
        tmp_path, download=False, n_train=3, n_test=1, dtype=np.float32, return_X_y=True
    )
    assert X_train.shape == (3, 28, 28, 1) and X_train.dtype == np.float32
    assert_array_equal(y_train, expected["train"][1][:3])
    assert_array_equal(y_test, expected["test"][1][:1])
    with pytest.raises(ValueError, match=r"n_train=8 exceeds the 7 images the files hold"):
        load_fashion_mnist(tmp_path, download=False, n_train=8)


def test_fashion_mnist_found_in_a_system_folder(tmp_path, monkeypatch):
    system = tmp_path / "usr-share-datasets" / "fashion-mnist"
    _write_fashion(system)
    monkeypatch.setattr(_fashion_mnist, "SYSTEM_DIRS", (system,))
    assert load_fashion_mnist(tmp_path / "empty-home", download=False).X_train.shape[0] == 7


def test_fashion_mnist_missing_files_listed_with_their_paths(tmp_path, no_system_dirs):
    folder = tmp_path / "fashion-mnist"
    _write_fashion(folder)
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as excinfo:
        load_fashion_mnist(tmp_path, download=False)
    message = str(excinfo.value)
    assert "1 file(s)" in message
    assert (f"{folder / 't10k-labels-idx1-ubyte.gz'}   <- http://fashion-mnist.s3-website."
            "eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz "
            "(md5 bb300cfdad3c16e7a12a480ee83cd310)") in message
    assert "train-images" not in message


def test_fashion_mnist_downloads_only_missing_files(tmp_path, monkeypatch, no_system_dirs):
    folder = tmp_path / "fashion-mnist"
    _write_fashion(folder)
    payload = (folder / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    files = dict(_fashion_mnist.FILES)
    files["test_labels"] = files["test_labels"]._replace(md5=hashlib.md5(payload).hexdigest())
    monkeypatch.setattr(_fashion_mnist, "FILES", files)
    requested = _serve(monkeypatch, payload)
    assert load_fashion_mnist(tmp_path).y_test.shape == (4,)
    assert requested == [files["test_labels"].url]


def test_fashion_mnist_truncated_file(tmp_path, no_system_dirs):
    folder = tmp_path / "fashion-mnist"
    _write_fashion(folder)
    raw = gzip.decompress((folder / "train-images-idx3-ubyte.gz").read_bytes())
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(raw[:-100]))
    with pytest.raises(ValueError, match=r"is truncated: its header announces 7 items of shape "
                                         r"\(28, 28\).*Download it again"):
        load_fashion_mnist(tmp_path, download=False)


_DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(
    not all((_DEBIAN / r.filename).is_file() for r in _fashion_mnist.FILES.values()),
    reason="Debian's dataset-fashion-mnist files are not installed in "
           "/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)",
)
def test_real_fashion_mnist_from_debian(tmp_path):
    data = load_fashion_mnist(tmp_path / "empty-home", download=False, n_train=5, n_test=3)
    # The published first labels (Ankle boot, T-shirt, T-shirt, Dress, T-shirt).
    assert_array_equal(data.y_train, [9, 0, 0, 3, 0])
    assert_array_equal(data.y_test, [9, 2, 1])
    assert data.X_train.shape == (5, 28, 28, 1)
    assert data.X_train.min() == 0.0 and data.X_train.max() == 1.0
    # Articles sit in the middle of a dark background.
    assert data.X_train[:, 10:18, 10:18].mean() > 2 * data.X_train[:, :, :2].mean()


# -- digits and data_home ------------------------------------------------------------------


def test_digits_images():
    data = load_digits_images()
    raw = load_digits()
    assert data.images.shape == (1797, 8, 8, 1)
    assert data.images.min() == 0.0 and data.images.max() == 1.0
    assert_allclose(data.images[..., 0] * 16, raw.images)
    assert_allclose(data.data, raw.data / 16)
    assert np.shares_memory(data.data, data.images)
    assert_array_equal(data.target, raw.target)
    images, target = load_digits_images(return_X_y=True)
    assert_array_equal(images, data.images) and target is not None


def test_get_data_home(monkeypatch):
    monkeypatch.delenv("SKNNGP_DATA", raising=False)
    assert get_data_home() == Path.home() / "sknngp_data"
    monkeypatch.setenv("SKNNGP_DATA", "~/elsewhere")
    assert get_data_home() == Path.home() / "elsewhere"
    assert get_data_home("/x/y") == Path("/x/y")


# -- Layouts users already have ------------------------------------------------------


@pytest.mark.parametrize("layout", ["torchvision-archive", "torchvision-folder"])
def test_cifar10_torchvision_root(tmp_path, layout):
    expected = _write_cifar(tmp_path, as_archive=layout == "torchvision-archive")
    data = load_cifar10(tmp_path, download=False)
    images, labels = _expected_split(expected, _cifar10.TRAIN_BATCHES)
    assert_array_equal(data.y_train, labels)
    assert_allclose(data.X_train, images / 255.0)


def test_cifar10_keras_folder_and_archive(tmp_path, empty_keras_home):
    keras = empty_keras_home / "datasets"
    expected = _write_cifar(keras, as_archive=False)
    data = load_cifar10(tmp_path / "empty-home", download=False)
    assert_array_equal(data.y_test, expected["test_batch"][1])
    # Keras names the archive after the folder it extracts to
    (keras / "cifar-10-batches-py").rename(tmp_path / "moved")
    _write_cifar(tmp_path / "made")
    (tmp_path / "made" / "cifar-10-python.tar.gz").rename(keras / "cifar-10-batches-py.tar.gz")
    data = load_cifar10(tmp_path / "empty-home", download=False)
    assert_array_equal(data.y_test, expected["test_batch"][1])


def test_cifar10_missing_lists_every_place_searched(tmp_path, empty_keras_home):
    with pytest.raises(FileNotFoundError) as excinfo:
        load_cifar10(tmp_path, download=False)
    message = str(excinfo.value)
    for place in (tmp_path / "cifar-10-python.tar.gz", tmp_path / "cifar-10-batches-py",
                  empty_keras_home / "datasets" / "cifar-10-batches-py"):
        assert str(place) in message


@pytest.mark.parametrize("layout", ["data_home", "torchvision", "keras"])
def test_fashion_mnist_layouts(tmp_path, layout, no_system_dirs, empty_keras_home):
    folder = {"data_home": tmp_path, "torchvision": tmp_path / "FashionMNIST" / "raw",
              "keras": empty_keras_home / "datasets" / "fashion-mnist"}[layout]
    expected = _write_fashion(folder)
    data = load_fashion_mnist(tmp_path, download=False)
    assert_array_equal(data.y_train, expected["train"][1])


def test_fashion_mnist_failed_download_lists_every_missing_file(tmp_path, offline,
                                                                 no_system_dirs):
    with pytest.raises(FileNotFoundError, match=r"4 file\(s\).*download failed: .*name "
                                                r"resolution") as excinfo:
        load_fashion_mnist(tmp_path)
    message = str(excinfo.value)
    for remote in _fashion_mnist.FILES.values():
        assert f"{tmp_path / 'fashion-mnist' / remote.filename}   <- {remote.url} " \
               f"(md5 {remote.md5})" in message
    # no network traceback chained to the message
    assert excinfo.value.__cause__ is None and excinfo.value.__context__ is None


# -- Invalid contents: clear errors that name the file -----------------------------


@pytest.mark.parametrize("filename, content, message", [
    ("train-images-idx3-ubyte.gz", np.zeros((2, 28), np.uint8),
     r"train-images-idx3-ubyte\.gz is not an IDX file of unsigned bytes with 3 dimension\(s\): "
     r"its magic number is 0x00000802, expected 0x00000803"),
    ("train-labels-idx1-ubyte.gz", np.zeros(6, np.uint8),
     r"holds 7 train images but 6 labels.*Replace both"),
    ("t10k-labels-idx1-ubyte.gz", np.array([0, 200, 3, 4]),
     r"t10k-labels-idx1-ubyte\.gz holds label 200; Fashion-MNIST's labels are 0\.\.9"),
    ("train-images-idx3-ubyte.gz", np.zeros((7, 28, 29)),
     r"train-images-idx3-ubyte\.gz holds images of 28x29 pixels; Fashion-MNIST's are 28x28"),
], ids=["bad magic number", "images and labels disagree", "label out of range",
        "wrong image size"])
def test_fashion_mnist_invalid_file_named(tmp_path, no_system_dirs, filename, content, message):
    folder = tmp_path / "fashion-mnist"
    _write_fashion(folder)
    (folder / filename).write_bytes(_idx(content))
    with pytest.raises(ValueError, match=message):
        load_fashion_mnist(tmp_path, download=False)


@pytest.mark.parametrize("damage", ["not gzip", "cut gzip", "cut header"])
def test_fashion_mnist_damaged_file_named(tmp_path, no_system_dirs, damage):
    folder = tmp_path / "fashion-mnist"
    _write_fashion(folder)
    path = folder / "train-labels-idx1-ubyte.gz"
    raw = path.read_bytes()
    path.write_bytes({"not gzip": b"<html>not found</html>", "cut gzip": raw[: len(raw) // 2],
                      "cut header": gzip.compress(raw[:0] + b"\x00\x00\x08\x01\x00")}[damage])
    with pytest.raises(ValueError, match=r"load_fashion_mnist: .*train-labels-idx1-ubyte\.gz "
                                         r"cannot be read \(.*\); it is truncated or not the "
                                         r"published gzipped IDX file"):
        load_fashion_mnist(tmp_path, download=False)


def test_fashion_mnist_lying_header_allocates_nothing_large(tmp_path, no_system_dirs):
    """A header announcing 2**32 - 1 images over a few bytes of data is reported
    as truncated, after reading only what the file holds."""
    folder = tmp_path / "fashion-mnist"
    _write_fashion(folder)
    header = struct.pack(">BBBB3I", 0, 0, 8, 3, 2**32 - 1, 28, 28)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + b"\x00" * 100))
    with pytest.raises(ValueError, match=r"is truncated: its header announces 4294967295 items"):
        load_fashion_mnist(tmp_path, download=False)


def _huge_array_pickle():
    """About 100 bytes that ask numpy's pickle constructor for 64 GiB."""
    from numpy._core.multiarray import _reconstruct

    class Huge:
        def __reduce__(self):
            return (_reconstruct, (np.ndarray, (2**36,), b"b"))

    raw = pickle.dumps({b"data": Huge(), b"labels": [0]}, protocol=2)
    assert len(raw) < 200
    return raw.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")


def test_cifar10_crafted_batch_cannot_allocate(tmp_path):
    folder = tmp_path / "cifar-10" / "cifar-10-batches-py"
    _write_cifar(tmp_path / "cifar-10", as_archive=False)
    (folder / "data_batch_1").write_bytes(_huge_array_pickle())
    with pytest.raises(pickle.UnpicklingError, match=r"data_batch_1: a CIFAR-10 batch holds "
                                                     r"plain arrays of at most \d+ bytes, but this "
                                                     r"file asks for a ndarray of shape "
                                                     r"\(68719476736,\)"):
        load_cifar10(tmp_path, download=False)


def test_cifar10_oversized_member_refused(tmp_path, monkeypatch):
    _write_cifar(tmp_path / "cifar-10")
    monkeypatch.setattr(_cifar10, "MAX_BATCH_BYTES", 1000)
    with pytest.raises(ValueError, match=r"cifar-10-python\.tar\.gz:cifar-10-batches-py/"
                                         r"data_batch_\d is \d+ bytes; a CIFAR-10 batch is about "
                                         r"31 MB"):
        load_cifar10(tmp_path, download=False)


@pytest.mark.parametrize("damage", ["cut", "garbage"])
def test_cifar10_damaged_archive_named(tmp_path, damage):
    _write_cifar(tmp_path / "cifar-10")
    path = tmp_path / "cifar-10" / "cifar-10-python.tar.gz"
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2] if damage == "cut" else b"garbage" * 50)
    with pytest.raises(ValueError, match=r"load_cifar10: .*cifar-10-python\.tar\.gz cannot be "
                                         r"read \(.*\); it is truncated or not the published "
                                         r"cifar-10-python\.tar\.gz"):
        load_cifar10(tmp_path, download=False)


def test_cifar10_batch_that_is_not_a_pickle(tmp_path):
    folder = tmp_path / "cifar-10" / "cifar-10-batches-py"
    _write_cifar(tmp_path / "cifar-10", as_archive=False)
    (folder / "test_batch").write_bytes(b"\x80\x02}q\x00(truncated")
    with pytest.raises(ValueError, match=r"test_batch is not a CIFAR-10 batch: unpickling "
                                         r"failed"):
        load_cifar10(tmp_path, download=False)
