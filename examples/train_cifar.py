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

The installed command ``minitorch-alexnet train`` takes the same flags. This script
only hands them to the package (``minitorch_alexnet/train/cli.py`` turns them into a
``TrainConfig``): the loop over batches (forward, loss, backward, step) is in
``minitorch_alexnet/train/loop.py``, the loop over epochs and the run's files in
``minitorch_alexnet/train/trainer.py``. Exit codes: 0 done, 2 a problem you can
fix (missing data, bad flags, a folder in use or holding a run, a checkpoint that
does not fit), 3 training diverged, 130 interrupted. See ``docs/training.md`` for every flag.
"""

from __future__ import annotations

import sys
from pathlib import Path

try:
    import minitorch_alexnet  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minitorch_alexnet.train import cli
from minitorch_alexnet.train.cli import config_from_args, parse_args  # noqa: F401 (tests use them)


def main(argv: list[str] | None = None) -> int:
    """Parse the flags, train, and return the exit code (0, 2, 3 or 130)."""
    return cli.main(argv, prog="train_cifar.py")


if __name__ == "__main__":
    sys.exit(main())
