"""Draw the first convolution's filters as a grid of colour tiles (Figure 3 of the AlexNet paper).

    python examples/visualize_filters.py runs/cifar/1/checkpoint.npz
    python examples/visualize_filters.py runs/cifar/1/checkpoint.npz --out filters.png --scale 10

The checkpoint's first convolution weight (the key ending in ``conv1.0.weight``:
(64, 3, 5, 5) for AlexNetCIFAR, (96, 3, 11, 11) for AlexNet) becomes one tile per
filter: its 3 input channels are the tile's red, green and blue, the tile is
min-max normalised on its own (so weak and strong filters are equally visible),
upscaled with square pixels and placed in a grid with white gutters. Trained
filters show oriented edges, gratings and colour blobs; untrained ones are noise.

The checkpoint is read with ``numpy.load(..., allow_pickle=False)`` (through
``minitorch_alexnet.checkpoint.read_checkpoint``), so reading it runs no code.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

try:
    import minitorch_alexnet  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minitorch_alexnet.checkpoint import CheckpointError, read_checkpoint

FIRST_CONV = "conv1.0.weight"


def find_first_conv(arrays: dict[str, np.ndarray]) -> str:
    """The key of the first convolution's weight: the one ending in ``conv1.0.weight``.

    Raises:
        KeyError: no such key, or it is not a 4-D (O, C, KH, KW) array.
    """
    keys = [k for k in arrays if k.endswith(FIRST_CONV)]
    if not keys:
        four_d = [k for k, v in arrays.items() if getattr(v, "ndim", 0) == 4]
        raise KeyError(
            f"no array ending in {FIRST_CONV!r} in the checkpoint"
            + (f"; 4-D arrays present: {', '.join(four_d)}" if four_d else "")
        )
    key = sorted(keys, key=len)[0]  # 'model/conv1.0.weight' before longer lookalikes
    if arrays[key].ndim != 4:
        raise KeyError(f"{key} has shape {arrays[key].shape}, expected (O, C, KH, KW)")
    return key


def grid_columns(n: int) -> int:
    """Columns for ``n`` tiles: a divisor of ``n`` near sqrt(n) (64 -> 8, 96 -> 12), so
    no cell stays empty, unless that makes the grid too wide."""
    root = math.isqrt(n - 1) + 1 if n > 1 else 1
    for c in range(root, 2 * root + 1):
        if n % c == 0:
            return c
    return root


def filter_grid(
    weights: np.ndarray,
    scale: int = 8,
    gutter: int = 2,
    cols: int | None = None,
    background: float = 1.0,
) -> np.ndarray:
    """Filters as one RGB image.

    Args:
        weights: (O, C, KH, KW) with C = 3 (shown as RGB) or C = 1 (grey).
        scale: each weight becomes a ``scale`` x ``scale`` square of pixels.
        gutter: pixels between tiles and around the grid.
        cols: tiles per row (default: :func:`grid_columns`).
        background: the gutters' grey level in [0, 1] (1 is white).

    Returns:
        float array (rows * (KH*scale + gutter) + gutter, cols * (KW*scale + gutter) + gutter, 3)
        with values in [0, 1]: tile ``o`` is filter ``o`` min-max normalised over
        all its channels together (a constant filter becomes mid-grey).
    """
    if weights.ndim != 4:
        raise ValueError(f"weights must be (O, C, KH, KW), got shape {weights.shape}")
    O, C, KH, KW = weights.shape
    if C not in (1, 3):
        raise ValueError(f"can draw filters with 1 or 3 input channels, not {C}")
    if scale < 1 or gutter < 0:
        raise ValueError("scale must be >= 1 and gutter >= 0")
    cols = cols or grid_columns(O)
    rows = -(-O // cols)
    w = weights.astype(np.float64)
    lo = w.min(axis=(1, 2, 3), keepdims=True)
    span = w.max(axis=(1, 2, 3), keepdims=True) - lo
    tiles = np.where(span > 0, (w - lo) / np.where(span > 0, span, 1.0), 0.5)
    tiles = tiles.transpose(0, 2, 3, 1)  # (O, KH, KW, C): channels last, as images are
    if C == 1:
        tiles = np.repeat(tiles, 3, axis=3)
    tiles = tiles.repeat(scale, axis=1).repeat(scale, axis=2)  # nearest-neighbour upscaling
    th, tw = KH * scale, KW * scale
    out = np.full((rows * (th + gutter) + gutter, cols * (tw + gutter) + gutter, 3), background)
    for o in range(O):
        r, c = divmod(o, cols)
        top, left = gutter + r * (th + gutter), gutter + c * (tw + gutter)
        out[top : top + th, left : left + tw] = tiles[o]
    return out


def save_image(path: Path, image: np.ndarray) -> None:
    """Write an (H, W, 3) float image in [0, 1] as a PNG, pixel for pixel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    plt.imsave(path, np.clip(image, 0.0, 1.0))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Draw a checkpoint's first-layer convolution filters as an image grid."
    )
    p.add_argument("checkpoint", type=Path, help="a .npz checkpoint written by train_cifar.py")
    p.add_argument("--out", type=Path, default=Path("filters.png"), help="the PNG to write")
    p.add_argument("--scale", type=int, default=None, help="pixels per weight (default: ~40/K)")
    p.add_argument("--gutter", type=int, default=2, help="pixels between tiles (default: 2)")
    p.add_argument("--cols", type=int, default=None, help="tiles per row (default: near square)")
    args = p.parse_args(argv)
    try:
        arrays, meta = read_checkpoint(args.checkpoint)
        key = find_first_conv(arrays)
    except (CheckpointError, KeyError) as e:
        print(f"visualize_filters: {e.args[0] if isinstance(e, KeyError) else e}", file=sys.stderr)
        return 2
    weights = arrays[key]
    scale = args.scale or max(1, 40 // weights.shape[2])
    try:
        image = filter_grid(weights, scale=scale, gutter=args.gutter, cols=args.cols)
    except ValueError as e:
        print(f"visualize_filters: {key}: {e}", file=sys.stderr)
        return 2
    try:
        save_image(args.out, image)
    except ImportError:
        print("visualize_filters: needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    O, C, KH, KW = weights.shape
    model = meta.get("model_class", "?")
    print(
        f"{key} of {model}: {O} filters of {C}x{KH}x{KW} -> {args.out} "
        f"({image.shape[1]}x{image.shape[0]} pixels)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
