"""CIFAR-10 from the official "python version" archive: find, download, verify, extract, load.

The archive ``cifar-10-python.tar.gz`` holds a folder ``cifar-10-batches-py/`` with
five training batches (``data_batch_1`` ... ``data_batch_5``), one ``test_batch``
and ``batches.meta``. Each batch is a Python-2 pickle of a dict whose ``b"data"``
is a ``uint8`` array of shape ``(10000, 3072)`` (each row: the 1024 red, then
green, then blue pixels of a 32x32 image, row by row) and whose ``b"labels"`` is
a list of 10000 ints in ``[0, 10)``.

Where the data is looked for (first match wins):

1. the ``data_dir`` argument,
2. the environment variable ``MINITORCH_ALEXNET_DATA``,
3. ``$XDG_CACHE_HOME/minitorch_alexnet`` (``~/.cache/minitorch_alexnet`` by default).

A folder that already holds ``cifar-10-batches-py/`` is used as it is. Otherwise
an archive found there is checked (MD5) and extracted; otherwise, when allowed,
the archive is downloaded first. Nothing damaged is ever used silently: a bad
checksum, a truncated archive or a malformed batch raises
:class:`CorruptDatasetError`, naming the file and what to do about it.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import pickle
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from pathlib import Path, PurePosixPath
from typing import Any

from .dataset import (
    CorruptDatasetError,
    DatasetNotFoundError,
    DatasetSplits,
    DownloadError,
    ImageDataset,
    UnsafeArchiveError,
    host_numpy,
)

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_FOLDER",
    "CIFAR10_MD5",
    "CIFAR10_URL",
    "default_data_dir",
    "download_cifar10",
    "extract_archive",
    "find_cifar10",
    "load_cifar10",
    "md5sum",
    "read_batch",
]

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
ROWS_PER_BATCH = 10000
ROW_BYTES = 3 * 32 * 32
ENV_VAR = "MINITORCH_ALEXNET_DATA"
URL_ENV_VAR = "MINITORCH_ALEXNET_CIFAR_URL"


# ---------------------------------------------------------------- where
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


def _root(data_dir: str | os.PathLike | None) -> Path:
    return Path(data_dir).expanduser() if data_dir is not None else default_data_dir()


def find_cifar10(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The ``cifar-10-batches-py`` folder in ``data_dir`` (or ``data_dir`` itself), if present."""
    root = _root(data_dir)
    for candidate in (root / CIFAR10_FOLDER, root):
        if (candidate / TEST_BATCH).is_file() and (candidate / TRAIN_BATCHES[0]).is_file():
            return candidate
    return None


def _how_to_get(root: Path) -> str:
    return (
        f"Get it by running with downloading allowed (it fetches {CIFAR10_URL}, 163 MB), or "
        f"download that file yourself into {root}, or extract it there so that "
        f"{root / CIFAR10_FOLDER}/ holds data_batch_1..5 and test_batch. "
        f"The folder can be chosen with data_dir / --data-dir or ${ENV_VAR}."
    )


# ---------------------------------------------------------------- checksums and download
def md5sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex MD5 digest of a file, read in chunks."""
    h = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _verify(path: Path, md5: str | None) -> None:
    if md5 is None:
        return
    got = md5sum(path)
    if got != md5:
        raise CorruptDatasetError(
            f"{path} has MD5 {got}, expected {md5}: the file is incomplete or corrupt and "
            f"was not used. Delete it and run again to download a fresh copy."
        )


def download_cifar10(
    data_dir: str | os.PathLike | None = None,
    url: str | None = None,
    md5: str | None = CIFAR10_MD5,
    progress: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Download the archive into ``data_dir`` (with a progress bar) and check its MD5.

    The bytes go to a temporary ``.part`` file that is renamed only once complete
    and verified, so an interrupted download never leaves a file that looks finished.

    Returns:
        The path of the downloaded archive.

    Raises:
        DownloadError: the server could not be reached or the transfer broke off.
        CorruptDatasetError: the download finished but its checksum is wrong.
    """
    from tqdm.auto import tqdm

    url = url or os.environ.get(URL_ENV_VAR) or CIFAR10_URL
    root = _root(data_dir)
    root.mkdir(parents=True, exist_ok=True)
    target = root / CIFAR10_ARCHIVE
    fd, part_name = tempfile.mkstemp(prefix=CIFAR10_ARCHIVE + ".", suffix=".part", dir=root)
    part = Path(part_name)
    h = hashlib.md5(usedforsecurity=False)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)
            except (urllib.error.URLError, OSError, ValueError) as e:
                raise DownloadError(
                    f"could not download CIFAR-10 from {url} ({e}). Are you offline? "
                    + _how_to_get(root)
                ) from None
            with response:
                length = response.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                bar = tqdm(
                    total=total,
                    unit="B",
                    unit_scale=True,
                    unit_divisor=1024,
                    desc=f"downloading {CIFAR10_ARCHIVE}",
                    disable=None if progress else True,
                )
                with bar:
                    try:
                        while block := response.read(1 << 16):
                            out.write(block)
                            h.update(block)
                            bar.update(len(block))
                    except (urllib.error.URLError, OSError) as e:
                        raise DownloadError(
                            f"the download of {url} broke off ({e}). Run again to retry."
                        ) from None
            out.flush()
            os.fsync(out.fileno())
        if md5 is not None and h.hexdigest() != md5:
            raise CorruptDatasetError(
                f"the file downloaded from {url} has MD5 {h.hexdigest()}, expected {md5}; "
                "it was deleted and not used. Run again to retry the download."
            )
        os.replace(part, target)
    finally:
        if part.exists():
            part.unlink()
    return target


