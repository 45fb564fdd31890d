"""Layer output shapes by arithmetic alone, and the FLOPs each layer costs.

Convolution and pooling both slide a window of size K with stride S over an
input of length W padded by P zeros on each side; the number of window
positions is

    out = floor((W - K + 2P) / S) + 1

This module walks a model's layers in execution order and applies that rule
(and the obvious rules for Linear, Flatten and elementwise layers) to an input
shape, without allocating or computing anything. Three things use it:

* the models check every input before their forward pass and say which layer
  an input is too small for, and which size works (:func:`trace_shapes`);
* :func:`minitorch_alexnet.summary.summary` takes its FLOP counts from
  :func:`layer_flops`;
* ``docs/shapes.md`` is written by :func:`render_shapes_markdown`, so that the
  document shows exactly the arithmetic the code does. Regenerate it with::

      python -m minitorch_alexnet.shapes --write docs/shapes.md

Shapes here always include the batch dimension: (N, C, H, W) or (N, F).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from . import nn
from .nn.conv import conv_out_size

Shape = tuple[int, ...]
Plan = list[tuple[str, nn.Module]]  # (dotted name, layer) in execution order

_ELEMENTWISE = (nn.ReLU, nn.Dropout, nn.LocalResponseNorm)
_BATCHNORM = (nn.BatchNorm1d, nn.BatchNorm2d)

__all__ = [
    "InputShapeError",
    "ShapeStep",
    "arithmetic",
    "check_input",
    "describe_layer",
    "fmt_shape",
    "layer_flops",
    "layer_output_shape",
    "layer_plan",
    "render_shapes_markdown",
    "smallest_input_size",
    "trace_shapes",
]


class InputShapeError(ValueError):
    """An input a network cannot take; the message names the layer and what would work."""


@dataclass(frozen=True)
class ShapeStep:
    """One layer of a walk: its dotted name, the module, and the shapes around it."""

    name: str
    layer: nn.Module
    input_shape: Shape
    output_shape: Shape


class _Mismatch(Exception):
    """Raised by :func:`layer_output_shape` when a layer cannot take a shape at all."""

    def __init__(self, kind: str, expected: Any, got: Any):
        super().__init__(f"{kind}: expected {expected}, got {got}")
        self.kind, self.expected, self.got = kind, expected, got


# ------------------------------------------------------------------ one layer
def _need_ndim(shape: Shape, ndims: tuple[int, ...], layout: str) -> None:
    if len(shape) not in ndims:
        raise _Mismatch("ndim", layout, shape)


def _shape_rule(layer: nn.Module, shape: Shape) -> Shape:
    if isinstance(layer, nn.Conv2d):
        _need_ndim(shape, (4,), "(N, C, H, W)")
        if shape[1] != layer.in_channels:
            raise _Mismatch("channels", layer.in_channels, shape[1])
        return layer.output_shape(shape)
    if isinstance(layer, nn.MaxPool2d):
        _need_ndim(shape, (4,), "(N, C, H, W)")
        return layer.output_shape(shape)
    if isinstance(layer, nn.Linear):
        _need_ndim(shape, (2,), "(N, in_features)")
        if shape[1] != layer.in_features:
            raise _Mismatch("features", layer.in_features, shape[1])
        return (shape[0], layer.out_features)
    if isinstance(layer, nn.Flatten):
        d = layer.start_dim
        return (*shape[:d], math.prod(shape[d:]))
    if isinstance(layer, _BATCHNORM):
        _need_ndim(shape, layer._ndims, layer._layout)
        if shape[1] != layer.num_features:
            raise _Mismatch("channels", layer.num_features, shape[1])
        return shape
    if isinstance(layer, _ELEMENTWISE):
        return shape
    raise TypeError(
        f"no shape rule for {type(layer).__name__}; minitorch_alexnet.shapes knows Conv2d, "
        "MaxPool2d, Linear, Flatten, BatchNorm1d/2d, ReLU, Dropout and LocalResponseNorm"
    )


def layer_output_shape(layer: nn.Module, input_shape: Sequence[int]) -> Shape:
    """The output shape of ``layer`` for an input of ``input_shape`` (batch dimension included).

    Conv2d and MaxPool2d apply ``floor((W - K + 2P) / S) + 1`` to H and W (the
    result is <= 0 when the window does not fit); Linear maps (N, in) -> (N, out);
    Flatten joins the dimensions from ``start_dim`` on; the rest keep the shape.

    Raises:
        ValueError: when the layer cannot take the shape at all (wrong number of
            dimensions, channels or features).
    """
    try:
        return _shape_rule(layer, tuple(int(d) for d in input_shape))
    except _Mismatch as m:
        raise ValueError(
            f"{describe_layer(layer)} cannot take shape {tuple(input_shape)}: {_mismatch_text(m)}"
        ) from None


def layer_flops(layer: nn.Module, output_shape: Sequence[int]) -> int | None:
    """Forward FLOPs of ``layer`` for one sample, from its output shape (N, ...).

    The convention (a multiply-add counts as 2 FLOPs; everything per sample):

    * Conv2d: ``2 * (C_in / groups) * KH * KW * C_out * H_out * W_out``
      (bias additions are not counted; they add less than 0.1% here);
    * Linear: ``2 * in_features * out_features`` (bias not counted);
    * ReLU: 1 per element (one comparison);
    * BatchNorm: 2 per element (inference form ``y = a * x + b`` with the
      statistics folded into per-channel ``a`` and ``b``);
    * MaxPool2d: ``KH * KW - 1`` comparisons per output element;
    * LocalResponseNorm of size n: ``n + 4`` per element (a square, n - 1 adds
      for the window sum, a scale, the ``+ k``, the power and the product);
    * Dropout and Flatten: 0 (identity and reshape at inference).

    Returns ``None`` for a layer type without a rule.
    """
    per_sample = math.prod(output_shape[1:])
    if isinstance(layer, nn.Conv2d):
        kh, kw = layer.kernel_size
        return 2 * (layer.in_channels // layer.groups) * kh * kw * per_sample
    if isinstance(layer, nn.Linear):
        return 2 * layer.in_features * layer.out_features
    if isinstance(layer, nn.ReLU):
        return per_sample
    if isinstance(layer, _BATCHNORM):
        return 2 * per_sample
    if isinstance(layer, nn.MaxPool2d):
        kh, kw = layer.kernel_size
        return (kh * kw - 1) * per_sample
    if isinstance(layer, nn.LocalResponseNorm):
        return (layer.size + 4) * per_sample
    if isinstance(layer, (nn.Dropout, nn.Flatten)):
        return 0
    return None


# ------------------------------------------------------------------ describing
def _num(x: float) -> str:
    return f"{x:g}"


def describe_layer(layer: nn.Module) -> str:
    """A short description such as ``Conv2d(3, 96, kernel 11, stride 4, padding 0)``."""
    if isinstance(layer, nn.Conv2d):
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        k = str(kh) if kh == kw else f"{kh}x{kw}"
        s = str(sh) if sh == sw else f"{sh}x{sw}"
        p = str(ph) if ph == pw else f"{ph}x{pw}"
        g = f", groups {layer.groups}" if layer.groups != 1 else ""
        return (
            f"Conv2d({layer.in_channels}, {layer.out_channels}, kernel {k}, stride {s}, "
            f"padding {p}{g})"
        )
    if isinstance(layer, nn.MaxPool2d):
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        k = str(kh) if kh == kw else f"{kh}x{kw}"
        s = str(sh) if sh == sw else f"{sh}x{sw}"
        p = "" if (ph, pw) == (0, 0) else f", padding {ph if ph == pw else f'{ph}x{pw}'}"
        return f"MaxPool2d(kernel {k}, stride {s}{p})"
    if isinstance(layer, nn.Linear):
        return f"Linear({layer.in_features}, {layer.out_features})"
    if isinstance(layer, _BATCHNORM):
        return f"{type(layer).__name__}({layer.num_features})"
    if isinstance(layer, nn.Dropout):
        return f"Dropout(p={_num(layer.p)})"
    if isinstance(layer, nn.LocalResponseNorm):
        return (
            f"LocalResponseNorm(size {layer.size}, alpha {_num(layer.alpha)}, "
            f"beta {_num(layer.beta)}, k {_num(layer.k)})"
        )
    if isinstance(layer, nn.Flatten):
        return "Flatten"
    extra = layer.extra_repr()
    return f"{type(layer).__name__}({extra})" if extra else type(layer).__name__


def fmt_shape(shape: Sequence[int]) -> str:
    """``(2, 96, 55, 55)`` -> ``96x55x55``: a shape without its batch dimension."""
    return "x".join(str(d) for d in shape[1:])


def _window_text(w: int, k: int, s: int, p: int) -> str:
    q = Fraction(w - k + 2 * p, s)
    out = conv_out_size(w, k, s, p)
    inner = f"({w} - {k} + 2*{p}) / {s}"
    if q.denominator == 1:
        return f"floor({inner}) + 1 = {q.numerator} + 1 = {out}"
    return f"floor({inner}) + 1 = floor({float(q):g}) + 1 = {out}"


def arithmetic(layer: nn.Module, input_shape: Sequence[int], output_shape: Sequence[int]) -> str:
    """The computation behind one output shape, e.g. ``floor((227 - 11 + 2*0) / 4) + 1 = ...``."""
    if isinstance(layer, (nn.Conv2d, nn.MaxPool2d)):
        (kh, kw), (sh, sw), (ph, pw) = layer.kernel_size, layer.stride, layer.padding
        h, w = input_shape[2], input_shape[3]
        th, tw = _window_text(h, kh, sh, ph), _window_text(w, kw, sw, pw)
        return th if (h, kh, sh, ph) == (w, kw, sw, pw) else f"H: {th}; W: {tw}"
    if isinstance(layer, nn.Flatten):
        return f"{'*'.join(str(d) for d in input_shape[layer.start_dim :])} = {output_shape[-1]}"
    if isinstance(layer, nn.Linear):
        return f"{layer.in_features} -> {layer.out_features} features"
    return "elementwise, shape kept"


def _mismatch_text(m: _Mismatch) -> str:
    if m.kind == "ndim":
        return f"it needs a {m.expected} input, got shape {m.got}"
    return f"it expects {m.expected} {m.kind}, got {m.got}"


# ------------------------------------------------------------------ whole models
def layer_plan(model: nn.Module | Plan) -> Plan:
    """The layers of ``model`` in execution order, as (dotted name, module) pairs.

    Models that reshape between their blocks (the AlexNets) describe themselves
    through a ``layer_plan()`` method; a Sequential (nested or not) runs its
    leaves in order; a single layer is its own plan; a list of pairs is a plan already.
    """
    if isinstance(model, list):
        return list(model)
    if hasattr(model, "layer_plan"):
        return list(model.layer_plan())
    if isinstance(model, nn.Sequential):
        return [(n, m) for n, m in model.named_modules() if not m._modules]
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
    layer: nn.Module
    shape: Shape  # the shape that reached the layer
    mismatch: _Mismatch | None = None


def _walk(plan: Plan, shape: Shape) -> tuple[list[ShapeStep], _Problem | None]:
    steps: list[ShapeStep] = []
    for name, layer in plan:
        try:
            out = _shape_rule(layer, shape)
        except _Mismatch as m:
            return steps, _Problem("mismatch", None, name, layer, shape, m)
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


def smallest_input_size(
    model: nn.Module, channels: int | None = None, limit: int = 2048
) -> int | None:
    """The smallest S for which a (channels, S, S) input runs through ``model``, or None.

    Found by walking the layer shapes for S = 1, 2, ... (arithmetic only).
    ``channels`` defaults to what the first convolution expects.
    """
    plan = layer_plan(model)
    if channels is None:
        channels = _first_channels(plan)
    run = _working_sizes(plan, channels, limit)
    return None if run is None else run[0]


def _first_channels(plan: Plan) -> int:
    for _, layer in plan:
        if isinstance(layer, nn.Conv2d):
            return layer.in_channels
        if isinstance(layer, _BATCHNORM):
            return layer.num_features
    return 3


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
    model: nn.Module | Plan, input_shape: Sequence[int], *, name: str | None = None
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
    """
    shape = tuple(int(d) for d in input_shape)
    plan = layer_plan(model)
    steps, problem = _walk(plan, shape)
    if problem is None:
        return steps
    what = name or type(model).__name__
    p, m = problem, problem.mismatch
    where = f"{p.name} ({describe_layer(p.layer)})"
    if p.kind == "empty":
        step = p.step
        raise InputShapeError(
            f"{what}: input {fmt_shape(shape)} is too small: {where} would produce an empty "
            f"{fmt_shape(step.output_shape)} output from {fmt_shape(step.input_shape)} "
            f"({arithmetic(p.layer, step.input_shape, step.output_shape)}). "
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
        before = (
            steps[-1].input_shape if steps and isinstance(steps[-1].layer, nn.Flatten) else None
        )
        reach = f"{fmt_shape(before)} = {m.got}" if before is not None else str(m.got)
        raise InputShapeError(
            f"{what}: {where} expects {m.expected} input features, but a "
            f"{fmt_shape(shape)} input reaches it with {reach}. "
            + _what_works(plan, _first_channels(plan))
        )
    raise InputShapeError(f"{what}: {where} cannot take shape {p.shape}: {_mismatch_text(m)}")


def check_input(model: nn.Module | Plan, input_shape: Sequence[int]) -> None:
    """Raise :class:`InputShapeError` unless ``input_shape`` runs through ``model``."""
    trace_shapes(model, input_shape)


# ------------------------------------------------------------------ docs/shapes.md
_MODELS_FOR_DOC = ("alexnet", "alexnet_cifar", "alexnet2012")


def _table(model: nn.Module, input_size: Sequence[int]) -> list[str]:
    lines = [
        "| Layer | Module | Input | Output size | Output |",
        "|---|---|---|---|---|",
    ]
    for s in trace_shapes(model, (1, *input_size)):
        name = s.name if s.name != "flatten" else "flatten (in forward)"
        lines.append(
            f"| `{name}` | {describe_layer(s.layer)} | {fmt_shape(s.input_shape)} | "
            f"{arithmetic(s.layer, s.input_shape, s.output_shape)} | "
            f"{fmt_shape(s.output_shape)} |"
        )
    return lines


def render_shapes_markdown() -> str:
    """The text of ``docs/shapes.md``: every layer's output size, worked out, for each model."""
    from . import backend as _backend
    from .models import build_model

    k, s = 11, 4
    with _backend.use_backend("numpy"):
        state = _backend.get_rng_state()
        try:
            models = [(name, build_model(name)) for name in _MODELS_FOR_DOC]
        finally:
            _backend.set_rng_state(state)

    q224 = Fraction(224 - k, s) + 1
    q224p2 = Fraction(224 - k + 4, s) + 1
    q227 = Fraction(227 - k, s) + 1
    lost = (224 - k) % s
    lost_text = "row and column" if lost == 1 else f"{lost} rows and columns"
    cifar_pool = Fraction(32 - 3, 2) + 1
    blog = models[0][1]
    inexact = [
        f"{type(m).__name__} {st.name}"
        for m in (blog, models[2][1])
        for st in trace_shapes(m, (1, *m.input_size))
        if isinstance(st.layer, (nn.Conv2d, nn.MaxPool2d))
        and (st.input_shape[2] - st.layer.kernel_size[0] + 2 * st.layer.padding[0])
        % st.layer.stride[0]
    ]
    exact_text = (
        "every division in the two AlexNet tables below comes out exact: no layer drops a "
        "row or column."
        if not inexact
        else f"these divisions still leave a remainder: {', '.join(inexact)}."
    )
    q227p2 = Fraction(227 - k + 4, s) + 1
    after_pool = Fraction(math.floor(q227p2) - 3, 2) + 1

    def sides(size: int) -> str:
        """The spatial side after each conv/pool layer of the blog's AlexNet."""
        plan = [(n, m) for n, m in layer_plan(blog) if n.startswith("conv")]
        steps, _ = _walk(plan, (1, blog.input_size[0], size, size))
        sizes = [str(size)] + [
            str(st.output_shape[2])
            for st in steps
            if isinstance(st.layer, (nn.Conv2d, nn.MaxPool2d))
        ]
        return " -> ".join(sizes)

    try:
        trace_shapes(blog, (1, blog.input_size[0], 224, 224))
        fail_224 = "runs as well."
    except InputShapeError as e:
        fail_224 = f"fails before computing anything:\n\n> {e}"
    out: list[str] = [
        "# Layer shapes, worked out",
        "",
        "<!-- Generated by minitorch_alexnet.shapes.render_shapes_markdown(); do not edit by",
        "     hand. Regenerate with: python -m minitorch_alexnet.shapes --write docs/shapes.md",
        "     (tests/test_shapes_doc.py fails when this file and the code disagree.) -->",
        "",
        "Convolution and max-pooling slide a window of size K with stride S over an input",
        "of size W that has P rows (or columns) of padding on each side. The window fits at",
        "",
        "    out = floor((W - K + 2P) / S) + 1",
        "",
        "positions. The tables below apply this formula to every layer of each model, with",
        "the same code that checks inputs before a forward pass and that",
        "`minitorch_alexnet.summary` uses; shapes are C x H x W for one image.",
        "",
        "## Why 227 and not 224",
        "",
        f"The first convolution of AlexNet has K = {k}, S = {s}. With P = 0 and a 224 x 224",
        f"image, (224 - {k} + 0) / {s} + 1 = {float(q224):g} is not an integer: the windows",
        f"do not tile the image, and the floor silently leaves the last {lost_text}",
        f"of pixels unused. With 227, (227 - {k}) / {s} + 1 = {q227} exactly: every pixel is",
        f"covered and the map is {q227} x {q227}, the size the paper's figure shows (the",
        f"paper's text says 224, which cannot give {q227} without padding). With 227,",
        exact_text,
        "",
        "Side lengths through the conv and pool layers of the blog's AlexNet:",
        "",
        f"    227: {sides(227)}",
        f"    224: {sides(224)}",
        "",
        f"so a 224 x 224 input {fail_224}",
        "",
        "Why conv1 has padding 0: with the 227 input the windows already tile the image",
        "exactly. Padding by 2 would only add windows that are partly zeros and break the",
        f"exact tiling downstream: (227 - {k} + 2*2) / {s} + 1 = {float(q227p2):g}, then the pool",
        f"gives (({math.floor(q227p2)} - 3) / 2) + 1 = {float(after_pool):g}, floored to "
        f"{math.floor(after_pool)}. torchvision keeps 224 and",
        f"pads by 2 instead: (224 - {k} + 2*2) / {s} + 1 = {float(q224p2):g}, floored to "
        f"{math.floor(q224p2)};",
        "its AlexNet also has 64 rather than 96 filters in conv1.",
        "",
        'The CIFAR model pads its 5 x 5 convolutions by 2 ("same" size), so only the',
        f"pools shrink the map: (32 - 3) / 2 + 1 = {float(cifar_pool):g}, floored to "
        f"{math.floor(cifar_pool)}.",
        "",
    ]
    titles = {
        "alexnet": "AlexNet (the blog's network, fixed)",
        "alexnet_cifar": "AlexNetCIFAR",
        "alexnet2012": "AlexNet2012 (the 2012 paper)",
    }
    for name, model in models:
        size = model.input_size
        out += [
            f"## {titles[name]}: input {'x'.join(map(str, size))}",
            "",
            f"`minitorch_alexnet.models.build_model({name!r})`. The flatten between conv5 "
            "and fc1 is a reshape in `forward`, not a module.",
            "",
            *_table(model, size),
            "",
        ]
    return "\n".join(out).rstrip("\n") + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m minitorch_alexnet.shapes [--write PATH]``: print or write docs/shapes.md."""
    parser = argparse.ArgumentParser(
        prog="python -m minitorch_alexnet.shapes",
        description="Print (or write) the worked-out layer shapes of the AlexNet models.",
    )
    parser.add_argument("--write", metavar="PATH", help="write the Markdown to PATH")
    args = parser.parse_args(argv)
    text = render_shapes_markdown()
    if args.write:
        with open(args.write, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
