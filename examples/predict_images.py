"""Classify a few CIFAR-10 test images with a trained checkpoint, and show them.

    python examples/predict_images.py                      # the latest run's checkpoint
    python examples/predict_images.py runs/cifar/3/checkpoint.npz --count 16 --seed 1

Draws ``--count`` test images at random (``--seed``), classifies them with the
checkpoint's weights (its averaged weights and test-time flips when the run was
trained with ``--ema`` and ``--tta``, as :func:`~minitorch_alexnet.train.predict.load_trained`
and :func:`~minitorch_alexnet.train.predict.classify` do for ``minitorch-alexnet predict``),
prints each one's top-3 classes and writes ``predictions.png``: each picture with its
predicted class and probability, green when right and red when wrong, and the true class.
Without CIFAR-10 in the data folder the run's own test set cannot be drawn, so it says so.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

try:
    import minitorch_alexnet  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minitorch_alexnet import backend as B
from minitorch_alexnet import data
from minitorch_alexnet.checkpoint import CheckpointError
from minitorch_alexnet.train.predict import classify, latest_checkpoint, load_trained


def draw(path: Path, images: np.ndarray, probs: np.ndarray, labels: np.ndarray, classes) -> None:
    """``images`` (N, C, H, W) uint8 in a grid, each titled with its prediction (matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(images)
    cols = min(n, 8)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.9 * rows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, p, label in zip(axes.flat, images, probs, labels):
        best = int(p.argmax())
        picture = image.transpose(1, 2, 0)
        ax.imshow(picture[..., 0] if picture.shape[-1] == 1 else picture, cmap="gray")
        ax.set_title(
            f"{classes[best]} {100 * p[best]:.0f}%\n(true: {classes[label]})",
            fontsize=7,
            color="green" if best == label else "red",
        )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("checkpoint", nargs="?", default=None, help="default: the latest run's")
    p.add_argument("--data-dir", default=None, help="folder with cifar-10-batches-py/")
    p.add_argument("--count", type=int, default=8, help="test images to classify")
    p.add_argument("--seed", type=int, default=0, help="which test images (a random draw)")
    p.add_argument("--out", default=".", help="folder for predictions.png")
    p.add_argument("--backend", choices=B.BACKEND_NAMES, default=None)
    args = p.parse_args(argv)
    if args.count < 1:
        p.error("--count must be at least 1")
    try:
        if args.backend:
            B.set_backend(args.backend)
        path = Path(args.checkpoint) if args.checkpoint else latest_checkpoint()
        model, info = load_trained(path)
        test = data.load_cifar10(args.data_dir, download=False).test
    except (
        CheckpointError, data.DatasetError, OSError, ValueError, RuntimeError, B.BackendError
    ) as e:  # fmt: skip
        print(f"error: {e}", file=sys.stderr)
        return 2
    if info["channels"] != 3 or len(info["classes"]) != len(test.classes):
        print(
            f"error: {path} was not trained on CIFAR-10 ({info['channels']} channel(s), "
            f"{len(info['classes'])} classes); this example classifies CIFAR-10's test images "
            "(minitorch-alexnet predict takes image files of any kind)",
            file=sys.stderr,
        )
        return 2
    size = min(args.count, len(test))
    pick = np.random.default_rng(args.seed).choice(len(test), size=size, replace=False)
    images, labels = test.images[pick], test.labels[pick]
    probs = classify(model, info, images)
    classes = info["classes"]
    print(f"{path}: {info['weights']} weights{' with test-time flips' if info['tta'] else ''}")
    for k, (prob, label) in enumerate(zip(probs, labels)):
        top = np.argsort(-prob)[:3]
        shown = ", ".join(f"{classes[c]} {100 * prob[c]:.1f}%" for c in top)
        print(f"test image {pick[k]} ({classes[label]}): {shown}")
    right = int((probs.argmax(1) == labels).sum())
    print(f"{right} of {len(labels)} right")
    try:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        draw(out / "predictions.png", images, probs, labels, classes)
        print(f"wrote {out / 'predictions.png'}")
    except ImportError:
        print("note: matplotlib is not installed, so predictions.png was not drawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
