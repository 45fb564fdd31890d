"""The settings of a training run, and the rules they must keep.

:class:`TrainConfig` holds every setting of :func:`~minitorch_alexnet.train.train`;
one that cannot work raises a :class:`ConfigError` naming it, before anything runs.
``RESUME_KEYS`` are the settings a resumed run must share with the run it continues.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .. import data
from ..models import MODELS
from .rundir import RUNS_DIR

__all__ = ["RESUME_DEFAULTS", "RESUME_KEYS", "ConfigError", "TrainConfig"]

# settings that must not change between a run and its resume
RESUME_KEYS = (
    "model",
    "dataset",
    "subset",
    "test_subset",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "label_smoothing",
    "momentum",
    "cycle_momentum",
    "seed",
    "augment",
    "crop_padding",
    "padding_mode",
    "flip",
    "norm_bias_lr_scale",
    "norm_bias_weight_decay",
    "ema",
    "tta",
)
# settings added in later versions: a checkpoint without them was written with these
RESUME_DEFAULTS = {
    "label_smoothing": 0.0,
    "crop_padding": 4,
    "padding_mode": "zeros",
    "flip": "random",
    "norm_bias_lr_scale": 1.0,
    "norm_bias_weight_decay": None,
    "ema": 0.0,
    "tta": False,
}
# settings with a few named values
CHOICES = {"padding_mode": data.PADDING_MODES, "flip": data.FLIPS}  # the loader's
# whole-number settings (None allowed where marked) and the least value of each
WHOLE_NUMBERS = {"epochs": 1, "batch_size": 1, "seed": 0, "crop_padding": 0}
OPTIONAL_WHOLE_NUMBERS = {"subset": 1, "test_subset": 1, "stop_after": 1}
# real-number settings: the test each must pass (NaN and infinity never do), and its wording
REAL_NUMBERS = {
    "lr": (lambda v: v > 0, "a positive number"),
    "weight_decay": (lambda v: v >= 0, "zero or a positive number"),
    "momentum": (lambda v: 0 < v < 1, "between 0 and 1 (Nesterov momentum needs more than 0)"),
    "label_smoothing": (lambda v: 0 <= v < 1, "at least 0 and less than 1"),
    "norm_bias_lr_scale": (lambda v: v > 0, "a positive number"),
    "norm_bias_weight_decay": (lambda v: v >= 0, "zero or a positive number"),
    "ema": (lambda v: 0 <= v < 1, "at least 0 (no average) and less than 1"),
}
OPTIONAL_REAL_NUMBERS = {"norm_bias_weight_decay"}


class ConfigError(ValueError):
    """A setting that cannot work: ``field`` names it, ``reason`` says what it must be."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field} {reason}")
        self.field, self.reason = field, reason


