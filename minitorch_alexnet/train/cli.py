"""``minitorch-alexnet train``: the training run's flags, turned into a :class:`TrainConfig`.

``python -m minitorch_alexnet train ...``, the installed ``minitorch-alexnet train ...``
and ``python examples/train_cifar.py ...`` take the same flags and run the same
:func:`~minitorch_alexnet.train.run` (exit codes: 0 done, 2 a problem you can fix,
3 diverged, 130 interrupted). ``docs/training.md`` explains every flag.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from .. import data, models
from .config import CHOICES
from .trainer import ConfigError, TrainConfig, run

DESCRIPTION = "Train an AlexNet on CIFAR-10 (or synthetic data) with minitorch_alexnet."


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """argparse's "(default: ...)" only where it says something: not for on/off
    switches (their help says what they do) and not twice where the help names it."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.default is None or isinstance(action.default, bool) or "default" in text:
            return text
        return super()._get_help_string(action) or text


def add_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Every flag of a training run, on ``p``."""
    p.add_argument(
        "--backend",
        choices=("numba", "numpy", "cupy"),
        default=None,
        help="array backend (default: cupy when a GPU is usable, else numba)",
    )
    p.add_argument(
        "--model",
        choices=tuple(models.MODELS),
        default="alexnet_cifar",
        help="network; 'alexnet' and 'alexnet2012' take 227x227 inputs and "
        "'torchvision_alexnet' 224x224, so images are upscaled (slow: for a GPU); "
        "'alexnet_mnist' is for 28x28 digits; 'tiny' is a small CNN for quick smoke runs",
    )
    p.add_argument("--epochs", type=int, default=30, help="epochs of the whole schedule")
    p.add_argument(
        "--batch-size",
        type=int,
        default=128,
        help="images per training step (with --distributed: over all processes)",
    )
    p.add_argument("--lr", type=float, default=0.1, help="peak (max) learning rate of OneCycle")
    p.add_argument(
        "--weight-decay",
        type=float,
        default=5e-4,
        help="L2 penalty: weight_decay * w added to each weight's gradient (as torch.optim.SGD)",
    )
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        help="cross-entropy against (1 - s) one-hot + s / classes (PyTorch's label_smoothing)",
    )
    p.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum")
    p.add_argument(
        "--no-cycle-momentum",
        dest="cycle_momentum",
        action="store_false",
        help="keep --momentum fixed instead of OneCycle's 0.95-0.85-0.95 cycle (on by default, "
        "as torch's OneCycleLR)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with cifar-10-batches-py/ or the archive, mnist/, fashion-mnist/ (default: "
        "$MINITORCH_ALEXNET_DATA or ~/.cache/minitorch_alexnet); for imagefolder: the folder "
        "with one sub-folder of images per class",
    )
    p.add_argument(
        "--dataset",
        choices=("auto", "synthetic", *data.DATASETS),
        default="auto",
        help="auto: CIFAR-10 if present or downloadable, else synthetic data (with a warning); "
        "imagefolder: your own images in --data-dir",
    )
    p.add_argument(
        "--no-download", action="store_true", help="never download CIFAR-10 (use what is there)"
    )
    p.add_argument("--subset", type=int, default=None, help="train on the first N images")
    p.add_argument("--test-subset", type=int, default=None, help="test on the first M images")
    p.add_argument(
        "--no-augment",
        dest="augment",
        action="store_false",
        help="no random crops and flips (they are on by default)",
    )
    p.add_argument(
        "--crop-padding",
        type=int,
        default=2,
        help="random translation: pad each side by this many pixels, then cut a window",
    )
    p.add_argument(
        "--padding-mode",
        choices=CHOICES["padding_mode"],
        default="reflect",
        help="the crop's padding: black pixels, or the image mirrored at its edge",
    )
    p.add_argument(
        "--flip",
        choices=CHOICES["flip"],
        default="random",
        help="horizontal flips: a coin per image every epoch, or a coin in the first epoch "
        "and then each image mirrored relative to its previous epoch",
    )
    p.add_argument(
        "--norm-bias-lr-scale",
        type=float,
        default=1.0,
        metavar="X",
        help="learning rate x this for BatchNorm weights and all biases (a second param group)",
    )
    p.add_argument(
        "--norm-bias-weight-decay",
        type=float,
        default=None,
        metavar="X",
        help="weight decay of BatchNorm weights and all biases (default: --weight-decay)",
    )
    p.add_argument(
        "--ema",
        type=float,
        default=0.0,
        metavar="DECAY",
        help="evaluate and keep an exponential moving average of the weights with this "
        "decay per step, e.g. 0.999 (0: none)",
    )
    p.add_argument(
        "--tta",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="test-time augmentation: average the logits of each test image and its mirror "
        "(on by default; --no-tta turns it off)",
    )
    p.add_argument(
        "--out",
        default=None,
        help="the run's folder (default: a new numbered folder, runs/cifar/1, runs/cifar/2, ...)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue from OUT/checkpoint.npz (without --out: the latest run's)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run that --out holds (without it such a folder is refused)",
    )
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after this many epochs in this invocation (the schedule still spans "
        "--epochs); continue later with --resume",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the initial weights, the data order, the augmentation and dropout",
    )
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="cupy: record the training step once as a CUDA graph and replay it (faster)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument(
        "--distributed",
        action="store_true",
        help="data parallel, one process per device: mpiexec -n N minitorch-alexnet train "
        "--distributed (--batch-size is the global batch; docs/distributed.md)",
    )
    p.add_argument(
        "--sync-bn",
        action="store_true",
        help="with --distributed: BatchNorm statistics over the global batch (SyncBatchNorm)",
    )
    return p


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The flags as a parser of their own (``examples/train_cifar.py``)."""
    return add_flags(
        argparse.ArgumentParser(prog, description=DESCRIPTION, formatter_class=HelpFormatter)
    )


def add_parser(commands: Any) -> None:
    """``train`` as a sub-command of ``python -m minitorch_alexnet``."""
    p = commands.add_parser(
        "train",
        help="train a model (CIFAR-10, MNIST, your images)",
        description=DESCRIPTION,
        formatter_class=HelpFormatter,
    )
    add_flags(p).set_defaults(func=lambda args: run(checked_config(p, args)))


def checked_config(p: argparse.ArgumentParser, args: argparse.Namespace) -> TrainConfig:
    """The run's settings; one that cannot work exits with the usage message (code 2)."""
    try:  # TrainConfig holds the rules
        return config_from_args(args)
    except ConfigError as e:
        p.error(f"argument --{e.field.replace('_', '-')}: {e.reason}")


def parse_args(argv: Sequence[str] | None = None, prog: str | None = None) -> argparse.Namespace:
    """The flags, checked; bad ones exit with argparse's usage message (exit code 2)."""
    p = build_parser(prog)
    args = p.parse_args(argv)
    checked_config(p, args)
    return args


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: one ``TrainConfig`` field per flag (``--no-X`` flags inverted)."""
    options = {k: v for k, v in vars(args).items() if k not in ("command", "func")}
    download = not options.pop("no_download")
    progress = not options.pop("no_progress")
    return TrainConfig(download=download, progress=progress, **options)


def main(argv: Sequence[str] | None = None, prog: str | None = None) -> int:
    """Parse the flags, train, and return the exit code (0, 2, 3 or 130)."""
    return run(config_from_args(parse_args(argv, prog)))
