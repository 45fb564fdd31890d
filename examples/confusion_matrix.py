"""Evaluate a checkpoint on the CIFAR-10 test split and draw its confusion matrix.

    python examples/confusion_matrix.py runs/cifar/1/checkpoint.npz
    python examples/confusion_matrix.py runs/cifar/1/checkpoint.npz --data-dir ~/data --out results/

Writes ``confusion_matrix.png`` (rows: true class, columns: predicted class; each
row coloured by its share of that class's images) and ``confusion_matrix.txt``
(the counts, per-class accuracy and overall accuracy) into ``--out``, and prints
the text.

The model is rebuilt from the checkpoint: its class from the metadata's
``model_class`` (``AlexNet``, ``AlexNetCIFAR``, ``AlexNet2012``) or ``--model``,
its widths (channels, hidden units, classes) from the stored weight shapes, so
scaled-down copies load too. ``--model tiny`` loads the small CNN of
``examples/train_cifar.py --model tiny``. CIFAR-10 must already be in the data
folder (no download here); see ``docs/training.md``.
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
from minitorch_alexnet import data, nn
from minitorch_alexnet.checkpoint import CheckpointError
from minitorch_alexnet.data import DatasetError
from minitorch_alexnet.train.loop import resize_nearest
from minitorch_alexnet.train.predict import MODEL_NAMES, load_trained


# ---------------------------------------------------------------- the matrix
def confusion_matrix(labels: Any, predictions: Any, num_classes: int) -> np.ndarray:
    """Counts ``cm[t, p]`` of examples of true class ``t`` predicted as ``p``.

    Args:
        labels, predictions: integer arrays of shape (N,) with values in [0, num_classes).
    Returns:
        int64 array (num_classes, num_classes); row sums are the class sizes, the
        diagonal holds the correct predictions.
    """
    labels = np.asarray(labels, dtype=np.int64).reshape(-1)
    predictions = np.asarray(predictions, dtype=np.int64).reshape(-1)
    if labels.shape != predictions.shape:
        raise ValueError(f"{labels.size} labels but {predictions.size} predictions")
    for name, v in (("labels", labels), ("predictions", predictions)):
        if v.size and (v.min() < 0 or v.max() >= num_classes):
            raise ValueError(f"{name} must lie in [0, {num_classes}), got [{v.min()}, {v.max()}]")
    cm = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(cm, (labels, predictions), 1)
    return cm


def per_class_accuracy(cm: np.ndarray) -> np.ndarray:
    """Diagonal over row sums: the share of each true class predicted right (NaN if empty)."""
    totals = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(cm) / np.maximum(totals, 1), np.nan)


def format_report(cm: np.ndarray, classes: Sequence[str], title: str = "") -> str:
    """The matrix, per-class accuracy and overall accuracy as plain text."""
    K, n = len(classes), int(cm.sum())
    width = max(5, len(str(int(cm.max()))) + 1 if cm.size else 5)
    name_w = max(len(c) for c in classes) + 4
    lines = [title] if title else []
    lines += [
        f"Confusion matrix on {n} test images: row = true class, column = predicted class "
        "(columns numbered as the rows).",
        "",
        " " * name_w + "".join(f"{j:>{width}}" for j in range(K)),
    ]
    for i, c in enumerate(classes):
        lines.append(f"{i:>2} {c:<{name_w - 3}}" + "".join(f"{v:>{width}}" for v in cm[i]))
    lines += ["", "Per-class accuracy (recall):"]
    acc = per_class_accuracy(cm)
    for i, c in enumerate(classes):
        a = "   n/a" if np.isnan(acc[i]) else f"{100 * acc[i]:5.1f}%"
        lines.append(f"  {c:<{name_w - 2}}{a}  ({cm[i, i]} / {cm[i].sum()})")
    correct = int(np.trace(cm))
    overall = 100 * correct / n if n else float("nan")
    lines += ["", f"Overall accuracy: {overall:.2f}% ({correct} / {n})"]
    off = cm - np.diag(np.diag(cm))
    if off.any():
        t, p = np.unravel_index(int(off.argmax()), off.shape)
        lines.append(
            f"Most frequent confusion: {classes[t]} predicted as {classes[p]} ({off[t, p]} images)"
        )
    return "\n".join(lines) + "\n"


def plot_confusion(cm: np.ndarray, classes: Sequence[str], path: Path, title: str = "") -> None:
    """Save the matrix as a PNG: colour = share of the row, text = the count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    K = len(classes)
    share = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.0 + 0.62 * K, 0.6 + 0.55 * K))
    im = ax.imshow(share, cmap="Blues", vmin=0.0, vmax=1.0)
    for i in range(K):
        for j in range(K):
            ax.text(
                j,
                i,
                str(cm[i, j]),
                ha="center",
                va="center",
                fontsize=8,
                color="white" if share[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(K), classes, rotation=45, ha="right")
    ax.set_yticks(range(K), classes)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    if title:
        ax.set_title(title)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="share of the true class")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------- the model