# ---------------------------------------------------------------- the settings
@dataclass
class TrainConfig:
    """Every setting of a training run; ``examples/train_cifar.py`` has one flag for each.

    The recipe: SGD with Nesterov momentum and weight decay, a one-cycle learning
    rate (20% warm-up to ``lr``, then cosine annealing), random crops and flips.
    The fields from ``crop_padding`` to ``tta`` are the cheap tricks measured in
    ``docs/training.md`` ("What each trick is worth"); on by default are the two whose
    gain was larger than the spread between seeds (reflect padding by 2, test-time flips).
    """

    model: str = "alexnet_cifar"  # a name in models.MODELS
    epochs: int = 30  # length of the whole schedule
    batch_size: int = 128  # training batch; evaluation uses twice this
    lr: float = 0.1  # peak learning rate of OneCycle
    weight_decay: float = 5e-4
    label_smoothing: float = 0.0  # cross-entropy against (1 - s) one-hot + s / classes
    momentum: float = 0.9  # Nesterov momentum, used as it is only if not cycle_momentum
    cycle_momentum: bool = True  # OneCycle moves momentum 0.95 -> 0.85 -> 0.95
    dataset: str = "auto"  # "auto" (CIFAR-10, else synthetic), "synthetic" or data.DATASETS
    data_dir: str | Path | None = None  # None: $MINITORCH_ALEXNET_DATA or ~/.cache/...
    download: bool = True  # download CIFAR-10 if it is not in data_dir
    subset: int | None = None  # train on the first N images (None: all)
    test_subset: int | None = None  # test on the first M images (None: all)
    augment: bool = True  # random crops and horizontal flips
    crop_padding: int = 2  # random translation: pad by this many pixels, cut a 32x32 window
    padding_mode: str = "reflect"  # the padding: "zeros" (black) or "reflect" (mirrored edge)
    flip: str = "random"  # "random" every epoch, or "alternate": random in the first
    # epoch, then each image mirrored relative to its previous epoch
    norm_bias_lr_scale: float = 1.0  # BatchNorm weights and biases, and every bias: lr x this
    norm_bias_weight_decay: float | None = None  # and this weight decay (None: weight_decay)
    ema: float = 0.0  # decay per step of an average of the weights, which is then evaluated
    # and saved beside them (torch.optim.swa_utils.AveragedModel); 0: no average
    tta: bool = True  # test-time flips: the logits of each test image and its mirror averaged
    out: str | Path | None = None  # the run's folder; None: a new one, runs/cifar/<number>
    resume: bool = False  # continue from out/checkpoint.npz (out None: the latest run's)
    overwrite: bool = False  # replace the run that out holds (refused otherwise)
    stop_after: int | None = None  # stop after this many epochs of this call
    seed: int = 0  # initialisation, shuffling, augmentation and dropout
    backend: str | None = None  # "numba", "numpy", "cupy"; None: cupy with a GPU, else numba
    cuda_graph: bool = False  # cupy: record the step once as a CUDA graph, then replay it
    progress: bool = True  # progress bars (only ever on a terminal)
    distributed: bool = False  # one process per device under mpiexec (docs/distributed.md)
    sync_bn: bool = False  # with distributed: BatchNorm statistics of the global batch

    def __post_init__(self) -> None:
        """Refuse, with a :class:`ConfigError` naming the setting, anything that cannot work."""
        if self.model not in MODELS:
            raise ConfigError("model", f"must be one of {', '.join(MODELS)}, not {self.model!r}")
        if self.dataset not in ("auto", "synthetic", *data.DATASETS):
            choices = ", ".join(("auto", "synthetic", *data.DATASETS))
            raise ConfigError("dataset", f"must be one of {choices}, not {self.dataset!r}")
        for name, least in {**WHOLE_NUMBERS, **OPTIONAL_WHOLE_NUMBERS}.items():
            value = getattr(self, name)
            if value is None and name in OPTIONAL_WHOLE_NUMBERS:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                what = "a positive whole number" if least else "a whole number, 0 or more"
                raise ConfigError(name, f"must be {what}, not {value!r}")
        for name, (ok, what) in REAL_NUMBERS.items():
            value = getattr(self, name)
            if value is None and name in OPTIONAL_REAL_NUMBERS:
                continue
            real = isinstance(value, int | float) and not isinstance(value, bool)
            if not (real and math.isfinite(value) and ok(value)):
                raise ConfigError(name, f"must be {what}, not {value!r}")
        for name, choices in CHOICES.items():
            if getattr(self, name) not in choices:
                raise ConfigError(
                    name, f"must be one of {', '.join(choices)}, not {getattr(self, name)!r}"
                )
        if self.out is not None and not str(self.out).strip():
            raise ConfigError(
                "out",
                f"must name a folder, not {str(self.out)!r} (leave it out and each run "
                f"gets a new numbered folder under {RUNS_DIR})",
            )
        if self.overwrite and self.resume:
            raise ConfigError(
                "overwrite", "contradicts --resume: one continues the run in --out, one replaces it"
            )
        if self.overwrite and self.out is None:
            raise ConfigError(
                "overwrite",
                f"needs --out: without it a run gets a new folder under {RUNS_DIR} and replaces "
                "nothing",
            )
