"""CUDA kernels for the GPU backend ``"cupy"``.

Same signatures as ``kernels_numpy.py`` and the same numbers up to rounding (the
tests hold them to it). Most kernels give one GPU thread per *output* element,
which computes where its value comes from (CuPy ``ElementwiseKernel``s, and a
``RawModule`` for im2col). The backward kernels (col2im, max-pool backward) are
*gathers* — each input pixel sums the column entries or window gradients that
refer to it, in the same order as the NumPy reference — so they need no atomic
adds and give the same result on every run. Per-channel sums (BatchNorm) run as
a two-step reduction in double precision, also in a fixed order.

This module is imported only when the cupy backend is selected.
"""

from __future__ import annotations

import re

import cupy as cp
import numpy as _np

from ._cublas import matmul as matmul  # cuBLAS called directly: CUDA graphs can record it
from .kernels_numpy import out_size
from .winograd_cuda import winograd_conv2d as winograd_conv2d
from .winograd_cuda import winograd_conv2d_input_grad as winograd_conv2d_input_grad
from .winograd_cuda import winograd_conv2d_weight_grad as winograd_conv2d_weight_grad

_CTYPE = {cp.dtype("float32"): "float", cp.dtype("float64"): "double"}


class _IndexedKernel:
    """An ElementwiseKernel compiled twice: with 32-bit index arithmetic (integer
    division is much faster on the GPU) and with 64-bit for arrays too large for it.

    In ``params`` and ``operation``, ``I`` is the index type; ``i`` is the number of
    the output element this thread computes.
    """

    def __init__(self, params: str, outputs: str, operation: str, name: str):
        self._kernels = {
            bits: cp.ElementwiseKernel(
                re.sub(r"\bI\b", f"int{bits}", params),
                outputs,
                operation,
                f"{name}_{bits}",
                preamble=f"typedef {'int' if bits == 32 else 'long long'} I;",
            )
            for bits in (32, 64)
        }

    def __call__(self, *args, largest: int):
        bits = 32 if largest < 2**31 - 1 else 64
        kind = cp.int32 if bits == 32 else cp.int64
        args = [kind(a) if isinstance(a, int) and not isinstance(a, bool) else a for a in args]
        return self._kernels[bits](*args)


