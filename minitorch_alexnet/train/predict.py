"""``minitorch-alexnet predict IMAGE...``: a trained run's model, asked about your images.

    minitorch-alexnet predict cat.jpg ship.png               # the latest run's checkpoint
    minitorch-alexnet predict --checkpoint runs/cifar/3/checkpoint.npz --top 3 cat.jpg

Each image is read with Pillow, centre-cropped to a square, resized to the model's
input side (32 for the CIFAR-10 models) and normalised with the training data's
statistics; the model runs in evaluation mode, and the softmax of its logits gives
the probabilities printed. :func:`load_trained` and :func:`build_from_checkpoint`
serve the examples too (the confusion matrix, the saliency maps).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import backend as B
from .. import data, nn
from ..checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from ..data.imagefolder import load_image
from ..data.mnist import FASHION_MNIST, MNIST
from ..data.registry import STATISTICS
from ..models import INPUT_SIDES, build_model
from .rundir import RUNS_DIR, _numbered

#: the ``model_class`` a checkpoint records -> the name :func:`build_model` takes
MODEL_NAMES = {"AlexNet": "alexnet", "AlexNetCIFAR": "alexnet_cifar", "AlexNet2012": "alexnet2012"}


def _weight(arrays: dict[str, Any], prefix: str) -> Any:
    """The first 2-D or 4-D weight stored under ``model/<prefix>.``."""
    for k, v in arrays.items():
        if k.startswith(f"model/{prefix}.") and k.endswith(".weight") and v.ndim in (2, 4):
            return v
    raise CheckpointError(f"the checkpoint has no weight for {prefix!r}")


def build_from_checkpoint(arrays: dict[str, Any], meta: dict[str, Any], name: str | None) -> Any:
    """A model of the checkpoint's kind with the sizes its weights have (not yet loaded).

    A training run records its model's name; other checkpoints are told apart by
    their class (``model_class``) or by ``name``."""
    config = (meta.get("extra") or {}).get("config") or {}
    weights = [v for k, v in arrays.items() if k.endswith(".weight") and v.ndim in (2, 4)]
    if name is None and config.get("model"):  # a training run's checkpoint
        first, last = weights[0], [w for w in weights if w.ndim == 2][-1]
        extra = {"in_channels": first.shape[1]} if first.shape[1] != 3 else {}
        return build_model(config["model"], num_classes=last.shape[0], **extra)
    model_class = meta.get("model_class")
    name = name or MODEL_NAMES.get(model_class)
    if name is None:
        raise CheckpointError(
            f"the checkpoint holds a {model_class!r}; pass --model "
            f"({', '.join([*MODEL_NAMES.values(), 'tiny'])})"
        )
    if name == "tiny":
        from ..models import tiny_cnn

        last = [w for w in weights if w.ndim == 2][-1]
        return tiny_cnn(num_classes=last.shape[0], width=_weight(arrays, "0").shape[0])
    conv = [_weight(arrays, f"conv{i}") for i in range(1, 6)]
    fc1, fc3 = _weight(arrays, "fc1"), _weight(arrays, "fc3")
    return build_model(
        name,
        num_classes=fc3.shape[0],
        in_channels=conv[0].shape[1],
        channels=tuple(w.shape[0] for w in conv),
        hidden=fc1.shape[0],
    )


def latest_checkpoint() -> Path:
    """``runs/cifar/<latest>/checkpoint.npz``; CheckpointError if there is no run."""
    numbered = _numbered(RUNS_DIR)
    path = RUNS_DIR / (str(numbered[-1]) if numbered else "") / "checkpoint.npz"
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: train first (minitorch-alexnet train), or name one "
            "with --checkpoint"
        )
    return path


def class_names(meta: dict[str, Any], n: int) -> list[str]:
    """The names of the ``n`` classes: as the run recorded them, else its dataset's."""
    extra = meta.get("extra") or {}
    names = extra.get("classes")
    if not names:
        dataset = (extra.get("config") or {}).get("dataset")
        names = {
            "cifar10": data.CIFAR10_CLASSES,
            "synthetic": data.SYNTHETIC_CLASSES,
            "mnist": MNIST.classes,
            "fashion-mnist": FASHION_MNIST.classes,
        }.get(dataset, ())
    names = list(names)
    return names if len(names) == n else [f"class {k}" for k in range(n)]


def load_trained(path: str | Path, name: str | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """The model of checkpoint ``path`` with its weights, in evaluation mode, and what
    its inputs need: ``{"classes", "mean", "std", "side", "channels"}``."""
    arrays, meta = read_checkpoint(path)
    model = build_from_checkpoint(arrays, meta, name)
    load_checkpoint(path, model, restore_rng=False)
    model.eval()
    config = (meta.get("extra") or {}).get("config") or {}
    dataset = config.get("dataset", "cifar10")
    channels = int(next(v for v in arrays.values() if v.ndim == 4).shape[1])
    mean, std = STATISTICS.get(dataset, ((0.5,) * channels, (0.5,) * channels))
    n = int([v for k, v in arrays.items() if k.endswith(".weight") and v.ndim == 2][-1].shape[0])
    side = INPUT_SIDES.get(config.get("model", ""), 32)
    info = dict(classes=class_names(meta, n), mean=mean, std=std, side=side, channels=channels)
    return model, info


def read_images(paths: Sequence[str | Path], side: int, channels: int) -> Any:
    """uint8 images (N, channels, side, side): centre-cropped, resized, grey if channels is 1."""
    np = B.host_xp()
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"{p}: no such image file")
    images = np.stack([load_image(p, side) for p in paths])
    if channels == 1:  # ITU-R 601 luma, as Pillow's convert("L")
        luma = np.tensordot(np.array([0.299, 0.587, 0.114]), images.astype(np.float64), axes=(0, 1))
        images = np.rint(luma)[:, None].astype(np.uint8)
    return images


def predict(model: nn.Module, info: dict[str, Any], paths: Sequence[str | Path]) -> Any:
    """Class probabilities (N, classes) for the image files ``paths``, on the host."""
    images = B.asarray(read_images(paths, info["side"], info["channels"]))
    x = data.normalize(images, info["mean"], info["std"])
    with nn.no_grad():
        probs = nn.Softmax(dim=1)(model(x))
    return B.to_numpy(probs)


def add_parser(commands: Any) -> None:
    """``predict`` as a sub-command of ``python -m minitorch_alexnet``."""
    p = commands.add_parser(
        "predict", help="classify image files with a trained checkpoint", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--checkpoint", default=None, help="default: the latest run's")
    p.add_argument("--top", type=int, default=3, help="classes shown per image (default: 3)")
    p.add_argument("--backend", choices=B.BACKEND_NAMES, default=None)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print the ``--top`` classes of each image; exit code 2 for a problem to fix."""
    try:
        if args.backend:
            B.set_backend(args.backend)
        path = Path(args.checkpoint) if args.checkpoint else latest_checkpoint()
        model, info = load_trained(path)
        probs = predict(model, info, args.images)
    except (CheckpointError, data.DatasetError, OSError, ImportError, B.BackendError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    np = B.host_xp()
    print(f"{path}: {len(info['classes'])} classes")
    for image, p in zip(args.images, probs):
        best = np.argsort(-p)[: max(1, args.top)]
        shown = ", ".join(f"{info['classes'][k]} {100 * p[k]:.1f}%" for k in best)
        print(f"{image}: {shown}")
    return 0
