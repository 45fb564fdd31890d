"""ReLU on the GPU: y and its mask from one kernel, dx from another."""

from __future__ import annotations

import cupy as cp

from ..half import via_float32

_relu_forward = cp.ElementwiseKernel(
    "T x",
    "T y, bool positive",
    "positive = x > (T)0; y = positive || x != x ? x : (T)0;",
    "minitorch_relu_forward",
)
_relu_backward = cp.ElementwiseKernel(
    "T g, bool positive", "T dx", "dx = positive ? g : g * (T)0;", "minitorch_relu_backward"
)


@via_float32()
def relu_forward(x: cp.ndarray, save: bool = True) -> tuple[cp.ndarray, cp.ndarray | None]:
    """See ``nn/activation.py`` (y and the mask from one kernel)."""
    if not save:
        return cp.maximum(x, 0), None
    y, positive = _relu_forward(x)
    return y, positive


@via_float32()
def relu_backward(grad_out: cp.ndarray, positive: cp.ndarray) -> cp.ndarray:
    """See ``nn/activation.py`` (one kernel instead of a compare and a product)."""
    return _relu_backward(grad_out, positive)
