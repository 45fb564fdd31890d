"""CUDA kernels for the GPU backend ``"cupy"``.

Same signatures and numbers as ``kernels_numpy.py``. Each kernel is one CuPy
``ElementwiseKernel``: one GPU thread per *output* element, which computes where
its value comes from. The backward kernels (col2im, max-pool backward) are
written as *gathers* — each input pixel sums the column entries or window
gradients that refer to it, in the same order as the NumPy reference — so they
need no atomic adds and give the same result on every run.

This module is imported only when the cupy backend is selected.
"""

from __future__ import annotations

import cupy as cp

from .kernels_numpy import out_size

_im2col = cp.ElementwiseKernel(
    "raw T x, int64 N, int64 C, int64 H, int64 W, int64 kh, int64 kw, "
    "int64 sh, int64 sw, int64 ph, int64 pw, int64 Ho, int64 Wo",
    "T col",
    """
    const long long L = N * Ho * Wo;
    const long long r = i / L, q = i % L;        // row (c, ki, kj), column (n, ho, wo)
    const long long n = q / (Ho * Wo), ho = (q / Wo) % Ho, wo = q % Wo;
    const long long c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw;
    const long long h = ho * sh + ki - ph, w = wo * sw + kj - pw;
    col = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : (T)0;
    """,
    "minitorch_im2col",
)

_col2im = cp.ElementwiseKernel(
    "raw T cols, int64 N, int64 C, int64 H, int64 W, int64 kh, int64 kw, "
    "int64 sh, int64 sw, int64 ph, int64 pw, int64 Ho, int64 Wo",
    "T dx",
    """
    const long long w = i % W, h = (i / W) % H, c = (i / (W * H)) % C, n = i / (W * H * C);
    const long long L = N * Ho * Wo;
    T acc = 0;
    for (long long ki = 0; ki < kh; ++ki) {          // same (ki, kj) order as the reference
        const long long th = h + ph - ki;
        if (th < 0 || th % sh != 0) continue;
        const long long ho = th / sh;
        if (ho >= Ho) continue;
        for (long long kj = 0; kj < kw; ++kj) {
            const long long tw = w + pw - kj;
            if (tw < 0 || tw % sw != 0) continue;
            const long long wo = tw / sw;
            if (wo >= Wo) continue;
            acc += cols[((c * kh + ki) * kw + kj) * L + (n * Ho + ho) * Wo + wo];
        }
    }
    dx = acc;
    """,
    "minitorch_col2im",
)

_maxpool_fwd = cp.ElementwiseKernel(
    "raw T x, int64 H, int64 W, int64 kh, int64 kw, int64 sh, int64 sw, "
    "int64 ph, int64 pw, int64 Ho, int64 Wo",
    "T out, int64 idx",
    """
    const long long wo = i % Wo, ho = (i / Wo) % Ho, plane = i / (Wo * Ho);
    const T* xp = &x[plane * H * W];
    T best = 0;
    long long arg = -1;
    for (long long ki = 0; ki < kh; ++ki) {
        const long long h = ho * sh + ki - ph;
        if (h < 0 || h >= H) continue;
        for (long long kj = 0; kj < kw; ++kj) {
            const long long w = wo * sw + kj - pw;
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

_maxpool_bwd = cp.ElementwiseKernel(
    "raw T g, raw int64 idx, int64 H, int64 W, int64 kh, int64 kw, int64 sh, int64 sw, "
    "int64 ph, int64 pw, int64 Ho, int64 Wo",
    "T dx",
    """
    const long long w = i % W, h = (i / W) % H, plane = i / (W * H);
    const long long me = h * W + w;
    // the outputs whose window can hold (h, w): ho*sh - ph <= h <= ho*sh - ph + kh - 1
    long long ho0 = h + ph - kh + 1; ho0 = ho0 < 0 ? 0 : (ho0 + sh - 1) / sh;
    long long wo0 = w + pw - kw + 1; wo0 = wo0 < 0 ? 0 : (wo0 + sw - 1) / sw;
    long long ho1 = (h + ph) / sh; ho1 = ho1 >= Ho ? Ho - 1 : ho1;
    long long wo1 = (w + pw) / sw; wo1 = wo1 >= Wo ? Wo - 1 : wo1;
    T acc = 0;
    for (long long ho = ho0; ho <= ho1; ++ho)        // output order, as the reference adds
        for (long long wo = wo0; wo <= wo1; ++wo) {
            const long long o = (plane * Ho + ho) * Wo + wo;
            if (idx[o] == me) acc += g[o];
        }
    dx = acc;
    """,
    "minitorch_maxpool_bwd",
)

_cnhw_to_nchw = cp.ElementwiseKernel(
    "raw T y, raw T bias, bool has_bias, int64 C, int64 N, int64 HW",
    "T out",
    """
    const long long k = i % HW, c = (i / HW) % C, n = i / (HW * C);
    out = y[(c * N + n) * HW + k] + (has_bias ? bias[c] : (T)0);
    """,
    "minitorch_cnhw_to_nchw",
)


def im2col(x: cp.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> cp.ndarray:
    """See ``kernels_numpy.im2col``: (N, C, H, W) -> (C*KH*KW, N*Ho*Wo)."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    cols = cp.empty((C * kh * kw, N * Ho * Wo), dtype=x.dtype)
    _im2col(cp.ascontiguousarray(x), N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, cols)
    return cols


def col2im(
    cols: cp.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> cp.ndarray:
    """See ``kernels_numpy.col2im``: (C*KH*KW, N*Ho*Wo) -> (N, C, H, W)."""
    N, C, H, W = x_shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    dx = cp.empty((N, C, H, W), dtype=cols.dtype)
    _col2im(cp.ascontiguousarray(cols), N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, dx)
    return dx


def maxpool2d_forward(
    x: cp.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int
) -> tuple[cp.ndarray, cp.ndarray]:
    """See ``kernels_numpy.maxpool2d_forward``."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    out = cp.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = cp.empty((N, C, Ho, Wo), dtype=cp.int64)
    _maxpool_fwd(cp.ascontiguousarray(x), H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, out, idx)
    return out, idx


def maxpool2d_backward(
    grad_out: cp.ndarray,
    indices: cp.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> cp.ndarray:
    """See ``kernels_numpy.maxpool2d_backward``; the window geometry bounds the gather."""
    N, C, H, W = x_shape
    Ho, Wo = grad_out.shape[2:]
    dx = cp.empty(x_shape, dtype=grad_out.dtype)
    _maxpool_bwd(
        cp.ascontiguousarray(grad_out),
        cp.ascontiguousarray(indices),
        H,
        W,
        kh,
        kw,
        sh,
        sw,
        ph,
        pw,
        Ho,
        Wo,
        dx,
    )
    return dx


def cnhw_to_nchw(y: cp.ndarray, bias: cp.ndarray | None) -> cp.ndarray:
    """See ``kernels_numpy.cnhw_to_nchw``: (C, N, H, W) (+ bias[c]) -> (N, C, H, W)."""
    C, N, H, W = y.shape
    out = cp.empty((N, C, H, W), dtype=y.dtype)
    b = bias if bias is not None else cp.zeros(1, dtype=y.dtype)
    _cnhw_to_nchw(cp.ascontiguousarray(y), b, bias is not None, C, N, H * W, out)
    return out
