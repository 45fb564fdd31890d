"""``check``'s last step: the solution computes what the library computes.

The manifest's ``[private] reference`` maps names in the solution module to library
objects, of three kinds:

* a layer class (``BatchNorm2d = "minitorch_alexnet.nn.BatchNorm2d"``): over the
  kit's generated cases for that layer (:func:`~minitorch_alexnet.testing.layer_cases`),
  the solution's class, built from the library layer's configuration (its
  constructor's arguments read off the library layer by name), must match it by
  :func:`~minitorch_alexnet.testing.assert_matches_reference`;
* an optimizer class (``SGD = "minitorch_alexnet.optim.SGD"``): a few steps with
  every combination of momentum, Nesterov and weight decay, parameter for parameter;
* a reference function (``conv2d_forward = "minitorch_alexnet.nn.conv.conv2d_forward"``,
  as ``new`` writes): the solution's functions are put in the library's place
  (registered as the overrides of a backend of their own) and the library's layer
  must give the same numbers with them as without, over the same generated cases.
"""

from __future__ import annotations

import importlib.util
import inspect
import itertools
import sys
import types
from typing import Any

from .. import backend as _backend
from ..backend import dispatch
from .forbidden import _import
from .manifest import Manifest

__all__ = ["LAYER_CASES", "build_like", "compare_with_library", "load_solution"]

#: which generated cases exercise the functions of a library module
LAYER_CASES = {
    "minitorch_alexnet.nn.activation": "ReLU",
    "minitorch_alexnet.nn.linear": "Linear",
    "minitorch_alexnet.nn.batchnorm": "BatchNorm2d",
    "minitorch_alexnet.nn.pooling": "MaxPool2d",
    "minitorch_alexnet.nn.conv": "Conv2d",
    "minitorch_alexnet.nn.im2col": "Conv2d",
}
EXAMPLES = 15
BACKEND = "assignment-check"  # the backend the solution's functions are registered under


def load_solution(m: Manifest, module: str | None = None) -> types.ModuleType:
    """The solution module, imported from its file under a private name."""
    name = module or m.module
    spec = importlib.util.spec_from_file_location(
        f"_assignment_solution_{name}", m.root / f"{name}.py"
    )
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def _attr(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def _given(strategy: Any, check: Any, examples: int) -> None:
    """Run ``check`` over ``strategy`` with the grading profile's settings."""
    from hypothesis import given, settings

    from .plugin import grading_settings

    @settings(**grading_settings(examples))
    @given(case=strategy)
    def run(case: Any) -> None:
        check(case)

    run()


def build_like(cls: type, ref: Any) -> Any:
    """``cls(...)`` with each constructor argument read off the library layer ``ref``."""
    kwargs = {}
    for name, p in list(inspect.signature(cls.__init__).parameters.items())[1:]:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        if name == "bias" and isinstance(p.default, bool):
            kwargs[name] = getattr(ref, "bias", None) is not None
        elif hasattr(ref, name):
            kwargs[name] = getattr(ref, name)
        elif p.default is p.empty:
            raise TypeError(f"{cls.__name__}: no value for argument {name!r}")
    return cls(**kwargs)


def _layer_check(sol: type, lib: type, examples: int) -> int:
    from ..testing import assert_matches_reference, layer_cases

    seen = [0]

    def check(case: Any) -> None:
        ref = case.make()
        try:
            stu = build_like(sol, ref)
        except (TypeError, ValueError):
            return  # a configuration the assignment's layer does not take
        seen[0] += 1
        assert_matches_reference(stu, ref, *case.inputs, config=case)

    with _backend.use_backend("numpy"):
        _given(layer_cases(lib.__name__), check, examples)
    return seen[0]


def _optimizer_check(sol: type, lib: type) -> int:
    np = _backend.host_xp()
    from ..nn import Parameter

    n = 0
    for momentum, nesterov, decay, damp in itertools.product((0.0, 0.9), (False, True),
                                                             (0.0, 0.01), (0.0, 0.3)):  # fmt: skip
        if nesterov and (momentum == 0 or damp):
            continue
        rng = np.random.default_rng(n)
        kw = dict(lr=0.1, momentum=momentum, nesterov=nesterov, weight_decay=decay, dampening=damp)
        shapes = [(3, 2), (4,)]
        start = [rng.standard_normal(s) for s in shapes]
        ps = {k: [Parameter(a.copy()) for a in start] for k in ("sol", "lib")}
        opts = {"sol": sol(ps["sol"], **kw), "lib": lib(ps["lib"], **kw)}
        for _ in range(3):
            grads = [rng.standard_normal(s) for s in shapes]
            for k in ("sol", "lib"):
                for p, g in zip(ps[k], grads):
                    p.grad = g.copy()
                opts[k].step()
        for a, b in zip(ps["sol"], ps["lib"]):
            np.testing.assert_allclose(a.data, b.data, rtol=1e-12, atol=1e-14, err_msg=str(kw))
        n += 1
    return n


def _function_check(pairs: dict[str, Any], examples: int) -> int:
    """The library's layers with the solution's functions in place of its references."""
    from ..testing import layer_cases

    np = _backend.host_xp()
    layers = sorted({LAYER_CASES[lib.__module__] for _, lib in pairs.values()
                     if lib.__module__ in LAYER_CASES})  # fmt: skip
    if not layers:
        raise ValueError("no generated cases exercise " + ", ".join(sorted(pairs)))
    seen = [0]

    def run(case: Any) -> list[Any]:
        layer = case.make()
        layer.double()
        y = layer(*[_backend.asarray(a, "float64") for a in case.inputs])
        g = np.random.default_rng(0).standard_normal(np.shape(y))
        dx = layer.backward(_backend.asarray(g, "float64"))
        out = (
            [y, dx]
            + [p.grad for p in layer.parameters()]
            + list(dict(layer.named_buffers()).values())
        )
        return [np.asarray(_backend.to_numpy(a), dtype="float64") for a in out if a is not None]

    def check(case: Any) -> None:
        want = run(case)
        with dispatch.activated(BACKEND):
            got = run(case)
        seen[0] += 1
        for i, (a, b) in enumerate(zip(got, want)):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12, err_msg=f"{case}: tensor {i}")

    dispatch.unregister(BACKEND)
    try:
        for sol, lib in pairs.values():
            dispatch.register(BACKEND, lib.__name__, sol)
        with _backend.use_backend("numpy"):
            for layer in layers:
                _given(layer_cases(layer), check, examples)
    finally:
        dispatch.unregister(BACKEND)
    return seen[0]


