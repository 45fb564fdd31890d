"""Sequential: run children in order; backward runs them in reverse (the chain rule).

forward:   x -> f1 -> f2 -> ... -> fk -> y
backward:  dy -> fk.backward -> ... -> f1.backward -> dx
"""

from __future__ import annotations

import inspect
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from .module import Module


class Sequential(Module):
    """A chain of modules. ``Sequential(a, b, c)`` or ``Sequential(OrderedDict(name=module))``."""

    def __init__(self, *modules: Module | OrderedDict):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def add_module(self, name: str, module: Module) -> None:
        if not isinstance(module, Module):
            raise TypeError(
                f"Sequential: {name!r} is a {type(module).__name__}, not a Module; "
                "pass layers such as nn.Conv2d(...) or nn.ReLU()"
            )
        setattr(self, name, module)

    def __getitem__(self, i: int | slice) -> Module:
        """The i-th child, or a Sequential of the children in a slice (as in PyTorch)."""
        if isinstance(i, slice):
            return Sequential(OrderedDict(list(self._modules.items())[i]))
        return list(self._modules.values())[i]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def layer_plan(self) -> list[tuple[str, Module]]:
        """The layers in execution order, as (dotted name, module) for shape walks: the
        children, with a child that has a plan of its own (a nested Sequential) expanded."""
        plan: list[tuple[str, Module]] = []
        for name, m in self._modules.items():
            inner = m.layer_plan() if hasattr(m, "layer_plan") else [("", m)]
            plan += [(f"{name}.{n}" if n else name, layer) for n, layer in inner]
        return plan

    def forward(self, x: Any) -> Any:
        for m in self._modules.values():
            x = m(x)
        return x

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/d(output) -> dL/d(input), through every child in reverse order.

        ``input_grad`` goes to the first child only (every later one must pass its
        input gradient on): with False it returns None, or skips its dx. A first child
        whose own ``backward`` takes no ``input_grad`` (a layer written before it
        existed) is called without it, and its dx is returned.
        """
        children = list(self._modules.values())
        for m in reversed(children[1:]):
            grad_out = m.backward(grad_out)
        if not children:
            return grad_out if input_grad else None
        first = children[0]
        if not input_grad and "input_grad" in inspect.signature(first.backward).parameters:
            return first.backward(grad_out, input_grad=False)
        return first.backward(grad_out)
