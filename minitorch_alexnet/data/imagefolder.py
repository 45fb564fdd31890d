"""Your own images: one folder per class, as torchvision's ``ImageFolder`` reads them.

::

    root/                      or     root/
      cat/ 0001.jpg ...                 train/ cat/ ...  dog/ ...
      dog/ a.png ...                    val/   cat/ ...  dog/ ...   (or test/)

The class names are the sub-folder names, sorted, so label 0 is the first in
alphabetical order (``ImageFolder(root).classes``). Files with an image suffix
(:data:`IMAGE_SUFFIXES`) in a class folder and its sub-folders are images; anything
else and hidden files are skipped. Images are read with Pillow when they are needed
and made square: the largest centred square with the image's aspect ratio is
cropped and resized to ``size x size`` (``ImageOps.fit``, bilinear; torchvision's
``Resize(size)`` then ``CenterCrop(size)`` gives the same picture), in RGB.

:func:`load_image_folder` makes the training and test splits for the
:class:`~.loader.DataLoader`: from ``train/`` and ``val/`` (or ``test/``) when the root
has them (Imagenette's layout), else by holding out ``test_fraction`` of each class.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from .dataset import (
    CorruptDatasetError,
    DatasetError,
    DatasetNotFoundError,
    DatasetSplits,
    ImageDataset,
    host_numpy,
)

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_SUFFIXES", "ImageFolder", "load_image_folder"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".ppm", ".tif", ".tiff")
#: The channel statistics torchvision's ImageNet models are trained with.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
#: The most bytes of decoded images one split may hold in memory.
MAX_SPLIT_BYTES = 8 * 2**30


def _pillow() -> Any:
    try:
        from PIL import Image, ImageOps
    except ImportError:
        raise ImportError("reading image folders needs Pillow: pip install Pillow") from None
    return Image, ImageOps


def load_image(path: str | os.PathLike, size: int) -> Any:
    """One image file as uint8 ``(3, size, size)``: centre-cropped to a square, resized, RGB.

    Raises:
        CorruptDatasetError: Pillow cannot read the file (naming it).
    """
    Image, ImageOps = _pillow()
    np = host_numpy()
    try:
        with Image.open(path) as img:
            img.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when it can
            img = ImageOps.exif_transpose(img)  # photos stored sideways, upright
            img = ImageOps.fit(img.convert("RGB"), (size, size), Image.Resampling.BILINEAR)
            return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).copy()
    except (OSError, ValueError, Image.DecompressionBombError) as e:
        raise CorruptDatasetError(
            f"{path} could not be read as an image ({type(e).__name__}: {e}); delete or move it "
            "out of the image folder"
        ) from None


def _visible(entry: os.DirEntry) -> bool:
    return not entry.name.startswith(".")


def find_classes(root: Path) -> list[str]:
    """The class folders of ``root``, sorted (hidden folders skipped)."""
    if not root.is_dir():
        what = "a file" if root.exists() else "not there"
        raise DatasetNotFoundError(
            f"image folder {root} is {what}: give the folder that holds one sub-folder of "
            "images per class (root/cat/1.jpg, root/dog/2.png, ...)"
        )
    with os.scandir(root) as it:
        classes = sorted(e.name for e in it if e.is_dir() and _visible(e))
    if not classes:
        raise DatasetNotFoundError(
            f"image folder {root} has no class folders: put the images of each class in a "
            "sub-folder named after it (root/cat/1.jpg, root/dog/2.png, ...)"
        )
    return classes


def _images_in(folder: Path) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        found += [
            Path(dirpath) / f
            for f in sorted(filenames)
            if not f.startswith(".") and f.lower().endswith(IMAGE_SUFFIXES)
        ]
    return found


class ImageFolder:
    """The images of ``root/<class>/...``, read and resized one at a time, as torchvision's.

    Attributes:
        root: the folder.
        classes: the class names (sorted sub-folder names); ``class_to_idx`` maps back.
        samples: ``(path, label)`` for every image, class by class, files sorted.
        targets: the labels of ``samples``.
        size: the side images are resized to.

    ``folder[i]`` is ``(image, label)``: uint8 ``(3, size, size)`` and an int.
    """

    def __init__(
        self, root: str | os.PathLike, size: int = 32, classes: Sequence[str] | None = None
    ) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"ImageFolder: size must be a positive int (pixels), got {size!r}")
        self.root = Path(root).expanduser()
        self.size = size
        found = find_classes(self.root)
        if classes is not None:  # a test split uses the training split's classes
            extra = [c for c in found if c not in classes]
            if extra:
                raise DatasetError(
                    f"{self.root} has class folders the training images lack: "
                    f"{', '.join(extra)}; give every class training images, or remove these"
                )
            found = list(classes)
        self.classes = list(found)
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}
        self.samples = [
            (path, i) for i, c in enumerate(self.classes) for path in _images_in(self.root / c)
        ]
        if not self.samples:
            raise DatasetNotFoundError(
                f"image folder {self.root} has class folders ({', '.join(self.classes[:5])}"
                f"{' ...' if len(self.classes) > 5 else ''}) but no images "
                f"({', '.join(IMAGE_SUFFIXES)}) in them"
            )
        self.targets = [label for _, label in self.samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[Any, int]:
        path, label = self.samples[i]
        return load_image(path, self.size), label

    def to_dataset(
        self, name: str, indices: Sequence[int] | None = None, workers: int | None = None
    ) -> ImageDataset:
        """Read the images at ``indices`` (all by default), in that order, into an
        :class:`ImageDataset` of uint8 ``(N, 3, size, size)``; several threads decode."""
        np = host_numpy()
        order = list(range(len(self))) if indices is None else list(indices)
        need = len(order) * 3 * self.size * self.size
        if need > MAX_SPLIT_BYTES:
            raise DatasetError(
                f"{len(order)} images of {self.size}x{self.size} take {need / 2**30:.1f} GiB "
                f"in memory, more than {MAX_SPLIT_BYTES / 2**30:.0f} GiB; choose a smaller "
                "size or a model with smaller inputs, or train on a subset of the folder"
            )
        images = np.empty((len(order), 3, self.size, self.size), dtype=np.uint8)
        paths = [self.samples[i][0] for i in order]
        workers = workers or min(8, os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:  # Pillow decodes outside the GIL
            for k, image in enumerate(pool.map(load_image, paths, [self.size] * len(paths))):
                images[k] = image
        labels = np.asarray([self.samples[i][1] for i in order], dtype=np.int64)
        return ImageDataset(images, labels, tuple(self.classes), name)


def _split_folders(root: Path) -> tuple[Path, Path] | None:
    """(train, test) sub-folders when ``root`` has ``train/`` and ``val/`` or ``test/``."""
    if not (root / "train").is_dir():
        return None
    for test in ("val", "test"):
        if (root / test).is_dir():
            return root / "train", root / test
    return None


def load_image_folder(
    root: str | os.PathLike,
    size: int = 32,
    test_fraction: float = 0.2,
    seed: int = 0,
    workers: int | None = None,
) -> DatasetSplits:
    """Training and test splits from an image folder, read and resized now.

    Args:
        root: ``root/<class>/<image>``, or ``root/train/<class>/...`` with
            ``root/val/<class>/...`` (or ``test/``).
        size: the side images are cropped and resized to (the model's input side).
        test_fraction: without ``train/``/``val/``: the share of each class held out for
            testing (at least one image of each class with two or more).
        seed: which images are held out, and the order of each split (shuffled, so that
            the first N of a split are a fair sample).
        workers: threads decoding images (default: up to 8).

    Returns:
        :class:`DatasetSplits` ``"imagefolder"`` of uint8 ``(N, 3, size, size)`` images.

    Raises:
        DatasetNotFoundError: no such folder, no class folders, or no images.
        CorruptDatasetError: an image Pillow cannot read (named).
    """
    if not 0 < test_fraction < 1:
        raise ValueError(f"test_fraction must be between 0 and 1, got {test_fraction}")
    np = host_numpy()
    rng = np.random.default_rng(seed)
    root = Path(root).expanduser()
    split = _split_folders(root)
    if split is not None:
        train = ImageFolder(split[0], size)
        test = ImageFolder(split[1], size, classes=train.classes)
        train_idx, test_idx = rng.permutation(len(train)), rng.permutation(len(test))
    else:
        train = test = ImageFolder(root, size)
        targets = np.asarray(train.targets)
        train_idx, test_idx = [], []
        for label in range(len(train.classes)):
            members = rng.permutation(np.flatnonzero(targets == label))
            held = int(round(test_fraction * len(members)))
            held = min(max(held, 1), len(members) - 1) if len(members) > 1 else 0
            test_idx += members[:held].tolist()
            train_idx += members[held:].tolist()
        if not test_idx:
            raise DatasetError(
                f"image folder {root}: every class has a single image, so none is left to "
                "test on; add images"
            )
        train_idx, test_idx = rng.permutation(train_idx), rng.permutation(test_idx)
    return DatasetSplits(
        train.to_dataset("imagefolder-train", train_idx.tolist(), workers),
        test.to_dataset("imagefolder-test", test_idx.tolist(), workers),
        "imagefolder",
        f"{root} ({size}x{size})",
    )
