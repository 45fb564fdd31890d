"""Mini-batches on the active backend, with batch-vectorised augmentation.

The :class:`DataLoader` uploads the whole ``uint8`` dataset to the backend once
(on CuPy: to the GPU), then per batch it only indexes, augments and normalises
there; no image crosses between host and device during an epoch.

Augmentation is the standard CIFAR recipe, done for the whole batch at once with
one fancy-indexing gather (no per-image loop):

* random crop: pad each image with ``padding`` pixels on every side, zero
  (black) or its edge mirrored (``padding_mode="reflect"``), and cut a random
  32x32 window out of it (offsets in ``[0, 2 * padding]``);
* horizontal flip: with probability 1/2 each epoch (``flip="random"``), or
  random in the first epoch and then each image the mirror of its previous
  epoch (``flip="alternate"``: every image is seen both ways in any two epochs);

followed by normalisation, ``(x / 255 - mean) / std`` per channel, to ``float32``.

Reproducibility: the order of examples and the random crops/flips of an epoch
are functions of ``(seed, epoch)`` only. :meth:`DataLoader.set_epoch` chooses the
epoch, so a training run resumed at epoch ``e`` sees exactly the batches an
uninterrupted run sees in epoch ``e``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from .. import backend as _backend
from .dataset import ImageDataset, host_numpy

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "FLIPS",
    "PADDING_MODES",
    "DataLoader",
    "crop_flip",
    "epoch_permutation",
    "normalize",
]

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
PADDING_MODES = ("zeros", "reflect")  # what a crop's border is: black, or the edge mirrored
FLIPS = ("random", "alternate")  # a coin per image and epoch, or each epoch the other way


def normalize(
    x: Any, mean: Sequence[float] = CIFAR10_MEAN, std: Sequence[float] = CIFAR10_STD
) -> Any:
    """``uint8`` images ``(N, C, H, W)`` to ``float32`` ``(x / 255 - mean[c]) / std[c]``.

    Computed as ``x * scale + shift`` with ``scale = 1 / (255 std)`` and
    ``shift = -mean / std``, in ``float32``, on the array library of ``x``.
    """
    scale, shift = _affine(_backend.array_module(x), mean, std)
    return _apply_affine(x, scale, shift)


def epoch_permutation(seed: int, epoch: int, n: int) -> Any:
    """The shuffled order of ``n`` examples in ``epoch``: a host ``int64`` permutation that
    depends only on ``(seed, epoch)``; the DataLoader's and every DistributedSampler's."""
    return host_numpy().random.default_rng([seed, epoch, 0]).permutation(n)


def _affine(xp: Any, mean: Sequence[float], std: Sequence[float]) -> tuple[Any, Any]:
    """``scale = 1 / (255 std)`` and ``shift = -mean / std`` as float32 ``(1, C, 1, 1)`` arrays."""
    std_ = xp.asarray(std, dtype=xp.float64)
    scale = (1.0 / (255.0 * std_)).astype(xp.float32).reshape(1, -1, 1, 1)
    shift = (-xp.asarray(mean, dtype=xp.float64) / std_).astype(xp.float32).reshape(1, -1, 1, 1)
    return scale, shift


def _apply_affine(x: Any, scale: Any, shift: Any) -> Any:
    out = x.astype(scale.dtype)
    out *= scale
    out += shift
    return out


def crop_flip(
    x: Any, oy: Any, ox: Any, flip: Any, padding: int = 4, padding_mode: str = "zeros"
) -> Any:
    """Crop each image from its padded version and optionally mirror it, all at once.

    Args:
        x: images ``(N, C, H, W)`` (any dtype; ``uint8`` is cheapest).
        oy, ox: int arrays ``(N,)`` with values in ``[0, 2 * padding]``: the window's
            top-left corner in the padded image (``padding`` means no shift).
        flip: bool array ``(N,)``: mirror left-right after cropping.
        padding: pixels added on each side before cropping.
        padding_mode: ``"zeros"`` (black pixels) or ``"reflect"`` (the image mirrored
            at its edge, without repeating the edge pixel, as ``numpy.pad``'s and
            torchvision's ``"reflect"``); needs ``padding < H`` and ``padding < W``.

    Returns:
        Array ``(N, C, H, W)`` of ``x``'s dtype: ``out[n, c, i, j] = padded[n, c, oy + i,
        ox + j']`` with ``j' = W - 1 - j`` where ``flip[n]`` and ``j' = j`` otherwise.
    """
    xp = _backend.array_module(x)
    n, c, h, w = x.shape
    p = int(padding)
    if p > 0 and padding_mode == "reflect":
        padded = xp.pad(x, ((0, 0), (0, 0), (p, p), (p, p)), mode="reflect")
    elif p > 0:
        padded = xp.zeros((n, c, h + 2 * p, w + 2 * p), dtype=x.dtype)
        padded[:, :, p : p + h, p : p + w] = x
    else:
        padded = x
    i = xp.arange(h)
    j = xp.arange(w)
    rows = oy[:, None] + i[None, :]  # (N, H)
    cols = ox[:, None] + xp.where(flip[:, None], w - 1 - j[None, :], j[None, :])  # (N, W)
    return padded[
        xp.arange(n)[:, None, None, None],
        xp.arange(c)[None, :, None, None],
        rows[:, None, :, None],
        cols[:, None, None, :],
    ]


class DataLoader:
    """Shuffled, augmented, normalised mini-batches on the active backend.

    Args:
        dataset: an :class:`ImageDataset` (``uint8`` ``(N, C, H, W)`` images and labels).
        batch_size: examples per batch.
        shuffle: visit the examples in a new random order each epoch.
        drop_last: skip the last, smaller batch.
        augment: random crop (padding ``padding``) and horizontal flip.
        normalize: apply :func:`normalize` with ``mean``/``std``; otherwise the
            batches are ``float32`` in ``[0, 255]``.
        mean, std: per-channel statistics (CIFAR-10's by default).
        padding: crop padding in pixels.
        padding_mode: ``"zeros"`` or ``"reflect"`` (torchvision's ``RandomCrop`` names).
        flip: ``"random"`` (a coin per image and epoch) or ``"alternate"`` (a coin per
            image in the first epoch, then the other way round each epoch).
        seed: seeds the shuffling and augmentation; ``None`` draws one from the
            project's host generator (so :func:`manual_seed` makes it reproducible).
        epoch: the epoch the first pass is (as :meth:`set_epoch`; for resuming).
        backend: the backend to put the data on (default: the active one).
        sampler: the dataset indices of each epoch instead of ``shuffle``, such as a
            :class:`~minitorch_alexnet.distributed.DistributedSampler`; one that has
            ``positions()`` gives each image the crop and flip of that epoch position.

    Iterating yields ``(x, y)``: ``x`` ``float32`` ``(B, C, H, W)`` and ``y`` ``int64``
    ``(B,)``, both arrays of the backend. Each complete pass advances ``epoch``
    by one; :meth:`set_epoch` sets it explicitly (do that when resuming).
    """

    def __init__(
        self,
        dataset: ImageDataset,
        batch_size: int = 128,
        shuffle: bool = False,
        drop_last: bool = False,
        augment: bool = False,
        normalize: bool = True,
        mean: Sequence[float] = CIFAR10_MEAN,
        std: Sequence[float] = CIFAR10_STD,
        padding: int = 4,
        padding_mode: str = "zeros",
        flip: str = "random",
        seed: int | None = None,
        epoch: int = 0,
        backend: str | None = None,
        sampler: Any = None,
    ):
        if sampler is not None and shuffle:
            raise ValueError(
                "DataLoader: sampler and shuffle=True exclude each other (the sampler "
                "chooses the order; shuffle there)"
            )
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if len(dataset) == 0:
            raise ValueError("the dataset is empty")
        for name, value, allowed in (("padding_mode", padding_mode, PADDING_MODES),
                                     ("flip", flip, FLIPS)):  # fmt: skip
            if value not in allowed:
                names = " or ".join(map(repr, allowed))
                raise ValueError(f"{name} must be {names}, not {value!r}")
        side = min(dataset.images.shape[-2:])
        if augment and padding_mode == "reflect" and padding >= side:
            raise ValueError(
                f"padding_mode='reflect' needs padding < the image side ({side}), got {padding}"
            )
        self.backend = _backend.get_backend(backend)
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.augment = augment
        self.normalize = normalize
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.padding = int(padding)
        self.padding_mode = padding_mode
        self.flip = flip
        if seed is None:
            seed = int(_backend.host_rng().integers(0, 2**63 - 1))
        self.seed = int(seed)
        self.epoch = int(epoch)
        self.sampler = sampler
        self._count = len(dataset) if sampler is None else len(sampler)  # examples per pass
        with _backend.use_backend(self.backend.name):
            # the one upload of the data; batches are cut from these arrays
            self._images = _backend.asarray(dataset.images)
            self._labels = _backend.asarray(dataset.labels, dtype="int64")
        # the normalisation constants, made once on the backend (no upload per batch)
        self._scale, self._shift = _affine(self.backend.xp, self.mean, self.std)
        if self.drop_last and len(self) == 0:
            raise ValueError(
                f"drop_last with batch_size {batch_size} > {len(dataset)} examples leaves no batch"
            )

    def __len__(self) -> int:
        n, b = self._count, self.batch_size
        return n // b if self.drop_last else -(-n // b)

    @property
    def num_examples(self) -> int:
        """Examples per epoch (fewer than the dataset's with ``drop_last``)."""
        return len(self) * self.batch_size if self.drop_last else self._count

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass the ``epoch``-th (its order and augmentation depend only on it)."""
        self.epoch = int(epoch)

    # ------------------------------------------------------------ randomness of one epoch
    def _order(self, epoch: int) -> Any:
        """Example indices for ``epoch``: a host permutation, uploaded once per epoch."""
        np = host_numpy()
        n = len(self.dataset)
        if self.sampler is not None:
            getattr(self.sampler, "set_epoch", lambda e: None)(epoch)
            order = np.fromiter(self.sampler, dtype=np.int64, count=self._count)
        elif self.shuffle:
            order = epoch_permutation(self.seed, epoch, n)
        else:
            order = np.arange(n)
        with _backend.use_backend(self.backend.name):
            return _backend.asarray(order, dtype="int64")

    def _flips_of_images(self, epoch: int) -> Any:
        """``flip="alternate"``: each image's flag in ``epoch``, ``(len(dataset),)`` bool.

        One coin per image (drawn once, from the seed alone), and the flag is that
        coin in even epochs and its opposite in odd ones.
        """
        coin = host_numpy().random.default_rng([self.seed, 0, 2]).random(len(self.dataset)) < 0.5
        with _backend.use_backend(self.backend.name):
            return _backend.asarray(coin ^ bool(epoch % 2))

    def _augment_params(self, epoch: int) -> tuple[Any, Any, Any]:
        """Crop offsets ``(oy, ox)`` and flip flags for every position of the epoch.

        Drawn on the device under CuPy (no transfer), on the host otherwise.
        (With ``flip="alternate"`` the flags are the images', :meth:`_flips_of_images`.)
        """
        np = host_numpy()
        n, hi = len(self.dataset), 2 * self.padding + 1
        if self.backend.device == "cpu":
            rng = np.random.default_rng([self.seed, epoch, 1])
            oy, ox = rng.integers(0, hi, size=(2, n))
            flip = rng.random(n) < 0.5
            return oy, ox, flip
        seed = int(np.random.SeedSequence([self.seed, epoch, 1]).generate_state(1)[0])
        rs = self.backend.xp.random.RandomState(seed)
        oy = rs.randint(0, hi, size=n, dtype="int64")
        ox = rs.randint(0, hi, size=n, dtype="int64")
        flip = rs.random_sample(n) < 0.5
        return oy, ox, flip

    # ------------------------------------------------------------ iteration
    def __iter__(self) -> Iterator[tuple[Any, Any]]:
        epoch = self.epoch
        order = self._order(epoch)
        params = self._augment_params(epoch) if self.augment else None
        if params is not None and hasattr(self.sampler, "positions"):
            with _backend.use_backend(self.backend.name):  # each image its position's
                where = _backend.asarray(self.sampler.positions(), dtype="int64")
            params = tuple(a[where] for a in params)
        image_flips = None
        if params is not None and self.flip == "alternate":
            image_flips = self._flips_of_images(epoch)
        b = self.batch_size
        for k in range(len(self)):
            idx = order[k * b : (k + 1) * b]
            x = self._images[idx]
            y = self._labels[idx]
            if params is not None:
                oy, ox, flip = (a[k * b : (k + 1) * b] for a in params)
                if image_flips is not None:
                    flip = image_flips[idx]
                x = crop_flip(x, oy, ox, flip, self.padding, self.padding_mode)
            if self.normalize:
                x = _apply_affine(x, self._scale, self._shift)
            else:
                x = x.astype(self.backend.xp.float32)
            yield x, y
        self.epoch = epoch + 1

    def __repr__(self) -> str:
        return (
            f"DataLoader({self.dataset.name}, n={len(self.dataset)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, augment={self.augment}, drop_last={self.drop_last}, "
            f"backend={self.backend.name!r}, seed={self.seed}, epoch={self.epoch})"
        )
