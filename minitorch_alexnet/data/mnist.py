"""MNIST and Fashion-MNIST from their official IDX files: find, download, verify, load.

Each dataset is four gzip-compressed IDX files (the names are the same for both)::

    train-images-idx3-ubyte.gz   60000 x 28 x 28 uint8     train-labels-idx1-ubyte.gz   60000
    t10k-images-idx3-ubyte.gz    10000 x 28 x 28 uint8     t10k-labels-idx1-ubyte.gz    10000

An IDX file is a 4-byte magic number (two zero bytes, the element type, 0x08 for
unsigned bytes, and the number of dimensions), one big-endian 32-bit size per
dimension, then the elements in row-major order.

Where the files are looked for, in the data folder (``data_dir``, else
``$MINITORCH_ALEXNET_DATA``, else ``~/.cache/minitorch_alexnet``, as for CIFAR-10):
``mnist/`` (``fashion-mnist/``), torchvision's ``MNIST/raw/`` (``FashionMNIST/raw/``),
or the folder itself. Uncompressed copies (the names without ``.gz``) are read too, but
only the ``.gz`` files have official checksums, so unpacked ones load as unverified.
Missing files are downloaded into ``mnist/`` (``fashion-mnist/``) when allowed, from
``$MINITORCH_ALEXNET_MNIST_URL`` (``$MINITORCH_ALEXNET_FASHION_MNIST_URL``) if set, a
folder address for a mirror, else from each official address in turn; the download
(:func:`~.download.download_file`) is resumable and checked against the official MD5.

Every load checks each ``.gz`` file's MD5 against the official one. As both datasets
use the same names, a file that is the *other* dataset's official file (MNIST's, when
Fashion-MNIST is asked for) raises :class:`DatasetError` saying so. Files that match
neither (a copy of your own, say), and unpacked files, which cannot be checked, still
load if they are well-formed, with an :class:`UnverifiedDatasetWarning` naming them
and ``(unverified: ...)`` in the splits' ``source``; a damaged file (bad gzip, wrong
sizes, labels out of range) raises :class:`CorruptDatasetError` naming it.
"""

from __future__ import annotations

import gzip
import io
import os
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dataset import (
    CorruptDatasetError,
    DatasetError,
    DatasetNotFoundError,
    DatasetSplits,
    DownloadError,
    ImageDataset,
    UnverifiedDatasetWarning,
    host_numpy,
)
from .download import download_file
from .files import ENV_VAR, data_root, md5_bytes

__all__ = ["FASHION_MNIST", "MNIST", "IdxDataset", "load_fashion_mnist", "load_mnist", "read_idx"]

TRAIN_IMAGES, TRAIN_LABELS = "train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"
TEST_IMAGES, TEST_LABELS = "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"
IDX_FILES = (TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS)
#: Bytes a file may hold, compressed or not (the largest official one: 47 MB unpacked).
MAX_IDX_BYTES = 64_000_000


@dataclass(frozen=True)
class IdxDataset:
    """What differs between MNIST and Fashion-MNIST: names, addresses, checksums, classes."""

    name: str  # the DatasetSplits name, "mnist"
    title: str  # for messages, "MNIST"
    folder: str  # where downloads go under the data folder
    torchvision_folder: str  # torchvision's root/<this>/raw, read if present
    mirrors: tuple[str, ...]  # folder addresses, tried in turn
    url_env: str  # environment variable naming a mirror
    md5: dict[str, str]  # official MD5 of each .gz file
    classes: tuple[str, ...]
    mean: tuple[float, ...]  # of the training images, scaled to [0, 1]
    std: tuple[float, ...]
    megabytes: int  # the four .gz files together


MNIST = IdxDataset(
    name="mnist",
    title="MNIST",
    folder="mnist",
    torchvision_folder="MNIST",
    mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
    url_env="MINITORCH_ALEXNET_MNIST_URL",
    md5={
        TRAIN_IMAGES: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        TRAIN_LABELS: "d53e105ee54ea40749a09fcbcd1e9432",
        TEST_IMAGES: "9fb629c4189551a2d022fa330f9573f3",
        TEST_LABELS: "ec29112dd5afa0611ce80d1b7f02629c",
    },
    classes=tuple(
        f"{i} - {w}"
        for i, w in enumerate("zero one two three four five six seven eight nine".split())
    ),
    mean=(0.1307,),
    std=(0.3081,),
    megabytes=12,
)
FASHION_MNIST = IdxDataset(
    name="fashion-mnist",
    title="Fashion-MNIST",
    folder="fashion-mnist",
    torchvision_folder="FashionMNIST",
    mirrors=(
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    ),
    url_env="MINITORCH_ALEXNET_FASHION_MNIST_URL",
    md5={
        TRAIN_IMAGES: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        TRAIN_LABELS: "25c81989df183df01b3e8a0aad5dffbe",
        TEST_IMAGES: "bef4ecab320f06d8554ea6380940ec79",
        TEST_LABELS: "bb300cfdad3c16e7a12a480ee83cd310",
    },
    classes=(
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    ),
    mean=(0.2860,),
    std=(0.3530,),
    megabytes=31,
)


