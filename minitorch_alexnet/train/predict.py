"""``minitorch-alexnet predict IMAGE...``: a trained run's model, asked about your images.

    minitorch-alexnet predict cat.jpg ship.png               # the latest run's checkpoint
    minitorch-alexnet predict --checkpoint runs/cifar/3/checkpoint.npz --top 3 cat.jpg

Each image is read with Pillow, centre-cropped to a square, resized to the side of
the run's training images (32 for CIFAR-10, 28 for MNIST) and normalised with the
training data's statistics; a model built for larger inputs gets it upscaled by
nearest neighbour, as the training loop does. The model runs in evaluation mode, and
the softmax of its logits gives the probabilities printed. :func:`load_trained` and
:func:`build_from_checkpoint` serve the examples too (the confusion matrix, the
saliency maps).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import backend as B
from .. import data, nn, optim
from ..checkpoint import CheckpointError, load_checkpoint, read_checkpoint
from ..data.imagefolder import load_image
from ..data.mnist import FASHION_MNIST, MNIST
from ..data.registry import statistics
from ..models import INPUT_SIDES, build_model
from .loop import input_side, logits_of, resize_nearest
from .rundir import latest_run

#: the ``model_class`` a checkpoint records -> the name :func:`build_model` takes
MODEL_NAMES = {
    "AlexNet": "alexnet",
    "AlexNetCIFAR": "alexnet_cifar",
    "AlexNet2012": "alexnet2012",
    "TorchvisionAlexNet": "torchvision_alexnet",
    "AlexNetMNIST": "alexnet_mnist",
}
#: the models whose layer widths are read off the weights (conv1..conv5, fc1, fc3)
SIZED = ("alexnet", "alexnet_cifar", "alexnet2012")
#: the side of the images each dataset's runs were trained on (before any upscaling)
DATASET_SIDES = {"cifar10": 32, "synthetic": 32, "mnist": 28, "fashion-mnist": 28}


def _weight(arrays: dict[str, Any], prefix: str) -> Any:
    """The first 2-D or 4-D weight stored under ``model/<prefix>.``."""
    for k, v in arrays.items():
        if k.startswith(f"model/{prefix}.") and k.endswith(".weight") and v.ndim in (2, 4):
            return v
    raise CheckpointError(f"the checkpoint has no weight for {prefix!r}")


def _sizes(arrays: dict[str, Any]) -> tuple[int, int]:
    """(input channels, classes): the first convolution's C_in, the last Linear's outputs."""
    weights = [v for k, v in arrays.items() if k.endswith(".weight") and v.ndim in (2, 4)]
    return int(weights[0].shape[1]), int([w for w in weights if w.ndim == 2][-1].shape[0])


def build_from_checkpoint(arrays: dict[str, Any], meta: dict[str, Any], name: str | None) -> Any:
    """A model of the checkpoint's kind with the sizes its weights have (not yet loaded).

    The kind is ``name`` if given, else the model a training run recorded, else the
    class the checkpoint names (``model_class``)."""
    config = (meta.get("extra") or {}).get("config") or {}
    model_class = meta.get("model_class")
    name = name or config.get("model") or MODEL_NAMES.get(model_class)
    if name is None:
        raise CheckpointError(
            f"the checkpoint holds a {model_class!r}; pass --model "
            f"({', '.join([*MODEL_NAMES.values(), 'tiny'])})"
        )
    channels, num_classes = _sizes(arrays)
    if name == "tiny":
        from ..models import tiny_cnn

        return tiny_cnn(num_classes=num_classes, width=_weight(arrays, "0").shape[0])
    if name in SIZED:
        conv = [_weight(arrays, f"conv{i}") for i in range(1, 6)]
        return build_model(
            name,
            num_classes=num_classes,
            in_channels=conv[0].shape[1],
            channels=tuple(w.shape[0] for w in conv),
            hidden=_weight(arrays, "fc1").shape[0],
        )
    extra = {"in_channels": channels} if channels != 3 else {}
    return build_model(name, num_classes=num_classes, **extra)


def latest_checkpoint() -> Path:
    """The latest run's ``checkpoint.npz``; CheckpointError if there is none."""
    run = latest_run()
    if run is None or not (run / "checkpoint.npz").is_file():
        raise CheckpointError(
            "no trained run under runs/cifar/: train first (minitorch-alexnet train), or name "
            "a checkpoint with --checkpoint"
        )
    return run / "checkpoint.npz"


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
    its inputs need: ``{"classes", "mean", "std", "side", "channels"}``, ``side`` the
    images' side in training (before the model's own upscaling, as in the training loop)."""
    arrays, meta = read_checkpoint(path)
    model = build_from_checkpoint(arrays, meta, name)
    meta = load_checkpoint(path, model, restore_rng=False)
    averaged = (meta.get("extra") or {}).get("ema")  # --ema: the weights that were evaluated
    if isinstance(averaged, dict):  # its own loader reads its keys ("module.<name>", ...)
        holder = optim.swa_utils.AveragedModel(model)
        holder.load_state_dict(averaged)
        model = holder.module
    model.eval()
    config = (meta.get("extra") or {}).get("config") or {}
    dataset = config.get("dataset", "cifar10")
    channels, n = _sizes(arrays)
    mean, std = statistics(dataset, channels)
    side = DATASET_SIDES.get(dataset, INPUT_SIDES.get(config.get("model", ""), input_side(model)))
    info = dict(classes=class_names(meta, n), mean=mean, std=std, side=side, channels=channels)
    info.update(weights="averaged" if isinstance(averaged, dict) else "trained")
    info.update(tta=bool(config.get("tta", False)))  # averaged logits of image and mirror
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


def classify(model: nn.Module, info: dict[str, Any], images: Any) -> Any:
    """Class probabilities (N, classes), on the host, for uint8 images (N, C, side, side);
    with ``info["tta"]`` the logits of each image and its mirror are averaged first."""
    x = data.normalize(B.asarray(images), info["mean"], info["std"])
    x = resize_nearest(x, input_side(model))
    with nn.no_grad():
        probs = nn.Softmax(dim=1)(logits_of(model, x, bool(info.get("tta"))))
    return B.to_numpy(probs)


def predict(model: nn.Module, info: dict[str, Any], paths: Sequence[str | Path]) -> Any:
    """Class probabilities (N, classes) for the image files ``paths``, on the host."""
    return classify(model, info, read_images(paths, info["side"], info["channels"]))


def add_parser(commands: Any) -> None:
    """``predict`` as a sub-command of ``python -m minitorch_alexnet``."""
    p = commands.add_parser(
        "predict", help="classify image files with a trained checkpoint", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (JPEG, PNG, ...)")
    p.add_argument("--checkpoint", default=None, help="default: the latest run's")
    p.add_argument("--top", type=int, default=3, help="classes shown per image (default: 3)")
    p.add_argument("--model", default=None, help="the network, if the checkpoint does not say")
    p.add_argument("--backend", choices=B.BACKEND_NAMES, default=None)
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    """Print the ``--top`` classes of each image; exit code 2 for a problem to fix."""
    try:
        if args.backend:
            B.set_backend(args.backend)
        path = Path(args.checkpoint) if args.checkpoint else latest_checkpoint()
        model, info = load_trained(path, args.model)
        probs = predict(model, info, args.images)
    except (
        CheckpointError,
        data.DatasetError,
        OSError,
        ImportError,
        ValueError,
        RuntimeError,  # weights that do not fit the network
        B.BackendError,
    ) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    np = B.host_xp()
    print(f"{path}: {len(info['classes'])} classes")
    for image, p in zip(args.images, probs):
        best = np.argsort(-p)[: max(1, args.top)]
        shown = ", ".join(f"{info['classes'][k]} {100 * p[k]:.1f}%" for k in best)
        print(f"{image}: {shown}")
    return 0
