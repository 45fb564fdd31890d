"""ReLU.

Forward:   y = max(x, 0)
Backward:  dx = dy * [x > 0]       (the gradient passes where the input was positive)
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ._checks import check_array
from .module import Module


class ReLU(Module):
    """Rectified linear unit, elementwise. Any input shape (N, *) -> the same shape."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace  # accepted for PyTorch compatibility; we always return a new array

    def forward(self, x: Any) -> Any:
        check_array(self, x)
        xp = get_backend().xp
        y = xp.maximum(x, 0)  # y = max(x, 0)
        self._save_for_backward(y=y)  # y > 0 exactly where x > 0
        return y

    def backward(self, grad_out: Any) -> Any:
        y = self._saved(grad_out)["y"]
        return get_backend().kernels.relu_backward(grad_out, y)  # dx = dy * [x > 0]
