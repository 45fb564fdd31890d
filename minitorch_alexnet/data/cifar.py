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

A folder that already holds ``cifar-10-batches-py/`` is used. Otherwise an archive
found there is checked (MD5) and extracted; otherwise, when allowed, the archive
is downloaded first (:mod:`.download`; extraction: :mod:`.archive`; reading a
batch: :mod:`.batches`).

Every file of the folder is checked on every load: against the MD5s recorded when
the loader extracted it (a mismatch is an error: the file changed or was damaged
since), and against the official MD5s. A folder of your own whose files match
neither (a re-encoded copy, say) still loads, with an
:class:`UnverifiedDatasetWarning` naming the files. Nothing damaged is used
silently: a bad checksum, a truncated archive or a malformed batch raises
:class:`CorruptDatasetError`, naming the file and what to do about it.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from .archive import extract_archive, read_manifest
from .batches import parse_batch, parse_classes, read_batch, read_blob
from .dataset import (
    CorruptDatasetError,
    DatasetNotFoundError,
    DatasetSplits,
    ImageDataset,
    UnverifiedDatasetWarning,
    host_numpy,
)
from .download import download_cifar10
from .files import (
    CIFAR10_ARCHIVE,
    CIFAR10_CLASSES,
    CIFAR10_FILE_MD5,
    CIFAR10_FOLDER,
    CIFAR10_MD5,
    CIFAR10_URL,
    MAX_META_FILE_BYTES,
    META_FILE,
    TEST_BATCH,
    TRAIN_BATCHES,
    data_root,
    default_data_dir,
    how_to_get,
    md5_bytes,
    md5sum,
)

__all__ = [
    "CIFAR10_ARCHIVE",
    "CIFAR10_CLASSES",
    "CIFAR10_FILE_MD5",
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


def find_cifar10(data_dir: str | os.PathLike | None = None) -> Path | None:
    """The ``cifar-10-batches-py`` folder in ``data_dir`` (or ``data_dir`` itself), if present.

    A folder counts as present when its ``test_batch`` and ``data_batch_1`` exist, as
    files or not: a folder in their place is then reported by the loader, not skipped.
    """
    root = data_root(data_dir)
    for candidate in (root / CIFAR10_FOLDER, root):
        if all(os.path.lexists(candidate / name) for name in (TEST_BATCH, TRAIN_BATCHES[0])):
            return candidate
    return None


def _verify(path: Path, md5: str | None) -> None:
    if md5 is None:
        return
    if not path.is_file():
        what = "a folder" if path.is_dir() else "a broken link or a special file"
        raise CorruptDatasetError(f"{path} is {what}, not the archive; delete or rename it")
    got = md5sum(path)
    if got != md5:
        raise CorruptDatasetError(
            f"{path} has MD5 {got}, expected {md5}: the file is incomplete or corrupt and "
            f"was not used. Delete it and run again to download a fresh copy."
        )


class _Checker:
    """Checks each file of a folder against its manifest (an error) and the official MD5s."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.recorded = read_manifest(folder)
        self.unverified: list[str] = []

    def read(self, name: str, limit: int | None = None) -> bytes:
        path = self.folder / name
        blob = read_blob(path) if limit is None else read_blob(path, limit)
        got = md5_bytes(blob)
        if self.recorded is not None and self.recorded.get(name) != got:
            raise CorruptDatasetError(
                f"{path} has MD5 {got}, but {self.recorded.get(name) or 'no file'} when this "
                f"loader extracted the folder: it changed or was damaged since, and was not "
                f"used. Delete the folder {self.folder} and run again to extract a fresh copy."
            )
        if got != CIFAR10_FILE_MD5[name]:
            self.unverified.append(name)
        return blob

    def warn(self) -> str:
        if not self.unverified:
            return ""
        how = (
            "they are as this loader extracted them, from an archive that is not the official one"
            if self.recorded is not None
            else "a re-encoded or otherwise modified copy, say"
        )
        warnings.warn(
            UnverifiedDatasetWarning(
                f"{self.folder}: loading UNVERIFIED data: the MD5s of "
                f"{', '.join(self.unverified)} are not those of the official CIFAR-10 files "
                f"({how}). They are well-formed batches and are used, but results on them "
                "may differ from results on CIFAR-10."
            ),
            stacklevel=4,
        )
        return " (unverified: not the official files)"


def _load_folder(folder: Path) -> DatasetSplits:
    np = host_numpy()
    check = _Checker(folder)
    parts = [parse_batch(check.read(name), folder / name) for name in TRAIN_BATCHES]
    test_images, test_labels = parse_batch(check.read(TEST_BATCH), folder / TEST_BATCH)
    classes = CIFAR10_CLASSES
    if os.path.lexists(folder / META_FILE) or (check.recorded or {}).get(META_FILE):
        meta = folder / META_FILE
        classes = parse_classes(check.read(META_FILE, MAX_META_FILE_BYTES), meta)
    train = ImageDataset(
        np.concatenate([p[0] for p in parts]),
        np.concatenate([p[1] for p in parts]),
        classes,
        "cifar10-train",
    )
    test = ImageDataset(test_images, test_labels, classes, "cifar10-test")
    return DatasetSplits(train, test, "cifar10", str(folder) + check.warn())


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
        ``(N, 3, 32, 32)``, int64 labels) on the host. Its ``source`` is the folder,
        followed by ``(unverified: ...)`` when the files are not the official ones.

    Warns:
        UnverifiedDatasetWarning: the files match none of the official MD5s (they are
            loaded all the same, as long as they are well-formed batches).

    Raises:
        DatasetNotFoundError: not present and ``download`` is False.
        DownloadError: not present and the download failed (e.g. offline).
        CorruptDatasetError: an archive or batch file is damaged, or a file of a
            folder the loader extracted changed since (never used).
        DiskFullError: the disk filled up while downloading or extracting.
    """
    root = data_root(data_dir)
    folder = find_cifar10(root)
    if folder is not None:
        return _load_folder(folder)
    archive = root / CIFAR10_ARCHIVE
    if not os.path.lexists(archive):
        if not download:
            raise DatasetNotFoundError(
                f"CIFAR-10 was not found: looked for {root / CIFAR10_FOLDER}/ and "
                f"{archive}. " + how_to_get(root)
            )
        archive = download_cifar10(root, url=url, md5=md5, progress=progress)
    else:
        _verify(archive, md5)
    return _load_folder(extract_archive(archive, root))
