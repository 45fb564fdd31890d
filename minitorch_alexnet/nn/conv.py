"""Conv2d by im2col: every convolution becomes one matrix product per group.

Forward, for input x (N, C, H, W), weight W (O, C/G, KH, KW), bias b (O,):

    Ho = floor((H + 2*PH - KH) / SH) + 1          (the same for Wo)
    y[n, o, ho, wo] = b[o] + sum_{c,i,j} W[o,c,i,j] * x[n, gC + c, ho*SH + i - PH, wo*SW + j - PW]
    (gC = g*C/G is the first input channel of o's group g)

im2col unfolds x into X_col (C*KH*KW, N*Ho*Wo), one column per output position,
so with W_g (O/G, C/G*KH*KW) the rows of W for group g and X_g its rows of X_col:

    Y_g = W_g @ X_g                                 (O/G, N*Ho*Wo)

Backward, given dY (N, O, Ho, Wo) laid out as dY_g (O/G, N*Ho*Wo):

    dW_g = dY_g @ X_g.T                             (O/G, C/G*KH*KW)
    db   = sum of dY over n, ho, wo                 (O,)
    dX_g = W_g.T @ dY_g                             (C/G*KH*KW, N*Ho*Wo)
    dx   = col2im(dX_col)                           (N, C, H, W)  -- adds overlapping windows back

Where the backend offers it (the GPU), a 5x5 or 3x3 stride-1 convolution with one
group and at least 16 input channels computes y and dx by Winograd instead (F(4x4, 5x5)
or F(4x4, 3x3) on the GPU): the same sums with several times fewer multiplications
(``backend/winograd.py`` derives it; tests hold it to the im2col path), and, where the
backend offers that too (``winograd_weight_grad``), dW by Winograd F(r x r, m x m).
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ..backend.kernels_numpy import out_size as conv_out_size  # floor((W - K + 2P) / S) + 1
from . import init
from ._checks import (
    check_array,
    check_params_match,
    check_shape,
    check_window,
    check_window_fits,
    pair,
)
from .module import Module, Parameter


def _stack_groups(xp: Any, parts: list) -> Any:
    """The per-group products one above the other (no copy for a single group)."""
    return parts[0] if len(parts) == 1 else xp.concatenate(parts)


class Conv2d(Module):
    """2-D convolution (cross-correlation, as in PyTorch).

    Args:
        in_channels, out_channels: C and O; both divisible by ``groups``.
        kernel_size, stride, padding: an int or an (h, w) pair.
        groups: G; input channels are split into G groups, each convolved with its own O/G filters.
        bias: learn an additive bias per output channel.

    Shapes:
        input (N, C, H, W) -> output (N, O, Ho, Wo), Ho = floor((H + 2P - K) / S) + 1.
        weight (O, C/G, KH, KW); bias (O,).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        groups: int = 1,
        bias: bool = True,
    ):
        super().__init__()
        name = f"Conv2d({in_channels}, {out_channels}, kernel_size={kernel_size})"
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride, "stride", name)
        self.padding = pair(padding, "padding", name)
        check_window(name, self.kernel_size, self.stride, self.padding)
        counts = (in_channels, out_channels, groups)
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in counts):
            raise ValueError(f"{name}: channels and groups must be ints >= 1, got {counts}")
        if in_channels % groups or out_channels % groups:
            raise ValueError(
                f"{name}: in_channels ({in_channels}) and out_channels ({out_channels}) must "
                f"both be divisible by groups ({groups})"
            )
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
        if self.padding != (0, 0):
            s += f", padding={self.padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return s

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, O, Ho, Wo) for an input of shape (N, C, H, W)."""
        N, _, H, W = input_shape
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return (
            N,
            self.out_channels,
            conv_out_size(H, kh, sh, ph),
            conv_out_size(W, kw, sw, pw),
        )

    def _uses_winograd(self, backend: Any) -> bool:
        """Winograd instead of im2col here? Only for 5x5 or 3x3 kernels (the backend picks
        the variant), stride 1, one group, on a backend that offers it for that size, and
        with >= 16 input channels: with 3 (a first layer) its transforms cost more than
        the multiplications they save."""
        offered = {(5, 5): backend.winograd_5x5, (3, 3): backend.winograd_3x3}
        return (
            offered.get(self.kernel_size, False)
            and self.stride == (1, 1)
            and self.groups == 1
            and self.in_channels >= 16
        )

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, O, Ho, Wo)."""
        check_array(self, x)
        check_shape(self, x, (4,), self.in_channels, "(N, C, H, W)")
        check_params_match(self, x)
        check_window_fits(self, x, self.kernel_size, self.padding, "kernel")
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        B = get_backend()
        mm = B.kernels.matmul  # the matrix product a @ b (BLAS on the CPU, cuBLAS on the GPU)
        G, O = self.groups, self.out_channels
        N, _, Ho, Wo = self.output_shape(x.shape)
        bias = None if self.bias is None else self.bias.data
        if self._uses_winograd(B):  # y = A^T [(G w G^T) . (B^T x B)] A per tile, + b
            self._save_for_backward(x=x, cols=None)
            return B.kernels.winograd_conv2d(x, self.weight.data, bias, self.padding)

        cols = B.kernels.im2col(x, kh, kw, sh, sw, ph, pw)  # (C*KH*KW, N*Ho*Wo)
        w = self.weight.data.reshape(G, O // G, -1)  # W_g: (G, O/G, C/G*KH*KW)
        cols_g = cols.reshape(G, -1, N * Ho * Wo)  # X_g: (G, C/G*KH*KW, N*Ho*Wo)
        y = _stack_groups(B.xp, [mm(w[g], cols_g[g]) for g in range(G)])  # Y_g = W_g @ X_g
        # (O, N, Ho, Wo) + b[o]  ->  (N, O, Ho, Wo), in one pass
        out = B.kernels.cnhw_to_nchw(y.reshape(O, N, Ho, Wo), bias)
        # cols is K*K/S^2 times larger than x: the backend decides whether backward
        # gets it kept or redoes im2col from x (cheap on a GPU, where memory is tight)
        keep = None if B.recompute_columns else cols
        self._save_for_backward(x=x, cols=keep)
        return out

    def backward(self, grad_out: Any, input_grad: bool = True) -> Any:
        """dL/dy (N, O, Ho, Wo) -> dL/dx (N, C, H, W); adds dL/dW and dL/db to .grad.

        ``input_grad=False`` skips dL/dx (returns None): a first layer's input is the
        images, whose gradient nobody needs, and dX_col + col2im are a third of the work.
        """
        s = self._saved(grad_out)
        B = get_backend()
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        G, O = self.groups, self.out_channels
        x, cols = s["x"], s["cols"]
        if self._uses_winograd(B) and B.winograd_weight_grad:  # all three by Winograd
            del s
            # dW[o, c] = A'^T [sum over tiles of (G' dY G'^T) . (B^T x B)] A'  (F(r x r, m x m))
            dw = B.kernels.winograd_conv2d_weight_grad(x, grad_out, self.padding, kh)
            self.weight.accumulate_grad(dw)
            if self.bias is not None:
                self.bias.accumulate_grad(grad_out.sum(axis=(0, 2, 3)))  # db = sum dY
            if not input_grad:
                return None
            return B.kernels.winograd_conv2d_input_grad(
                grad_out, self.weight.data, self.padding, x.shape[2:]
            )
        # dY laid out like Y: (O, N*Ho*Wo), rows grouped by output channel; the same
        # pass adds up each row of dY, which is db
        dy, row_sums = B.kernels.nchw_to_cnhw(grad_out, sums=self.bias is not None)
        dy = dy.reshape(G, O // G, -1)
        if self.bias is not None:
            self.bias.accumulate_grad(row_sums)  # db = sum dY over n, ho, wo
        # dW_g = dY_g X_g^T, X_col = im2col(x): the columns kept from forward, or (cols is
        # None) im2col redone by the kernel, in whatever layout its product runs fastest
        dw = B.kernels.conv2d_weight_grad(dy, x, cols, kh, kw, sh, sw, ph, pw)
        self.weight.accumulate_grad(dw.reshape(self.weight.shape))
        del s, cols  # done with X_col: its memory can serve dX_col (same size) below
        if not input_grad:
            return None
        if self._uses_winograd(B):  # dx: the convolution of dy with the flipped filters
            del dy  # (and the columns, above) freed before Winograd makes its buffers
            return B.kernels.winograd_conv2d_input_grad(
                grad_out, self.weight.data, self.padding, x.shape[2:]
            )
        # dX_g = W_g^T dY_g, stacked into dX_col (C*KH*KW, N*Ho*Wo), then col2im adds each
        # column back onto its window: dx (N, C, H, W). One backend call does both, so
        # that the CPU can lay the product out the way its col2im runs fastest.
        w = self.weight.data.reshape(G, O // G, -1)  # W_g: (G, O/G, C/G*KH*KW)
        return B.kernels.conv2d_input_grad(dy, w, x.shape, kh, kw, sh, sw, ph, pw)
