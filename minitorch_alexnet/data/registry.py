"""The datasets by name, as ``--dataset`` names them, and the statistics each is normalised with.

::

    splits = load_dataset("fashion-mnist")                      # or "mnist", "cifar10"
    splits = load_dataset("imagefolder", "~/imagenette2-160", image_size=224)
    mean, std = normalization(splits)                            # for the DataLoader
"""

from __future__ import annotations

import os

from .cifar import load_cifar10
from .dataset import DatasetError, DatasetSplits
from .imagefolder import IMAGENET_MEAN, IMAGENET_STD, load_image_folder
from .loader import CIFAR10_MEAN, CIFAR10_STD
from .mnist import FASHION_MNIST, MNIST, load_idx_dataset

__all__ = ["DATASETS", "load_dataset", "normalization", "statistics"]

#: Every dataset :func:`load_dataset` knows (``"synthetic"`` is :func:`~.synthetic.make_synthetic`).
DATASETS = ("cifar10", "mnist", "fashion-mnist", "imagefolder")

#: Per-channel (mean, std) of each dataset's training images, scaled to [0, 1].
STATISTICS = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "synthetic": (CIFAR10_MEAN, CIFAR10_STD),
    "mnist": (MNIST.mean, MNIST.std),
    "fashion-mnist": (FASHION_MNIST.mean, FASHION_MNIST.std),
    "imagefolder": (IMAGENET_MEAN, IMAGENET_STD),
}


def load_dataset(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    image_size: int = 32,
) -> DatasetSplits:
    """The training and test splits of dataset ``name`` (one of :data:`DATASETS`).

    ``data_dir`` is the data folder (for ``"imagefolder"``: the image folder itself,
    which must be given); ``image_size`` is the side image-folder images are resized to.
    The other datasets come at their own size (32 for CIFAR-10, 28 for MNIST).
    """
    key = name.lower().replace("_", "-")
    if key == "cifar10":
        return load_cifar10(data_dir, download=download, progress=progress)
    if key in ("mnist", "fashion-mnist"):
        spec = MNIST if key == "mnist" else FASHION_MNIST
        return load_idx_dataset(spec, data_dir, download=download, progress=progress)
    if key == "imagefolder":
        if data_dir is None:
            raise DatasetError(
                "the imagefolder dataset needs its folder: data_dir= (--data-dir PATH), the "
                "folder with one sub-folder of images per class"
            )
        return load_image_folder(data_dir, size=image_size)
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")


def statistics(name: str, channels: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel of the dataset called ``name``; for data without known
    statistics 0.5 and 0.5, which map [0, 1] to [-1, 1]."""
    return STATISTICS.get(name, ((0.5,) * channels, (0.5,) * channels))


def normalization(splits: DatasetSplits) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per channel for the DataLoader's normalisation of ``splits``."""
    return statistics(splits.name, splits.train.images.shape[1])
