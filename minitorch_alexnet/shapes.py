"""Layer output shapes by arithmetic alone: the worked-out tables of ``docs/shapes.md``.

Convolution and pooling both slide a window of size K with stride S over an
input of length W padded by P zeros on each side; the number of window
positions is

    out = floor((W - K + 2P) / S) + 1

Every layer states its own facts, as methods of its class (defaults on
:class:`~minitorch_alexnet.nn.Module`):

* ``output_shape(input_shape)``: the output shape, batch dimension included;
  it raises :class:`~minitorch_alexnet.nn.module.ShapeMismatch` for an input the
  layer cannot take (wrong number of dimensions, channels or features);
* ``shape_rule(input_shape, output_shape)``: that arithmetic as text, e.g.
  ``floor((227 - 11 + 2*0) / 4) + 1 = 54 + 1 = 55``;
* ``describe()``: a short description, e.g. ``Conv2d(3, 96, kernel 11, stride 4, padding 0)``;
* ``flops(input_shape)``: forward FLOPs per sample (what ``summary(..., flops=True)`` shows).

:mod:`minitorch_alexnet.shape_walk` walks a model's layers with these methods; the
models run that walk before every forward pass, so that an input that does not
fit fails at once, naming the layer and the input size that works. This module
re-exports the walk, adds one-layer helpers, and writes ``docs/shapes.md``
(:func:`render_shapes_markdown`), so that the document shows exactly the
arithmetic the code does. Regenerate it with::

    python -m minitorch_alexnet.shapes --write docs/shapes.md

No layer class is imported here: a layer of your own that defines the methods
above is walked, checked and described like the built-in ones.
Shapes here always include the batch dimension: (N, C, H, W) or (N, F).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from fractions import Fraction
from typing import Any

from .shape_walk import (
    InputShapeError,
    Plan,
    ShapeStep,
    check_input,
    fmt_shape,
    layer_plan,
    smallest_input_size,
    trace_shapes,
)

Shape = tuple[int, ...]

__all__ = [
    "InputShapeError",
    "Plan",
    "ShapeStep",
    "arithmetic",
    "check_input",
    "describe_layer",
    "fmt_shape",
    "layer_output_shape",
    "layer_plan",
    "render_shapes_markdown",
    "smallest_input_size",
    "trace_shapes",
]


# ------------------------------------------------------------------ one layer
def layer_output_shape(layer: Any, input_shape: Sequence[int]) -> Shape:
    """The output shape of ``layer`` for an input of ``input_shape`` (batch dimension included):
    ``layer.output_shape(input_shape)``.

    Conv2d and MaxPool2d apply ``floor((W - K + 2P) / S) + 1`` to H and W (the
    result is <= 0 when the window does not fit); Linear maps (N, in) -> (N, out);
    Flatten joins the dimensions from ``start_dim`` on; the rest keep the shape.

    Raises:
        ValueError: (a ``ShapeMismatch``) when the layer cannot take the shape at
            all (wrong number of dimensions, channels or features).
    """
    return tuple(layer.output_shape(tuple(int(d) for d in input_shape)))


def describe_layer(layer: Any) -> str:
    """A short description such as ``Conv2d(3, 96, kernel 11, stride 4, padding 0)``:
    ``layer.describe()``."""
    return layer.describe()


def arithmetic(layer: Any, input_shape: Sequence[int], output_shape: Sequence[int]) -> str:
    """The computation behind one output shape, e.g. ``floor((227 - 11 + 2*0) / 4) + 1 = ...``:
    ``layer.shape_rule(input_shape, output_shape)``."""
    return layer.shape_rule(tuple(input_shape), tuple(output_shape))


def _windowed(layer: Any) -> bool:
    """Whether ``layer`` slides a window (a convolution or a pooling)."""
    return all(hasattr(layer, a) for a in ("kernel_size", "stride", "padding"))


# ------------------------------------------------------------------ docs/shapes.md
_MODELS_FOR_DOC = ("alexnet", "alexnet_cifar", "alexnet2012")

_OWN_LAYER = """\
## A layer of your own

The tables come from four methods of the layer classes:

* `output_shape(input_shape)`: the output shape, batch dimension included (Output),
  or a `ShapeMismatch` for an input the layer cannot take. `nn.Module` has no rule:
  a walk that reaches a layer without one stops with a `TypeError` that names it.
* `shape_rule(input_shape, output_shape)`: that arithmetic as text (Output size);
  "elementwise, shape kept" by default.
* `describe()`: a short description (Module); by default the class name and
  `extra_repr()`.
* `flops(input_shape)`: forward FLOPs per sample, the FLOPs column of
  `summary(..., flops=True)`; `None` by default, shown as `?`.

A layer you write that defines them gets the same treatment as the built-in ones:
`minitorch_alexnet.shapes.trace_shapes` walks it, an input that does not fit is
refused with its name and the input size that works, and `summary` gives it a row
with its FLOPs. For example (`tests/test_summary.py` tests this very layer):

```python
from minitorch_alexnet import nn
from minitorch_alexnet.nn.module import ShapeMismatch


class SumPool2d(nn.Module):
    \"\"\"The sum of each k x k block, (N, C, H, W) -> (N, C, H // k, W // k) (no backward).\"\"\"

    def __init__(self, k: int):
        super().__init__()
        self.k = k

    def extra_repr(self) -> str:
        return f"k={self.k}"

    def forward(self, x):
        N, C, H, W = x.shape
        k, Ho, Wo = self.k, H // self.k, W // self.k
        return x[:, :, : Ho * k, : Wo * k].reshape(N, C, Ho, k, Wo, k).sum(axis=(3, 5))

    def output_shape(self, input_shape):
        if len(input_shape) != 4:
            raise ShapeMismatch(self, input_shape, "ndim", "(N, C, H, W)")
        N, C, H, W = input_shape
        return N, C, H // self.k, W // self.k

    def shape_rule(self, input_shape, output_shape):
        return f"floor({input_shape[2]} / {self.k}) = {output_shape[2]}"

    def flops(self, input_shape):
        _, C, Ho, Wo = self.output_shape(input_shape)
        return (self.k * self.k - 1) * C * Ho * Wo  # k*k - 1 additions per output
```
"""


def _table(model: Any, input_size: Sequence[int]) -> list[str]:
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
        if _windowed(st.layer)
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
        steps = trace_shapes(plan, (1, blog.input_size[0], size, size))
        sizes = [str(size)] + [str(st.output_shape[2]) for st in steps if _windowed(st.layer)]
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
        "positions. The tables below apply this formula to every layer of each model. Each",
        "row comes from the layer's own methods, the ones the models' input check walks",
        "before every forward pass: `describe()` gives the Module column, `shape_rule()` the",
        "Output size and `output_shape()` the Output (the last section lists them). Shapes",
        "are C x H x W for one image.",
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
    out += _OWN_LAYER.splitlines()
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