# ---------------------------------------------------------------- safe extraction
def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    """Refuse members that would land outside ``dest``: absolute paths, ``..``, escaping links."""
    name = member.name
    pure = PurePosixPath(name)

    def refuse(why: str) -> None:
        raise UnsafeArchiveError(
            f"{archive}: refusing to extract member {name!r}: {why}. The archive is not a "
            "genuine CIFAR-10 archive; delete it and download a fresh copy."
        )

    if pure.is_absolute() or name.startswith(("/", "\\")) or (len(name) > 1 and name[1] == ":"):
        refuse("absolute path")
    if ".." in pure.parts or ".." in name.replace("\\", "/").split("/"):
        refuse("path contains '..'")
    target = (dest / name).resolve()
    if not _inside(target, dest):
        refuse("path resolves outside the target folder")
    if member.issym() or member.islnk():
        link = member.linkname
        if PurePosixPath(link).is_absolute() or link.startswith(("/", "\\")):
            refuse(f"link to absolute path {link!r}")
        base = (dest / name).parent if member.issym() else dest
        if not _inside((base / link).resolve(), dest):
            refuse(f"link target {link!r} is outside the target folder")
    elif not (member.isfile() or member.isdir()):
        refuse("not a regular file or folder (device, FIFO or other special file)")


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a CIFAR-10 ``.tar.gz`` safely into ``dest`` and return ``dest/cifar-10-batches-py``.

    Every member is checked first (see :func:`_check_member`); nothing is written
    when any member is unsafe. Extraction goes to a temporary folder inside
    ``dest`` that is renamed into place at the end, so an interrupted run leaves
    no half-extracted dataset behind.

    Raises:
        UnsafeArchiveError: a member would escape ``dest``.
        CorruptDatasetError: the archive is truncated, not a tar.gz, or lacks the folder.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    final = dest / CIFAR10_FOLDER
    tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                members = tar.getmembers()
                resolved_tmp = tmp.resolve()
                for m in members:
                    _check_member(m, resolved_tmp, archive)
                if hasattr(tarfile, "data_filter"):  # a second line of defence where available
                    tar.extractall(tmp, members=members, filter="data")
                else:  # pragma: no cover - Python without the tarfile filters
                    tar.extractall(tmp, members=members)
        except UnsafeArchiveError:
            raise
        except (tarfile.TarError, EOFError, OSError) as e:
            raise CorruptDatasetError(
                f"{archive} could not be read as a tar.gz archive ({type(e).__name__}: {e}); "
                "it is truncated or corrupt. Delete it and download a fresh copy."
            ) from None
        extracted = tmp / CIFAR10_FOLDER
        if not extracted.is_dir():
            raise CorruptDatasetError(
                f"{archive} has no {CIFAR10_FOLDER}/ folder inside; it is not the CIFAR-10 "
                "python-version archive. Delete it and download a fresh copy."
            )
        if final.exists():
            shutil.rmtree(final)
        os.replace(extracted, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


# ---------------------------------------------------------------- reading batches
class _BatchUnpickler(pickle.Unpickler):
    """Unpickles CIFAR batches but refuses every global other than NumPy's array rebuilders.

    A pickle can run arbitrary code when loaded; the batches only need these (plus
    ``_codecs.encode``, with which Python 3 writes ``bytes`` into protocol-2 pickles).
    """

    _ALLOWED = {
        ("_codecs", "encode"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")
        np = host_numpy()
        if module == "_codecs":
            return codecs.encode
        if module == "numpy":
            return getattr(np, name)
        core = getattr(np, "_core", None) or np.core
        return getattr(core.multiarray, name)


def _get(d: dict, key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


def read_batch(path: str | os.PathLike, num_classes: int = 10) -> tuple[Any, Any]:
    """Read one batch file.

    Returns:
        ``(images, labels)``: ``uint8`` ``(n, 3, 32, 32)`` and ``int64`` ``(n,)``, where
        ``n`` is 10000 in the official files (smaller batches, as written by
        subset tools, are accepted).

    Raises:
        CorruptDatasetError: the file is unreadable, truncated or malformed.
    """
    np = host_numpy()
    path = Path(path)
    advice = (
        f"Delete the folder {path.parent} (and the archive next to it, if any) and run again "
        "to download and extract a fresh copy."
    )

    def bad(why: str) -> CorruptDatasetError:
        return CorruptDatasetError(f"{path}: {why}. {advice}")

    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise bad("file is missing; the dataset folder is incomplete") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise bad(f"not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None
    if not isinstance(d, dict):
        raise bad(f"expected a dict, found {type(d).__name__}")
    data, labels = _get(d, "data"), _get(d, "labels")
    if data is None or labels is None:
        raise bad("no 'data' or 'labels' entry")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2:
        raise bad(
            f"'data' should be a uint8 matrix, found {type(data).__name__} "
            f"{getattr(data, 'dtype', '')} {getattr(data, 'shape', '')}"
        )
    n = data.shape[0]
    if data.shape[1] != ROW_BYTES or not 0 < n <= ROWS_PER_BATCH:
        raise bad(f"'data' has shape {data.shape}, expected ({ROWS_PER_BATCH}, {ROW_BYTES})")
    try:
        labels = np.asarray(labels, dtype=np.int64)
    except (TypeError, ValueError) as e:
        raise bad(f"'labels' are not integers ({e})") from None
    if labels.shape != (n,):
        raise bad(f"{n} images but {labels.size} labels")
    if labels.min() < 0 or labels.max() >= num_classes:
        raise bad(f"labels outside [0, {num_classes}): min {labels.min()}, max {labels.max()}")
    return np.ascontiguousarray(data.reshape(n, 3, 32, 32)), labels


def _read_classes(folder: Path) -> tuple[str, ...]:
    meta = folder / "batches.meta"
    if not meta.is_file():
        return CIFAR10_CLASSES
    try:
        with open(meta, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
        names = _get(d, "label_names")
        names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)
    except Exception:  # the names are cosmetic: fall back rather than fail
        return CIFAR10_CLASSES
    return names if len(names) == len(CIFAR10_CLASSES) else CIFAR10_CLASSES


def _load_folder(folder: Path) -> DatasetSplits:
    np = host_numpy()
    parts = [read_batch(folder / name) for name in TRAIN_BATCHES]
    classes = _read_classes(folder)
    train = ImageDataset(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        classes,
        "cifar10-train",
    )
    test = ImageDataset(*read_batch(folder / TEST_BATCH), classes, "cifar10-test")
    return DatasetSplits(train, test, "cifar10", str(folder))


def load_cifar10(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    url: str | None = None,
    md5: str | None = CIFAR10_MD5,
) -> DatasetSplits:
    """Load CIFAR-10, extracting or downloading it first when needed.

    Args:
        data_dir: the data folder (default: :func:`default_data_dir`).
        download: fetch the archive when neither the extracted folder nor the
            archive is in ``data_dir``.
        progress: show a progress bar while downloading.
        url: where to download from (default: ``$MINITORCH_ALEXNET_CIFAR_URL`` if set,
            for a mirror, else the official address).
        md5: the archive's expected checksum (``None`` skips the check).

    Returns:
        :class:`DatasetSplits` with 50000 training and 10000 test images (uint8
        ``(N, 3, 32, 32)``, int64 labels) on the host.

    Raises:
        DatasetNotFoundError: not present and ``download`` is False.
        DownloadError: not present and the download failed (e.g. offline).
        CorruptDatasetError: an archive or batch file is damaged (never used).
    """
    root = _root(data_dir)
    folder = find_cifar10(root)
    if folder is not None:
        return _load_folder(folder)
    archive = root / CIFAR10_ARCHIVE
    if not archive.is_file():
        if not download:
            raise DatasetNotFoundError(
                f"CIFAR-10 was not found: looked for {root / CIFAR10_FOLDER}/ and "
                f"{archive}. " + _how_to_get(root)
            )
        archive = download_cifar10(root, url=url, md5=md5, progress=progress)
    else:
        _verify(archive, md5)
    return _load_folder(extract_archive(archive, root))
