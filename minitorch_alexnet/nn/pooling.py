"""MaxPool2d, overlapping windows included (AlexNet pools 3x3 with stride 2).

Forward, for input x (N, C, H, W), kernel K, stride S, padding P (padding counts as -inf),
dilation D (a window's pixels D apart):

    y[n, c, ho, wo]      = max over i, j < K of x[n, c, ho*S + i*D - P, wo*S + j*D - P]
    argmax[n, c, ho, wo] = i*K + j of the first pixel of that window holding the maximum

Backward: each window's gradient flows to its winner only.

    dx[n, c, ho*S + i*D - P, wo*S + j*D - P] += dy[n, c, ho, wo]   (i*K + j = argmax[n, c, ho, wo])

When windows overlap (K > S), one pixel can win several windows and collects
all their gradients.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ..backend.dispatch import overridable
from ._checks import check_array, check_shape, check_window, check_window_fits, pair
from .im2col import Pair, pool_out_size, window_rule
from .module import Module, ShapeMismatch, is_grad_enabled


@overridable
def maxpool2d_forward(
    x: Any,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    save: bool = True,
    dilation: Pair = (1, 1),
    ceil_mode: bool = False,
) -> tuple[Any, dict | None]:
    """Max over each window; padding counts as -inf.

    Args:
        x: (N, C, H, W); kernel_size, stride, padding: (KH, KW), (SH, SW), (PH, PW).
        save: keep what backward needs (False under no_grad: the context is None).
        dilation: (DH, DW); ceil_mode: round the output size up (as PyTorch).
    Returns:
        y (N, C, Ho, Wo), and the context for :func:`maxpool2d_backward`: argmax
        (N, C, Ho, Wo), the window position i*KW + j of each maximum. The first
        maximum in row-major window order wins a tie; a NaN wins (and y is NaN).
    """
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    Ho, Wo = (
        pool_out_size(H, kh, sh, ph, ceil_mode, dh),
        pool_out_size(W, kw, sw, pw, ceil_mode, dw),
    )
    xp = array_module(x)
    pads = (ph, ph + _beyond(H, Ho, kh, sh, ph, dh)), (pw, pw + _beyond(W, Wo, kw, sw, pw, dw))
    x_pad = xp.pad(x, ((0, 0), (0, 0), *pads), constant_values=-xp.inf)
    inside = xp.pad(xp.ones((H, W), dtype=bool), pads)  # not padding

    def pixel(a: Any, i: int, j: int) -> Any:  # pixel (i, j) of every window: a strided slice
        return a[..., i * dh : i * dh + sh * Ho : sh, j * dw : j * dw + sw * Wo : sw]

    windows = xp.stack([pixel(x_pad, i, j) for i in range(kh) for j in range(kw)])
    real = xp.stack([pixel(inside, i, j) for i in range(kh) for j in range(kw)])
    # windows: (KH*KW, N, C, Ho, Wo), entry i*KW + j the window pixel (i, j); real: (KH*KW, Ho, Wo)
    y = windows.max(axis=0)
    if not save:
        return y, None
    # the winner: the first real pixel that holds the maximum (or a NaN); padding never
    # wins, even where every pixel of a window is -inf and ties with it
    wins = ((windows == y) | xp.isnan(windows)) & real[:, None, None]
    argmax = wins.argmax(axis=0)
    ctx = dict(argmax=argmax, x_shape=x.shape, kernel_size=kernel_size)
    ctx.update(stride=stride, padding=padding, dilation=dilation)
    return y, ctx


def _beyond(size: int, out: int, k: int, s: int, p: int, d: int) -> int:
    """How far ceil_mode's last window reaches past the right padding (more -inf there)."""
    return max(0, (out - 1) * s + d * (k - 1) + 1 - (size + 2 * p))


@overridable
def maxpool2d_backward(grad_out: Any, ctx: dict) -> Any:
    """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W): each window's gradient to its winner.

    ``ctx`` is :func:`maxpool2d_forward`'s context. A pixel that won several windows
    gets the sum of their gradients, added in output order (ho, wo).
    """
    argmax, (N, C, H, W) = ctx["argmax"], ctx["x_shape"]
    (kh, kw), (sh, sw), (ph, pw) = ctx["kernel_size"], ctx["stride"], ctx["padding"]
    (dh, dw), (Ho, Wo) = ctx["dilation"], grad_out.shape[2:]
    xp = array_module(grad_out)
    Hp, Wp = (
        H + 2 * ph + _beyond(H, Ho, kh, sh, ph, dh),
        W + 2 * pw + _beyond(W, Wo, kw, sw, pw, dw),
    )
    dx_pad = xp.zeros((N, C, Hp, Wp), dtype=grad_out.dtype)
    # window pixel (i, j) of every window at once, as in im2col; (i, j) from last to
    # first, so that a pixel receives its windows' gradients in output order
    for i in reversed(range(kh)):
        for j in reversed(range(kw)):
            won = argmax == i * kw + j
            hs, ws = slice(i * dh, i * dh + sh * Ho, sh), slice(j * dw, j * dw + sw * Wo, sw)
            dx_pad[:, :, hs, ws] += xp.where(won, grad_out, 0)
    return dx_pad[:, :, ph : ph + H, pw : pw + W]


