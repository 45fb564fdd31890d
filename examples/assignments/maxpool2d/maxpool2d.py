"""Assignment: MaxPool2d's forward and backward passes, overlapping windows included.

AlexNet pools 3x3 windows with stride 2: neighbouring windows share pixels, and a
pixel that is the maximum of several windows receives the gradient of each. Write
the two methods that raise ``NotImplementedError`` with the array module
``get_backend().xp`` (NumPy's API), then check your work:

    python -m pytest              # every test you are given
    python -m pytest -m task1     # the forward pass only

Do not use the library's pooling (``minitorch_alexnet.nn.MaxPool2d``, ``nn/pooling.py``,
a backend's kernels): a submission that subclasses, imports or calls them scores 0.
"""

from __future__ import annotations

from typing import Any

from minitorch_alexnet import get_backend  # noqa: F401
from minitorch_alexnet.nn import Module


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


class MaxPool2d(Module):
    """Max over each KH x KW window, moved by (SH, SW), over an input padded by (PH, PW)
    on each side; padding counts as -infinity (it never wins).

    Shapes: x (N, C, H, W) -> y (N, C, Ho, Wo), Ho = (H + 2*PH - KH) // SH + 1 (Wo alike).
    """

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = _pair(kernel_size)
        self.stride = _pair(stride if stride is not None else kernel_size)
        self.padding = _pair(padding)

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, C, Ho, Wo).

        y[n, c, ho, wo] = max over i < KH, j < KW of x_pad[n, c, ho*SH + i, wo*SW + j].
        Save what backward needs (which pixel of each window won) with
        self.save_for_backward(...); on a tie, the first pixel in row-major order wins.
        """
        # BEGIN SOLUTION
        xp = get_backend().xp
        N, C, H, W = x.shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Ho, Wo = (H + 2 * ph - kh) // sh + 1, (W + 2 * pw - kw) // sw + 1
        x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-xp.inf)
        # window pixel (i, j) of every window at once is one strided slice
        windows = xp.stack([x_pad[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw]
                            for i in range(kh) for j in range(kw)])  # fmt: skip
        self.save_for_backward(winner=windows.argmax(axis=0), x_shape=x.shape)
        return windows.max(axis=0)
        # END SOLUTION

    def backward(self, grad_out: Any) -> Any:
        """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W): each window's gradient goes to
        the pixel that won it. Windows overlap when a kernel side exceeds its stride."""
        # BEGIN SOLUTION
        xp = get_backend().xp
        s = self.saved()
        N, C, H, W = s["x_shape"]
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        Ho, Wo = grad_out.shape[2:]
        dx_pad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=grad_out.dtype)
        for i in range(kh):
            for j in range(kw):
                won = s["winner"] == i * kw + j
                hs, ws = slice(i, i + sh * Ho, sh), slice(j, j + sw * Wo, sw)
                dx_pad[:, :, hs, ws] += xp.where(won, grad_out, 0)
        return dx_pad[:, :, ph : ph + H, pw : pw + W]
        # END SOLUTION
