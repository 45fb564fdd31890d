"""Conv2d by im2col: every convolution becomes one matrix product per group.

Forward, for input x (N, C, H, W), weight W (O, C/G, KH, KW), bias b (O,):

    Ho = floor((H + 2*PH - DH*(KH - 1) - 1) / SH) + 1          (the same for Wo)
    y[n, o, ho, wo] = b[o] + sum_{c,i,j} W[o,c,i,j] * x[n, gC + c, h, w]
    (h = ho*SH + i*DH - PH, w = wo*SW + j*DW - PW; gC = g*C/G, the first channel of o's group g)

im2col unfolds x into X_col (C*KH*KW, N*Ho*Wo), one column per output position,
so with W_g (O/G, C/G*KH*KW) the rows of W for group g and X_g its rows of X_col:

    Y_g = W_g @ X_g                                 (O/G, N*Ho*Wo)

Backward, given dY (N, O, Ho, Wo) laid out as dY_g (O/G, N*Ho*Wo):

    dW_g = dY_g @ X_g.T                             (O/G, C/G*KH*KW)
    db   = sum of dY over n, ho, wo                 (O,)
    dX_g = W_g.T @ dY_g                             (C/G*KH*KW, N*Ho*Wo)
    dx   = col2im(dX_col)                           (N, C, H, W)  -- adds overlapping windows back

The functions below are that math, one formula to a line; the layer class calls
them. A backend may run a faster function under the same name (the GPU computes its
5x5 and 3x3 layers by Winograd, for one): ``backend.which("conv2d_forward")`` names it.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ..backend.dispatch import overridable
from . import init
from ._checks import (
    check_array,
    check_conv_counts,
    check_params_match,
    check_shape,
    check_window,
    check_window_fits,
    conv_padding,
    pair,
)
from .im2col import Pair, col2im, conv_out_size, im2col, window_rule
from .module import Module, Parameter, ShapeMismatch, is_grad_enabled


@overridable
def conv2d_forward(
    x: Any,
    weight: Any,
    bias: Any,
    stride: Pair,
    padding: Pair,
    groups: int,
    save: bool = True,
    dilation: Pair = (1, 1),
) -> tuple[Any, dict | None]:
    """y = conv2d(x) by im2col: one matrix product per group, then the bias.

    Args:
        x: (N, C, H, W); weight: (O, C/G, KH, KW); bias: (O,) or None.
        stride, padding: (SH, SW), (PH, PW); groups: G.
        save: keep what backward needs (False under no_grad: the context is None).
        dilation: (DH, DW), the distance between a window's pixels.
    Returns:
        y (N, O, Ho, Wo), and the context for :func:`conv2d_backward`.
    """
    N, C, H, W = x.shape
    O, Cg, KH, KW = weight.shape
    G, K = groups, Cg * KH * KW  # K: the rows of X_col that belong to one group
    Ho = conv_out_size(H, KH, stride[0], padding[0], dilation[0])
    Wo = conv_out_size(W, KW, stride[1], padding[1], dilation[1])
    X_col = im2col(x, (KH, KW), stride, padding, dilation)
    X_g = X_col.reshape(G, K, N * Ho * Wo)  # X_col, by group
    W_g = weight.reshape(G, O // G, K)
    Y_g = W_g @ X_g  # Y_g = W_g X_g, for every group g at once: (G, O/G, N*Ho*Wo)
    y = Y_g.reshape(O, N, Ho, Wo)
    if bias is not None:
        y = y + bias.reshape(O, 1, 1, 1)  # + b[o]
    y = array_module(y).ascontiguousarray(y.transpose(1, 0, 2, 3))  # (N, O, Ho, Wo)
    # x, not X_col: backward redoes im2col, as the columns are KH*KW/(SH*SW) times x
    ctx = dict(x=x, weight=weight, stride=stride, padding=padding, groups=G)
    ctx.update(has_bias=bias is not None, dilation=dilation)
    return y, (ctx if save else None)


@overridable
def conv2d_backward(grad_out: Any, ctx: dict, input_grad: bool = True) -> tuple[Any, Any, Any]:
    """dL/dx, dL/dW and dL/db from dL/dy, by im2col.

    Args:
        grad_out: dL/dy, (N, O, Ho, Wo).
        ctx: the context :func:`conv2d_forward` returned.
        input_grad: compute dL/dx (a first layer's input needs none: dx is then None).
    Returns:
        dx (N, C, H, W) or None, dW (O, C/G, KH, KW), db (O,) or None.
    """
    x, weight, G = ctx["x"], ctx["weight"], ctx["groups"]
    stride, padding, dilation = ctx["stride"], ctx["padding"], ctx["dilation"]
    N, O, Ho, Wo = grad_out.shape
    _, Cg, KH, KW = weight.shape
    K = Cg * KH * KW
    db = grad_out.sum(axis=(0, 2, 3)) if ctx["has_bias"] else None  # db = sum of dY over n, ho, wo
    dY_g = grad_out.transpose(1, 0, 2, 3).reshape(G, O // G, N * Ho * Wo)  # laid out as Y_g
    X_g = im2col(x, (KH, KW), stride, padding, dilation).reshape(G, K, N * Ho * Wo)
    dW = dY_g @ X_g.transpose(0, 2, 1)  # dW_g = dY_g X_g^T: (G, O/G, K)
    if not input_grad:
        return None, dW.reshape(weight.shape), db
    W_g = weight.reshape(G, O // G, K)
    dX_g = W_g.transpose(0, 2, 1) @ dY_g  # dX_g = W_g^T dY_g: (G, K, N*Ho*Wo)
    dX_col = dX_g.reshape(G * K, N * Ho * Wo)
    dx = col2im(dX_col, x.shape, (KH, KW), stride, padding, dilation)
    return dx, dW.reshape(weight.shape), db


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch).

    Args:
        in_channels, out_channels: C and O; both divisible by ``groups``.
        kernel_size, stride, dilation: an int or an (h, w) pair.
        padding: an int, an (h, w) pair, "valid" (no padding) or "same" (stride 1 only:
            the output has the input's size; total padding D*(K-1), the odd one extra on
            the bottom/right, by padding the input explicitly before the symmetric path).
        groups: G; input channels are split into G groups, each convolved with its own O/G filters.
        bias: learn an additive bias per output channel.

    Shapes:
        input (N, C, H, W) -> output (N, O, Ho, Wo), Ho = floor((H + 2P - D*(K-1) - 1) / S) + 1.
        weight (O, C/G, KH, KW); bias (O,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] | str = 0,
        dilation: int | tuple[int, int] = 1,
        groups: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        name = f"Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size})"
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.dilation = pair(dilation, "dilation", name)
        k, s, d = self.kernel_size, self.stride, self.dilation  # pad_extra: "same"'s odd one
        self.padding, self.pad_extra = conv_padding(padding, k, s, d, name)  # at bottom/right
        self.padding_arg = padding if isinstance(padding, str) else self.padding
        check_window(name, self.kernel_size, self.stride, self.padding, self.dilation)
        check_conv_counts(name, in_channels, out_channels, groups)
        self.in_channels, self.out_channels, self.groups = in_channels, out_channels, groups
        kh, kw = self.kernel_size
        fan_in = in_channels // groups * kh * kw
        self.weight = Parameter(
            init.fan_in_uniform((out_channels, in_channels // groups, kh, kw), fan_in)
        )
        self.bias = Parameter(init.fan_in_uniform((out_channels,), fan_in)) if bias else None

    def extra_repr(self) -> str:
        s = (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}"
        )
        if isinstance(self.padding_arg, str):
            s += f", padding={self.padding_arg!r}"
        elif self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, O, Ho, Wo) for an input of shape (N, C, H, W), Ho = floor((H + 2P - D*(K-1) - 1)
        / S) + 1 (below 1 when the kernel does not fit; H with "same"'s extra row);
        ShapeMismatch unless 4-D with C channels."""
        if len(input_shape) != 4:
            raise ShapeMismatch(self, input_shape, "ndim", "(N, C, H, W)")
        if input_shape[1] != self.in_channels:
            raise ShapeMismatch(self, input_shape, "channels", self.in_channels)
        N, _, H, W = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        (dh, dw), (eh, ew) = self.dilation, self.pad_extra
        Ho, Wo = conv_out_size(H + eh, kh, sh, ph, dh), conv_out_size(W + ew, kw, sw, pw, dw)
        return N, self.out_channels, Ho, Wo

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, 2 * (C/G) * KH * KW for each of the O * Ho * Wo outputs (a multiply-add
        per weight a window uses); bias additions are not counted (under 0.1%)."""
        _, O, Ho, Wo = self.output_shape(input_shape)
        kh, kw = self.kernel_size
        return 2 * (self.in_channels // self.groups) * kh * kw * O * Ho * Wo

    def describe(self) -> str:
        """``Conv2d(3, 96, kernel 11, stride 4, padding 0)``; a non-square pair reads ``3x2``."""
        pairs = (self.kernel_size, self.stride, self.padding)
        k, s, p = (str(a) if a == b else f"{a}x{b}" for a, b in pairs)
        if isinstance(self.padding_arg, str):
            p = repr(self.padding_arg)
        g = f", dilation {self.dilation}" if self.dilation != (1, 1) else ""
        g += f", groups {self.groups}" if self.groups != 1 else ""
        c = f"{self.in_channels}, {self.out_channels}"
        return f"Conv2d({c}, kernel {k}, stride {s}, padding {p}{g})"

    def shape_rule(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
        """Ho and Wo worked out, e.g. ``floor((227 - 11 + 2*0) / 4) + 1 = 54 + 1 = 55``."""
        if self.padding_arg == "same":
            return f"padding 'same', stride 1: Ho, Wo = H, W = {output_shape[2]}, {output_shape[3]}"
        hw, k, s = input_shape[2:], self.kernel_size, self.stride
        return window_rule(hw, k, s, self.padding, self.dilation)

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, O, Ho, Wo)."""
        check_array(self, x)
        check_shape(self, x, (4,), self.in_channels, "(N, C, H, W)")
        check_params_match(self, x)
        span = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        (ph, pw), (eh, ew) = self.padding, self.pad_extra
        check_window_fits(self, x, span, (ph + eh, pw + ew), "kernel")
        if eh or ew:  # "same" with an odd total padding: the extra row/column, explicitly
            x = array_module(x).pad(x, ((0, 0), (0, 0), (0, eh), (0, ew)))
        bias = None if self.bias is None else self.bias.data
        y, ctx = conv2d_forward(
            x, self.weight.data, bias, self.stride, self.padding, self.groups, is_grad_enabled(),
            self.dilation,
        )  # fmt: skip
        self.save_for_backward(ctx)
        return y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, O, Ho, Wo) -> dL/dx (N, C, H, W); adds dL/dW and dL/db to .grad.

        ``input_grad=False`` skips dL/dx (returns None): a first layer's input is the
        images, whose gradient nobody needs, and dX_col + col2im are a third of the work.
        """
        dx, dw, db = conv2d_backward(grad_out, self.saved(grad_out), input_grad=input_grad)
        if dx is not None and any(self.pad_extra):  # drop the gradient of the extra padding
            dx = dx[:, :, : dx.shape[2] - self.pad_extra[0], : dx.shape[3] - self.pad_extra[1]]
        self.weight.accumulate_grad(dw)
        if self.bias is not None:
            self.bias.accumulate_grad(db)
        return dx
