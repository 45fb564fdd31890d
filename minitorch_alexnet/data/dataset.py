"""The dataset containers and the errors shared by the CIFAR-10 and synthetic loaders."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import backend as _backend

__all__ = [
    "CorruptDatasetError",
    "DatasetError",
    "DatasetIOError",
    "DatasetNotFoundError",
    "DatasetSplits",
    "DiskFullError",
    "DownloadError",
    "ImageDataset",
    "UnsafeArchiveError",
    "UnverifiedDatasetWarning",
]


host_numpy = _backend.host_xp  # NumPy, for host-side file reading


class DatasetError(RuntimeError):
    """Something is wrong with a dataset on disk or its download."""


class DatasetNotFoundError(DatasetError):
    """The dataset is not in the data folder and was not (or could not be) downloaded."""


class DownloadError(DatasetNotFoundError):
    """The download failed (offline, server unreachable, interrupted)."""


class CorruptDatasetError(DatasetError):
    """A dataset file exists but is damaged, truncated or not what it claims to be."""


class UnsafeArchiveError(CorruptDatasetError):
    """An archive member is a link, a device, would land outside the folder, or is too large."""


class DatasetIOError(DatasetError, OSError):
    """The data folder could not be written (no permission, not a folder, ...).

    Also an ``OSError``, with the ``errno`` and ``filename`` of the failure.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DiskFullError(DatasetIOError):
    """The disk filled up while downloading or extracting (``ENOSPC``); nothing damaged is kept."""


class UnverifiedDatasetWarning(UserWarning):
    """A dataset folder was loaded whose files match no known checksum (e.g. a re-encoded copy)."""


def integer_labels(labels: Any, what: str = "labels") -> Any:
    """``labels`` as an int64 host array, exactly: a float label that is not a whole
    number (3.7) or not finite is refused, since converting it would truncate it."""
    np = host_numpy()
    a = np.asarray(labels)
    if a.dtype.kind in "iu":
        return a.astype(np.int64, copy=False)
    if a.dtype.kind != "f":
        raise TypeError(f"{what} must be integer class indices, got dtype {a.dtype}")
    bad = ~np.isfinite(a) | (a != np.round(a))
    if bad.any():
        shown = ", ".join(str(v) for v in a[bad][:5])
        raise ValueError(
            f"{what} must be whole numbers (class indices), got {shown}"
            f"{' ...' if bad.sum() > 5 else ''}: converting would truncate them; fix the "
            "labels where they are made"
        )
    return a.astype(np.int64)


@dataclass(frozen=True)
class ImageDataset:
    """Images and labels held on the host.

    Attributes:
        images: ``uint8`` array of shape ``(N, C, H, W)``: ``(N, 3, 32, 32)`` for CIFAR-10
            (channels R, G, B), ``(N, 1, 28, 28)`` for MNIST.
        labels: ``int64`` array of shape ``(N,)`` with values in ``[0, len(classes))``.
        classes: the class names, indexed by label.
        name: a short description (``"cifar10-train"``, ``"synthetic-test"``, ...).
    """

    images: Any
    labels: Any
    classes: tuple[str, ...]
    name: str

    def __post_init__(self) -> None:
        if self.images.ndim != 4 or self.images.dtype.kind != "u":
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {self.images.dtype} {self.images.shape}"
            )
        object.__setattr__(self, "labels", integer_labels(self.labels))  # exact int64
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(
                f"{self.images.shape[0]} images but labels of shape {tuple(self.labels.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def subset(self, n: int | None) -> ImageDataset:
        """The first ``n`` examples (all of them for ``None`` or ``n >= len``).

        CIFAR-10's batches are stored in a shuffled order, so a prefix is a fair sample.
        """
        if n is None or n >= len(self):
            return self
        if n <= 0:
            raise ValueError(f"subset size must be positive, got {n}")
        return ImageDataset(self.images[:n], self.labels[:n], self.classes, f"{self.name}[:{n}]")


@dataclass(frozen=True)
class DatasetSplits:
    """A training and a test split.

    Attributes:
        train: the training images.
        test: the test images.
        name: ``"cifar10"``, ``"mnist"``, ``"fashion-mnist"``, ``"imagefolder"`` or ``"synthetic"``.
        source: where the data came from (a folder, or the generator's settings).
    """

    train: ImageDataset
    test: ImageDataset
    name: str
    source: str

    @property
    def classes(self) -> tuple[str, ...]:
        return self.train.classes