def _existing(folder: Path, name: str) -> Path | None:
    """``name`` (.gz) in ``folder``, else its uncompressed twin, else None."""
    for candidate in (folder / name, folder / name.removesuffix(".gz")):
        if os.path.lexists(candidate):
            return candidate
    return None


def _candidates(spec: IdxDataset, root: Path) -> list[Path]:
    return [root / spec.folder, root / spec.torchvision_folder / "raw", root]


def _find(spec: IdxDataset, root: Path) -> Path | None:
    """The first candidate folder that holds all four files (.gz or not)."""
    for folder in _candidates(spec, root):
        if all(_existing(folder, name) for name in IDX_FILES):
            return folder
    return None


def read_idx(path: str | os.PathLike, ndim: int) -> tuple[Any, str]:
    """The uint8 array of an IDX file (gzip-compressed or not) and the file's MD5.

    Raises:
        CorruptDatasetError: not a file, too large, bad gzip, not a ``ndim``-dimensional
            unsigned-byte IDX file, or sizes that do not match the bytes.
    """
    path = Path(path)
    np = host_numpy()
    if not path.is_file():
        raise CorruptDatasetError(f"{path} is not a regular file; delete or rename it")
    if path.stat().st_size > MAX_IDX_BYTES:
        raise CorruptDatasetError(f"{path} is larger than any {ndim}-d IDX file of this kind")
    raw = path.read_bytes()
    blob = raw
    if raw[:2] == b"\x1f\x8b":  # gzip: unpack at most MAX_IDX_BYTES + 1 (no zip bomb)
        try:
            blob = gzip.GzipFile(fileobj=io.BytesIO(raw)).read(MAX_IDX_BYTES + 1)
        except (OSError, EOFError, zlib.error) as e:
            raise CorruptDatasetError(
                f"{path} is not a complete gzip file ({e}); delete it and run again to "
                "download a fresh copy"
            ) from None
    header = 4 + 4 * ndim
    if len(blob) < header or blob[:4] != bytes((0, 0, 0x08, ndim)) or len(blob) > MAX_IDX_BYTES:
        raise CorruptDatasetError(
            f"{path} is not a {ndim}-d IDX file of unsigned bytes (its header is "
            f"{blob[:4].hex() or 'missing'}, expected 000008{ndim:02x}); delete it and run again"
        )
    shape = tuple(int.from_bytes(blob[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = 1
    for d in shape:
        count *= d
    if len(blob) - header != count:
        raise CorruptDatasetError(
            f"{path}: its header promises {shape} = {count} bytes, but {len(blob) - header} "
            "follow: the file is truncated or damaged; delete it and run again"
        )
    array = np.frombuffer(blob, dtype=np.uint8, offset=header).reshape(shape).copy()
    return array, md5_bytes(raw)


def _check_md5(spec: IdxDataset, root: Path, path: Path, name: str, got: str) -> str | None:
    """None for ``spec``'s official file; "mismatch" or "unpacked" for one to warn about.

    Raises:
        DatasetError: the file is the other dataset's official file (the names are the
            same for both, so MNIST's files can sit where Fashion-MNIST is looked for).
    """
    if got == spec.md5[name]:
        return None
    for other in (MNIST, FASHION_MNIST):
        if other.name != spec.name and got == other.md5[name]:
            raise DatasetError(
                f"{path} is the official {other.title} file {name}, not {spec.title}'s: the "
                f"two datasets use the same file names. Move {other.title}'s files into "
                f"{root / other.folder}/ and put {spec.title}'s {', '.join(IDX_FILES)} into "
                f"{root / spec.folder}/ (or run with downloading allowed, which fetches them "
                "there once the other dataset's files are moved)."
            )
    return "mismatch" if path.suffix == ".gz" else "unpacked"  # only .gz files have MD5s


def _read_split(
    spec: IdxDataset,
    folder: Path,
    images: str,
    labels: str,
    unverified: dict[str, list[str]],
    root: Path,
) -> tuple[Any, Any]:
    np = host_numpy()
    paths = [_existing(folder, images), _existing(folder, labels)]
    (x, md5_x), (y, md5_y) = read_idx(paths[0], 3), read_idx(paths[1], 1)
    for path, name, got in ((paths[0], images, md5_x), (paths[1], labels, md5_y)):
        why = _check_md5(spec, root, path, name, got)
        if why is not None:
            unverified[why].append(path.name)
    if x.shape[0] != y.shape[0] or x.shape[0] == 0:
        raise CorruptDatasetError(
            f"{paths[0]} has {x.shape[0]} images but {paths[1]} has {y.shape[0]} labels"
        )
    if y.max() >= len(spec.classes):
        raise CorruptDatasetError(
            f"{paths[1]} has label {int(y.max())}; {spec.title} has {len(spec.classes)} classes"
        )
    return x[:, None, :, :], y.astype(np.int64)  # (N, 1, H, W)


def _download(spec: IdxDataset, root: Path, url: str | None, progress: bool) -> None:
    """Fetch each missing file into root/<folder>, trying the mirrors in turn."""
    folder = root / spec.folder
    mirror = url or os.environ.get(spec.url_env)
    bases = [mirror] if mirror else list(spec.mirrors)
    hint = _how_to_get(spec, root)
    for name in IDX_FILES:
        if _existing(folder, name):
            continue
        failures = []
        for base in bases:
            address = base.rstrip("/") + "/" + name
            try:
                download_file(
                    address, folder / name, spec.md5[name], what=spec.title, progress=progress
                )
                break
            except DownloadError as e:
                failures.append(str(e))
        else:
            raise DownloadError("\n".join([*failures, hint]))  # one line per address tried


def _how_to_get(spec: IdxDataset, root: Path) -> str:
    return (
        f"Get it by running with downloading allowed (the four files, {spec.megabytes} MB, from "
        f"{spec.mirrors[0]}), or put {', '.join(IDX_FILES)} into {root / spec.folder}/ yourself. "
        f"A mirror can be named with ${spec.url_env}, the folder with data_dir / --data-dir "
        f"or ${ENV_VAR}."
    )


def load_idx_dataset(
    spec: IdxDataset,
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    url: str | None = None,
) -> DatasetSplits:
    """Load ``spec`` (:data:`MNIST` or :data:`FASHION_MNIST`); see :func:`load_mnist`."""
    root = data_root(data_dir)
    folder = _find(spec, root)
    if folder is None:
        if not download:
            where = ", ".join(f"{p}/" for p in _candidates(spec, root))
            raise DatasetNotFoundError(
                f"{spec.title} was not found: looked for its four files in {where}. "
                + _how_to_get(spec, root)
            )
        _download(spec, root, url, progress)
        folder = root / spec.folder
    unverified: dict[str, list[str]] = {"mismatch": [], "unpacked": []}
    train = _read_split(spec, folder, TRAIN_IMAGES, TRAIN_LABELS, unverified, root)
    test = _read_split(spec, folder, TEST_IMAGES, TEST_LABELS, unverified, root)
    source = str(folder)
    if unverified["mismatch"] or unverified["unpacked"]:
        why = []
        if unverified["mismatch"]:
            why.append(
                f"the MD5s of {', '.join(unverified['mismatch'])} are not those of the "
                f"official {spec.title} files"
            )
        if unverified["unpacked"]:
            why.append(
                f"{', '.join(unverified['unpacked'])} are unpacked (no .gz), and unpacked "
                "files cannot be checked against the official checksums, which are those of "
                "the .gz files; keep the .gz files to have them checked"
            )
        warnings.warn(
            UnverifiedDatasetWarning(
                f"{folder}: loading UNVERIFIED data: {'; '.join(why)}. They are well-formed "
                f"IDX files and are used, but results on them may differ from results on "
                f"{spec.title}."
            ),
            stacklevel=3,
        )
        if unverified["mismatch"]:
            source += " (unverified: not the official files)"
        else:
            source += " (unverified: unpacked files, not checked against the official MD5s)"
    return DatasetSplits(
        ImageDataset(*train, spec.classes, f"{spec.name}-train"),
        ImageDataset(*test, spec.classes, f"{spec.name}-test"),
        spec.name,
        source,
    )


def load_mnist(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    url: str | None = None,
) -> DatasetSplits:
    """Load MNIST, downloading the missing files first when allowed.

    Args:
        data_dir: the data folder (default: :func:`~.files.default_data_dir`).
        download: fetch the files that are not there.
        progress: show a progress bar while downloading.
        url: the folder address of a mirror (default: ``$MINITORCH_ALEXNET_MNIST_URL``,
            else the official addresses in turn).

    Returns:
        :class:`DatasetSplits` ``"mnist"``: 60000 training and 10000 test images, uint8
        ``(N, 1, 28, 28)``, int64 labels in ``[0, 10)``.

    Warns:
        UnverifiedDatasetWarning: a file's MD5 is not the official one, or the file is
            unpacked and cannot be checked (it is used all the same, being a well-formed
            IDX file).

    Raises:
        DatasetNotFoundError: not there and ``download`` is False.
        DownloadError: not there and every address failed (offline, say).
        CorruptDatasetError: a file is damaged (never used).
        DatasetError: the files are Fashion-MNIST's official files (the names are the
            same); the message says where each dataset's files go.
    """
    return load_idx_dataset(MNIST, data_dir, download, progress, url)


def load_fashion_mnist(
    data_dir: str | os.PathLike | None = None,
    download: bool = True,
    progress: bool = True,
    url: str | None = None,
) -> DatasetSplits:
    """Load Fashion-MNIST (Zalando's 28x28 greyscale clothes, ten classes), as :func:`load_mnist`
    (mirror variable ``$MINITORCH_ALEXNET_FASHION_MNIST_URL``); splits named ``"fashion-mnist"``.
    """
    return load_idx_dataset(FASHION_MNIST, data_dir, download, progress, url)
