"""AvgPool2d: the mean of each window, with PyTorch's ceil_mode and divisors.

Forward, for input x (N, C, H, W), kernel K, stride S, padding P (padding counts as 0).
Along each axis, output row ho covers the input rows

    start = ho*S - P,   end = min(start + K, H + P)          (the window, padding included)
    lo = max(start, 0), hi = min(end, H)                    (the rows inside the input)

and, with M_H the (Ho, H) 0/1 matrix M_H[ho, h] = [lo <= h < hi] (likewise M_W),

    y[n, c] = (M_H @ x[n, c] @ M_W^T) / D,   D[ho, wo] = divisor_override, or
              (end - start)_ho * (end - start)_wo   (count_include_pad=True), or
              (hi - lo)_ho * (hi - lo)_wo           (count_include_pad=False)

Backward: y is linear in x, so dx is the transpose applied to dy / D:

    dx[n, c] = M_H^T @ (dy[n, c] / D) @ M_W

Output size: Ho = floor((H + 2P - K) / S) + 1, or with ceil_mode the ceiling, less one
when that last window would start past the input and its left padding (as PyTorch).
float16 is computed in float32 and rounded once.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ..backend.dispatch import overridable
from ._checks import check_array, check_shape, check_window, check_window_fits, pair
from .im2col import Pair, pool_out_size
from .module import Module, ShapeMismatch, is_grad_enabled


def window_matrix(xp: Any, lo: list[int], hi: list[int], size: int, dtype: Any) -> Any:
    """The (len(lo), size) 0/1 matrix with row o equal to 1 on the columns lo[o] .. hi[o]-1."""
    h = xp.arange(size)
    los, his = xp.asarray(lo)[:, None], xp.asarray(hi)[:, None]
    return ((h >= los) & (h < his)).astype(dtype)


def compute_dtype(x: Any) -> Any:
    """float16 -> float32 (a float16 sum of many pixels loses digits); others kept."""
    return "float32" if x.dtype.itemsize < 4 else x.dtype


def _axis(size: int, k: int, s: int, p: int, ceil_mode: bool) -> tuple[list, list, list]:
    """For each output position along one axis: lo, hi (inside the input) and the
    window length counting padding (clipped at the right padding's end)."""
    starts = [o * s - p for o in range(pool_out_size(size, k, s, p, ceil_mode))]
    ends = [min(a + k, size + p) for a in starts]
    return (
        [max(a, 0) for a in starts],
        [min(e, size) for e in ends],
        [e - a for a, e in zip(starts, ends)],
    )


def _plan(x_shape: tuple, kernel_size: Pair, stride: Pair, padding: Pair, opts: tuple) -> tuple:
    """(lo_h, hi_h, lo_w, hi_w, divisor D as nested lists) for :func:`avgpool2d_forward`."""
    ceil_mode, count_include_pad, divisor_override = opts
    H, W = x_shape[2:]
    lo_h, hi_h, len_h = _axis(H, kernel_size[0], stride[0], padding[0], ceil_mode)
    lo_w, hi_w, len_w = _axis(W, kernel_size[1], stride[1], padding[1], ceil_mode)
    if not count_include_pad:
        len_h = [b - a for a, b in zip(lo_h, hi_h)]
        len_w = [b - a for a, b in zip(lo_w, hi_w)]
    D = [[divisor_override or a * b for b in len_w] for a in len_h]
    return lo_h, hi_h, lo_w, hi_w, D


@overridable
def avgpool2d_forward(
    x: Any,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    save: bool = True,
) -> tuple[Any, dict | None]:
    """Mean of each window (sum over the window divided by its divisor).

    Args:
        x: (N, C, H, W); kernel_size, stride, padding: (KH, KW), (SH, SW), (PH, PW).
        ceil_mode, count_include_pad, divisor_override: as ``nn.AvgPool2d``.
        save: keep what backward needs (False under no_grad: the context is None).
    Returns:
        y (N, C, Ho, Wo), and the context for :func:`avgpool2d_backward`: the window
        matrices M_H (Ho, H), M_W (Wo, W) and the divisors D (Ho, Wo).
    """
    xp, ct = array_module(x), compute_dtype(x)
    opts = (ceil_mode, count_include_pad, divisor_override)
    lo_h, hi_h, lo_w, hi_w, D = _plan(x.shape, kernel_size, stride, padding, opts)
    m_h = window_matrix(xp, lo_h, hi_h, x.shape[2], ct)
    m_w = window_matrix(xp, lo_w, hi_w, x.shape[3], ct)
    d = xp.asarray(D, dtype=ct).reshape(len(lo_h), len(lo_w))
    y = (m_h @ x.astype(ct, copy=False) @ m_w.T) / d
    ctx = dict(m_h=m_h, m_w=m_w, divisor=d) if save else None
    return y.astype(x.dtype, copy=False), ctx


@overridable
def avgpool2d_backward(grad_out: Any, ctx: dict) -> Any:
    """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W): dx = M_H^T @ (dy / D) @ M_W."""
    m_h, m_w, d = ctx["m_h"], ctx["m_w"], ctx["divisor"]
    dx = m_h.T @ (grad_out.astype(d.dtype, copy=False) / d) @ m_w
    return dx.astype(grad_out.dtype, copy=False)


class AvgPool2d(Module):
    """2-D average pooling, PyTorch's arguments and numbers.

    Args:
        kernel_size: window size K (int or pair).
        stride: step S; defaults to ``kernel_size``.
        padding: implicit zero padding P on each side; at most K/2.
        ceil_mode: round the output size up instead of down.
        count_include_pad: divide by the window size counting padding (True) or only
            the pixels inside the input (False).
        divisor_override: divide every window by this nonzero int instead.

    Shapes: input (N, C, H, W) -> output (N, C, Ho, Wo), Ho = floor((H + 2P - K) / S) + 1.
    """

    def __init__(
        self,
        kernel_size: int | tuple[int, int],
        stride: int | tuple[int, int] | None = None,
        padding: int | tuple[int, int] = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: int | None = None,
    ):
        super().__init__()
        name = f"AvgPool2d(kernel_size={kernel_size})"
        self.kernel_size = pair(kernel_size, "kernel_size", name)
        self.stride = pair(stride if stride is not None else kernel_size, "stride", name)
        self.padding = pair(padding, "padding", name)
        check_window(name, self.kernel_size, self.stride, self.padding)
        if any(2 * p > k for p, k in zip(self.padding, self.kernel_size)):
            raise ValueError(
                f"{name}: padding {self.padding} must be at most half the kernel size "
                f"{self.kernel_size} (PyTorch's rule)"
            )
        if divisor_override is not None and (
            isinstance(divisor_override, bool) or not isinstance(divisor_override, int)
        ):
            raise TypeError(f"{name}: divisor_override must be an int, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError(f"{name}: divisor_override must not be zero")
        self.ceil_mode, self.count_include_pad = bool(ceil_mode), bool(count_include_pad)
        self.divisor_override = divisor_override

    def extra_repr(self) -> str:
        k, s, p = self.kernel_size, self.stride, self.padding
        text = f"kernel_size={k[0] if k[0] == k[1] else k}, stride={s[0] if s[0] == s[1] else s}"
        text += f", padding={p}" if p != (0, 0) else ""
        text += ", ceil_mode=True" if self.ceil_mode else ""
        text += "" if self.count_include_pad else ", count_include_pad=False"
        d = self.divisor_override
        return text + (f", divisor_override={d}" if d is not None else "")

    def _sizes(self, H: int, W: int) -> tuple[int, int]:
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        return pool_out_size(H, kh, sh, ph, self.ceil_mode), pool_out_size(
            W, kw, sw, pw, self.ceil_mode
        )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C, Ho, Wo) for an input (N, C, H, W); ShapeMismatch unless it is 4-D."""
        if len(input_shape) != 4:
            raise ShapeMismatch(self, input_shape, "ndim", "(N, C, H, W)")
        N, C, H, W = input_shape
        return (N, C, *self._sizes(H, W))

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, KH * KW - 1 additions and one division for each of C * Ho * Wo outputs."""
        _, C, Ho, Wo = self.output_shape(input_shape)
        kh, kw = self.kernel_size
        return kh * kw * C * Ho * Wo

    def describe(self) -> str:
        """``AvgPool2d(kernel 3, stride 2)``; a non-square pair reads ``3x2``."""
        pairs = (self.kernel_size, self.stride, self.padding)
        k, s, p = (str(a) if a == b else f"{a}x{b}" for a, b in pairs)
        return f"AvgPool2d(kernel {k}, stride {s}" + (f", padding {p})" if p != "0" else ")")

    def shape_rule(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
        """Ho and Wo worked out, e.g. ``floor((8 + 2*0 - 3) / 2) + 1 = 3``."""
        rnd = "ceil" if self.ceil_mode else "floor"
        parts = [
            f"{rnd}(({n} + 2*{p} - {k}) / {s}) + 1 = {o}"
            for n, k, s, p, o in zip(
                input_shape[2:], self.kernel_size, self.stride, self.padding, output_shape[2:]
            )
        ]
        return parts[0] if len(set(parts)) == 1 else f"H: {parts[0]}; W: {parts[1]}"

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, C, Ho, Wo)."""
        check_array(self, x)
        check_shape(self, x, (4,), None, "(N, C, H, W)")
        check_window_fits(self, x, self.kernel_size, self.padding, "window")
        k, s, p = self.kernel_size, self.stride, self.padding
        opts = (self.ceil_mode, self.count_include_pad, self.divisor_override)
        y, ctx = avgpool2d_forward(x, k, s, p, *opts, save=is_grad_enabled())
        self.save_for_backward(ctx)
        return y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W); None with ``input_grad=False``."""
        ctx = self.saved(grad_out)
        return avgpool2d_backward(grad_out, ctx) if input_grad else None