def predict(model: Any, dataset: Any, batch_size: int = 256, progress: bool = False) -> np.ndarray:
    """The model's predicted class for every image of ``dataset`` (evaluation mode, no cache)."""
    loader = data.DataLoader(dataset, batch_size=batch_size, shuffle=False, augment=False)
    side = int(getattr(model, "input_size", (3, 32, 32))[-1])
    model.eval()
    out = []
    batches: Any = loader
    if progress:
        from tqdm.auto import tqdm

        batches = tqdm(loader, desc="test images", unit="batch", file=sys.stderr)
    with nn.no_grad():
        for x, _ in batches:
            logits = model(resize_nearest(x, side))
            out.append(B.to_numpy(logits.argmax(axis=1)))
    return np.concatenate(out).astype(np.int64)


# ---------------------------------------------------------------- the command
def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Evaluate a checkpoint on the CIFAR-10 test split; write its confusion matrix."
    )
    p.add_argument("checkpoint", type=Path, help="a .npz checkpoint written by train_cifar.py")
    p.add_argument("--data-dir", default=None, help="folder holding cifar-10-batches-py/")
    p.add_argument("--backend", choices=("numpy", "numba", "cupy"), default=None)
    p.add_argument("--out", type=Path, default=Path("."), help="folder for the two outputs")
    p.add_argument(
        "--model",
        choices=(*MODEL_NAMES.values(), "tiny"),
        default=None,
        help="the network (default: the checkpoint's model_class)",
    )
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--limit", type=int, default=None, help="only the first N test images")
    args = p.parse_args(argv)

    try:
        backend = B.get_backend(args.backend) if args.backend else B.get_backend()
    except B.BackendError as e:
        print(f"confusion_matrix: {e}", file=sys.stderr)
        return 2
    with B.use_backend(backend.name):
        try:
            model, _ = load_trained(args.checkpoint, args.model)  # the weights, in eval mode
            splits = data.load_cifar10(args.data_dir, download=False)
        except (CheckpointError, DatasetError, ValueError) as e:
            print(f"confusion_matrix: {e}", file=sys.stderr)
            return 2
        test = splits.test.subset(args.limit)
        preds = predict(model, test, args.batch_size, progress=sys.stderr.isatty())
    labels = np.asarray(test.labels, dtype=np.int64)
    cm = confusion_matrix(labels, preds, len(test.classes))
    title = f"{type(model).__name__} on the CIFAR-10 test split"
    text = format_report(cm, test.classes, title)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "confusion_matrix.txt").write_text(text, encoding="utf-8")
    acc = 100 * np.trace(cm) / max(1, cm.sum())
    try:
        plot_confusion(cm, test.classes, args.out / "confusion_matrix.png", f"{title}: {acc:.1f}%")
    except ImportError:
        print(
            "confusion_matrix: no matplotlib, so no PNG (pip install matplotlib)", file=sys.stderr
        )
    print(text, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