def compare_with_library(m: Manifest, examples: int = EXAMPLES) -> list[str]:
    """One line per reference entry: what was compared, or what differs."""
    if not m.reference:
        return []
    try:
        mod = load_solution(m)
    except Exception as e:  # noqa: BLE001 - whatever the solution raises at import
        return [f"FAIL reference: the solution {m.module}.py could not be imported: "
                f"{type(e).__name__}: {e}"]  # fmt: skip
    lines, functions = [], {}
    for name, target in m.reference.items():
        try:
            sol = _attr(mod, name)
        except AttributeError:
            lines.append(f"FAIL reference: the solution has no {name}")
            continue
        lib = _import(target)
        if lib is None:
            lines.append(f"FAIL reference: {target} names nothing importable")
            continue
        if inspect.isclass(lib) and hasattr(lib, "step"):
            kind = "optimizer"
        elif inspect.isclass(lib):
            kind = "layer"
        elif getattr(lib, "reference", None) is not None:
            functions[name] = (sol, lib)
            continue
        else:
            lines.append(
                f"FAIL reference: {target} is not a layer, optimizer or overridable function"
            )
            continue
        try:
            n = (
                _optimizer_check(sol, lib)
                if kind == "optimizer"
                else _layer_check(sol, lib, examples)
            )
        except AssertionError as e:
            lines.append(f"FAIL {name} differs from {target}:\n{e}")
            continue
        except Exception as e:  # noqa: BLE001 - a wrong signature, a crash in forward
            lines.append(f"FAIL {name} raised {type(e).__name__}: {e}")
            continue
        if n == 0:
            lines.append(f"FAIL {name}: no generated case of {target} fits its constructor")
        else:
            lines.append(f"ok   {name} equals {target} on {n} generated cases")
    if functions:
        names = ", ".join(functions)
        try:
            n = _function_check(functions, examples)
            lines.append(f"ok   {names} equal the library's references on {n} generated cases")
        except (AssertionError, ValueError) as e:
            lines.append(f"FAIL {names} differ from the library's references:\n{e}")
        except Exception as e:  # noqa: BLE001 - a wrong signature, a crash
            lines.append(f"FAIL {names} raised {type(e).__name__}: {e}")
    return lines
