"""Datasets and batches: CIFAR-10, MNIST, Fashion-MNIST, image folders, a synthetic stand-in,
and a DataLoader.

Modules: ``files`` (the official names, checksums and size limits), ``download``,
``archive`` (safe extraction), ``batches`` (safe reading of a batch file), ``cifar``
(finding, checking and loading the folder), ``mnist`` (MNIST and Fashion-MNIST),
``imagefolder`` (your own images), ``registry`` (the datasets by name), ``dataset``,
``loader``, ``synthetic``.

from minitorch_alexnet import data
splits = data.load_cifar10()                      # or data.make_synthetic(5000, 1000)
loader = data.DataLoader(splits.train, batch_size=128, shuffle=True, augment=True, seed=0)
for x, y in loader:                               # float32 (B, 3, 32, 32), int64 (B,)
    ...
"""

from .cifar import (
    CIFAR10_CLASSES,
    CIFAR10_FILE_MD5,
    CIFAR10_FOLDER,
    CIFAR10_MD5,
    CIFAR10_URL,
    default_data_dir,
    download_cifar10,
    extract_archive,
    find_cifar10,
    load_cifar10,
    md5sum,
    read_batch,
)
from .dataset import (
    CorruptDatasetError,
    DatasetError,
    DatasetIOError,
    DatasetNotFoundError,
    DatasetSplits,
    DiskFullError,
    DownloadError,
    ImageDataset,
    UnsafeArchiveError,
    UnverifiedDatasetWarning,
)
from .imagefolder import IMAGENET_MEAN, IMAGENET_STD, ImageFolder, load_image_folder
from .loader import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    FLIPS,
    PADDING_MODES,
    DataLoader,
    crop_flip,
    normalize,
)
from .mnist import load_fashion_mnist, load_mnist
from .registry import DATASETS, load_dataset, normalization
from .synthetic import SYNTHETIC_CLASSES, make_synthetic

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR10_FILE_MD5",
    "CIFAR10_FOLDER",
    "CIFAR10_MD5",
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "CIFAR10_URL",
    "CorruptDatasetError",
    "DATASETS",
    "DataLoader",
    "DatasetError",
    "DatasetIOError",
    "DatasetNotFoundError",
    "DatasetSplits",
    "DiskFullError",
    "DownloadError",
    "FLIPS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "ImageDataset",
    "ImageFolder",
    "PADDING_MODES",
    "SYNTHETIC_CLASSES",
    "UnsafeArchiveError",
    "UnverifiedDatasetWarning",
    "crop_flip",
    "default_data_dir",
    "download_cifar10",
    "extract_archive",
    "find_cifar10",
    "load_cifar10",
    "load_dataset",
    "load_fashion_mnist",
    "load_image_folder",
    "load_mnist",
    "make_synthetic",
    "md5sum",
    "normalization",
    "normalize",
    "read_batch",
]
