"""The official CIFAR-10 files: names, checksums, sizes and the limits derived from them.

Every number here is a fact about the "python version" archive published at
:data:`CIFAR10_URL` (the per-file MD5s are the ones torchvision checks too), or a
limit with a margin above such a fact. The readers, the extractor and the
downloader take their limits from here, so a damaged or hostile file is refused
before it can make them allocate or write more than a genuine one needs.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import time
from pathlib import Path

from .dataset import DatasetIOError, DiskFullError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
META_FILE = "batches.meta"
#: MD5 of each file of the official ``cifar-10-batches-py/``.
CIFAR10_FILE_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
ROWS_PER_BATCH = 10000
ROW_BYTES = 3 * 32 * 32
ENV_VAR = "MINITORCH_ALEXNET_DATA"
URL_ENV_VAR = "MINITORCH_ALEXNET_CIFAR_URL"
#: What the loader records in a folder it extracted itself: each file's MD5 and size.
MANIFEST = ".minitorch_alexnet-manifest.json"

# ---------------------------------------------------------------- limits
#: The official archive: 163 MB; its batches are 31.0 MB each, 186 MB in all.
MAX_ARCHIVE_MEMBERS = 64  # the official archive has 8
MAX_MEMBER_BYTES = 40_000_000  # per extracted file
MAX_TOTAL_BYTES = 240_000_000  # all extracted files together
#: A batch file on disk. Larger than an official one (31 MB) because a copy
#: re-pickled by Python 3 (protocol 2) stores each byte >= 128 in two bytes: up to 62 MB.
MAX_BATCH_FILE_BYTES = 80_000_000
MAX_META_FILE_BYTES = 1_000_000
#: Pickle opcodes and memo slots a batch may use (an official batch uses about 40000).
MAX_PICKLE_OPS = 400_000
#: Temporary files and folders of a killed run untouched this long are removed.
STALE_SECONDS = 3600


def default_data_dir() -> Path:
    """The folder used when no ``data_dir`` is given.

    ``$MINITORCH_ALEXNET_DATA`` if set, else ``$XDG_CACHE_HOME/minitorch_alexnet``,
    else ``~/.cache/minitorch_alexnet``.
    """
    env = os.environ.get(ENV_VAR)
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(Path.home(), ".cache")
    return Path(cache).expanduser() / "minitorch_alexnet"


def data_root(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def remove_stale(folder: Path, pattern: str, age: float = STALE_SECONDS) -> None:
    """Remove what a killed run left in ``folder`` (``pattern``), if untouched for ``age`` s."""
    now = time.time()
    for p in folder.glob(pattern):
        try:
            if now - p.lstat().st_mtime < age:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink()
        except OSError:  # gone already, or not ours to remove: leave it
            pass


def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex MD5 digest of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def md5_bytes(blob: bytes) -> str:
    return hashlib.md5(blob, usedforsecurity=False).hexdigest()


def how_to_get(root: Path) -> str:
    return (
        f"Get it by running with downloading allowed (it fetches {CIFAR10_URL}, 163 MB), or "
        f"download that file yourself into {root}, or extract it there so that "
        f"{root / CIFAR10_FOLDER}/ holds data_batch_1..5 and test_batch. "
        f"The folder can be chosen with data_dir / --data-dir or ${ENV_VAR}."
    )


def write_error(e: OSError, doing: str, where: Path) -> DatasetIOError:
    """The :class:`DatasetIOError` for an ``OSError`` met while writing ``where``.

    A full disk (``ENOSPC``, or a quota: ``EDQUOT``) becomes a :class:`DiskFullError`
    that says so: it is never reported as a damaged file.
    """
    if e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        err: DatasetIOError = DiskFullError(
            f"the disk is full: {doing} {where} failed ({e.strerror or e}). Nothing damaged "
            f"was kept. Free some space there (CIFAR-10 needs about 350 MB: the 163 MB "
            f"archive and 186 MB extracted; MNIST 12 MB, Fashion-MNIST 31 MB), or choose "
            f"another folder with data_dir / --data-dir or ${ENV_VAR}, and run again."
        )
    else:
        err = DatasetIOError(
            f"{doing} {where} failed ({type(e).__name__}: {e.strerror or e}). Check that the "
            f"folder exists and that you can write there, or choose another folder with "
            f"data_dir / --data-dir or ${ENV_VAR}, and run again."
        )
    err.errno, err.filename = e.errno, str(where)
    return err
