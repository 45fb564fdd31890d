"""``summary(model, input_size)``: the layer table that torchsummary prints, for our models.

The table, the totals and the four memory lines are those of torchsummary 1.5.1,
character for character, so the two can be compared side by side::

    >>> import minitorch_alexnet as mt
    >>> from minitorch_alexnet.models import AlexNet
    >>> text = mt.summary(AlexNet(), (3, 227, 227))       # doctest: +SKIP
    ----------------------------------------------------------------
            Layer (type)               Output Shape         Param #
    ================================================================
                Conv2d-1           [-1, 96, 55, 55]          34,944
    ...

How it is computed (torchsummary's rules):

* The rows of one forward pass with a batch of 2 (BatchNorm needs more than one
  sample in training): one for every module call except the model itself and
  Sequential containers, written when the module's forward returns, so rows come
  in execution order and are named ``f"{class name}-{row number}"``.
* Those rows come from the layers' shape facts (the shape walk of
  :mod:`~minitorch_alexnet.shape_walk`: ``output_shape`` and ``flops``), so no
  array is made and an input of any size can be summarised. Only a model whose
  layers do not all state their shapes (a layer without ``output_shape``, a module
  with children that is not a Sequential, several inputs) runs a real,
  instrumented forward pass; that pass refuses an input batch over
  ``MAX_PASS_BYTES`` (1 GiB) with a ValueError saying why instead of running out of
  memory.
* Output shapes show ``batch_size`` (default -1) in place of the batch dimension.
* Param # of a row = number of elements of the module's ``weight`` plus its
  ``bias`` (nothing else; BatchNorm's running statistics are buffers and do not
  count). A row is trainable when its ``weight`` has ``requires_grad``.
* Memory, assuming 4 bytes a number whatever the dtype:
  ``Input size = |prod(input_size) * batch_size| * 4 / 2**20``;
  ``Forward/backward pass size = |2 * sum of the rows' output sizes| * 4 / 2**20``
  (each output size is the product of the printed shape, so with the default
  batch_size of -1 it is per sample, and the 2 counts the gradients);
  ``Params size = total params * 4 / 2**20``; the estimated total is their sum.

Beyond torchsummary, ``flops=True`` adds a FLOPs column and FLOP totals, per
sample. Each layer counts its own, in its ``flops(input_shape)`` method (see
:class:`~minitorch_alexnet.nn.Module`; a layer of your own that defines it is
counted too, one without it shows ``?``). The convention, a multiply-add being
2 FLOPs:

* Conv2d: ``2 * (C_in / groups) * KH * KW * C_out * H_out * W_out`` and
  Linear: ``2 * in_features * out_features`` (bias additions not counted; they
  add less than 0.1% here);
* ReLU: 1 per element (one comparison); BatchNorm: 2 per element (inference
  form ``y = a * x + b``, the statistics folded into per-channel ``a`` and ``b``);
* MaxPool2d: ``KH * KW - 1`` comparisons per output element;
* LocalResponseNorm of size n: ``n + 4`` per element (a square, n - 1 adds for
  the window sum, a scale, the ``+ k``, the power and the product);
* Dropout and Flatten: 0 (identity and reshape at inference).

The instrumented pass, when there is one, runs in evaluation mode without caching
anything for backward, and afterwards every module's training flag, backward cache and
buffer (BatchNorm's running statistics) is put back as it was, so calling
``summary`` in the middle of training changes nothing. The input is a fixed
ramp of values in [0, 1], so no random numbers are drawn either.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from . import backend as _backend
from . import nn
from .shape_walk import layer_plan, trace_shapes

__all__ = ["LayerRecord", "collect_layers", "summary"]

_RULE = 64  # torchsummary's line width

#: The largest input batch (in bytes) for which the summary runs a real forward pass,
#: which it does only for models whose layers do not all state their shapes.
MAX_PASS_BYTES = 2**30


@dataclass
class LayerRecord:
    """One row of the summary.

    Attributes:
        key: ``"Conv2d-1"``: class name and row number (torchsummary's ``m_key``).
        name: the module's dotted name in the model (``"conv1.0"``).
        module: the module itself.
        output_shape: the output shape of the pass, batch dimension included (batch 2).
        params: weight elements + bias elements.
        trainable: whether the weight requires a gradient (None when there is no weight).
        flops: forward FLOPs per sample, the module's ``flops(input_shape)`` (None: unknown).
    """

    key: str
    name: str
    module: nn.Module
    output_shape: tuple[int, ...] | list[tuple[int, ...]]
    params: int
    trainable: bool | None
    flops: int | None


def _input_sizes(input_size: Sequence[int] | Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """(C, H, W) -> [(C, H, W)]; a list of such tuples stays a list (several inputs)."""
    if isinstance(input_size, (tuple, list)) and all(
        isinstance(d, int) and not isinstance(d, bool) for d in input_size
    ):
        return [tuple(int(d) for d in input_size)]
    if isinstance(input_size, (tuple, list)) and all(
        isinstance(s, (tuple, list)) for s in input_size
    ):
        return [tuple(int(d) for d in s) for s in input_size]
    raise TypeError(
        f"input_size must be the shape of one sample without the batch dimension, such as "
        f"(3, 227, 227), or a list of such shapes; got {input_size!r}"
    )


def _count(module: nn.Module) -> tuple[int, bool | None]:
    """(weight + bias elements, weight.requires_grad), as torchsummary counts them."""
    params, trainable = 0, None
    weight = getattr(module, "weight", None)
    if weight is not None and hasattr(weight, "shape"):
        params += math.prod(weight.shape)
        trainable = bool(getattr(weight, "requires_grad", True))
    bias = getattr(module, "bias", None)
    if bias is not None and hasattr(bias, "shape"):
        params += math.prod(bias.shape)
    return params, trainable


@contextlib.contextmanager
def model_preserved(model: nn.Module) -> Any:
    """Put back every training flag, backward cache, buffer and the host generator afterwards
    (``summary`` and the saliency maps of ``viz`` run a model without changing it)."""
    modules = list(model.modules())
    flags = [m.training for m in modules]
    caches = [m.__dict__.get("_cache") for m in modules]
    buffers = []
    for m in modules:
        for key, b in m._buffers.items():
            buffers.append((m, key, b, b.copy() if hasattr(b, "copy") else b))
    rng = _backend.get_rng_state()
    try:
        yield
    finally:
        for m, flag, cache in zip(modules, flags, caches):
            object.__setattr__(m, "training", flag)
            object.__setattr__(m, "_cache", cache)
        for m, key, original, saved in buffers:
            if hasattr(original, "copy"):
                original[...] = saved
            m._buffers[key] = original
        _backend.set_rng_state(rng)


def _walked_records(model: nn.Module, sizes: list[tuple[int, ...]]) -> list[LayerRecord] | str:
    """The rows from the layers' shape facts alone (batch 2), or why they cannot give them.

    They can when the model has one input, a layer plan, and every module that gets a
    row (all but the model and the Sequentials) is a layer of that plan without
    children of its own, with an ``output_shape`` method. A walk that finds an input
    the model cannot take raises its :class:`~minitorch_alexnet.shape_walk.InputShapeError`.
    """
    if len(sizes) != 1:
        return "it takes several inputs"
    rowed = [m for m in model.modules() if m is not model and not isinstance(m, nn.Sequential)]
    try:
        plan = layer_plan(model)
    except TypeError as e:
        return str(e)
    planned = {id(m) for _, m in plan}
    for m in rowed:
        if m._modules:
            return f"{type(m).__name__} has layers of its own, which get rows of their own"
        if id(m) not in planned:
            return f"its layer plan leaves out {type(m).__name__}"
    try:
        steps = trace_shapes(plan, (2, *sizes[0]), name=type(model).__name__)
    except TypeError as e:  # a layer without output_shape
        return str(e)
    names = {id(m): n for n, m in model.named_modules()}
    records: list[LayerRecord] = []
    for step in steps:
        m = step.layer
        if m is model or id(m) not in names:  # no row for the model itself, nor for a
            continue  # reshape in its forward that the plan shows as a layer
        params, trainable = _count(m)
        rule = getattr(m, "flops", None)
        flops = rule(step.input_shape) if callable(rule) else None
        key = f"{type(m).__name__}-{len(records) + 1}"
        records.append(
            LayerRecord(key, names[id(m)], m, step.output_shape, params, trainable, flops)
        )
    return records


def collect_layers(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]],
    *,
    forward: bool | None = None,
) -> list[LayerRecord]:
    """A record per module call of a forward pass with a batch of 2.

    Args:
        model: any Module; its parameters must live on the active backend.
        input_size: one sample's shape, e.g. (3, 227, 227), or a list of shapes
            for a model with several inputs.
        forward: None (default): from the layers' shape facts when they cover the
            model (nothing is allocated, so any input size works), else from one
            instrumented forward pass; True: always from the forward pass; False:
            from the shape facts, or a ValueError saying why they cannot be used.

    Returns:
        The rows of the summary, in execution order. The model is left as it was.

    Raises:
        ValueError: the model cannot take the input (the shape walk's message), or
            the forward pass is needed and its input alone would be larger than
            ``MAX_PASS_BYTES``, or it ran out of memory.
    """
    sizes = _input_sizes(input_size)
    walked: list[LayerRecord] | str = ""
    if forward is not True:
        walked = _walked_records(model, sizes)
        if not isinstance(walked, str):
            return walked
        if forward is False:
            raise ValueError(
                f"summary: the shape facts cannot give {type(model).__name__}'s rows: {walked}"
            )
    return _forward_records(model, sizes, why=walked)


def _forward_records(model: nn.Module, sizes: list[tuple[int, ...]], why: str) -> list[LayerRecord]:
    """One instrumented forward pass (batch 2); ``why`` the shape facts were not enough."""
    xp = _backend.get_backend().xp
    dtype = next((p.data.dtype for p in model.parameters() if p.data.dtype.kind == "f"), "float32")
    nbytes = sum(2 * math.prod(size) for size in sizes) * _backend.host_xp().dtype(dtype).itemsize
    if nbytes > MAX_PASS_BYTES:
        raise ValueError(_too_large(model, sizes, nbytes, why))
    xs = []
    for size in sizes:
        n = 2 * math.prod(size)  # batch of 2, as torchsummary
        xs.append(xp.linspace(0.0, 1.0, n, dtype=dtype).reshape(2, *size))

    names = {id(m): n for n, m in model.named_modules()}
    records: list[LayerRecord] = []
    wrapped: list[tuple[nn.Module, Any]] = []

    def instrument(m: nn.Module) -> None:
        inner = m.forward  # the bound method (or an instance attribute already there)
        previous = m.__dict__.get("forward")

        def forward(*args: Any, **kwargs: Any) -> Any:
            out = inner(*args, **kwargs)
            if isinstance(out, (tuple, list)):
                shape: Any = [tuple(o.shape) for o in out]
            else:
                shape = tuple(out.shape)
            params, trainable = _count(m)
            one_input = len(args) == 1 and not kwargs and hasattr(args[0], "shape")
            flops = m.flops(tuple(args[0].shape)) if one_input else None
            key = f"{type(m).__name__}-{len(records) + 1}"
            records.append(
                LayerRecord(key, names.get(id(m), ""), m, shape, params, trainable, flops)
            )
            return out

        object.__setattr__(m, "forward", forward)
        wrapped.append((m, previous))

    with model_preserved(model):
        try:
            for m in model.modules():
                if m is not model and not isinstance(m, nn.Sequential):
                    instrument(m)
            model.eval()
            with nn.no_grad():
                try:
                    model(*xs)
                except MemoryError as e:
                    raise ValueError(_too_large(model, sizes, nbytes, why, ran_out=e)) from None
        finally:
            for m, previous in wrapped:
                if previous is None:
                    m.__dict__.pop("forward", None)
                else:
                    object.__setattr__(m, "forward", previous)
    return records


def _too_large(
    model: nn.Module,
    sizes: list[tuple[int, ...]],
    nbytes: int,
    why: str,
    ran_out: MemoryError | None = None,
) -> str:
    shown = ", ".join("x".join(str(d) for d in s) for s in sizes)
    what = (
        f"ran out of memory ({ran_out})"
        if ran_out is not None
        else f"would need {nbytes / 2**30:.3g} GiB for its input alone"
    )
    because = f" because {why}" if why else ""
    return (
        f"summary: {type(model).__name__}'s table needs a forward pass{because}, and for an "
        f"input of {shown} (a batch of 2) that pass {what}. Summarise a smaller input, or "
        "give every layer an output_shape(input_shape) method (see docs/shapes.md) so "
        "that the table comes from shapes alone."
    )


def _shown_shape(shape: Any, batch_size: int) -> list:
    """The output shape as torchsummary prints it: batch dimension replaced."""
    if isinstance(shape, list):  # several outputs: torchsummary always writes -1 there
        return [[-1, *s[1:]] for s in shape]
    return [batch_size, *shape[1:]]


def _prod(shown: list) -> int:
    if shown and isinstance(shown[0], list):
        return math.prod(d for s in shown for d in s)
    return math.prod(shown)


def _si(flops: float) -> str:
    return f"{flops / 1e9:.3f} GFLOP" if flops >= 1e8 else f"{flops / 1e6:.3f} MFLOP"


def summary(
    model: nn.Module,
    input_size: Sequence[int] | Sequence[Sequence[int]],
    batch_size: int = -1,
    *,
    flops: bool = False,
    backend: str | None = None,
    print_fn: Callable[[str], Any] | None = print,
) -> str:
    """Print and return torchsummary's table for ``model`` (see the module docstring).

    Args:
        model: any Module, e.g. ``AlexNet()``.
        input_size: one sample's shape without the batch dimension, (C, H, W).
        batch_size: the batch size printed in the shapes and used in the memory
            estimate (-1, the default, prints -1 and estimates per sample). The
            pass itself always uses a batch of 2.
        flops: add a FLOPs column (per sample) and FLOP totals.
        backend: run on this backend (the model must be on it); default the active one.
        print_fn: where the text goes (``None`` to only return it).

    Returns:
        The table, lines joined by newlines (no trailing newline).
    """
    ctx = _backend.use_backend(backend) if backend else contextlib.nullcontext()
    with ctx:
        records = collect_layers(model, input_size)
    sizes = _input_sizes(input_size)

    width = _RULE + (16 if flops else 0)
    rule, double = "-" * width, "=" * width
    row = "{:>20}  {:>25} {:>15}" + (" {:>15}" if flops else "")
    head = ["Layer (type)", "Output Shape", "Param #"] + (["FLOPs"] if flops else [])
    lines = [rule, row.format(*head), double]

    total_params = trainable_params = total_output = 0
    total_flops = matmul_flops = 0
    unknown = 0
    for r in records:
        shown = _shown_shape(r.output_shape, batch_size)
        cells = [r.key, str(shown), f"{r.params:,}"]
        if flops:
            cells.append("?" if r.flops is None else f"{r.flops:,}")
            if r.flops is None:
                unknown += 1
            else:
                total_flops += r.flops
                if isinstance(r.module, (nn.Conv2d, nn.Linear)):
                    matmul_flops += r.flops
        lines.append(row.format(*cells))
        total_params += r.params
        total_output += _prod(shown)
        if r.trainable:
            trainable_params += r.params

    # torchsummary's formulas, operation for operation (4 bytes a number)
    total_input_size = abs(math.prod(d for s in sizes for d in s) * batch_size * 4.0 / (1024**2.0))
    total_output_size = abs(2.0 * total_output * 4.0 / (1024**2.0))  # x2 for gradients
    total_params_size = abs(total_params * 4.0 / (1024**2.0))
    total_size = total_params_size + total_output_size + total_input_size

    lines += [
        double,
        f"Total params: {total_params:,}",
        f"Trainable params: {trainable_params:,}",
        f"Non-trainable params: {total_params - trainable_params:,}",
        rule,
        f"Input size (MB): {total_input_size:0.2f}",
        f"Forward/backward pass size (MB): {total_output_size:0.2f}",
        f"Params size (MB): {total_params_size:0.2f}",
        f"Estimated Total Size (MB): {total_size:0.2f}",
        rule,
    ]
    if flops:
        lines.append(f"Forward FLOPs per sample: {total_flops:,} ({_si(total_flops)})")
        lines.append(f"  of which Conv2d + Linear: {matmul_flops:,} ({_si(matmul_flops)})")
        if batch_size > 0:
            lines.append(
                f"Forward FLOPs per batch of {batch_size}: {total_flops * batch_size:,} "
                f"({_si(total_flops * batch_size)})"
            )
        if unknown:
            lines.append(f"({unknown} layer(s) without a FLOP rule, shown as ?, not counted)")
        lines.append(rule)
    text = "\n".join(lines)
    if print_fn is not None:
        print_fn(text)
    return text
