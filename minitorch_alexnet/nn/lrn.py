"""LocalResponseNorm, with PyTorch's formula (AlexNet 2012, section 3.3).

For input a (N, C, ...) and window size n, channel c is divided by a sum of
squares over its neighbouring channels c' in [c - n//2, c + (n-1)//2] (clipped):

    s_c = k + (alpha / n) * sum_{c'} a_{c'}^2
    b_c = a_c * s_c^(-beta)

Backward. b_c depends on a_c directly and, through s_{c'}, on every a_{c'}
whose window contains c, i.e. c' in [c - (n-1)//2, c + n//2]:

    da_c = db_c * s_c^(-beta)
           - (2 * alpha * beta / n) * a_c * sum_{c'} db_{c'} * a_{c'} * s_{c'}^(-beta-1)

Both window sums add the n shifted copies of a zero-padded array (exact to
rounding, unlike a difference of running totals).
Note: PyTorch (and we) divide alpha by n; the AlexNet paper does not, so the
paper's alpha=1e-4 corresponds to alpha=5e-4 here for n=5. float16 inputs are
computed in float32 (a float16 square overflows to inf past 256) and rounded back.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import get_backend
from ._checks import check_array, check_shape
from .module import Module, ShapeMismatch


def _window_sum(xp: Any, v: Any, before: int, after: int) -> Any:
    """out[:, c] = sum of v[:, c'] for c' in [c - before, c + after], clipped to the channels.

    v has shape (N, C, L). Zero-pad the channel axis, then add the window's
    before + after + 1 shifted copies (a handful: AlexNet's window is 5).
    """
    C = v.shape[1]
    padded = xp.pad(v, ((0, 0), (before, after), (0, 0)))
    out = padded[:, 0:C].copy()
    for shift in range(1, before + after + 1):
        out += padded[:, shift : shift + C]
    return out


class LocalResponseNorm(Module):
    """Normalise each channel by the energy of its ``size`` neighbours.

    Args: size n, alpha, beta, k as in PyTorch (``LocalResponseNorm(5, 1e-4, 0.75, 2.0)``).
    Shapes: input (N, C, *) with at least 3 dimensions -> output of the same shape.
    """

    def __init__(self, size: int, alpha: float = 1e-4, beta: float = 0.75, k: float = 1.0):
        super().__init__()
        if size < 1:
            raise ValueError(f"LocalResponseNorm: size must be >= 1, got {size}")
        self.size, self.alpha, self.beta, self.k = size, float(alpha), float(beta), float(k)

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input's shape (N, C, ...); ShapeMismatch unless it has 3 to 5 dimensions."""
        if len(input_shape) not in (3, 4, 5):
            layout = "(N, C, L), (N, C, H, W) or (N, C, D, H, W)"
            raise ShapeMismatch(self, input_shape, "ndim", layout)
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, n + 4 per element: a square, n - 1 adds for the window sum, a scale,
        the ``+ k``, the power and the product."""
        return (self.size + 4) * math.prod(input_shape[1:])

    def describe(self) -> str:
        """``LocalResponseNorm(size 5, alpha 0.0005, beta 0.75, k 2)``."""
        a, b, k = self.alpha, self.beta, self.k
        return f"LocalResponseNorm(size {self.size}, alpha {a:g}, beta {b:g}, k {k:g})"

    def forward(self, x: Any) -> Any:
        """x (N, C, ...) -> y of the same shape."""
        check_array(self, x)
        check_shape(self, x, (3, 4, 5), None, "(N, C, L), (N, C, H, W) or (N, C, D, H, W)")
        xp = get_backend().xp
        n = self.size
        a = x.reshape(*x.shape[:2], math.prod(x.shape[2:]))  # (N, C, L); N may be 0
        a = a.astype("float32") if x.dtype.itemsize < 4 else a  # float16's a^2 overflows at 256
        s = self.k + (self.alpha / n) * _window_sum(xp, a * a, n // 2, (n - 1) // 2)
        s_pow = s ** (-self.beta)  # s_c^(-beta)
        y = a * s_pow  # b_c = a_c * s_c^(-beta)
        self.save_for_backward(a=a, s=s, s_pow=s_pow, shape=x.shape)
        return y.reshape(x.shape).astype(x.dtype, copy=False)

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy -> dL/dx, both of the input's shape (None with ``input_grad=False``)."""
        c = self.saved(grad_out)
        if not input_grad:  # no parameters: nothing else to compute
            return None
        xp = get_backend().xp
        n, a, s, s_pow = self.size, c["a"], c["s"], c["s_pow"]
        g = grad_out.reshape(a.shape).astype(a.dtype, copy=False)
        t = g * a * s_pow / s  # db_{c'} * a_{c'} * s_{c'}^(-beta-1)
        back = _window_sum(xp, t, (n - 1) // 2, n // 2)  # over every c' whose window holds c
        dx = g * s_pow - (2.0 * self.alpha * self.beta / n) * a * back
        return dx.reshape(c["shape"]).astype(grad_out.dtype, copy=False)
