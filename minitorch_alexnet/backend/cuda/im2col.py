"""im2col and col2im on the GPU: one thread per column entry, one per pixel."""

from __future__ import annotations

import cupy as cp

from .. import dispatch
from ..geometry import conv_geometry
from ..half import via_float32
from .indexed import CTYPE, IndexedKernel

Pair = tuple[int, int]

_im2col = IndexedKernel(
    "raw T x, I N, I C, I H, I W, I kh, I kw, I sh, I sw, I ph, I pw, I Ho, I Wo",
    "T col",
    """
    const I e = (I)i, L = N * Ho * Wo;
    const I r = e / L, q = e % L;                      // row (c, ki, kj), column (n, ho, wo)
    const I n = q / (Ho * Wo), ho = (q / Wo) % Ho, wo = q % Wo;
    const I c = r / (kh * kw), ki = (r / kw) % kh, kj = r % kw;
    const I h = ho * sh + ki - ph, w = wo * sw + kj - pw;
    col = (h >= 0 && h < H && w >= 0 && w < W) ? x[((n * C + c) * H + h) * W + w] : (T)0;
    """,
    "minitorch_im2col",
)

_col2im = IndexedKernel(
    "raw T cols, I N, I C, I H, I W, I kh, I kw, I sh, I sw, I ph, I pw, I Ho, I Wo",
    "T dx",
    """
    const I e = (I)i;
    const I w = e % W, h = (e / W) % H, c = (e / (W * H)) % C, n = e / (W * H * C);
    const I L = N * Ho * Wo;
    T acc = 0;
    for (I ki = 0; ki < kh; ++ki) {                    // same (ki, kj) order as the reference
        const I th = h + ph - ki;
        if (th < 0 || th % sh != 0) continue;
        const I ho = th / sh;
        if (ho >= Ho) continue;
        for (I kj = 0; kj < kw; ++kj) {
            const I tw = w + pw - kj;
            if (tw < 0 || tw % sw != 0) continue;
            const I wo = tw / sw;
            if (wo >= Wo) continue;
            acc += cols[((c * kh + ki) * kw + kj) * L + (n * Ho + ho) * Wo + wo];
        }
    }
    dx = acc;
    """,
    "minitorch_col2im",
)

_IM2COL_SOURCE = r"""
// One thread per column q = (n, ho, wo) of cols; block (bx, by) fills a contiguous share
// of the rows r = (c, ki, kj) of its 256 columns. Each thread decodes its column once and
// steps through the rows without divisions; a block's rows read the same few input rows
// of the image again and again (cache hits), where one row per block would stream the
// whole input once per row (for conv1 of AlexNet, 3 x 11 x 11 = 363 times).
template <typename T>
__global__ void im2col_rows(const T* x, T* cols, int N, int C, int H, int W, int kh, int kw,
                            int sh, int sw, int ph, int pw, int Ho, int Wo) {
    const int HoWo = Ho * Wo, L = N * HoWo, R = C * kh * kw;
    const int q = blockIdx.x * blockDim.x + threadIdx.x;
    if (q >= L) return;
    const int n = q / HoWo, rem = q - n * HoWo, ho = rem / Wo, wo = rem - ho * Wo;
    const int share = (R + gridDim.y - 1) / gridDim.y;
    const int r0 = blockIdx.y * share, r1 = min(R, r0 + share);
    int c = r0 / (kh * kw), k = r0 - c * kh * kw, ki = k / kw, kj = k - ki * kw;
    for (int r = r0; r < r1; ++r) {
        const int h = ho * sh + ki - ph, w = wo * sw + kj - pw;
        T v = 0;
        if (h >= 0 && h < H && w >= 0 && w < W) v = x[((long long)(n * C + c) * H + h) * W + w];
        cols[(long long)r * L + q] = v;
        if (++kj == kw) {  // the next row: (c, ki, kj + 1), carrying into ki and c
            kj = 0;
            if (++ki == kh) { ki = 0; ++c; }
        }
    }
}
"""
_im2col_module = cp.RawModule(
    code=_IM2COL_SOURCE,
    options=("-std=c++14",),
    name_expressions=["im2col_rows<float>", "im2col_rows<double>"],
)
_IM2COL_BLOCKS = 4096  # enough blocks of 256 threads to fill the GPU a few times over


@via_float32()
def im2col(
    x: cp.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1)
) -> cp.ndarray:
    """See ``nn/im2col.py``: (N, C, H, W) -> (C*KH*KW, N*Ho*Wo)."""
    if tuple(dilation) != (1, 1):
        # a local decision: dilated windows are rare; the reference serves them
        return dispatch.reference("im2col")(x, kernel_size, stride, padding, dilation)
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, Ho, Wo = conv_geometry(x.shape, kernel_size, stride, padding)
    cols = cp.empty((C * kh * kw, N * Ho * Wo), dtype=x.dtype)
    geometry = (N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    x = cp.ascontiguousarray(x)
    L, R = N * Ho * Wo, C * kh * kw
    if cols.size == 0:
        return cols
    if max(x.size, L, R) < 2**31 - 1 and x.dtype in CTYPE:
        f = _im2col_module.get_function(f"im2col_rows<{CTYPE[x.dtype]}>")
        blocks = (L + 255) // 256
        grid = (blocks, min(R, 65535, -(-_IM2COL_BLOCKS // blocks)))  # rows in that many shares
        f(grid, (256,), (x, cols, *map(cp.int32, geometry)))
    else:  # the general version, with 64-bit indices for huge arrays
        _im2col(x, *geometry, cols, largest=max(x.size, cols.size))
    return cols


@via_float32()
def col2im(
    cols: cp.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair = (1, 1),
) -> cp.ndarray:
    """See ``nn/im2col.py``: (C*KH*KW, N*Ho*Wo) -> (N, C, H, W), one thread per pixel
    gathering its window entries in the reference's (ki, kj) order."""
    if tuple(dilation) != (1, 1):
        # a local decision: dilated windows are rare; the reference serves them
        return dispatch.reference("col2im")(cols, x_shape, kernel_size, stride, padding, dilation)
    N, C, H, W = x_shape
    kh, kw, sh, sw, ph, pw, Ho, Wo = conv_geometry(x_shape, kernel_size, stride, padding)
    dx = cp.empty((N, C, H, W), dtype=cols.dtype)
    geometry = (N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    _col2im(cp.ascontiguousarray(cols), *geometry, dx, largest=max(dx.size, cols.size))
    return dx
