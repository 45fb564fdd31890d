"""Averages of the weights over training: PyTorch's ``torch.optim.swa_utils``.

An :class:`AveragedModel` is a copy of a model whose parameters (and, with
``use_buffers``, its BatchNorm statistics) follow the training model's as an
average, updated by :meth:`AveragedModel.update_parameters` after optimiser steps::

    ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.999))
    for images, labels in loader:
        ...; optimizer.step()
        ema.update_parameters(model)
    evaluate(ema, test_loader)

Without ``use_buffers`` the copy takes the training model's BatchNorm statistics at
each update; with it they are averaged too, which keeps an early spike of a running
variance for many epochs. :func:`update_bn` re-estimates them for the averaged
weights instead.

The exponential moving average (EMA) of a weight ``w`` with decay ``d``:

    w_ema <- w                              at the first update
    w_ema <- d * w_ema + (1 - d) * w        at every later one

so ``w_ema`` weighs the step ``k`` updates ago by ``(1 - d) d^k``: it remembers about
``1 / (1 - d)`` updates. The plain average of SWA (no ``avg_fn``) is
``w_avg <- w_avg + (w - w_avg) / (n + 1)`` after ``n`` updates.

:func:`update_bn` re-estimates BatchNorm's running statistics with one pass over
data (an averaged model's statistics belong to no single set of weights).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .. import backend as B
from ..nn.batchnorm import _BatchNorm
from ..nn.module import Module, no_grad

__all__ = ["AveragedModel", "get_ema_avg_fn", "get_ema_multi_avg_fn", "update_bn"]

AvgFn = Callable[[Any, Any, Any], Any]  # (averaged, current, n_averaged) -> new averaged
MultiAvgFn = Callable[[list[Any], list[Any], Any], None]  # updates the averaged arrays in place


def _check_decay(decay: float) -> None:
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"decay must be in [0, 1], got {decay!r}")


def get_ema_avg_fn(decay: float = 0.999) -> AvgFn:
    """``(w_ema, w, n) -> d * w_ema + (1 - d) * w``: one array at a time (``avg_fn``)."""
    _check_decay(decay)

    def ema_update(averaged: Any, current: Any, n_averaged: Any) -> Any:
        return decay * averaged + (1 - decay) * current

    return ema_update


def get_ema_multi_avg_fn(decay: float = 0.999) -> MultiAvgFn:
    """The same update for lists of arrays, in place (``multi_avg_fn``).

    Floating arrays move ``(1 - d)`` of the way to the current ones; whole-number
    arrays (a step count) get ``d * w_ema + (1 - d) * w`` rounded toward zero, as
    PyTorch's does.
    """
    _check_decay(decay)

    def ema_update(averaged: list[Any], current: list[Any], n_averaged: Any) -> None:
        for a, c in zip(averaged, current, strict=True):
            if a.dtype.kind == "f":
                a += (1 - decay) * (c - a)  # = d * a + (1 - d) * c
            else:
                a[...] = (a * decay + c * (1 - decay)).astype(a.dtype)

    return ema_update


class AveragedModel(Module):
    """A copy of ``model`` holding an average of its weights (``torch.optim.swa_utils``).

    Args:
        model: the training model; it is deep-copied, after its caches for backward
            are dropped (make the average between steps, not between a forward
            pass and its backward).
        avg_fn: ``(averaged, current, n_averaged) -> new averaged`` per array.
        multi_avg_fn: the same for lists of arrays, in place; wins over ``avg_fn``.
            Neither: the plain (SWA) average.
        use_buffers: average the buffers too (BatchNorm's running statistics);
            otherwise they are copied from ``model`` at each update.

    ``module`` is the copy and ``n_averaged`` (0-d ``int64``) counts the updates;
    calling the averaged model calls ``module``, and its ``state_dict`` keys are
    ``module.<name>`` and ``n_averaged``, as in PyTorch.
    """

    def __init__(
        self,
        model: Module,
        avg_fn: AvgFn | None = None,
        multi_avg_fn: MultiAvgFn | None = None,
        use_buffers: bool = False,
    ) -> None:
        super().__init__()
        model.clear_cache()  # the copy needs the weights, not the arrays kept for backward
        self.module = copy.deepcopy(model)
        for p in self.module.parameters():
            p.grad = None
            p.requires_grad = False
        self.register_buffer("n_averaged", B.asarray(0, dtype="int64"))
        self.avg_fn, self.multi_avg_fn, self.use_buffers = avg_fn, multi_avg_fn, use_buffers
        self.training = model.training
        self._started: bool | None = False  # None: read n_averaged (after a load)

    def forward(self, *inputs: Any) -> Any:
        return self.module(*inputs)

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        raise RuntimeError(
            "AveragedModel is for evaluation: train the model it averages and call "
            "update_parameters(model) after optimizer.step()"
        )

    def _arrays(self, model: Module) -> list[Any]:
        arrays = [p.data for p in model.parameters()]
        return arrays + (list(model.buffers()) if self.use_buffers else [])

    def update_parameters(self, model: Module) -> None:
        """Move the average toward ``model``'s current weights (the first call copies them)."""
        mine, theirs = self._arrays(self.module), self._arrays(model)
        if len(mine) != len(theirs):
            raise ValueError(
                f"update_parameters: the model has {len(theirs)} arrays to average, the "
                f"averaged copy {len(mine)}; pass the model this AveragedModel was made from"
            )
        if self._started is None:  # one read of the device counter after a load
            self._started = int(self.n_averaged) > 0
        if not self._started:
            for a, c in zip(mine, theirs):
                a[...] = c
            self._started = True
        elif self.multi_avg_fn is not None:
            self.multi_avg_fn(mine, theirs, self.n_averaged)
        else:
            fn = self.avg_fn or _swa_avg
            for a, c in zip(mine, theirs):
                a[...] = fn(a, c, self.n_averaged)
        if not self.use_buffers:  # the statistics follow the training model's
            self.copy_buffers(model)
        self.n_averaged[...] += 1  # in place: a 0-d array stays an array

    def copy_buffers(self, model: Module) -> None:
        """Give the copy ``model``'s buffers (BatchNorm's statistics) now, in place;
        nothing when they are averaged (``use_buffers``)."""
        if not self.use_buffers:
            for a, c in zip(self.module.buffers(), model.buffers()):
                a[...] = c

    def load_state_dict(self, state: Any, strict: bool = True) -> Any:
        """As :meth:`Module.load_state_dict`; the loaded ``n_averaged`` then decides
        whether the next update copies or averages."""
        result = super().load_state_dict(state, strict)
        self._started = None
        return result


def _swa_avg(averaged: Any, current: Any, n_averaged: Any) -> Any:
    """The plain average after ``n`` updates: ``avg + (w - avg) / (n + 1)``."""
    return averaged + (current - averaged) / (n_averaged + 1)


def update_bn(loader: Iterable[Any], model: Module, device: Any = None) -> None:
    """Re-estimate every BatchNorm's running mean and variance with one pass over ``loader``.

    The statistics are reset, then averaged over all batches with equal weight
    (``momentum=None``) in training mode; the momenta and the model's mode are
    restored. ``loader`` yields image batches ``(N, C, H, W)`` or tuples whose first
    entry is one. ``device`` is accepted for PyTorch's signature and ignored (the
    batches are on the active backend already).
    """
    layers: Sequence[_BatchNorm] = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not layers:
        return
    momenta = [m.momentum for m in layers]
    was_training = model.training
    for m in layers:
        m.reset_running_stats()
        m.momentum = None
    model.train()
    with no_grad():
        for batch in loader:
            model(batch[0] if isinstance(batch, (list, tuple)) else batch)
    for m, momentum in zip(layers, momenta):
        m.momentum = momentum
    model.train(was_training)
