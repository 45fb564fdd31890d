"""MaxPool2d on the CPU: one compiled pass over each plane, forward and backward."""

from __future__ import annotations

import numpy as np
from numba import njit

from .. import dispatch
from ..geometry import conv_geometry
from ..half import via_float32
from . import JIT
from .threads import parallel_for

Pair = tuple[int, int]


# A NaN in a window wins (the output is NaN, as np.max gives); among equal maxima the
# first in row-major window order wins. Two short passes per window, each without a
# chain of index updates: the maximum, then the first pixel equal to it (or NaN).
@njit(inline="always", **JIT)
def _window_max(plane, h0, h1, w0, w1):  # pragma: no cover - compiled
    best = plane[h0, w0]
    for h in range(h0, h1):
        for w in range(w0, w1):
            v = plane[h, w]
            best = v if (v > best) | (v != v) else best
    return best


@njit(inline="always", **JIT)
def _window_argmax(plane, h0, h1, w0, w1, best):  # pragma: no cover - compiled
    arg = 0
    for h in range(h1 - 1, h0 - 1, -1):  # backwards: the last match seen is the first
        for w in range(w1 - 1, w0 - 1, -1):
            v = plane[h, w]
            arg = h * plane.shape[1] + w if (v == best) | (v != v) else arg
    return arg


@njit(inline="always", **JIT)
def _whole_windows(plane, out, idx, h0, lo, hi, kh, kw, sw, pw):  # pragma: no cover
    """Outputs lo..hi-1 of one output row, whose kh x kw windows lie inside the image."""
    for wo in range(lo, hi):
        w0 = wo * sw - pw
        best = _window_max(plane, h0, h0 + kh, w0, w0 + kw)
        out[wo] = best
        if idx is not None:
            idx[wo] = _window_argmax(plane, h0, h0 + kh, w0, w0 + kw, best)


@njit(**JIT)
def _maxpool_fwd(lo_nc, hi_nc, x, kh, kw, sh, sw, ph, pw, out, idx):  # pragma: no cover
    # idx is None when no indices are wanted: Numba compiles a version without them
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    lo = min(Wo, (pw + sw - 1) // sw)  # the outputs wo in lo..hi-1 have their whole
    hi = max(lo, min(Wo, (W + pw - kw) // sw + 1))  # window inside the image columns
    for nc in range(lo_nc, hi_nc):
        n = nc // C
        c = nc % C
        plane = x[n, c]
        for ho in range(Ho):
            h0 = ho * sh - ph
            inside = h0 >= 0 and h0 + kh <= H  # the window's rows are all in the image
            for wo in range(Wo):  # windows that overhang the border: clipped to it
                if not inside or wo < lo or wo >= hi:
                    w0 = wo * sw - pw
                    hs, he, ws, we = max(0, h0), min(H, h0 + kh), max(0, w0), min(W, w0 + kw)
                    best = _window_max(plane, hs, he, ws, we)
                    out[n, c, ho, wo] = best
                    if idx is not None:
                        idx[n, c, ho, wo] = _window_argmax(plane, hs, he, ws, we, best)
            if not inside:
                continue
            o = out[n, c, ho]
            ix = None if idx is None else idx[n, c, ho]
            # whole windows. For 3x3 (AlexNet's pools) the window size is a constant
            # here, so the compiler unrolls the window loops and vectorises over wo: 2-3x
            # faster than the same loops with run-time sizes, which other sizes get (each
            # constant size more costs about a second of compiling on first use)
            if kh == 3 and kw == 3:
                _whole_windows(plane, o, ix, h0, lo, hi, 3, 3, sw, pw)
            else:
                _whole_windows(plane, o, ix, h0, lo, hi, kh, kw, sw, pw)


@via_float32()
def maxpool2d_forward(
    x: np.ndarray,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    save: bool = True,
    dilation: Pair = (1, 1),
    ceil_mode: bool = False,
) -> tuple[np.ndarray, dict | None]:
    """See ``nn/pooling.py``. The context holds, instead of the window position of each
    maximum, its flat position h*W + w in the input plane (PyTorch's indices)."""
    N, C, H, W = x.shape
    if H < 1 or W < 1:  # the kernel reads a real pixel of every window: there must be one
        raise ValueError(f"maxpool2d_forward: images of H x W = {H} x {W} have no pixel")
    if tuple(dilation) != (1, 1) or ceil_mode:
        # a local decision: dilated windows and ceil_mode are rare; the reference serves them
        ref = dispatch.reference("maxpool2d_forward")
        out, ctx = ref(x, kernel_size, stride, padding, save, dilation, ceil_mode)
        return out, (None if ctx is None else {**ctx, "reference": True})
    kh, kw, sh, sw, ph, pw, Ho, Wo = conv_geometry(x.shape, kernel_size, stride, padding)
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = np.empty((N, C, Ho, Wo), dtype=np.int64) if save else None
    parallel_for(_maxpool_fwd, N * C, np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, out, idx)
    return out, (dict(indices=idx, x_shape=x.shape, reference=False) if save else None)


@njit(**JIT)
def _maxpool_bwd(lo, hi, g, idx, dx):  # pragma: no cover - compiled
    N, C, Ho, Wo = g.shape
    for nc in range(lo, hi):
        n = nc // C
        c = nc % C
        plane = dx[n, c].ravel()  # a view: writes land in dx
        for ho in range(Ho):
            for wo in range(Wo):
                plane[idx[n, c, ho, wo]] += g[n, c, ho, wo]


@via_float32()
def maxpool2d_backward(grad_out: np.ndarray, ctx: dict) -> np.ndarray:
    """See ``nn/pooling.py``: each gradient added onto the pixel at its flat index, in
    output order."""
    if ctx["reference"]:  # forward ran the reference (dilation or ceil_mode): so does backward
        return dispatch.reference("maxpool2d_backward")(grad_out, ctx)
    dx = np.zeros(ctx["x_shape"], dtype=grad_out.dtype)
    g = np.ascontiguousarray(grad_out)
    parallel_for(_maxpool_bwd, g.shape[0] * g.shape[1], g, ctx["indices"], dx)
    return dx
