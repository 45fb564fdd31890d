"""``new LAYER DEST``: an assignment folder started from the library's own reference code.

The solution module holds the layer's reference functions (``relu_forward``,
``conv2d_backward``, ``im2col``, ...), their source read with :mod:`inspect`, each
body between solution markers and each docstring left for the students; the helpers
they call (``conv_out_size``, ...) are copied as given code; a small layer class
calls the functions. The tests compare the students' layer with the library's over
the kit's generated cases (:func:`~minitorch_alexnet.testing.layer_cases`) and with
finite differences. The manifest forbids the library's layer, its module and the
kit's naive loops for it, and asks ``check`` to hold the solution's functions equal
to the library's. The folder is then the single source: ``nn/`` carries no markers.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path

from ..backend import dispatch
from . import syntax
from .handout import prepare_out

__all__ = ["LAYERS", "ScaffoldError", "new"]


class ScaffoldError(ValueError):
    """An unknown layer, or a destination that is a file, is not empty or may not be replaced."""


@dataclass(frozen=True)
class Layer:
    functions: tuple[str, ...]  # reference names, in the order the file defines them
    forward: tuple[str, ...]  # those of task 1; the rest are task 2's
    forbidden: tuple[str, ...]
    init: str  # the layer class's __init__ and anything it needs
    forward_call: str
    backward_call: str


_PAIR = '''
def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    """An int or an (h, w) pair, as a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))
'''

LAYERS = {
    "ReLU": Layer(
        ("relu_forward", "relu_backward"), ("relu_forward",),
        ("minitorch_alexnet.nn.ReLU", "minitorch_alexnet.nn.activation",
         "minitorch_alexnet.testing.naive.relu_backward_naive"),
        "",
        "y, positive = relu_forward(x)\nself.save_for_backward(positive=positive)\nreturn y",
        'return relu_backward(grad_out, self.saved()["positive"])',
    ),
    "Linear": Layer(
        ("linear_forward", "linear_backward"), ("linear_forward",),
        ("minitorch_alexnet.nn.Linear", "minitorch_alexnet.nn.linear",
         "minitorch_alexnet.testing.naive.linear_backward_naive"),
        """def __init__(self, in_features: int, out_features: int, bias: bool = True):
    super().__init__()
    self.in_features, self.out_features = in_features, out_features
    self.weight = Parameter(init.fan_in_uniform((out_features, in_features), in_features))
    self.bias = Parameter(init.fan_in_uniform((out_features,), in_features)) if bias else None
""",
        "bias = None if self.bias is None else self.bias.data\n"
        "y, ctx = linear_forward(x, self.weight.data, bias)\nself.save_for_backward(ctx)\nreturn y",
        "dx, dw, db = linear_backward(grad_out, self.saved())\nself.weight.accumulate_grad(dw)\n"
        "if self.bias is not None:\n    self.bias.accumulate_grad(db)\nreturn dx",
    ),
    "BatchNorm2d": Layer(
        ("batchnorm_forward", "batchnorm_backward"), ("batchnorm_forward",),
        ("minitorch_alexnet.nn.BatchNorm2d", "minitorch_alexnet.nn.BatchNorm1d",
         "minitorch_alexnet.nn.batchnorm",
         "minitorch_alexnet.testing.naive.batchnorm_backward_naive"),
        """def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
    super().__init__()
    C = (num_features,)
    self.num_features, self.eps, self.momentum = num_features, eps, momentum
    self.weight = Parameter(init.constant(C, 1.0))  # gamma
    self.bias = Parameter(init.constant(C, 0.0))  # beta
    self.register_buffer("running_mean", init.constant(C, 0.0))
    self.register_buffer("running_var", init.constant(C, 1.0))
    self.register_buffer("num_batches_tracked", init.constant((), 0, dtype="int64"))
""",
        "if self.training:\n    self.num_batches_tracked += 1\n"
        "y, ctx = batchnorm_forward(x, self.weight.data, self.bias.data, self.running_mean,\n"
        "                           self.running_var, self.training, self.momentum, self.eps)\n"
        "self.save_for_backward(ctx)\nreturn y",
        "dx, dgamma, dbeta = batchnorm_backward(grad_out, self.saved())\n"
        "self.weight.accumulate_grad(dgamma)\nself.bias.accumulate_grad(dbeta)\nreturn dx",
    ),
    "MaxPool2d": Layer(
        ("maxpool2d_forward", "maxpool2d_backward"), ("maxpool2d_forward",),
        ("minitorch_alexnet.nn.MaxPool2d", "minitorch_alexnet.nn.pooling",
         "minitorch_alexnet.testing.naive.maxpool2d_naive",
         "minitorch_alexnet.testing.naive.maxpool2d_backward_naive"),
        """def __init__(self, kernel_size, stride=None, padding=0):
    super().__init__()
    self.kernel_size = _pair(kernel_size)
    self.stride = _pair(stride if stride is not None else kernel_size)
    self.padding = _pair(padding)
""",
        "y, ctx = maxpool2d_forward(x, self.kernel_size, self.stride, self.padding)\n"
        "self.save_for_backward(ctx)\nreturn y",
        "return maxpool2d_backward(grad_out, self.saved())",
    ),
    "Conv2d": Layer(
        ("im2col", "col2im", "conv2d_forward", "conv2d_backward"), ("im2col", "conv2d_forward"),
        ("minitorch_alexnet.nn.Conv2d", "minitorch_alexnet.nn.conv",
         "minitorch_alexnet.nn.im2col.im2col",
         "minitorch_alexnet.nn.im2col.col2im", "minitorch_alexnet.testing.naive.conv2d_naive",
         "minitorch_alexnet.testing.naive.conv2d_backward_naive"),
        """def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
             groups: int = 1, bias: bool = True):
    super().__init__()
    self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
    self.kernel_size, self.stride, self.padding = _pair(kernel_size), _pair(stride), _pair(padding)
    kh, kw = self.kernel_size
    fan_in = in_channels // groups * kh * kw
    shape = (out_channels, in_channels // groups, kh, kw)
    self.weight = Parameter(init.fan_in_uniform(shape, fan_in))
    self.bias = Parameter(init.fan_in_uniform((out_channels,), fan_in)) if bias else None
""",
        "bias = None if self.bias is None else self.bias.data\n"
        "y, ctx = conv2d_forward(x, self.weight.data, bias, self.stride, self.padding,\n"
        "                        self.groups)\n"
        "self.save_for_backward(ctx)\nreturn y",
        "dx, dw, db = conv2d_backward(grad_out, self.saved())\nself.weight.accumulate_grad(dw)\n"
        "if self.bias is not None:\n    self.bias.accumulate_grad(db)\nreturn dx",
    ),
}  # fmt: skip


def _with_markers(fn: object) -> tuple[str, set[str]]:
    """The function's source without decorators, its body (after the docstring) between
    solution markers; and the global names it uses."""
    source = textwrap.dedent(inspect.getsource(fn))
    tree = syntax.parse(source)
    node = tree.body[0]
    assert isinstance(node, ast.FunctionDef)
    lines = source.splitlines()
    start = node.lineno - 1  # the def line (after the decorators)
    body = node.body
    first = body[1] if len(body) > 1 and isinstance(body[0], ast.Expr) else body[0]
    cut = first.lineno - 1
    while cut > 0 and lines[cut - 1].strip().startswith("#"):  # comments above the first line
        cut -= 1
    indent = " " * first.col_offset
    out = lines[start:cut] + [f"{indent}# BEGIN SOLUTION"] + lines[cut:]
    out.append(f"{indent}# END SOLUTION")
    names = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
    return "\n".join(out) + "\n", names


def _helpers(fns: list[object], known: set[str]) -> list[str]:
    """Sources of the library helpers the functions call (not overridable ones), in order."""
    out: dict[str, str] = {}
    todo = list(fns)
    while todo:
        fn = todo.pop()
        source = textwrap.dedent(inspect.getsource(inspect.unwrap(fn)))
        names = {n.id for n in ast.walk(syntax.parse(source)) if isinstance(n, ast.Name)}
        for name in sorted(names - known - set(out)):
            value = inspect.unwrap(fn).__globals__.get(name)
            if inspect.isfunction(value) and value.__module__.startswith("minitorch_alexnet.nn"):
                if name in dispatch.references():
                    continue
                out[name] = textwrap.dedent(inspect.getsource(value))
                todo.append(value)
    return list(reversed(out.values()))


def _solution_module(name: str, spec: Layer) -> str:
    refs = [dispatch.reference(f) for f in spec.functions]
    module = inspect.getmodule(refs[-1])
    doc = (module.__doc__ or "").strip()
    known = {"Any", "array_module", "Pair", *spec.functions}
    parts = [
        f'"""Assignment: {name}, forward and backward, from the library\'s own reference code.\n\n'
        f"Write the bodies of {', '.join(spec.functions)} (they raise NotImplementedError):\n"
        "plain array code on the array module ``array_module(x)`` gives (NumPy's API).\n"
        f"The layer class {name} at the bottom calls them. Check your work with\n"
        "``python -m pytest`` (``-m task1`` for the forward pass alone).\n\n"
        f"{doc}\n"
        '"""\n\nfrom __future__ import annotations\n\nfrom typing import Any\n\n'
        "from minitorch_alexnet.backend import array_module  # noqa: F401\n"
        "from minitorch_alexnet.nn import Module, Parameter, init  # noqa: F401\n\n"
        "Pair = tuple[int, int]\n",
    ]
    parts += _helpers(refs, known)
    parts += [_with_markers(r)[0] for r in refs]
    if "_pair" in spec.init:
        parts.append(_PAIR.strip() + "\n")
    body = textwrap.indent(spec.init, "    ") + "\n" if spec.init else ""
    body += "    def forward(self, x: Any) -> Any:\n" + textwrap.indent(spec.forward_call, " " * 8)
    body += "\n\n    def backward(self, grad_out: Any) -> Any:\n"
    body += textwrap.indent(spec.backward_call, " " * 8) + "\n"
    cls_doc = f'    """{name}: the layer, calling the functions above."""\n\n'
    parts.append(f"class {name}(Module):\n{cls_doc}"
                 + body)  # fmt: skip
    return "\n\n".join(p.rstrip("\n") + "\n" for p in parts)


TESTS = '''"""{name}: the tests you are given. They compare your layer with the library's
{name} over generated cases, and your backward pass with finite differences."""

