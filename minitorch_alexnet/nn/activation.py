"""ReLU.

Forward:   y = max(x, 0)
Backward:  dx = dy * [x > 0]       (the gradient passes where the input was positive)

All backward needs of x is the sign: the mask [x > 0], one byte per element.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import array_module
from ..backend.dispatch import overridable
from ._checks import check_array
from .module import Module, is_grad_enabled


@overridable
def relu_forward(x: Any, save: bool = True) -> tuple[Any, Any]:
    """x (any shape) -> y = max(x, 0) (a NaN stays NaN), and the mask [x > 0] (bool,
    x's shape) as backward's context; None with ``save=False`` (under no_grad)."""
    y = array_module(x).maximum(x, 0)
    return y, (x > 0 if save else None)


@overridable
def relu_backward(grad_out: Any, positive: Any) -> Any:
    """dy and the mask [x > 0] -> dx = dy * [x > 0], all of one shape."""
    return grad_out * positive


class ReLU(Module):
    """Rectified linear unit, elementwise. Any input shape (N, *) -> the same shape."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace  # accepted for PyTorch compatibility; we always return a new array

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input's shape: ReLU is elementwise."""
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, 1 per element (one comparison)."""
        return math.prod(input_shape[1:])

    def forward(self, x: Any) -> Any:
        check_array(self, x)
        y, positive = relu_forward(x, is_grad_enabled())
        self.save_for_backward(positive=positive)
        return y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy -> dL/dx, x's shape (None with ``input_grad=False``: no parameters)."""
        positive = self.saved(grad_out)["positive"]
        return relu_backward(grad_out, positive) if input_grad else None
