"""Linear on the GPU: its three products by cuBLAS, which a CUDA graph can record."""

from __future__ import annotations

import cupy as cp

from ..half import via_float32
from .cublas import matmul


@via_float32()
def linear_forward(
    x: cp.ndarray, weight: cp.ndarray, bias: cp.ndarray | None, save: bool = True
) -> tuple[cp.ndarray, dict | None]:
    """See ``nn/linear.py``: y = x W^T by cuBLAS, + b."""
    y = matmul(x, weight.T)
    if bias is not None:
        y += bias
    return y, (dict(x=x, weight=weight, has_bias=bias is not None) if save else None)


@via_float32()
def linear_backward(grad_out: cp.ndarray, ctx: dict, input_grad: bool = True) -> tuple:
    """See ``nn/linear.py``: dW = dy^T x and dx = dy W by cuBLAS, db = sum over n of dy."""
    x, weight = ctx["x"], ctx["weight"]
    dw = matmul(grad_out.T, x)
    db = grad_out.sum(axis=0) if ctx["has_bias"] else None
    return (matmul(grad_out, weight) if input_grad else None), dw, db
