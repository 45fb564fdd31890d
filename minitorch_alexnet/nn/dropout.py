"""Dropout, inverted (the scaling happens in training, so evaluation is the identity).

Training, with keep mask m[i] ~ Bernoulli(1 - p):

    y  = x * m / (1 - p)
    dx = dy * m / (1 - p)

Evaluation: y = x, dx = dy.
"""

from __future__ import annotations

import numbers
from typing import Any

from .. import backend as _backend
from ._checks import check_array
from .module import Module


class Dropout(Module):
    """Zero each element with probability ``p`` in training; identity in evaluation.

    Shapes: any (N, *) -> the same shape. The mask is drawn from the project's
    generator (``manual_seed``), on the device for CuPy.
    """

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0.0 <= p < 1.0:
            raise ValueError(
                f"Dropout: p must be a probability in [0, 1), got {p!r} "
                "(p=1 would drop everything; use p=0 for no dropout)"
            )
        self.p = float(p)
        self.inplace = inplace  # accepted for PyTorch compatibility

    def extra_repr(self) -> str:
        return f"p={self.p}"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input's shape: dropout is elementwise."""
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """0: the identity at inference."""
        return 0

    def describe(self) -> str:
        """``Dropout(p=0.5)``."""
        return f"Dropout(p={self.p:g})"

    def forward(self, x: Any) -> Any:
        check_array(self, x)
        if not self.training or self.p == 0.0:
            self.save_for_backward(mask=None)
            return x
        draw = "float32" if x.dtype.itemsize < 4 else x.dtype  # generators have no float16
        keep = _backend.uniform(x.shape, draw) >= self.p  # m ~ Bernoulli(1 - p)
        mask = keep * x.dtype.type(1.0 / (1.0 - self.p))  # m / (1 - p), in x's dtype
        self.save_for_backward(mask=mask)
        return x * mask

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy -> dL/dx, x's shape (None with ``input_grad=False``: no parameters)."""
        mask = self.saved(grad_out)["mask"]
        if not input_grad:
            return None
        return grad_out if mask is None else grad_out * mask
