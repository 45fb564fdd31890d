"""The training loop and evaluation: forward, loss, backward, optimiser step.

:func:`make_train_step` builds the step for one batch, :func:`train_one_epoch`
runs it over the training data, :func:`evaluate` measures the test data. The
settings, the epochs and the files of a run are in :mod:`.trainer`.

Shapes: a batch of images is ``(N, 3, H, W)`` float32 (normalised by the
:class:`~minitorch_alexnet.data.DataLoader`; CIFAR-10's are 32x32, upscaled on
the device for a model built for larger inputs), labels are ``(N,)`` int64,
logits ``(N, classes)``; a loss is a 0-d device array.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Callable
from typing import Any

from tqdm.auto import tqdm

from .. import backend as B
from .. import data, nn, optim
from ..backend.numba import compiling

__all__ = ["Diverged", "check_finite_state", "evaluate", "make_train_step", "train_one_epoch"]

LOG_EVERY = 20  # GPU: steps between progress-bar updates (the only times the loss is read)


def log_every(steps: int) -> int:
    """Steps between progress-bar updates: every step on the CPU, where reading the loss
    costs nothing; on a GPU every LOG_EVERY (a read waits for the device), but at least
    five times an epoch, so that a short epoch shows its loss before it ends."""
    if B.get_backend().device == "cpu":
        return 1
    return max(1, min(LOG_EVERY, steps // 5))


Step = Callable[[Any, Any], tuple[Any, Any]]  # (images, labels) -> (loss, number correct)


class Diverged(Exception):
    """The loss, a weight or a statistic became NaN or infinite."""


def input_side(model: nn.Module) -> int:
    """The square input side the model is built for (32 unless it says otherwise)."""
    size = getattr(getattr(model, "module", model), "input_size", None)  # an AveragedModel's
    return int(size[-1]) if size else 32


def resize_nearest(x: Any, side: int) -> Any:
    """Upscale ``(N, C, H, W)`` to ``(N, C, side, side)`` by nearest neighbour, on the device."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    xp = B.get_backend().xp
    rows = (xp.arange(side) * x.shape[-2]) // side
    cols = (xp.arange(side) * x.shape[-1]) // side
    return x[:, :, rows[:, None], cols[None, :]]


class RunningMeter:
    """Sums of loss and correct predictions, kept on the device (read only when reported)."""

    def __init__(self) -> None:
        self.loss_sum: Any = 0.0
        self.correct: Any = 0
        self.count = 0

    def update(self, loss: Any, correct: Any, n: int) -> None:
        """Add a batch of ``n`` examples: its mean ``loss`` and number ``correct`` (0-d arrays)."""
        self.loss_sum = self.loss_sum + loss * n  # stays a device array: no host sync
        self.correct = self.correct + correct
        self.count += n

    def read(self) -> tuple[float, float]:
        """(mean loss, accuracy) so far; this is the one place that waits for the device."""
        return float(self.loss_sum) / self.count, float(self.correct) / self.count


def count_correct(logits: Any, labels: Any) -> Any:
    """Rows of ``logits`` (N, K) whose largest value is at ``labels`` (N,): a 0-d array."""
    return (logits.argmax(axis=1) == labels).sum()


def make_train_step(model: nn.Module, criterion: nn.CrossEntropyLoss, optimizer: optim.SGD) -> Step:
    """The training step: ``step(images, labels) -> (loss, number correct)``, device arrays."""
    side = input_side(model)

    def train_step(images: Any, labels: Any) -> tuple[Any, Any]:
        logits = model(resize_nearest(images, side))  # forward
        loss = criterion(logits, labels)  # loss
        optimizer.zero_grad()
        # backward: fills every parameter's .grad (the images need no gradient of their own)
        model.backward(criterion.backward(), input_grad=False)
        optimizer.step()  # update the weights
        return loss, count_correct(logits, labels)

    return train_step


def graphed(step: Step, optimizer: optim.SGD) -> Step:
    """``step`` recorded once as a CUDA graph and replayed (``--cuda-graph``, cupy only).

    The optimiser then reads its learning rate and momentum from device memory,
    refreshed before every step; see ``minitorch_alexnet/backend/cuda/graph.py``.
    """
    from ..backend.cuda.graph import GraphedStep

    optimizer.hyperparameters_on_device()
    return GraphedStep(step, warmup=2, before=optimizer.write_hyperparameters)


