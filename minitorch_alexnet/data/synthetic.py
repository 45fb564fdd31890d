"""A synthetic, CIFAR-shaped dataset for offline runs and tests.

Each of the ten classes is a striped pattern with its own *colour* and its own
*stripe orientation* (0, 18, 36, ... 162 degrees). Every image draws a random
stripe phase, contrast and colour tint and adds pixel noise, so a model must
learn from colour and orientation together; a small CNN reaches high accuracy
within an epoch or two, a linear model on raw pixels does much worse.

The numbers a model reaches here say nothing about CIFAR-10.
"""

from __future__ import annotations

import math

from .dataset import DatasetSplits, ImageDataset, host_numpy, integer_labels

__all__ = ["SYNTHETIC_CLASSES", "make_synthetic", "synthetic_images"]

SYNTHETIC_CLASSES = tuple(f"pattern{c}" for c in range(10))


def synthetic_images(
    labels: object, seed: int, size: int = 32, noise: float = 0.12, chunk: int = 2048
) -> object:
    """Images for the given labels.

    Args:
        labels: int array ``(N,)`` with values in ``[0, 10)``.
        seed: seeds the per-image randomness (phase, contrast, tint, noise).
        size: image height and width.
        noise: standard deviation of the pixel noise, on a 0..1 intensity scale.
        chunk: images generated at a time (bounds the float memory used).

    Returns:
        ``uint8`` array ``(N, 3, size, size)``.
    """
    np = host_numpy()
    labels = integer_labels(labels)
    n = labels.shape[0]
    rng = np.random.default_rng(seed)
    c = np.arange(10)
    angle = c * math.pi / 10
    freq = 3.0 + (c % 3)  # stripes per image side
    hue = 2 * math.pi * c / 10
    colour = 0.5 + 0.3 * np.stack([np.cos(hue + k * 2 * math.pi / 3) for k in range(3)], axis=1)
    yy, xx = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    out = np.empty((n, 3, size, size), dtype=np.uint8)
    for start in range(0, n, chunk):
        lab = labels[start : start + chunk]
        m = lab.shape[0]
        phase = rng.uniform(0, 2 * math.pi, size=(m, 1, 1))
        contrast = rng.uniform(0.15, 0.35, size=(m, 1, 1, 1))
        tint = colour[lab] + rng.normal(0, 0.08, size=(m, 3))
        proj = np.cos(angle[lab])[:, None, None] * xx + np.sin(angle[lab])[:, None, None] * yy
        stripes = np.sin(2 * math.pi * freq[lab][:, None, None] * proj / size + phase)
        img = tint[:, :, None, None] + contrast * stripes[:, None, :, :]
        img += rng.normal(0, noise, size=img.shape)
        out[start : start + m] = np.clip(img * 255 + 0.5, 0, 255).astype(np.uint8)
    return out


def make_synthetic(n_train: int = 5000, n_test: int = 1000, seed: int = 0) -> DatasetSplits:
    """Train and test splits of the synthetic dataset, balanced over the ten classes.

    Args:
        n_train: number of training images.
        n_test: number of test images.
        seed: the whole dataset is a function of this seed.

    Returns:
        :class:`DatasetSplits` with ``uint8`` ``(N, 3, 32, 32)`` images and ``int64``
        labels, like :func:`load_cifar10`'s.
    """
    np = host_numpy()
    ss = np.random.SeedSequence(seed)
    s_train, s_test, s_perm = ss.spawn(3)
    perm = np.random.default_rng(s_perm)

    def split(n: int, s: object, name: str) -> ImageDataset:
        labels = perm.permutation(np.arange(n, dtype=np.int64) % 10)
        images = synthetic_images(labels, seed=s)
        return ImageDataset(images, labels, SYNTHETIC_CLASSES, name)

    return DatasetSplits(
        split(n_train, s_train, "synthetic-train"),
        split(n_test, s_test, "synthetic-test"),
        "synthetic",
        f"synthetic(n_train={n_train}, n_test={n_test}, seed={seed})",
    )