from __future__ import annotations

import pytest
from hypothesis import given
from {module} import {name}

from minitorch_alexnet.assignment.equivalence import build_like
from minitorch_alexnet.testing import assert_gradcheck, assert_matches_reference, layer_cases


@pytest.mark.task1
@pytest.mark.points(2)
@given(case=layer_cases("{name}"))
def test_forward_matches_the_library(case):
    """Your forward pass gives the library's output (and running statistics)."""
    ref = case.make()
    assert_matches_reference(build_like({name}, ref), ref, *case.inputs, check_backward=False,
                             config=case)


@pytest.mark.task2
@pytest.mark.points(2)
@given(case=layer_cases("{name}"))
def test_backward_matches_the_library(case):
    """Your backward pass gives the library's input and parameter gradients."""
    ref = case.make()
    assert_matches_reference(build_like({name}, ref), ref, *case.inputs, config=case)


@pytest.mark.task2
@given(case=layer_cases("{name}"))
def test_backward_against_finite_differences(case):
    """gradcheck: your backward pass against central finite differences."""
    ref = case.make()
    layer = build_like({name}, ref)
    layer.load_state_dict(ref.state_dict())
    layer.train(ref.training)
    assert_gradcheck(layer, *case.inputs, config=case)
'''

HIDDEN = '''"""{name}: hidden tests, run by the grader only (release leaves this file out)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from {module} import {name}

from minitorch_alexnet.assignment.equivalence import build_like
from minitorch_alexnet.testing import assert_matches_reference, layer_cases

pytestmark = [pytest.mark.visibility("hidden"), pytest.mark.task2]


@settings(max_examples=25)
@given(case=layer_cases("{name}"))
def test_more_cases_match_the_library(case):
    """Forward and backward on more generated cases."""
    ref = case.make()
    assert_matches_reference(build_like({name}, ref), ref, *case.inputs, config=case)
'''


def _manifest(name: str, module: str, spec: Layer) -> str:
    backward = [f for f in spec.functions if f not in spec.forward]
    refs = {f: f"{dispatch.reference(f).__module__}.{f}" for f in spec.functions}
    lines = [
        f"# Made by: python -m minitorch_alexnet assignment new {name} DEST",
        f'title = "{name}, forward and backward"',
        f'module = "{module}"',
        "timeout = 60",
        "examples = 10",
        "forbidden = [\n" + "".join(f'    "{f}",\n' for f in spec.forbidden) + "]",
        "",
        "[[tasks]]",
        'name = "task1"',
        'title = "forward"',
        "solution = [" + ", ".join(f'"{f}"' for f in spec.forward) + f', "{name}.forward"]',
        "",
        "[[tasks]]",
        'name = "task2"',
        'title = "backward"',
        "solution = [" + ", ".join(f'"{f}"' for f in backward) + f', "{name}.backward"]',
        "",
        "[private]",
        f'hidden = ["test_{module}_hidden.py"]',
        "",
        "# check holds each solution function equal to the library's reference",
        "[private.reference]",
        *(f'{f} = "{target}"' for f, target in refs.items()),
        "",
        "# Planted bugs that check expects to lose points, e.g.:",
        "# [[private.bugs]]",
        '# name = "a sign flipped"',
        '# replace = "..."',
        '# with = "..."',
    ]
    return "\n".join(lines) + "\n"


def new(layer: str, dest: str | Path, *, force: bool = False) -> Path:
    """Write a new assignment folder for the library's ``layer`` into ``dest``."""
    key = {k.lower(): k for k in LAYERS}.get(layer.lower())
    if key is None:
        raise ScaffoldError(f"no template for {layer!r}; layers: {', '.join(LAYERS)}")
    spec = LAYERS[key]
    dest = prepare_out(dest, force=force, label="DEST", error=ScaffoldError)
    module = key.lower()
    (dest / f"{module}.py").write_text(_solution_module(key, spec), encoding="utf-8")
    (dest / f"test_{module}.py").write_text(TESTS.format(name=key, module=module), encoding="utf-8")
    (dest / f"test_{module}_hidden.py").write_text(HIDDEN.format(name=key, module=module),
                                                   encoding="utf-8")  # fmt: skip
    (dest / "conftest.py").write_text(
        '"""Loads the assignment plugin (markers, the grading profile). Leave it as it is."""\n\n'
        'pytest_plugins = ["minitorch_alexnet.assignment.plugin"]\n',
        encoding="utf-8",
    )
    (dest / "assignment.toml").write_text(_manifest(key, module, spec), encoding="utf-8")
    return dest