def flat_indices(ctx: dict, x_shape: tuple, out_shape: tuple) -> Any:
    """PyTorch's ``return_indices``: each maximum's flat position h*W + w in its input
    plane. The reference's context holds the window position i*KW + j (``argmax``); the
    overrides' contexts hold the flat positions (``indices``) already."""
    if "indices" in ctx:
        return ctx["indices"]
    a, W, (Ho, Wo) = ctx["argmax"], x_shape[3], out_shape[2:]
    kw, (sh, sw), (ph, pw) = ctx["kernel_size"][1], ctx["stride"], ctx["padding"]
    xp, (dh, dw) = array_module(a), ctx["dilation"]
    h = xp.arange(Ho)[:, None] * sh + (a // kw) * dh - ph  # ho*SH + i*DH - PH
    w = xp.arange(Wo) * sw + (a % kw) * dw - pw  # wo*SW + j*DW - PW
    return (h * W + w).astype(xp.int64)


class MaxPool2d(Module):
    """2-D max pooling.

    Args:
        kernel_size: window size K (int or pair).
        stride: step S; defaults to ``kernel_size`` as in PyTorch.
        padding: implicit -inf padding P on each side; at most half the kernel size K.
        dilation: D, the distance between a window's pixels.
        return_indices: forward returns (y, indices), indices the flat h*W + w of each max.
        ceil_mode: round the output size up; a last window starting in the padding is dropped.

    Shapes: input (N, C, H, W) -> output (N, C, Ho, Wo),
    Ho = floor((H + 2P - D*(K-1) - 1) / S) + 1 (ceil with ceil_mode).
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        dilation: int | tuple[int, int] = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ):
        super().__init__()
        name = f"MaxPool2d(kernel_size={kernel_size})"
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride if stride is not None else kernel_size, "stride", name)
        self.padding = pair(padding, "padding", name)
        self.dilation = pair(dilation, "dilation", name)
        self.return_indices, self.ceil_mode = bool(return_indices), bool(ceil_mode)
        check_window(name, self.kernel_size, self.stride, self.padding, self.dilation)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(  # PyTorch's rule; under dilation a window could be all padding
                f"{name}: padding {self.padding} must be at most half the kernel size "
                f"{self.kernel_size}, as in PyTorch, otherwise a window could hold only padding"
            )

    def extra_repr(self) -> str:
        k, s, p = self.kernel_size, self.stride, self.padding
        return (
            f"kernel_size={k[0] if k[0] == k[1] else k}, stride={s[0] if s[0] == s[1] else s}"
            + (f", padding={p}" if p != (0, 0) else "")
            + (f", dilation={self.dilation}" if self.dilation != (1, 1) else "")
            + (", return_indices=True" if self.return_indices else "")
            + (", ceil_mode=True" if self.ceil_mode else "")
        )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C, Ho, Wo) for an input of shape (N, C, H, W), Ho = floor((H + 2P - D*(K-1) - 1)
        / S) + 1 (ceil with ceil_mode; below 1 when the window does not fit); ShapeMismatch
        unless the input is 4-D."""
        if len(input_shape) != 4:
            raise ShapeMismatch(self, input_shape, "ndim", "(N, C, H, W)")
        N, C, H, W = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        (dh, dw), c = self.dilation, self.ceil_mode
        return N, C, pool_out_size(H, kh, sh, ph, c, dh), pool_out_size(W, kw, sw, pw, c, dw)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, KH * KW - 1 comparisons for each of the C * Ho * Wo outputs."""
        _, C, Ho, Wo = self.output_shape(input_shape)
        kh, kw = self.kernel_size
        return (kh * kw - 1) * C * Ho * Wo

    def describe(self) -> str:
        """``MaxPool2d(kernel 3, stride 2)``; a non-square pair reads ``3x2``."""
        pairs = (self.kernel_size, self.stride, self.padding, self.dilation)
        k, s, p, d = (str(a) if a == b else f"{a}x{b}" for a, b in pairs)
        more = (f", padding {p}" if p != "0" else "") + (f", dilation {d}" if d != "1" else "")
        return f"MaxPool2d(kernel {k}, stride {s}{more}" + (", ceil)" if self.ceil_mode else ")")

    def shape_rule(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
        """Ho and Wo worked out, e.g. ``floor((55 - 3 + 2*0) / 2) + 1 = 26 + 1 = 27``."""
        k, s, p, d = self.kernel_size, self.stride, self.padding, self.dilation
        return window_rule(input_shape[2:], k, s, p, d, self.ceil_mode)

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, C, Ho, Wo), or (y, indices) with ``return_indices``."""
        check_array(self, x)
        check_shape(self, x, (4,), None, "(N, C, H, W)")
        span = tuple(d * (k - 1) + 1 for k, d in zip(self.kernel_size, self.dilation))
        check_window_fits(self, x, span, self.padding, "window")
        k, s, p, d = self.kernel_size, self.stride, self.padding, self.dilation
        save = is_grad_enabled()
        y, ctx = maxpool2d_forward(x, k, s, p, save or self.return_indices, d, self.ceil_mode)
        self.save_for_backward(ctx if save else None)
        return (y, flat_indices(ctx, x.shape, y.shape)) if self.return_indices else y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W); None with ``input_grad=False``."""
        ctx = self.saved(grad_out)
        return maxpool2d_backward(grad_out, ctx) if input_grad else None
