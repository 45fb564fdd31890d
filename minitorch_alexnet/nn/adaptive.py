"""AdaptiveAvgPool2d and AdaptiveMaxPool2d: pool any input size down to a fixed one.

The window of output row i, for an input of H rows pooled to Ho, is (as PyTorch)

    start_i = floor(i * H / Ho),   end_i = ceil((i + 1) * H / Ho)

so the windows cover every row, neighbours overlap by at most one row when Ho does not
divide H, and Ho = H gives windows of one pixel (the identity). Likewise for columns.

Average: with M_H the (Ho, H) 0/1 matrix M_H[i, h] = [start_i <= h < end_i] (likewise M_W)
and D[i, j] = (end_i - start_i) * (end_j - start_j) the window sizes,

    y[n, c] = (M_H @ x[n, c] @ M_W^T) / D        dx[n, c] = M_H^T @ (dy[n, c] / D) @ M_W

Max: y[n, c, i, j] = max of x[n, c] over window (i, j); indices[n, c, i, j] = h*W + w of the
first maximum in row-major order (a NaN wins). Backward sends each window's gradient to
that pixel; a pixel that wins several windows collects all their gradients:

    dx[n, c].flat[indices[n, c, i, j]] += dy[n, c, i, j]
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ..backend.dispatch import overridable
from ._checks import check_array, check_shape
from .avgpool import avgpool2d_backward, compute_dtype, window_matrix
from .module import Module, ShapeMismatch, is_grad_enabled

Size = tuple[int, int]


def adaptive_bounds(size: int, out: int) -> tuple[list[int], list[int]]:
    """Starts floor(i*size/out) and ends ceil((i+1)*size/out) of the ``out`` windows."""
    return [i * size // out for i in range(out)], [-(-(i + 1) * size // out) for i in range(out)]


@overridable
def adaptive_avgpool2d_forward(x: Any, output_size: Size, save: bool = True) -> tuple[Any, Any]:
    """Mean of each adaptive window: x (N, C, H, W) -> y (N, C, Ho, Wo), and the context
    for :func:`adaptive_avgpool2d_backward` (M_H, M_W and the window sizes D)."""
    xp, ct = array_module(x), compute_dtype(x)
    (lo_h, hi_h), (lo_w, hi_w) = (adaptive_bounds(n, o) for n, o in zip(x.shape[2:], output_size))
    m_h, m_w = (
        window_matrix(xp, lo_h, hi_h, x.shape[2], ct),
        window_matrix(xp, lo_w, hi_w, x.shape[3], ct),
    )
    d = m_h.sum(axis=1)[:, None] * m_w.sum(axis=1)[None, :]  # (Ho, Wo) window sizes
    y = (m_h @ x.astype(ct, copy=False) @ m_w.T) / d
    ctx = dict(m_h=m_h, m_w=m_w, divisor=d) if save else None
    return y.astype(x.dtype, copy=False), ctx


@overridable
def adaptive_avgpool2d_backward(grad_out: Any, ctx: dict) -> Any:
    """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W): dx = M_H^T @ (dy / D) @ M_W, the sum of
    AvgPool2d's backward (nn/avgpool.py) over these windows; the context has its form."""
    return avgpool2d_backward.reference(grad_out, ctx)


def _window_index(xp: Any, size: int, out: int) -> Any:
    """(out, K) rows of each window, K the longest window; a shorter window repeats its
    last row (a repeat comes after the original, so it never wins a first-maximum)."""
    lo, hi = adaptive_bounds(size, out)
    k = max((b - a for a, b in zip(lo, hi)), default=1)  # out = 0: no windows
    rows = xp.asarray(lo, dtype="int64")[:, None] + xp.arange(k)[None, :]
    return xp.minimum(rows, xp.asarray(hi, dtype="int64")[:, None] - 1)


@overridable
def adaptive_maxpool2d_forward(x: Any, output_size: Size, save: bool = True) -> tuple[Any, Any]:
    """Max of each adaptive window: x (N, C, H, W) -> (y, indices), each (N, C, Ho, Wo),
    indices the flat position h*W + w of the maximum in its image plane (int64); and the
    context for :func:`adaptive_maxpool2d_backward` (the indices and x's shape)."""
    xp = array_module(x)
    N, C, H, W = x.shape
    Ho, Wo = output_size
    rows, cols = _window_index(xp, H, Ho), _window_index(xp, W, Wo)
    kh, kw = rows.shape[1], cols.shape[1]
    # windows (N, C, Ho, Wo, KH*KW): entry a*KW + b is pixel (rows[i, a], cols[j, b])
    windows = x[:, :, rows[:, None, :, None], cols[None, :, None, :]]
    windows = windows.reshape(N, C, Ho, Wo, kh * kw)
    y = windows.max(axis=-1)
    first = ((windows == y[..., None]) | xp.isnan(windows)).argmax(axis=-1)
    a, b = first // kw, first % kw
    i, j = xp.arange(Ho)[:, None], xp.arange(Wo)[None, :]
    indices = (rows[i, a] * W + cols[j, b]).astype("int64")
    ctx = dict(indices=indices, x_shape=x.shape) if save else None
    return (y, indices), ctx