_im2col = _IndexedKernel(
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

_col2im = _IndexedKernel(
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

_maxpool_fwd = _IndexedKernel(
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

_maxpool_bwd = _IndexedKernel(
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

_cnhw_to_nchw = _IndexedKernel(
    "raw T y, raw T bias, bool has_bias, I C, I N, I HW",
    "T out",
    """
    const I e = (I)i;
    const I k = e % HW, c = (e / HW) % C, n = e / (HW * C);
    out = y[(c * N + n) * HW + k] + (has_bias ? bias[c] : (T)0);
    """,
    "minitorch_cnhw_to_nchw",
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


def im2col(x: cp.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> cp.ndarray:
    """See ``kernels_numpy.im2col``: (N, C, H, W) -> (C*KH*KW, N*Ho*Wo)."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    cols = cp.empty((C * kh * kw, N * Ho * Wo), dtype=x.dtype)
    geometry = (N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    x = cp.ascontiguousarray(x)
    L, R = N * Ho * Wo, C * kh * kw
    if cols.size == 0:
        return cols
    if max(x.size, L, R) < 2**31 - 1 and x.dtype in _CTYPE:
        f = _im2col_module.get_function(f"im2col_rows<{_CTYPE[x.dtype]}>")
        blocks = (L + 255) // 256
        grid = (blocks, min(R, 65535, -(-_IM2COL_BLOCKS // blocks)))  # rows in that many shares
        f(grid, (256,), (x, cols, *map(cp.int32, geometry)))
    else:  # the general version, with 64-bit indices for huge arrays
        _im2col(x, *geometry, cols, largest=max(x.size, cols.size))
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
    geometry = (N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    _col2im(cp.ascontiguousarray(cols), *geometry, dx, largest=max(dx.size, cols.size))
    return dx


def _stack_groups(parts: list[cp.ndarray]) -> cp.ndarray:
    """Per-group products one above the other (no copy for a single group)."""
    return parts[0] if len(parts) == 1 else cp.concatenate(parts)


def conv2d_weight_grad(
    dy: cp.ndarray,
    x: cp.ndarray,
    cols: cp.ndarray | None,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> cp.ndarray:
    """See ``kernels_numpy.conv2d_weight_grad``: the columns from the im2col kernel above
    (unless kept), dY_g X_g^T by cuBLAS."""
    if cols is None:
        cols = im2col(x, kh, kw, sh, sw, ph, pw)
    cols_g = cols.reshape(dy.shape[0], -1, cols.shape[1])
    return _stack_groups([matmul(dy[g], cols_g[g].T) for g in range(dy.shape[0])])


def conv2d_input_grad(
    dy: cp.ndarray,
    w: cp.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> cp.ndarray:
    """See ``kernels_numpy.conv2d_input_grad``: the same two steps, W_g^T dY_g by cuBLAS
    and the col2im kernel above."""
    dcols = _stack_groups([matmul(w[g].T, dy[g]) for g in range(w.shape[0])])
    return col2im(dcols, x_shape, kh, kw, sh, sw, ph, pw)


def maxpool2d_forward(
    x: cp.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, indices: bool = True
) -> tuple[cp.ndarray, cp.ndarray | None]:
    """See ``kernels_numpy.maxpool2d_forward`` (one kernel writes the indices either way;
    with ``indices=False`` they are dropped at once)."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    out = cp.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = cp.empty((N, C, Ho, Wo), dtype=cp.int64)
    geometry = (H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    _maxpool_fwd(cp.ascontiguousarray(x), *geometry, out, idx, largest=max(x.size, out.size))
    return out, (idx if indices else None)


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
    geometry = (H, W, kh, kw, sh, sw, ph, pw, Ho, Wo)
    g, idx = cp.ascontiguousarray(grad_out), cp.ascontiguousarray(indices)
    _maxpool_bwd(g, idx, *geometry, dx, largest=max(dx.size, g.size))
    return dx


def cnhw_to_nchw(y: cp.ndarray, bias: cp.ndarray | None) -> cp.ndarray:
    """See ``kernels_numpy.cnhw_to_nchw``: (C, N, H, W) (+ bias[c]) -> (N, C, H, W)."""
    C, N, H, W = y.shape
    out = cp.empty((N, C, H, W), dtype=y.dtype)
    b = bias if bias is not None else cp.zeros(1, dtype=y.dtype)
    _cnhw_to_nchw(cp.ascontiguousarray(y), b, bias is not None, C, N, H * W, out, largest=out.size)
    return out


def nchw_to_cnhw(x: cp.ndarray, sums: bool = False) -> tuple[cp.ndarray, cp.ndarray | None]:
    """See ``kernels_numpy.nchw_to_cnhw``: (N, C, H, W) -> (C, N, H, W) (and sums (C,))."""
    out = cp.ascontiguousarray(x.transpose(1, 0, 2, 3))
    return out, (out.reshape(out.shape[0], -1).sum(axis=1) if sums else None)


# ------------------------------------------------------------------ batch normalisation
# Per-channel sums over (n, l) of an (N, C, L) array run in two steps: S blocks per
# channel each add a strided share of the channel's N*L values (in double precision,
# whatever the data type) and write a partial sum; a second small kernel adds the S
# partial sums of each channel. Several blocks per channel keep the whole GPU busy
# when there are few channels; the fixed order keeps the result the same every run.
_BN_SOURCE = r"""
__device__ double block_sum(double v, double* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = (threadIdx.x < (blockDim.x + 31) / 32) ? shared[threadIdx.x] : 0.0;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
    __syncthreads();
    return v;  // the total, in thread 0
}

// block (c, s) adds a[j] - p and (a[j] - p) * (b[j] - q) over its share of channel c
// into part[c, s, 0:2]. For statistics (shift = true, b = a) p = q = the channel's first
// value: shifting by a value near the mean keeps sum(x^2)/m - mean^2 accurate even when
// the mean is much larger than the spread. For plain sums (shift = false) p = q = 0.
template <typename T>
__global__ void channel_partial_sums(const T* a, const T* b, int N, int C, int L, int S,
                                     bool shift, double* part) {
    __shared__ double shared[32];
    const int c = blockIdx.x, s = blockIdx.y, m = N * L;
    const double p = shift ? (double)a[(long long)c * L] : 0.0;
    double sa = 0.0, sab = 0.0;
    for (int k = s * blockDim.x + threadIdx.x; k < m; k += S * blockDim.x) {
        const long long j = ((long long)(k / L) * C + c) * L + k % L;
        const double va = (double)a[j] - p;
        sa += va;
        sab += va * ((double)b[j] - p);
    }
    sa = block_sum(sa, shared);
    sab = block_sum(sab, shared);
    if (threadIdx.x == 0) {
        part[(c * S + s) * 2] = sa;
        part[(c * S + s) * 2 + 1] = sab;
    }
}

// from the shifted sums of x - p and (x - p)^2: mean = p + d, var = sum((x-p)^2)/m - d^2
template <typename T>
__global__ void finish_stats(const double* part, const T* x, int C, int S, int L, double m,
                             T* mean, T* var) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0, q = 0.0;
    for (int i = 0; i < S; ++i) { s += part[(c * S + i) * 2]; q += part[(c * S + i) * 2 + 1]; }
    const double d = s / m, v = q / m - d * d;
    mean[c] = (T)((double)x[(long long)c * L] + d);
    var[c] = (T)(v > 0.0 ? v : 0.0);
}

// the two sums as they are (backward: sum(dy), sum(dy * xhat))
template <typename T>
__global__ void finish_sums(const double* part, int C, int S, T* sum_a, T* sum_ab) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0, q = 0.0;
    for (int i = 0; i < S; ++i) { s += part[(c * S + i) * 2]; q += part[(c * S + i) * 2 + 1]; }
    sum_a[c] = (T)s;
    sum_ab[c] = (T)q;
}
"""
_bn_module = cp.RawModule(
    code=_BN_SOURCE,
    options=("-std=c++14",),
    name_expressions=[
        f"{k}<{t}>"
        for k in ("channel_partial_sums", "finish_stats", "finish_sums")
        for t in ("float", "double")
    ],
)
_SUM_THREADS = 256


def _channel_partial_sums(a: cp.ndarray, b: cp.ndarray, shift: bool) -> cp.ndarray:
    """Step one of the per-channel reduction of ``a`` and ``a * b``: partial sums (C, S, 2)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        raise TypeError(f"per-channel sums need two arrays alike, got {a.dtype}, {b.dtype}")
    a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
    N, C, L = a.shape
    m = N * L
    # enough blocks for the whole GPU, but each with at least a few elements per thread
    S = max(1, min(-(-1024 // C), -(-m // (_SUM_THREADS * 4))))
    part = cp.empty((C, S, 2), dtype=cp.float64)
    args = (a, b, cp.int32(N), cp.int32(C), cp.int32(L), cp.int32(S), shift, part)
    f = _bn_module.get_function(f"channel_partial_sums<{_CTYPE[a.dtype]}>")
    f((C, S), (_SUM_THREADS,), args)
    return part


_bn_normalize = cp.ElementwiseKernel(
    "T x, raw T mean, raw T inv_std, raw T gamma, raw T beta, bool affine, int32 C, int32 L",
    "T y, T xhat",
    """
    const int c = (int)((i / L) % C);
    const T h = (x - mean[c]) * inv_std[c];
    xhat = h;
    y = affine ? h * gamma[c] + beta[c] : h;
    """,
    "minitorch_bn_normalize",
)

_bn_dx = cp.ElementwiseKernel(
    "T dy, T xhat, raw T scale, raw T sum_dy, raw T sum_dyx, bool batch_stats, "
    "int32 C, int32 L, T m",
    "T dx",
    """
    const int c = (int)((i / L) % C);
    dx = batch_stats ? scale[c] * (dy - sum_dy[c] / m - xhat * (sum_dyx[c] / m)) : dy * scale[c];
    """,
    "minitorch_bn_dx",
)

_bn_running = cp.ElementwiseKernel(
    "T mean, T var, T factor, T unbias",
    "T running_mean, T running_var",
    """
    running_mean = (1 - factor) * running_mean + factor * mean;
    running_var = (1 - factor) * running_var + factor * var * unbias;
    """,
    "minitorch_bn_running",
)


def batchnorm_stats(x3: cp.ndarray) -> tuple[cp.ndarray, cp.ndarray]:
    """See ``kernels_numpy.batchnorm_stats``."""
    N, C, L = x3.shape
    mean, var = cp.empty(C, dtype=x3.dtype), cp.empty(C, dtype=x3.dtype)
    x3 = cp.ascontiguousarray(x3)
    part = _channel_partial_sums(x3, x3, shift=True)
    f = _bn_module.get_function(f"finish_stats<{_CTYPE[x3.dtype]}>")
    S, m = part.shape[1], cp.float64(N * L)
    f((-(-C // 128),), (128,), (part, x3, cp.int32(C), cp.int32(S), cp.int32(L), m, mean, var))
    return mean, var


def batchnorm_update_running(
    running_mean: cp.ndarray,
    running_var: cp.ndarray,
    mean: cp.ndarray,
    var: cp.ndarray,
    factor: float,
    m: int,
) -> None:
    """See ``kernels_numpy.batchnorm_update_running`` (one kernel, in place)."""
    t = running_mean.dtype.type
    _bn_running(mean, var, t(factor), t(m / (m - 1)), running_mean, running_var)


def batchnorm_normalize(
    x3: cp.ndarray,
    mean: cp.ndarray,
    inv_std: cp.ndarray,
    gamma: cp.ndarray | None,
    beta: cp.ndarray | None,
    keep_xhat: bool = True,
) -> tuple[cp.ndarray, cp.ndarray | None]:
    """See ``kernels_numpy.batchnorm_normalize`` (one kernel writes xhat either way;
    with ``keep_xhat=False`` it is dropped at once)."""
    _, C, L = x3.shape
    affine = gamma is not None
    g = gamma if affine else mean
    b = beta if affine else mean
    y, xhat = _bn_normalize(x3, mean, inv_std, g, b, affine, C, L)
    return y, (xhat if keep_xhat else None)


def batchnorm_backward(
    dy3: cp.ndarray, xhat3: cp.ndarray, scale: cp.ndarray, batch_stats: bool
) -> tuple[cp.ndarray, cp.ndarray, cp.ndarray]:
    """See ``kernels_numpy.batchnorm_backward``."""
    N, C, L = dy3.shape
    dy3 = cp.ascontiguousarray(dy3)
    sum_dy, sum_dyx = cp.empty(C, dtype=dy3.dtype), cp.empty(C, dtype=dy3.dtype)
    part = _channel_partial_sums(dy3, xhat3, shift=False)
    f = _bn_module.get_function(f"finish_sums<{_CTYPE[dy3.dtype]}>")
    f((-(-C // 128),), (128,), (part, cp.int32(C), cp.int32(part.shape[1]), sum_dy, sum_dyx))
    dx = _bn_dx(dy3, xhat3, scale, sum_dy, sum_dyx, batch_stats, C, L, dy3.dtype.type(N * L))
    return dx, sum_dy, sum_dyx


# ------------------------------------------------------------------ optimiser update
# One kernel per parameter for the whole SGD step instead of five or six array operations.
_sgd_plain = cp.ElementwiseKernel(
    "T grad, T lr, T weight_decay",
    "T p",
    "p = p - lr * (grad + weight_decay * p);",
    "minitorch_sgd_plain",
)
_sgd_momentum = cp.ElementwiseKernel(
    "T grad, T lr, T momentum, T dampening, T weight_decay, bool first, bool nesterov",
    "T p, T buf",
    """
    T d = grad + weight_decay * p;
    buf = first ? d : momentum * buf + (1 - dampening) * d;
    d = nesterov ? d + momentum * buf : buf;
    p = p - lr * d;
    """,
    "minitorch_sgd_momentum",
)


def sgd_update(
    p: cp.ndarray,
    grad: cp.ndarray,
    buf: cp.ndarray | None,
    first: bool,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """See ``kernels_numpy.sgd_update`` (one fused kernel, in place).

    ``lr`` and ``momentum`` may be 0-d device arrays of ``p``'s dtype (what a CUDA
    graph needs: the kernel then reads them from device memory on every replay).
    """

    def t(v):  # a number becomes a scalar of p's dtype; a device array passes as it is
        return v if isinstance(v, cp.ndarray) else p.dtype.type(v)

    if buf is None:
        _sgd_plain(grad, t(lr), t(weight_decay), p)
    else:
        _sgd_momentum(
            grad, t(lr), t(momentum), t(dampening), t(weight_decay), first, nesterov, p, buf
        )


# ------------------------------------------------------------------ small elementwise steps
_relu_forward = cp.ElementwiseKernel(
    "T x",
    "T y, bool positive",
    "positive = x > (T)0; y = positive || x != x ? x : (T)0;",
    "minitorch_relu_forward",
)
_relu_backward = cp.ElementwiseKernel(
    "T g, bool positive", "T dx", "dx = positive ? g : g * (T)0;", "minitorch_relu_backward"
)
_inv_std = cp.ElementwiseKernel(
    "T var, T eps", "T out", "out = (T)1 / sqrt(var + eps);", "minitorch_inv_std"
)


def relu_forward(x: cp.ndarray, mask: bool = True) -> tuple[cp.ndarray, cp.ndarray | None]:
    """See ``kernels_numpy.relu_forward`` (y and the mask from one kernel)."""
    if not mask:
        return cp.maximum(x, 0), None
    y, positive = _relu_forward(x)
    return y, positive


def relu_backward(grad_out: cp.ndarray, positive: cp.ndarray) -> cp.ndarray:
    """See ``kernels_numpy.relu_backward`` (one kernel instead of a compare and a product)."""
    return _relu_backward(grad_out, positive)


def inv_std(var: cp.ndarray, eps: float) -> cp.ndarray:
    """See ``kernels_numpy.inv_std``."""
    return _inv_std(var, var.dtype.type(eps))


# ------------------------------------------------------------------ random numbers (dropout)
# A counter-based generator: sample i of call k is a hash of (seed, k, i), so the whole
# state is two integers in device memory, state = [seed, k]. One kernel fills the
# output, a second adds 1 to k. Nothing about a call is decided on the host, which is
# what a CUDA graph needs: a replayed training step draws fresh dropout masks.
_MIX64 = r"""
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    // SplitMix64's finaliser: a bijection of 64-bit integers that scrambles every bit
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
"""
_GOLDEN = "0x9E3779B97F4A7C15ULL"  # 2^64 / golden ratio: spreads consecutive counters
_uniform = cp.ElementwiseKernel(
    "raw uint64 state",
    "T u",
    f"""
    const unsigned long long key = mix64(state[0] ^ mix64(state[1] + {_GOLDEN}));
    const unsigned long long z = mix64(key + (unsigned long long)(i + 1) * {_GOLDEN});
    // the top 24 (float) or 53 (double) bits, scaled into [0, 1)
    u = sizeof(T) == 4 ? (T)((double)(z >> 40) * (1.0 / 16777216.0))
                       : (T)((double)(z >> 11) * (1.0 / 9007199254740992.0));
    """,
    "minitorch_uniform",
    preamble=_MIX64,
)
_advance = cp.RawKernel(
    r"""extern "C" __global__ void minitorch_rng_advance(unsigned long long* state) {
        state[1] += 1ULL;
    }""",
    "minitorch_rng_advance",
)


class DeviceGenerator:
    """Uniform random numbers on the GPU from the state ``[seed, counter]`` on the device."""

    def __init__(self, seed: int = 0):
        self.state = cp.zeros(2, dtype=cp.uint64)
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> None:
        """Restart the stream at ``seed`` (in place, so captured graphs keep working)."""
        self.state.set(_np.array([seed % 2**64, 0], dtype=_np.uint64))

    def random(self, shape: tuple[int, ...], dtype) -> cp.ndarray:
        """Uniform [0, 1) samples: one fill kernel, then one kernel advancing the counter."""
        out = cp.empty(shape, dtype=dtype)
        _uniform(self.state, out)
        _advance((1,), (1,), (self.state,))
        return out


generator = DeviceGenerator()
