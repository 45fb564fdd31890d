"""MaxPool2d, overlapping windows included (AlexNet pools 3x3 with stride 2).

Forward, for input x (N, C, H, W), kernel K, stride S, padding P (padding counts as -inf):

    y[n, c, ho, wo] = max over i, j < K of x[n, c, ho*S + i - P, wo*S + j - P]
    idx[n, c, ho, wo] = the flat position h*W + w of that maximum

Backward: each window's gradient flows to its winner only.

    dx[n, c].flat[idx[n, c, ho, wo]] += dy[n, c, ho, wo]

When windows overlap (K > S), one pixel can win several windows and collects
all their gradients.
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ._checks import check_array, check_shape, check_window, check_window_fits, pair
from .conv import conv_out_size
from .module import Module, is_grad_enabled


class MaxPool2d(Module):
    """2-D max pooling.

    Args:
        kernel_size: window size K (int or pair).
        stride: step S; defaults to ``kernel_size`` as in PyTorch.
        padding: implicit -inf padding P on each side; at most K/2, as in PyTorch.

    Shapes: input (N, C, H, W) -> output (N, C, Ho, Wo), Ho = floor((H + 2P - K) / S) + 1.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
    ):
        super().__init__()
        name = f"MaxPool2d(kernel_size={kernel_size})"
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride if stride is not None else kernel_size, "stride", name)
        self.padding = pair(padding, "padding", name)
        check_window(name, self.kernel_size, self.stride, self.padding)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{name}: padding {self.padding} must be at most half the kernel size "
                f"{self.kernel_size}, otherwise a window could hold only padding"
            )

    def extra_repr(self) -> str:
        k, s, p = self.kernel_size, self.stride, self.padding
        return (
            f"kernel_size={k[0] if k[0] == k[1] else k}, stride={s[0] if s[0] == s[1] else s}"
            + (f", padding={p}" if p != (0, 0) else "")
        )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C, Ho, Wo) for an input of shape (N, C, H, W)."""
        N, C, H, W = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return N, C, conv_out_size(H, kh, sh, ph), conv_out_size(W, kw, sw, pw)

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, C, Ho, Wo)."""
        check_array(self, x)
        check_shape(self, x, (4,), None, "(N, C, H, W)")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        check_window_fits(self, x, self.kernel_size, self.padding, "window")
        # idx: the flat position of each window's maximum, all backward needs (none
        # under no_grad, where no backward follows)
        y, idx = get_backend().kernels.maxpool2d_forward(
            x, kh, kw, sh, sw, ph, pw, indices=is_grad_enabled()
        )
        self._save_for_backward(idx=idx, x_shape=x.shape)
        return y

    def backward(self, grad_out: Any) -> Any:
        """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W)."""
        s = self._saved(grad_out)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return get_backend().kernels.maxpool2d_backward(
            grad_out, s["idx"], s["x_shape"], kh, kw, sh, sw, ph, pw
        )
