"""Assignment: Conv2d by im2col and col2im, with stride, padding and groups.

A convolution is one matrix product once im2col has copied every window of the
input into a column; its backward pass needs col2im, which adds each column entry
back onto the pixel it came from. Write the four pieces that raise
``NotImplementedError`` with the array module ``get_backend().xp`` (NumPy's API),
then check your work:

    python -m pytest              # every test you are given
    python -m pytest -m task1     # im2col and the forward pass only

Layout, for x (N, C, H, W), a KH x KW kernel, stride (SH, SW) and zero padding (PH, PW):

    Ho = (H + 2*PH - KH) // SH + 1                         (Wo alike)
    cols[(c, i, j), (n, ho, wo)] = x_pad[n, c, ho*SH + i, wo*SW + j]      (C*KH*KW, N*Ho*Wo)

Groups G: channels are split into G groups; the O/G filters of group g see only its
C/G channels, so the product is done per group on the rows of cols of that group.

Do not use the library's convolution (``minitorch_alexnet.nn.Conv2d``, ``nn/conv.py``,
``nn/im2col.py``'s im2col and col2im, a backend's kernels): a submission that
subclasses, imports or calls them scores 0 on the task that does.
"""

from __future__ import annotations

from typing import Any

from minitorch_alexnet import get_backend  # noqa: F401
from minitorch_alexnet.nn import Module, Parameter, init

Pair = tuple[int, int]


def _pair(v: int | Pair) -> Pair:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Positions of a window along one side: (size + 2*padding - kernel) // stride + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x: Any, kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """x (N, C, H, W) -> cols (C*KH*KW, N*Ho*Wo), laid out as in the module's text
    (zeros where a window covers the padding)."""
    # BEGIN SOLUTION
    xp = get_backend().xp
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = xp.empty((C, kh, kw, N, Ho, Wo), dtype=x.dtype)
    for i in range(kh):
        for j in range(kw):
            window = x_pad[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw]  # (N, C, Ho, Wo)
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, N * Ho * Wo)
    # END SOLUTION


def col2im(cols: Any, x_shape: tuple[int, ...], kernel: Pair, stride: Pair, padding: Pair) -> Any:
    """The adjoint of im2col: cols (C*KH*KW, N*Ho*Wo) -> dx (N, C, H, W), every entry
    added onto the pixel it was copied from (entries on the padding are dropped)."""
    # BEGIN SOLUTION
    xp = get_backend().xp
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    cols = cols.reshape(C, kh, kw, N, Ho, Wo)
    dx_pad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            hs, ws = slice(i, i + sh * Ho, sh), slice(j, j + sw * Wo, sw)
            dx_pad[:, :, hs, ws] += cols[:, i, j].transpose(1, 0, 2, 3)
    return dx_pad[:, :, ph : ph + H, pw : pw + W]
    # END SOLUTION


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch), by im2col.

    Parameters: weight (O, C/G, KH, KW) and bias (O,) (None with ``bias=False``).
    Shapes: x (N, C, H, W) -> y (N, O, Ho, Wo).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, stride=1, padding=0,
                 groups: int = 1, bias: bool = True):  # fmt: skip
        super().__init__()
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        self.kernel_size, self.stride, self.padding = (
            _pair(kernel_size),
            _pair(stride),
            _pair(padding),
        )
        kh, kw = self.kernel_size
        fan_in = in_channels // groups * kh * kw
        self.weight = Parameter(
            init.fan_in_uniform((out_channels, in_channels // groups, kh, kw), fan_in)
        )
        self.bias = Parameter(init.fan_in_uniform((out_channels,), fan_in)) if bias else None

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, O, Ho, Wo): per group g, Y_g = W_g @ cols_g, plus the bias.
        Save what backward needs with self.save_for_backward(...)."""
        # BEGIN SOLUTION
        N, C, H, W = x.shape
        O, G = self.out_channels, self.groups
        Ho = out_size(H, self.kernel_size[0], self.stride[0], self.padding[0])
        Wo = out_size(W, self.kernel_size[1], self.stride[1], self.padding[1])
        X_g = im2col(x, self.kernel_size, self.stride, self.padding).reshape(G, -1, N * Ho * Wo)
        W_g = self.weight.data.reshape(G, O // G, -1)
        Y = (W_g @ X_g).reshape(O, N, Ho, Wo).transpose(1, 0, 2, 3)
        if self.bias is not None:
            Y = Y + self.bias.data.reshape(1, O, 1, 1)
        self.save_for_backward(X_g=X_g, x_shape=x.shape)
        return Y
        # END SOLUTION

    def backward(self, grad_out: Any) -> Any:
        """dL/dy (N, O, Ho, Wo) -> dL/dx (N, C, H, W), by col2im; adds dL/dW and dL/db
        to the parameters' gradients with .accumulate_grad(...)."""
        # BEGIN SOLUTION
        s = self.saved()
        X_g, x_shape = s["X_g"], s["x_shape"]
        N, O, Ho, Wo = grad_out.shape
        G = self.groups
        dY_g = grad_out.transpose(1, 0, 2, 3).reshape(G, O // G, N * Ho * Wo)
        dW = dY_g @ X_g.transpose(0, 2, 1)
        self.weight.accumulate_grad(dW.reshape(self.weight.data.shape))
        if self.bias is not None:
            self.bias.accumulate_grad(grad_out.sum(axis=(0, 2, 3)))
        W_g = self.weight.data.reshape(G, O // G, -1)
        dX = (W_g.transpose(0, 2, 1) @ dY_g).reshape(-1, N * Ho * Wo)
        return col2im(dX, x_shape, self.kernel_size, self.stride, self.padding)
        # END SOLUTION
