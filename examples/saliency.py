"""Saliency maps, activation maps and predictions of a trained checkpoint on CIFAR-10 test images.

    python examples/saliency.py runs/cifar/1/checkpoint.npz
    python examples/saliency.py runs/cifar/1/checkpoint.npz --data-dir ~/data --out results/

Takes the first test image of each class (``--per-class`` more) and writes into ``--out``:

* ``saliency.png``: per image, the picture with the true and the predicted class
  (green when right, red when wrong) and the predicted probability, above its
  saliency map: ``|d score / d pixel|`` of the true class's score (its logit; with
  ``--target predicted``, the predicted class's), the largest over the colour
  channels (Simonyan et al., 2014, as in CS231n), from one backward pass of the
  network (:func:`minitorch_alexnet.viz.saliency_maps`);
* ``activations.png``: for the first image, the feature maps of ``--layer``
  (default ``conv1``: one tile per filter, bright where it responds)
  (:func:`minitorch_alexnet.viz.activation_maps`);

and prints each image's top-3 classes. The model is rebuilt from the checkpoint as
``examples/confusion_matrix.py`` does; CIFAR-10 must already be in the data folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

try:
    import minitorch_alexnet  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minitorch_alexnet import backend as B
from minitorch_alexnet import data, viz
from minitorch_alexnet.checkpoint import CheckpointError
from minitorch_alexnet.data import DatasetError
from minitorch_alexnet.train.loop import resize_nearest
from minitorch_alexnet.train.predict import load_trained


def pick(labels: Any, num_classes: int, per_class: int = 1) -> np.ndarray:
    """Indices of the first ``per_class`` images of each class, class by class.

    Raises:
        ValueError: a class has fewer images than ``per_class``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    out = []
    for c in range(num_classes):
        where = np.flatnonzero(labels == c)[:per_class]
        if len(where) < per_class:
            raise ValueError(f"class {c} has {len(where)} test images, fewer than {per_class}")
        out.append(where)
    return np.stack(out, axis=1).reshape(-1)  # class 0, 1, ..., then the second of each


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of (N, K) scores, computed stably."""
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def write_figures(
    out: Path,
    pictures: np.ndarray,
    maps: np.ndarray,
    probs: np.ndarray,
    labels: np.ndarray,
    classes: Sequence[str],
    activations: np.ndarray,
    layer: str,
) -> None:
    """saliency.png and activations.png into ``out`` (needs matplotlib)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pred = probs.argmax(axis=1)
    titles = [
        f"{classes[t]}\nmodel: {classes[p]} {probs[i, p]:.0%}"
        for i, (t, p) in enumerate(zip(labels, pred))
    ]
    fig = viz.show_saliency(pictures, maps, titles, correct=pred == labels)
    out.mkdir(parents=True, exist_ok=True)
    fig.savefig(out / "saliency.png", dpi=100)
    plt.close(fig)

    grid = viz.tile(activations[0], cols=16)  # one tile per channel, each scaled on its own
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 2.8), width_ratios=[1, 4])
    a.imshow(pictures[0], interpolation="nearest")
    a.set_title(f"input: {classes[labels[0]]}", fontsize=9)
    b.imshow(grid, cmap="gray", interpolation="nearest")
    _, c, h, w = activations.shape
    b.set_title(f"{layer}: {c} feature maps of {h}x{w}", fontsize=9)
    for ax in (a, b):
        ax.set_axis_off()
    fig.tight_layout()
    fig.savefig(out / "activations.png", dpi=100)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Saliency maps, activation maps and predictions of a checkpoint on CIFAR-10."
    )
    p.add_argument("checkpoint", type=Path, help="a .npz checkpoint written by train_cifar.py")
    p.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py/")
    p.add_argument("--backend", choices=("numpy", "numba", "cupy"), default=None)
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the two PNGs")
    p.add_argument("--model", default=None, help="the network (default: the checkpoint's)")
    p.add_argument("--per-class", type=int, default=1, help="test images per class (default 1)")
    p.add_argument("--layer", default="conv1", help="block whose feature maps to draw")
    p.add_argument(
        "--target",
        choices=("true", "predicted"),
        default="true",
        help="whose class score the saliency map differentiates (default: the true class)",
    )
    args = p.parse_args(argv)
    if args.per_class < 1:
        p.error("--per-class must be at least 1")

    try:
        backend = B.get_backend(args.backend) if args.backend else B.get_backend()
    except B.BackendError as e:
        print(f"saliency: {e}", file=sys.stderr)
        return 2
    with B.use_backend(backend.name):
        try:
            model, _ = load_trained(args.checkpoint, args.model)  # the weights, in eval mode
            test = data.load_cifar10(args.data_dir, download=False).test
            index = pick(test.labels, len(test.classes), args.per_class)
        except (CheckpointError, DatasetError, ValueError) as e:
            print(f"saliency: {e}", file=sys.stderr)
            return 2
        images = np.asarray(B.to_numpy(test.images))[index]  # uint8 (N, 3, 32, 32)
        labels = np.asarray(B.to_numpy(test.labels), dtype=np.int64)[index]
        side = int(getattr(model, "input_size", (3, 32, 32))[-1])
        x = resize_nearest(data.normalize(B.asarray(images)), side)
        maps, logits = viz.saliency_maps(model, x, labels if args.target == "true" else None)
        try:
            acts = viz.activation_maps(model, x[:1], args.layer)
        except KeyError as e:
            print(f"saliency: {e.args[0]}", file=sys.stderr)
            return 2
    probs = softmax(logits)
    pictures = B.to_numpy(resize_nearest(B.asarray(images), side)).transpose(0, 2, 3, 1) / 255.0
    try:
        write_figures(args.out, pictures, maps, probs, labels, test.classes, acts, args.layer)
    except ImportError:
        print("saliency: needs matplotlib: pip install matplotlib", file=sys.stderr)
        return 2
    right = int((probs.argmax(axis=1) == labels).sum())
    print(f"{type(model).__name__}: {right} of {len(labels)} images right")
    for i, t in enumerate(labels):
        top = np.argsort(-probs[i])[:3]
        guesses = ", ".join(f"{test.classes[c]} {probs[i, c]:.0%}" for c in top)
        print(f"  test image {index[i]:>5} {test.classes[t]:<11} top 3: {guesses}")
    print(f"wrote {args.out / 'saliency.png'} and {args.out / 'activations.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