def train_one_epoch(
    model: nn.Module,
    loader: data.DataLoader,
    step: Step,
    scheduler: optim.OneCycleLR,
    desc: str = "train",
    progress: bool = True,
    averaged: optim.swa_utils.AveragedModel | None = None,
    average_every: int = 1,
    first_step: int = 0,
) -> tuple[float, float, float]:
    """One pass over the training data with ``step`` (from :func:`make_train_step`).

    ``averaged``: an average of the weights (``--ema``), updated after every
    ``average_every``-th step of the run, counted from ``first_step``, the number of
    steps before this epoch (so short epochs update it too). Returns (mean loss,
    accuracy, images per second). Raises :class:`Diverged` when the loss is not finite.
    """
    model.train()
    meter = RunningMeter()
    start = time.perf_counter()
    # disable=None: a bar only on a terminal, never in logs
    bar = tqdm(
        loader, desc=desc, leave=False, disable=None if progress else True, dynamic_ncols=True
    )
    every = log_every(len(loader))
    for k, (images, labels) in enumerate(bar, 1):
        loss, correct = step(images, labels)  # forward, loss, backward, update
        scheduler.step()  # next learning rate (OneCycle steps per batch)
        if averaged is not None and (first_step + k) % average_every == 0:
            averaged.update_parameters(model)
        meter.update(loss, correct, len(labels))
        if k == 1 and (note := compiling.report_once()):  # a first run compiled the kernels
            tqdm.write(note, file=sys.stderr)
        if k % every == 0 or k == len(loader):
            mean_loss, acc = meter.read()
            if not math.isfinite(mean_loss):
                raise Diverged(f"the training loss became {mean_loss} at step {k} of {desc}")
            rate = meter.count / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{mean_loss:.3f}", acc=f"{acc:.1%}", img_s=f"{rate:.0f}")
    B.get_backend().synchronize()
    mean_loss, acc = meter.read()
    if not math.isfinite(mean_loss):
        raise Diverged(f"the training loss became {mean_loss} in {desc}")
    return mean_loss, acc, meter.count / (time.perf_counter() - start)


def mirrored(x: Any) -> Any:
    """``(N, C, H, W)`` images mirrored left-right (a contiguous copy)."""
    return B.get_backend().xp.ascontiguousarray(x[..., ::-1])


def logits_of(model: nn.Module, x: Any, tta: bool = False) -> Any:
    """The model's logits ``(N, classes)`` for images ``x`` ``(N, C, H, W)``; with ``tta``
    (test-time flips) the mean of the logits of each image and of its mirror."""
    logits = model(x)
    if tta:
        logits = (logits + model(mirrored(x))) * 0.5
    return logits


def evaluate(
    model: nn.Module,
    loader: data.DataLoader,
    criterion: nn.CrossEntropyLoss | None = None,
    progress: bool = False,
    tta: bool = False,
) -> tuple[float, float]:
    """Mean loss and accuracy on ``loader``, in evaluation mode, keeping nothing for backward.

    ``criterion`` defaults to plain cross-entropy; a run passes its own (with its
    label smoothing), so that its train and test losses are the same quantity.
    ``progress``: a progress bar (on a terminal only). ``tta``: test-time flips, the
    logits ``(N, classes)`` of each image and of its mirror averaged (twice the work).
    """
    criterion = criterion or nn.CrossEntropyLoss()
    model.eval()
    meter = RunningMeter()
    side = input_side(model)
    with nn.no_grad():
        bar = tqdm(loader, desc="test", leave=False, disable=None if progress else True)
        for images, labels in bar:
            logits = logits_of(model, resize_nearest(images, side), tta)
            meter.update(criterion(logits, labels), count_correct(logits, labels), len(labels))
    return meter.read()


def check_finite_state(model: nn.Module, optimizer: optim.SGD, when: str) -> None:
    """Raise :class:`Diverged` naming any parameter, buffer or momentum buffer with NaN or inf.

    The loss can stay finite while, say, a BatchNorm running variance overflows, so a
    run calls this before it writes a checkpoint. Every array is tested on the device
    and one flag is read back: one wait per call, none added to the steps.
    """
    arrays = dict(model.state_dict())
    names = [name for name, _ in model.named_parameters()]  # the optimiser's order
    for index, state in optimizer.state_dict()["state"].items():
        owner = names[index] if index < len(names) else f"parameter {index}"
        arrays.update({f"{key} of {owner}": a for key, a in state.items()})
    floats = {k: a for k, a in arrays.items() if getattr(a, "dtype", None) is not None}
    floats = {k: a for k, a in floats.items() if a.dtype.kind == "f"}
    if not floats:
        return
    xp = B.get_backend().xp
    finite = xp.stack([xp.isfinite(a).all() for a in floats.values()])
    if bool(finite.all()):  # the one read from the device
        return
    bad = [name for name, ok in zip(floats, B.to_numpy(finite)) if not ok]
    more = f" and {len(bad) - 3} more" if len(bad) > 3 else ""
    raise Diverged(f"{', '.join(bad[:3])}{more} became NaN or infinite {when}")
