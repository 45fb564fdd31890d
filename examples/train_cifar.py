"""Train an AlexNet on CIFAR-10 with minitorch_alexnet: hand-written layers, no autograd.

Quick look on a laptop CPU (a few minutes on 2 cores, Numba backend)::

    python examples/train_cifar.py --epochs 2 --subset 2000 --test-subset 1000

The full recipe (30 epochs on all 50000 images; meant for a GPU with CuPy)::

    python examples/train_cifar.py

Recipe: SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, a one-cycle
learning rate (20% warm-up to 0.1, then cosine annealing), random crops (4-pixel
zero padding) and horizontal flips, CIFAR-10 channel normalisation.

Each run writes into a new numbered folder, ``runs/cifar/1``, ``runs/cifar/2``, ...
(``--out DIR`` names one instead): ``metrics.json`` (one entry per epoch),
``curves.png`` (loss and accuracy per epoch) and ``checkpoint.npz`` (after every
epoch; ``--resume`` continues from it exactly, by default the latest run's). A
folder that holds a run is never silently replaced: ``--resume`` continues it,
``--overwrite`` replaces it, and a folder another run is using is refused.

This script only turns its flags into a ``TrainConfig`` and hands it to the
package: the loop over batches (forward, loss, backward, step) is in
``minitorch_alexnet/train/loop.py``, the loop over epochs and the run's files in
``minitorch_alexnet/train/trainer.py``. Exit codes: 0 done, 2 a problem you can
fix (missing data, bad flags, a folder in use or holding a run, a checkpoint that
does not fit), 3 training diverged, 130 interrupted. See ``docs/training.md`` for every flag.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

try:
    import minitorch_alexnet  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minitorch_alexnet import models
from minitorch_alexnet.train import ConfigError, TrainConfig, run


# ---------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The flags, checked; bad ones exit with argparse's usage message (exit code 2)."""
    p = argparse.ArgumentParser(
        description="Train an AlexNet on CIFAR-10 (or synthetic data) with minitorch_alexnet.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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
        help="network; 'alexnet' and 'alexnet2012' take 227x227 inputs, so images are "
        "upscaled (slow: for a GPU); 'tiny' is a small CNN for quick smoke runs",
    )
    p.add_argument("--epochs", type=int, default=30, help="epochs of the whole schedule")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="peak (max) learning rate of OneCycle")
    p.add_argument("--weight-decay", type=float, default=5e-4)
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
        help="keep --momentum fixed instead of OneCycle's 0.95-0.85-0.95 cycle (torch's default)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with cifar-10-batches-py/ or the archive (default: "
        "$MINITORCH_ALEXNET_DATA or ~/.cache/minitorch_alexnet)",
    )
    p.add_argument(
        "--dataset",
        choices=("auto", "cifar10", "synthetic"),
        default="auto",
        help="auto: CIFAR-10 if present or downloadable, else synthetic data (with a warning)",
    )
    p.add_argument(
        "--no-download", action="store_true", help="never download CIFAR-10 (use what is there)"
    )
    p.add_argument("--subset", type=int, default=None, help="train on the first N images")
    p.add_argument("--test-subset", type=int, default=None, help="test on the first M images")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no crop/flip")
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
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="cupy: record the training step once as a CUDA graph and replay it (faster)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    try:  # TrainConfig holds the rules: a setting that cannot work is a usage error
        config_from_args(args)
    except ConfigError as e:
        p.error(f"argument --{e.field.replace('_', '-')}: {e.reason}")
    return args


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's settings: one ``TrainConfig`` field per flag (``--no-X`` flags inverted)."""
    options = dict(vars(args))
    download = not options.pop("no_download")
    progress = not options.pop("no_progress")
    return TrainConfig(download=download, progress=progress, **options)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, train, and return the exit code (0, 2, 3 or 130)."""
    return run(config_from_args(parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
