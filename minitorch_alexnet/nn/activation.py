"""ReLU.

Forward:   y = max(x, 0)
Backward:  dx = dy * [x > 0]       (the gradient passes where the input was positive)
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ._checks import check_array
from .module import Module, is_grad_enabled


class ReLU(Module):
    """Rectified linear unit, elementwise. Any input shape (N, *) -> the same shape."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace  # accepted for PyTorch compatibility; we always return a new array

    def forward(self, x: Any) -> Any:
        check_array(self, x)
        # y = max(x, 0); positive = [x > 0] as bools: all backward needs, 1 byte per element
        y, positive = get_backend().kernels.relu_forward(x, mask=is_grad_enabled())
        self._save_for_backward(positive=positive)
        return y

    def backward(self, grad_out: Any) -> Any:
        positive = self._saved(grad_out)["positive"]
        return get_backend().kernels.relu_backward(grad_out, positive)  # dx = dy * [x > 0]
