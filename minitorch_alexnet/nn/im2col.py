"""im2col and col2im: a convolution as one matrix product, and its adjoint.

A convolution (and a pooling) slides a KH x KW window over each image. im2col copies
every window into one column of a matrix, so that a convolution becomes a single
matrix product (``conv.py``); col2im is its adjoint, which backward needs: it adds
every column entry back onto the pixel it came from.

Output size of a window K with stride S, padding P and dilation D over a length H
(a dilated window's pixels lie D apart, so it spans D*(K - 1) + 1 pixels):

    Ho = floor((H + 2P - D*(K - 1) - 1) / S) + 1      (D = 1: floor((H + 2P - K) / S) + 1)

Layout. For x (N, C, H, W), ``cols = im2col(x)`` has shape (C*KH*KW, N*Ho*Wo):

    cols[(c, i, j), (n, ho, wo)] = x[n, c, ho*SH + i*DH - PH, wo*SW + j*DW - PW]   (0 outside x)

Rows are ordered by channel first, so the rows of a group of channels form one
contiguous block and a grouped convolution is one product per group. col2im is the
transpose of that copy, a sum: each pixel receives every entry that was copied from
it (a pixel inside several windows receives several).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from ..backend import array_module
from ..backend.dispatch import overridable

Pair = tuple[int, int]


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """Output length of a convolution or pooling window: floor((H + 2P - D*(K-1) - 1) / S) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_out_size(
    size: int, kernel: int, stride: int, padding: int, ceil_mode: bool, dilation: int = 1
) -> int:
    """Output length of a pooling window, floor or (``ceil_mode``) ceiling, as PyTorch."""
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    out = (span + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1  # the last window would start in the right padding: PyTorch drops it
    return out


def window_rule(
    hw: Pair,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair = (1, 1),
    ceil_mode: bool = False,
) -> str:
    """:func:`pool_out_size` for (H, W), worked out as text for docs and error messages:
    ``floor((227 - 11 + 2*0) / 4) + 1 = 54 + 1 = 55``; "H: ...; W: ..." when they differ.
    A dilated kernel K reads as its span D*(K-1)+1, e.g. ``(2*(3-1)+1)``."""
    rnd = "ceil" if ceil_mode else "floor"

    def side(w: int, k: int, s: int, p: int, d: int) -> str:
        span, k_text = d * (k - 1) + 1, (str(k) if d == 1 else f"({d}*({k}-1)+1)")
        q, inner = Fraction(w - span + 2 * p, s), f"{rnd}(({w} - {k_text} + 2*{p}) / {s}) + 1"
        exact = q.numerator if q.denominator == 1 else f"{rnd}({float(q):g})"
        out = pool_out_size(w, k, s, p, ceil_mode, d)
        text = f"{inner} = {exact} + 1"
        if ceil_mode and out < -(-(w - span + 2 * p) // s) + 1:
            text += " - 1 (the last window would start in the padding)"
        return f"{text} = {out}"

    h, w = (tuple(v) for v in zip(hw, kernel_size, stride, padding, dilation))
    return side(*h) if h == w else f"H: {side(*h)}; W: {side(*w)}"


@overridable
def im2col(x: Any, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1)) -> Any:
    """Unfold every window of ``x`` into a column.

    Args:
        x: images, (N, C, H, W).
        kernel_size, stride, padding, dilation: (KH, KW), (SH, SW), (PH, PW), (DH, DW).
    Returns:
        cols, (C*KH*KW, N*Ho*Wo): row (c, i, j), column (n, ho, wo) holds
        x[n, c, ho*SH + i*DH - PH, wo*SW + j*DW - PW], zero where that is padding.
    """
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    Ho, Wo = conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw)
    xp = array_module(x)
    x_pad = xp.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))  # zeros around every image
    cols = xp.empty((C, kh, kw, N, Ho, Wo), dtype=x.dtype)
    for i in range(kh):  # pixel (i, j) of every window at once is one strided slice
        for j in range(kw):
            hs, ws = slice(i * dh, i * dh + sh * Ho, sh), slice(j * dw, j * dw + sw * Wo, sw)
            window_pixel = x_pad[:, :, hs, ws]  # (N, C, Ho, Wo)
            cols[:, i, j] = window_pixel.transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, N * Ho * Wo)


@overridable
def col2im(
    cols: Any,
    x_shape: tuple[int, ...],
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair = (1, 1),
) -> Any:
    """The adjoint of :func:`im2col`: add every column entry back onto its pixel.

    Args:
        cols: (C*KH*KW, N*Ho*Wo), laid out as im2col's result.
        x_shape: (N, C, H, W), the shape of the images im2col was given.
        kernel_size, stride, padding, dilation: the same windows as for im2col.
    Returns:
        dx, (N, C, H, W): each pixel gets the sum of the entries of every window it
        is in; entries that fall on the padding are dropped.
    """
    N, C, H, W = x_shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel_size, stride, padding, dilation
    Ho, Wo = conv_out_size(H, kh, sh, ph, dh), conv_out_size(W, kw, sw, pw, dw)
    xp = array_module(cols)
    cols = cols.reshape(C, kh, kw, N, Ho, Wo)
    dx_pad = xp.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):  # the same slices as im2col, added instead of copied
        for j in range(kw):
            window_pixel = cols[:, i, j].transpose(1, 0, 2, 3)  # (N, C, Ho, Wo)
            hs, ws = slice(i * dh, i * dh + sh * Ho, sh), slice(j * dw, j * dw + sw * Wo, sw)
            dx_pad[:, :, hs, ws] += window_pixel
    return dx_pad[:, :, ph : ph + H, pw : pw + W]
