"""The shape walk: run an input shape through a model's layers by arithmetic alone.

Every layer states its own facts (:class:`~minitorch_alexnet.nn.Module`'s
``output_shape``, ``flops``, ``describe`` and ``shape_rule``); this module only
walks them in execution order and, when an input cannot go through, says which
layer fails, why, and which input size would work. Nothing is allocated or
computed, so the models run this walk before every forward pass::

    >>> steps = trace_shapes(model, (1, 3, 227, 227))      # doctest: +SKIP
    >>> steps[0].name, steps[0].output_shape                 # doctest: +SKIP
    ('conv1.0', (1, 96, 55, 55))

Any layer that defines ``output_shape`` takes part, a layer of your own included;
this module imports no layer class. :mod:`minitorch_alexnet.shapes` re-exports
everything here and writes ``docs/shapes.md`` from it.

Shapes always include the batch dimension: (N, C, H, W) or (N, F).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .nn.module import ShapeMismatch

Shape = tuple[int, ...]
Plan = list[tuple[str, Any]]  # (dotted name, layer) in execution order

__all__ = [
    "InputShapeError",
    "Plan",
    "ShapeStep",
    "check_input",
    "fmt_shape",
    "layer_plan",
    "smallest_input_size",
    "trace_shapes",
]


class InputShapeError(ValueError):
    """An input a network cannot take; the message names the layer and what would work."""


@dataclass(frozen=True)
class ShapeStep:
    """One layer of a walk: its dotted name, the module, and the shapes around it."""

    name: str
    layer: Any
    input_shape: Shape
    output_shape: Shape


def fmt_shape(shape: Sequence[int]) -> str:
    """``(2, 96, 55, 55)`` -> ``96x55x55``: a shape without its batch dimension."""
    return "x".join(str(d) for d in shape[1:])


def layer_plan(model: Any) -> Plan:
    """The layers of ``model`` in execution order, as (dotted name, module) pairs.

    A module with a ``layer_plan()`` method describes itself (a Sequential runs its
    children in order; the AlexNets add the flatten that their ``forward`` does); a
    module without children is its own plan; a list of pairs is a plan already.
    """
    if isinstance(model, list):
        return list(model)
    if hasattr(model, "layer_plan"):
        return list(model.layer_plan())
    if not model._modules:
        return [(type(model).__name__, model)]
    raise TypeError(
        f"{type(model).__name__} does not say in which order its layers run; give it a "
        "layer_plan() method returning (name, module) pairs, or use nn.Sequential"
    )


@dataclass
class _Problem:
    kind: str  # "empty" or "mismatch"
    step: ShapeStep | None  # for "empty": the step whose output is empty
    name: str
    layer: Any
    shape: Shape  # the shape that reached the layer
    mismatch: ShapeMismatch | None = None


def _walk(plan: Plan, shape: Shape) -> tuple[list[ShapeStep], _Problem | None]:
    steps: list[ShapeStep] = []
    for name, layer in plan:
        try:
            out = tuple(int(d) for d in layer.output_shape(shape))
        except ShapeMismatch as m:
            return steps, _Problem("mismatch", None, name, layer, shape, m)
        except NotImplementedError:
            raise TypeError(
                f"{name} ({layer.describe()}) has no shape rule: give {type(layer).__name__} an "
                "output_shape(input_shape) method returning its output shape (batch included)"
            ) from None
        step = ShapeStep(name, layer, shape, out)
        steps.append(step)
        if any(d < 1 for d in out[1:]):
            return steps, _Problem("empty", step, name, layer, shape)
        shape = out
    return steps, None


def _working_sizes(plan: Plan, channels: int, limit: int) -> tuple[int, int] | None:
    """The first run (lo, hi) of square sizes s <= limit for which (1, channels, s, s) works."""
    lo = None
    for s in range(1, limit + 1):
        ok = _walk(plan, (1, channels, s, s))[1] is None
        if ok and lo is None:
            lo = s
        elif not ok and lo is not None:
            return lo, s - 1
    return None if lo is None else (lo, limit)


def _first_channels(plan: Plan) -> int:
    """The channels the first layer that reads them expects (a convolution's
    ``in_channels``, a batch norm's ``num_features``); 3 when none says."""
    for _, layer in plan:
        for attribute in ("in_channels", "num_features"):
            channels = getattr(layer, attribute, None)
            if isinstance(channels, int):
                return channels
    return 3


def smallest_input_size(model: Any, channels: int | None = None, limit: int = 2048) -> int | None:
    """The smallest S for which a (channels, S, S) input runs through ``model``, or None.

    Found by walking the layer shapes for S = 1, 2, ... (arithmetic only).
    ``channels`` defaults to what the first convolution expects.
    """
    plan = layer_plan(model)
    if channels is None:
        channels = _first_channels(plan)
    run = _working_sizes(plan, channels, limit)
    return None if run is None else run[0]


def _what_works(plan: Plan, channels: int, limit: int = 2048) -> str:
    run = _working_sizes(plan, channels, limit)
    if run is None:
        return f"No square input up to {limit}x{limit} works with this configuration."
    lo, hi = run
    text = f"The smallest input that works is {channels}x{lo}x{lo}"
    if hi < limit:
        text += (
            f" (square inputs from {lo}x{lo} to {hi}x{hi} work)"
            if hi > lo
            else " (the only square size that works)"
        )
    return text + "."


def trace_shapes(
    model: Any, input_shape: Sequence[int], *, name: str | None = None
) -> list[ShapeStep]:
    """Walk ``model``'s layers with ``input_shape`` (N, C, H, W) and return every step.

    ``model`` is a module or a plan (a list of (name, module) pairs); ``name`` is
    what error messages call it (the class name by default).

    Raises:
        InputShapeError: (a ValueError) when some layer's output would be empty
            (the message names the first such layer and the smallest input that
            works), when the input has the wrong number of channels (the message
            names the expected count), or when a later layer cannot take what
            reaches it (e.g. a Linear layer sized for another input).
        TypeError: when a layer has no ``output_shape`` method.
    """
    shape = tuple(int(d) for d in input_shape)
    plan = layer_plan(model)
    steps, problem = _walk(plan, shape)
    if problem is None:
        return steps
    what = name or type(model).__name__
    p, m = problem, problem.mismatch
    where = f"{p.name} ({p.layer.describe()})"
    if p.kind == "empty":
        step = p.step
        raise InputShapeError(
            f"{what}: input {fmt_shape(shape)} is too small: {where} would produce an empty "
            f"{fmt_shape(step.output_shape)} output from {fmt_shape(step.input_shape)} "
            f"({p.layer.shape_rule(step.input_shape, step.output_shape)}). "
            + _what_works(plan, _first_channels(plan))
        )
    if m.kind == "ndim":
        hint = "; add a batch dimension with x[None]" if len(m.got) == 3 else ""
        raise InputShapeError(
            f"{what}: {where} needs a {m.expected} input, got shape {m.got}{hint}"
        )
    channels_kept = all(s.output_shape[1] == shape[1] for s in steps)
    if m.kind == "channels" and channels_kept and len(shape) == 4:
        raise InputShapeError(
            f"{what} expects {m.expected} input channels ({where} is its first layer to "
            f"read them), got {m.got} in input shape {shape}"
        )
    if m.kind == "features" and p.shape[1] == m.got:
        before = steps[-1].input_shape if steps else None  # e.g. what a flatten joined
        joined = before is not None and len(before) > 2 and math.prod(before[1:]) == m.got
        reach = f"{fmt_shape(before)} = {m.got}" if joined else str(m.got)
        raise InputShapeError(
            f"{what}: {where} expects {m.expected} input features, but a "
            f"{fmt_shape(shape)} input reaches it with {reach}. "
            + _what_works(plan, _first_channels(plan))
        )
    raise InputShapeError(f"{what}: {where} cannot take shape {p.shape}: {m.reason}")


def check_input(model: Any, input_shape: Sequence[int]) -> None:
    """Raise :class:`InputShapeError` unless ``input_shape`` runs through ``model``."""
    trace_shapes(model, input_shape)
