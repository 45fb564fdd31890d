"""Linear (fully connected) and Flatten.

Linear, for x (N, in), W (out, in), b (out,):

    y  = x @ W.T + b                 (N, out)
    dx = dy @ W                      (N, in)
    dW = dy.T @ x                    (out, in)
    db = sum over n of dy            (out,)

Flatten reshapes (N, C, H, W) -> (N, C*H*W); its backward reshapes back.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend.dispatch import overridable
from . import init
from ._checks import check_array, check_params_match, check_shape
from .module import Module, Parameter, ShapeMismatch, is_grad_enabled


@overridable
def linear_forward(x: Any, weight: Any, bias: Any, save: bool = True) -> tuple[Any, dict | None]:
    """x (N, in), weight (out, in), bias (out,) or None -> y = x W^T + b (N, out), and
    the context for :func:`linear_backward` (None with ``save=False``)."""
    y = x @ weight.T  # y = x W^T
    if bias is not None:
        y += bias  # + b, broadcast over the batch
    return y, (dict(x=x, weight=weight, has_bias=bias is not None) if save else None)


@overridable
def linear_backward(grad_out: Any, ctx: dict, input_grad: bool = True) -> tuple[Any, Any, Any]:
    """dL/dy (N, out) -> dL/dx (N, in) (None unless ``input_grad``), dL/dW (out, in),
    dL/db (out,) (None without a bias)."""
    x, weight = ctx["x"], ctx["weight"]
    dW = grad_out.T @ x  # dW = dy^T x
    db = grad_out.sum(axis=0) if ctx["has_bias"] else None  # db = sum over n of dy
    dx = grad_out @ weight if input_grad else None  # dx = dy W
    return dx, dW, db


class Linear(Module):
    """y = x W^T + b.

    Shapes: input (N, in_features) -> output (N, out_features);
    weight (out_features, in_features), bias (out_features,).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True):
        super().__init__()
        features = (in_features, out_features)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in features):
            raise ValueError(
                f"Linear({in_features}, {out_features}): feature counts must be ints >= 1"
            )
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.fan_in_uniform((out_features, in_features), in_features))
        self.bias = Parameter(init.fan_in_uniform((out_features,), in_features)) if bias else None

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int]:
        """(N, out_features) for (N, in_features); ShapeMismatch for any other input."""
        if len(input_shape) != 2:
            raise ShapeMismatch(self, input_shape, "ndim", "(N, in_features)")
        if input_shape[1] != self.in_features:
            raise ShapeMismatch(self, input_shape, "features", self.in_features)
        return input_shape[0], self.out_features

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, 2 * in_features * out_features: a multiply-add per weight (no bias)."""
        return 2 * self.in_features * self.out_features

    def describe(self) -> str:
        """``Linear(9216, 4096)``."""
        return f"Linear({self.in_features}, {self.out_features})"

    def shape_rule(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
        """``9216 -> 4096 features``."""
        return f"{self.in_features} -> {self.out_features} features"

    def forward(self, x: Any) -> Any:
        """x (N, in) -> y (N, out)."""
        check_array(self, x)
        check_shape(self, x, (2,), self.in_features, "(N, in_features)")
        check_params_match(self, x)
        bias = None if self.bias is None else self.bias.data
        y, ctx = linear_forward(x, self.weight.data, bias, is_grad_enabled())
        self.save_for_backward(ctx)
        return y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, out) -> dL/dx (N, in); adds dL/dW and dL/db to .grad.
        ``input_grad=False`` skips dL/dx and returns None (a first layer's input)."""
        dx, dw, db = linear_backward(grad_out, self.saved(grad_out), input_grad=input_grad)
        self.weight.accumulate_grad(dw)
        if self.bias is not None:
            self.bias.accumulate_grad(db)
        return dx


class Flatten(Module):
    """(N, d1, d2, ...) -> (N, d1*d2*...): the dimensions ``start_dim`` to ``end_dim``
    (both included) joined into one, PyTorch's defaults start_dim=1, end_dim=-1."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        for name, d in (("start_dim", start_dim), ("end_dim", end_dim)):
            if isinstance(d, bool) or not isinstance(d, int):
                raise TypeError(f"Flatten: {name} must be an int, got {d!r}")
        self.start_dim, self.end_dim = start_dim, end_dim

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}" + (
            "" if self.end_dim == -1 else f", end_dim={self.end_dim}"
        )

    def _dims(self, input_shape: tuple[int, ...]) -> tuple[int, int]:
        """start_dim and end_dim counted from 0. IndexError unless each is a dimension of
        the input, ValueError if start comes after end, as in PyTorch."""
        ndim = len(input_shape)
        for name, d in (("start_dim", self.start_dim), ("end_dim", self.end_dim)):
            if not -ndim <= d < ndim:
                raise IndexError(
                    f"{self._name()}: {name} {d} is out of range for a {ndim}-D input of "
                    f"shape {tuple(input_shape)}: it must lie in [{-ndim}, {ndim - 1}]"
                )
        s, e = self.start_dim % ndim, self.end_dim % ndim
        if s > e:
            raise ValueError(f"{self._name()}: start_dim cannot come after end_dim")
        return s, e

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """(N, d1, d2, ...) -> (N, d1*d2*...): the dimensions start_dim..end_dim, joined."""
        s, e = self._dims(input_shape)
        return (*input_shape[:s], math.prod(input_shape[s : e + 1]), *input_shape[e + 1 :])

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """0: a reshape computes nothing."""
        return 0

    def describe(self) -> str:
        """``Flatten``."""
        return "Flatten"

    def shape_rule(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
        """The product, e.g. ``256*6*6 = 9216``."""
        s, e = self._dims(input_shape)
        joined = "*".join(str(d) for d in input_shape[s : e + 1])
        return f"{joined} = {output_shape[s]}"

    def forward(self, x: Any) -> Any:
        check_array(self, x)
        out_shape = self.output_shape(x.shape)  # sizes, not -1: the batch may be empty
        self.save_for_backward(shape=x.shape)
        return x.reshape(out_shape)

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy -> dL/dx, reshaped back (None with ``input_grad=False``)."""
        shape = self.saved(grad_out)["shape"]
        return grad_out.reshape(shape) if input_grad else None
