"""``Parameter`` and ``Module``: the base every layer builds on.

There is no autograd. Each layer's ``forward`` keeps what its ``backward`` needs
with :meth:`Module.save_for_backward`, and ``backward(grad_out, *, input_grad=True)``
fetches it with :meth:`Module.saved`, returns dL/d(input) (None with
``input_grad=False``) and *adds* dL/d(parameter) into each ``Parameter.grad`` (as
PyTorch does, so gradients of several backward passes accumulate until
:meth:`Module.zero_grad`).
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NamedTuple

from .. import backend as _backend
from ._checks import check_grad, state_entry_problems

_grad_enabled = True


def is_grad_enabled() -> bool:
    """False inside :func:`no_grad`: layers then keep no cache for backward."""
    return _grad_enabled


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """Run forward passes without caching anything for backward (saves memory in evaluation)."""
    global _grad_enabled
    previous, _grad_enabled = _grad_enabled, False
    try:
        yield
    finally:
        _grad_enabled = previous


class LoadResult(NamedTuple):
    """What :meth:`Module.load_state_dict` did not match (PyTorch's names)."""

    missing_keys: list[str]
    unexpected_keys: list[str]


class ShapeMismatch(ValueError):
    """Raised by :meth:`Module.output_shape` for an input shape the layer cannot take:
    ``kind`` "ndim" (``expected`` a layout such as "(N, C, H, W)"), "channels" or "features"."""

    def __init__(self, layer: Module, shape: tuple[int, ...], kind: str, expected: Any):
        self.kind, self.expected = kind, expected
        self.got = tuple(shape) if kind == "ndim" else shape[1]
        self.reason = f"it expects {expected} {kind}, got {self.got}"
        if kind == "ndim":
            self.reason = f"it needs a {expected} input, got shape {self.got}"
        super().__init__(f"{layer.describe()} cannot take shape {tuple(shape)}: {self.reason}")


class Parameter:
    """A learnable array and the gradient accumulated for it.

    Attributes:
        data: the values, an array of the active backend.
        grad: ``None`` until a backward pass adds to it; then an array of ``data``'s shape.
        requires_grad: optimisers skip parameters where this is False.
    """

    def __init__(self, data: Any, requires_grad: bool = True):
        self.data = data
        self.grad = None
        self.requires_grad = requires_grad

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def dtype(self) -> Any:
        return self.data.dtype

    @property
    def size(self) -> int:
        return int(self.data.size)

    def numel(self) -> int:
        return int(self.data.size)

    def accumulate_grad(self, g: Any) -> None:
        """``grad += g``. When there is no gradient yet, ``g`` itself becomes ``grad``
        (no copy), so pass a freshly computed array that nothing else will modify."""
        if self.grad is None:
            self.grad = g
        else:
            self.grad += g

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradient: ``None`` (PyTorch's default) or zeros in place."""
        if set_to_none or self.grad is None:
            self.grad = None
        else:
            self.grad[...] = 0

    def __repr__(self) -> str:
        return f"Parameter(shape={self.shape}, dtype={self.dtype})"


class Module:
    """Base class of all layers and models (PyTorch's names and conventions).

    Subclasses set parameters, buffers and submodules as attributes in
    ``__init__`` and implement ``forward`` and ``backward``.
    """

    training: bool

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "training", True)

    # ------------------------------------------------------------ attributes
    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        if name in self._buffers and not isinstance(value, (Parameter, Module)):
            self._buffers[name] = value  # e.g. `self.num_batches_tracked += 1`
            return
        for store in (self._parameters, self._modules, self._buffers):
            store.pop(name, None)
        if isinstance(value, Parameter):
            self._parameters[name] = value
        elif isinstance(value, Module):
            self._modules[name] = value
        else:
            object.__setattr__(self, name, value)
            return
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for store in ("_parameters", "_buffers", "_modules"):
            if store in d and name in d[store]:
                return d[store][name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        for store in (self._parameters, self._buffers, self._modules):
            if name in store:
                del store[name]
                return
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: Any) -> None:
        """A state array saved in ``state_dict`` but not learned (BatchNorm's running stats)."""
        self.__dict__.pop(name, None)
        self._buffers[name] = array

    # ------------------------------------------------------------ running
    def forward(self, *inputs: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} does not implement forward")

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/d(output) -> dL/d(input); adds dL/d(parameter) into each ``Parameter.grad``.

        ``input_grad=False``: nobody needs dL/d(input) (a first layer's input is the
        images). A layer then returns None: with parameters it still adds their
        gradients and skips dx where that saves work; without, it computes nothing.
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement backward")

    def __call__(self, *inputs: Any, **kwargs: Any) -> Any:
        out = self.forward(*inputs, **kwargs)
        cache = self.__dict__.get("_cache")
        if cache is not None and hasattr(out, "shape"):  # what backward's grad_out must be
            cache["_out"] = (tuple(out.shape), out.dtype)
        return out

    def save_for_backward(self, ctx: Mapping[str, Any] | None = None, /, **cache: Any) -> None:
        """Keep what backward needs (nothing inside :func:`no_grad`): named arrays, and
        the entries of ``ctx``, the context a layer's forward function returned
        (``self.save_for_backward(ctx)``, ``self.save_for_backward(x_shape=x.shape)``)."""
        if ctx is not None:
            cache = {**ctx, **cache}
        object.__setattr__(self, "_cache", cache if _grad_enabled else None)

    def saved(self, grad_out: Any = None) -> dict:
        """What forward saved, handed over once: a clear error if there is nothing
        (backward before forward). Given ``grad_out``, first checks that it matches
        the forward output (backend, dtype, shape); a failed check keeps the cache."""
        cache = self.__dict__.get("_cache")
        if cache is None:
            raise RuntimeError(
                f"{self._name()}.backward() was called before forward(), twice for one "
                "forward, or after a forward run under no_grad(). Run the forward pass "
                "(outside no_grad) right before each backward."
            )
        if grad_out is not None and "_out" in cache:
            check_grad(self, grad_out, *cache["_out"])
        object.__setattr__(self, "_cache", None)
        return cache

    def _save_for_backward(self, ctx: Mapping[str, Any] | None = None, /, **cache: Any) -> None:
        """Old name of :meth:`save_for_backward`: an alias kept for one release (0.1.x)."""
        self.save_for_backward(ctx, **cache)

    def _saved(self, grad_out: Any = None) -> dict:
        """Old name of :meth:`saved`: an alias kept for one release (0.1.x)."""
        return self.saved(grad_out)

    def clear_cache(self) -> None:
        """Drop every cache kept for backward, in this module and its submodules."""
        for m in self.modules():
            object.__setattr__(m, "_cache", None)

    def _name(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"

    # ------------------------------------------------------------ traversal
    def named_children(self) -> Iterator[tuple[str, Module]]:
        yield from self._modules.items()

    def children(self) -> Iterator[Module]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        for mod_name, m in self.named_modules(prefix):
            for name, p in m._parameters.items():
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_buffers(self, prefix: str = "") -> Iterator[tuple[str, Any]]:
        for mod_name, m in self.named_modules(prefix):
            for name, b in m._buffers.items():
                yield (f"{mod_name}.{name}" if mod_name else name), b

    def buffers(self) -> Iterator[Any]:
        for _, b in self.named_buffers():
            yield b

    # ------------------------------------------------------------ modes and grads
    def train(self, mode: bool = True) -> Module:
        """Training mode (batch statistics, dropout on) or, with ``mode=False``, evaluation mode."""
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        """Evaluation mode: BatchNorm uses running statistics, Dropout is the identity."""
        return self.train(False)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget accumulated gradients (``None`` by default, as in PyTorch; zeros otherwise)."""
        for p in self.parameters():
            p.zero_grad(set_to_none)

    # ------------------------------------------------------------ state
    def state_dict(self) -> OrderedDict[str, Any]:
        """Every parameter and buffer by dotted name (the arrays themselves, not copies)."""
        out: OrderedDict[str, Any] = OrderedDict()
        for name, m in self.named_modules():
            for key, p in m._parameters.items():
                out[f"{name}.{key}" if name else key] = p.data
            for key, b in m._buffers.items():
                out[f"{name}.{key}" if name else key] = b
        return out

    def load_state_dict(self, state: Mapping[str, Any], strict: bool = True) -> LoadResult:
        """Copy arrays from ``state`` into this module's parameters and buffers.

        Each value is converted to the array library and dtype of the entry it
        replaces, so a state saved on one backend loads on another. Missing or
        unexpected keys (with ``strict``), values that are not arrays of numbers (a
        list, a string) and shape mismatches raise a ``RuntimeError`` that lists all of
        them by key. Returns the missing and unexpected keys (both empty after a strict
        load), as PyTorch does.
        """
        own = self.state_dict()
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        not_arrays, wrong = state_entry_problems(state, own)
        problems = []
        if strict and missing:
            problems.append("missing keys: " + ", ".join(missing))
        if strict and unexpected:
            problems.append("unexpected keys: " + ", ".join(unexpected))
        if not_arrays:
            problems.append("not arrays: " + "; ".join(not_arrays))
        if wrong:
            problems.append("shape mismatches: " + "; ".join(wrong))
        if problems:
            fix = "Give each value as an array of the shape named (numpy.asarray). "
            fix = fix if not_arrays else ""
            raise RuntimeError(
                f"load_state_dict for {type(self).__name__} failed — "
                + " | ".join(problems)
                + f". {fix}If the state was saved from a different model or configuration, "
                "build the same model (same num_classes and layers) before loading."
            )
        for name, m in self.named_modules():
            pre = f"{name}." if name else ""
            for key, p in m._parameters.items():
                if pre + key in state:
                    p.data = _backend.array_like(state[pre + key], p.data)
            for key, b in list(m._buffers.items()):
                if pre + key in state:
                    m._buffers[key] = _backend.array_like(state[pre + key], b)
        return LoadResult(missing, unexpected)

    # ------------------------------------------------------------ conversion
    def _apply(self, fn: Callable[[Any], Any], floating_only: bool = False) -> Module:
        def conv(a: Any) -> Any:
            if a is None:
                return None
            if floating_only and a.dtype.kind != "f":
                return a
            return fn(a)

        for m in self.modules():
            for p in m._parameters.values():
                p.data = conv(p.data)
                p.grad = conv(p.grad)
            for key, b in list(m._buffers.items()):
                m._buffers[key] = conv(b)
            object.__setattr__(m, "_cache", None)
        return self

    def to(self, backend: str) -> Module:
        """Move parameters, gradients and buffers to the backend called ``backend``."""
        B = _backend.get_backend(backend)
        with _backend.use_backend(B.name):
            return self._apply(lambda a: _backend.asarray(a))

    def double(self) -> Module:
        """Cast floating-point parameters and buffers to float64."""
        return self._apply(lambda a: a.astype("float64"), floating_only=True)

    def float(self) -> Module:
        """Cast floating-point parameters and buffers to float32."""
        return self._apply(lambda a: a.astype("float32"), floating_only=True)

    def half(self) -> Module:
        """Cast floating-point parameters and buffers to float16."""
        return self._apply(lambda a: a.astype("float16"), floating_only=True)

    # ------------------------------------------------------------ facts (shape walk, summary)
    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The output shape for an (N, ...) ``input_shape``, by arithmetic alone; raise
        :class:`ShapeMismatch` for one the layer cannot take. Each layer defines its own."""
        raise NotImplementedError(f"{type(self).__name__} defines no output_shape")

    def flops(self, input_shape: tuple[int, ...]) -> int | None:
        """Forward FLOPs per sample of an (N, ...) input (a multiply-add is 2); None: unknown."""
        return None

    def describe(self) -> str:
        """A short description for tables and error messages, e.g. ``Linear(9216, 4096)``."""
        extra = self.extra_repr()
        return f"{type(self).__name__}({extra})" if extra else type(self).__name__

    def shape_rule(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
        """How ``output_shape`` follows from ``input_shape``, as text (docs/shapes.md, errors)."""
        same = tuple(input_shape) == tuple(output_shape)
        return "elementwise, shape kept" if same else f"see {type(self).__name__}.output_shape"

    # ------------------------------------------------------------ printing
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        lines.append(")")
        return "\n".join(lines)
