"""Where data live, and how missing files are fetched (or explained).

Files already on disk are read as they are; their structure is validated by
each reader. Downloads are checked against the publisher's MD5 before being
moved into place, so an interrupted or corrupted transfer never leaves a file
that looks complete.
"""

import gzip
import hashlib
import os
import struct
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from collections import namedtuple
from pathlib import Path

import numpy as np

#: A file as published: its name, where the publisher serves it, its MD5.
RemoteFile = namedtuple("RemoteFile", ["filename", "url", "md5"])

_CHUNK = 1 << 20
_TIMEOUT_S = 60


def get_data_home(data_home=None):
    """Return the folder where sknngp looks for (and downloads) data sets.

    Parameters
    ----------
    data_home : str or path-like, default=None
        The folder to use. By default, the environment variable
        ``SKNNGP_DATA`` if set, else ``~/sknngp_data``. The folder is not
        created here; downloads create it when they need it.

    Returns
    -------
    data_home : pathlib.Path
        The folder, with ``~`` expanded.

    Examples
    --------
    >>> from sknngp.datasets import get_data_home
    >>> str(get_data_home("/tmp/my_data"))
    '/tmp/my_data'
    """
    if data_home is None:
        data_home = os.environ.get("SKNNGP_DATA", os.path.join("~", "sknngp_data"))
    return Path(data_home).expanduser()


def keras_datasets_dir():
    """Keras' download folder: ``$KERAS_HOME/datasets``, else ``~/.keras/datasets``."""
    home = os.environ.get("KERAS_HOME")
    return (Path(home) if home else Path("~", ".keras")).expanduser() / "datasets"


#: What reading a damaged file raises inside the standard library: turned into
#: one ``ValueError`` that names the file (:func:`unreadable`).
READ_ERRORS = (OSError, EOFError, zlib.error, struct.error, tarfile.TarError, gzip.BadGzipFile)


def unreadable(loader, path, err, published):
    """The error for a file that exists but cannot be decoded."""
    return ValueError(
        f"{loader}: {path} cannot be read ({type(err).__name__}: {err}); it is truncated "
        f"or not the published {published}. Delete it and put the publisher's file there "
        "(or call with download=True)."
    )


def read_at_most(f, size, *, chunk=_CHUNK * 16):
    """Read ``size`` bytes from ``f`` in chunks, so a header that lies about the size
    cannot make the reader allocate more memory than the file holds."""
    parts, left = [], size
    while left > 0:
        part = f.read(min(chunk, left))
        if not part:
            break
        parts.append(part)
        left -= len(part)
    return b"".join(parts)


def _urlopen(url):
    """Open ``url`` for reading (tests replace this to stay offline)."""
    return urllib.request.urlopen(url, timeout=_TIMEOUT_S)


def missing_files_error(loader, remotes, folder, *, reason, searched=(), offer_download=True):
    """The error raised when files are absent: which file, from where, to where."""
    lines = [
        f"{loader}: {len(remotes)} file(s) of the published data set not found "
        f"({reason}). Put each file, unchanged, at the path shown:"
    ]
    lines += [f"  {Path(folder) / r.filename}   <- {r.url} (md5 {r.md5})" for r in remotes]
    if searched:
        lines.append("Also searched: " + ", ".join(str(s) for s in searched) + ".")
    lines.append(
        "Or point data_home (or the SKNNGP_DATA environment variable) at a "
        "folder that holds them"
        + (", or call with download=True where a network is available." if offer_download
           else ".")
    )
    return FileNotFoundError("\n".join(lines))


def fetch_all(remotes, folder, loader, *, searched=()):
    """Download every file of ``remotes`` into ``folder``.

    A failed download does not stop the others; if any failed, one
    ``FileNotFoundError`` lists every file still missing (with its URL, MD5 and
    the path to put it at) and the first failure's reason, without the network
    library's traceback.
    """
    failures = []
    for remote in remotes:
        try:
            fetch(remote, folder, loader)
        except _DownloadFailed as err:
            failures.append((remote, err.reason))
    if failures:
        raise missing_files_error(
            loader, [remote for remote, _ in failures], folder,
            reason=f"download failed: {failures[0][1]}", searched=searched,
            offer_download=False,
        )


class _DownloadFailed(Exception):
    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def fetch(remote, folder, loader):
    """Download ``remote`` into ``folder``, verify its MD5, then move it in place.

    The transfer goes to a temporary file in ``folder``, renamed only once the
    checksum matches, so a failed download never leaves a partial file under
    the final name.

    Returns
    -------
    path : pathlib.Path
        The downloaded file.

    Raises
    ------
    _DownloadFailed
        When the transfer fails; :func:`fetch_all` turns it into the
        missing-files message.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / remote.filename
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{remote.filename}.", suffix=".part")
    digest = hashlib.md5(usedforsecurity=False)
    try:
        try:
            with os.fdopen(fd, "wb") as out, _urlopen(remote.url) as response:
                while chunk := response.read(_CHUNK):
                    digest.update(chunk)
                    out.write(chunk)
        except (urllib.error.URLError, OSError) as err:
            raise _DownloadFailed(str(err)) from None
        if digest.hexdigest() != remote.md5:
            raise OSError(
                f"{loader}: the download of {remote.url} has MD5 "
                f"{digest.hexdigest()}, but the publisher's is {remote.md5}; the "
                "file was discarded. Retry later, or download it by hand, check "
                f"its MD5, and put it at {target}."
            )
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def check_count(loader, name, value, available):
    """Refuse ``n_train``/``n_test`` larger than what the files hold."""
    if value is not None and value > available:
        raise ValueError(
            f"{loader}: {name}={value} exceeds the {available} images the files "
            f"hold. Use {name} <= {available}, or {name}=None for all of them."
        )


def check_float_dtype(loader, dtype):
    """The images' dtype, which must be floating."""
    try:
        dtype = np.dtype(dtype)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind != "f":
        raise ValueError(
            f"{loader}: dtype must be a floating type; got dtype={dtype!r}. "
            "Use np.float64 (the default) or np.float32."
        )
    return dtype
