"""MaxPool2d on the GPU: one thread per output (forward), one per input pixel (backward)."""

from __future__ import annotations

import cupy as cp

from .. import dispatch
from ..geometry import conv_geometry
from ..half import via_float32
from .indexed import IndexedKernel

Pair = tuple[int, int]

_maxpool_fwd = IndexedKernel(
    "raw T x, I H, I W, I kh, I kw, I sh, I sw, I ph, I pw, I Ho, I Wo",
    "T out, int64 idx",
    """
    const I e = (I)i;
    const I wo = e % Wo, ho = (e / Wo) % Ho, plane = e / (Wo * Ho);
    const T* xp = &x[(long long)plane * H * W];
    T best = 0;
    I arg = -1;
    for (I ki = 0; ki < kh; ++ki) {
        const I h = ho * sh + ki - ph;
        if (h < 0 || h >= H) continue;
        for (I kj = 0; kj < kw; ++kj) {
            const I w = wo * sw + kj - pw;
            if (w < 0 || w >= W) continue;
            const T v = xp[h * W + w];
            // first maximum wins; a NaN wins like in np.argmax
            if (arg < 0 || v > best || (v != v && best == best)) { best = v; arg = h * W + w; }
        }
    }
    out = best;
    idx = arg;
    """,
    "minitorch_maxpool_fwd",
)

_maxpool_bwd = IndexedKernel(
    "raw T g, raw int64 idx, I H, I W, I kh, I kw, I sh, I sw, I ph, I pw, I Ho, I Wo",
    "T dx",
    """
    const I e = (I)i;
    const I w = e % W, h = (e / W) % H, plane = e / (W * H);
    const I me = h * W + w;
    // the outputs whose window can hold (h, w): ho*sh - ph <= h <= ho*sh - ph + kh - 1
    I ho0 = h + ph - kh + 1; ho0 = ho0 < 0 ? 0 : (ho0 + sh - 1) / sh;
    I wo0 = w + pw - kw + 1; wo0 = wo0 < 0 ? 0 : (wo0 + sw - 1) / sw;
    I ho1 = (h + ph) / sh; ho1 = ho1 >= Ho ? Ho - 1 : ho1;
    I wo1 = (w + pw) / sw; wo1 = wo1 >= Wo ? Wo - 1 : wo1;
    T acc = 0;
    for (I ho = ho0; ho <= ho1; ++ho)                  // output order, as the reference adds
        for (I wo = wo0; wo <= wo1; ++wo) {
            const I o = (plane * Ho + ho) * Wo + wo;
            if (idx[o] == me) acc += g[o];
        }
    dx = acc;
    """,
    "minitorch_maxpool_bwd",
)


@via_float32()
def maxpool2d_forward(
    x: cp.ndarray,
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    save: bool = True,
    dilation: Pair = (1, 1),
    ceil_mode: bool = False,
) -> tuple[cp.ndarray, dict | None]:
    """See ``nn/pooling.py``; the context holds each maximum's flat position h*W + w in
    its input plane (PyTorch's indices). One kernel writes them either way."""
    if tuple(dilation) != (1, 1) or ceil_mode:
        # a local decision: dilated windows and ceil_mode are rare; the reference serves them
        ref = dispatch.reference("maxpool2d_forward")
        out, ctx = ref(x, kernel_size, stride, padding, save, dilation, ceil_mode)
        return out, (None if ctx is None else {**ctx, "reference": True})
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, Ho, Wo = conv_geometry(x.shape, kernel_size, stride, padding)
    out = cp.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = cp.empty((N, C, Ho, Wo), dtype=cp.int64)
    geometry = (H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    _maxpool_fwd(cp.ascontiguousarray(x), *geometry, out, idx, largest=max(x.size, out.size))
    if not save:
        return out, None
    window = (kh, kw, sh, sw, ph, pw)
    return out, dict(indices=idx, x_shape=x.shape, window=window, reference=False)


@via_float32()
def maxpool2d_backward(grad_out: cp.ndarray, ctx: dict) -> cp.ndarray:
    """See ``nn/pooling.py``: one thread per input pixel gathers the gradients of the
    windows it won, in output order; the window geometry bounds the search."""
    if ctx["reference"]:  # forward ran the reference (dilation or ceil_mode): so does backward
        return dispatch.reference("maxpool2d_backward")(grad_out, ctx)
    N, C, H, W = ctx["x_shape"]
    Ho, Wo = grad_out.shape[2:]
    dx = cp.empty((N, C, H, W), dtype=grad_out.dtype)
    geometry = (H, W, *ctx["window"], Ho, Wo)
    g = cp.ascontiguousarray(grad_out)
    _maxpool_bwd(g, ctx["indices"], *geometry, dx, largest=max(dx.size, g.size))
    return dx