@overridable
def adaptive_maxpool2d_backward(grad_out: Any, ctx: dict) -> Any:
    """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W): each window's gradient to its maximum,
    summed (a bincount) where a pixel wins several windows."""
    indices, (N, C, H, W) = ctx["indices"], ctx["x_shape"]
    xp = array_module(grad_out)
    plane = xp.arange(N * C).reshape(N, C, 1, 1) * (H * W)  # offset of each image plane
    flat = (indices + plane).ravel()
    dx = xp.bincount(flat, weights=grad_out.ravel(), minlength=N * C * H * W)
    return dx.reshape(N, C, H, W).astype(grad_out.dtype, copy=False)


def _output_size(value: Any, layer: str) -> tuple[int | None, int | None]:
    """``6`` -> (6, 6); ``(6, None)`` stays (None keeps that input size); else TypeError."""

    def ok(v: Any) -> bool:
        return v is None or (isinstance(v, int) and not isinstance(v, bool))

    size = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(size) != 2 or not all(ok(v) for v in size):
        raise TypeError(
            f"{layer}: output_size must be an int, None or a pair of them, got {value!r}"
        )
    if any(v is not None and v < 0 for v in size):  # 0 is allowed: an empty output
        raise ValueError(f"{layer}: output_size entries must be >= 0, got {value!r}")
    return size


class _AdaptivePool(Module):
    """What both adaptive pools share: the output size, the checks and the facts."""

    kind = ""

    def __init__(self, output_size: Any):
        super().__init__()
        self.output_size = _output_size(output_size, f"{type(self).__name__}({output_size!r})")

    def extra_repr(self) -> str:
        h, w = self.output_size
        return f"output_size={h if h == w else (h, w)}"

    def _sizes(self, H: int, W: int) -> Size:
        h, w = self.output_size
        return (H if h is None else h), (W if w is None else w)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """(N, C, Ho, Wo): the output size, None entries keeping the input's size."""
        if len(input_shape) != 4:
            raise ShapeMismatch(self, input_shape, "ndim", "(N, C, H, W)")
        N, C, H, W = input_shape
        return (N, C, *self._sizes(H, W))

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, one operation per pixel of each window, summed over the windows."""
        _, C, H, W = input_shape
        (lo_h, hi_h), (lo_w, hi_w) = (
            adaptive_bounds(n, o) for n, o in zip((H, W), self._sizes(H, W))
        )
        return C * sum(b - a for a, b in zip(lo_h, hi_h)) * sum(b - a for a, b in zip(lo_w, hi_w))

    def describe(self) -> str:
        """``AdaptiveAvgPool2d(6x6)``; None (keep) reads ``*``."""
        h, w = ("*" if v is None else str(v) for v in self.output_size)
        return f"{type(self).__name__}({h}x{w})"

    def shape_rule(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...]) -> str:
        """``windows floor(i*13/6) .. ceil((i+1)*13/6)``: the sizes are set, not computed."""
        (H, W), (Ho, Wo) = input_shape[2:], output_shape[2:]
        return f"adaptive: {H}x{W} -> {Ho}x{Wo}, window i spans floor(i*H/Ho) .. ceil((i+1)*H/Ho)"

    def _check(self, x: Any) -> Size:
        check_array(self, x)
        check_shape(self, x, (4,), None, "(N, C, H, W)")
        empty = [f"{d} = 0" for d, n in zip("CHW", x.shape[1:]) if n == 0]
        if empty:
            raise ValueError(
                f"{self._name()}: input shape {tuple(x.shape)} has {' and '.join(empty)}; "
                "only the batch dimension N may be 0 (an empty batch)"
            )
        return self._sizes(*x.shape[2:])


class AdaptiveAvgPool2d(_AdaptivePool):
    """Average over adaptive windows to a fixed ``output_size`` (int, pair, None keeps).

    torchvision's AlexNet has ``AdaptiveAvgPool2d((6, 6))`` before its classifier.
    """

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, C, Ho, Wo)."""
        size = self._check(x)
        y, ctx = adaptive_avgpool2d_forward(x, size, is_grad_enabled())
        self.save_for_backward(ctx)
        return y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W); None with ``input_grad=False``."""
        ctx = self.saved(grad_out)
        return adaptive_avgpool2d_backward(grad_out, ctx) if input_grad else None


class AdaptiveMaxPool2d(_AdaptivePool):
    """Max over adaptive windows to a fixed ``output_size``; with ``return_indices`` the
    forward returns (y, indices), indices the flat h*W + w of each maximum, as PyTorch."""

    def __init__(self, output_size: Any, return_indices: bool = False):
        super().__init__(output_size)
        self.return_indices = bool(return_indices)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", return_indices=True" if self.return_indices else "")

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, C, Ho, Wo), or (y, indices) with ``return_indices``."""
        size = self._check(x)
        (y, indices), ctx = adaptive_maxpool2d_forward(x, size, is_grad_enabled())
        self.save_for_backward(ctx, _out=(tuple(y.shape), y.dtype))  # grad_out is dL/dy
        return (y, indices) if self.return_indices else y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, C, Ho, Wo) -> dL/dx (N, C, H, W); None with ``input_grad=False``."""
        ctx = self.saved(grad_out)
        return adaptive_maxpool2d_backward(grad_out, ctx) if input_grad else None
