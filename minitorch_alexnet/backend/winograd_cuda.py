"""Winograd F(2x2, 5x5) convolution on the GPU: two CUDA kernels around one batched SGEMM.

The same algorithm and the same transform matrices as ``winograd.py`` (read that
file first for the math), in four steps:

1. filter transform U = G g G^T, shape (36, O, C): the reference code (it is tiny);
2. input transform V = B^T d B, shape (36, C, T): one thread per (channel, tile)
   reads its 6x6 patch from the NCHW input (zero outside the image) and writes the
   36 values, one to each of the 36 (C, T) planes of V;
3. M = U @ V, shape (36, O, T): one strided-batched matrix product (cuBLAS);
4. output transform Y = A^T M A: one thread per (out channel, tile) reads its 36
   values of M, adds the bias and writes its 2x2 outputs straight into NCHW,
   dropping those past the edge when Ho or Wo is odd.

The transforms are written out with the constants of ``winograd.BT`` and
``winograd.AT`` (B^T has small integer entries, A^T entries 0, +-1, +-2).
Tiles are numbered t = (n * th + ti) * tw + tj, as in the reference.

This module is imported only when the cupy backend is used.
"""

from __future__ import annotations

from typing import Any

import cupy as cp

from ._cublas import matmul
from .winograd import ALPHA, G, _check, _pair, input_grad_as_conv, tiling

_CTYPE = {cp.dtype("float32"): "float", cp.dtype("float64"): "double"}
_THREADS = 256

_SOURCE = r"""
// r[k * rs] = (B^T z)[k], k = 0..5, for z[k * zs]: the rows of B^T are
//   [4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
//   [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]
template <typename T>
__device__ __forceinline__ void bt6(const T* z, int zs, T* r, int rs) {
    const T z0 = z[0], z1 = z[zs], z2 = z[2 * zs], z3 = z[3 * zs], z4 = z[4 * zs],
            z5 = z[5 * zs];
    r[0] = (T)4 * z0 - (T)5 * z2 + z4;
    r[rs] = -(T)4 * z1 - (T)4 * z2 + z3 + z4;
    r[2 * rs] = (T)4 * z1 - (T)4 * z2 - z3 + z4;
    r[3 * rs] = -(T)2 * z1 - z2 + (T)2 * z3 + z4;
    r[4 * rs] = (T)2 * z1 - z2 - (T)2 * z3 + z4;
    r[5 * rs] = (T)4 * z1 - (T)5 * z3 + z5;
}

// r[k * rs] = (A^T z)[k], k = 0..1: rows [1, 1, 1, 1, 1, 0] and [0, 1, -1, 2, -2, 1]
template <typename T>
__device__ __forceinline__ void at6(const T* z, int zs, T* r, int rs) {
    const T z0 = z[0], z1 = z[zs], z2 = z[2 * zs], z3 = z[3 * zs], z4 = z[4 * zs],
            z5 = z[5 * zs];
    r[0] = z0 + z1 + z2 + z3 + z4;
    r[rs] = z1 - z2 + (T)2 * z3 - (T)2 * z4 + z5;
}

// One thread per (c, t), e = c * tiles + t: V[k][c][t] = (B^T d B)[k / 6][k % 6], where
// d[a][b] = x[n, c, 2*ti - ph + a, 2*tj - pw + b] (0 outside the image).
// I is the index type: int when every array has fewer than 2^31 elements.
template <typename T, typename I>
__global__ void winograd_input_transform(const T* __restrict__ x, T* __restrict__ V, I N, I C,
                                         I H, I W, I ph, I pw, I th, I tw) {
    const I tiles = N * th * tw;
    const I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (e >= C * tiles) return;
    const I c = e / tiles, t = e - c * tiles;
    const I n = t / (th * tw), q = t - n * (th * tw), ti = q / tw, tj = q - ti * tw;
    const I h0 = 2 * ti - ph, w0 = 2 * tj - pw;
    const T* plane = x + (n * C + c) * H * W;

    T d[36], bd[36];
#pragma unroll
    for (int a = 0; a < 6; ++a) {
#pragma unroll
        for (int b = 0; b < 6; ++b) {
            const I h = h0 + a, w = w0 + b;
            d[a * 6 + b] = (h >= 0 && h < H && w >= 0 && w < W) ? plane[h * W + w] : (T)0;
        }
    }
#pragma unroll
    for (int b = 0; b < 6; ++b) bt6(d + b, 6, bd + b, 6);          // bd = B^T d   (columns)
#pragma unroll
    for (int i = 0; i < 6; ++i) bt6(bd + 6 * i, 1, d + 6 * i, 1);  // d = bd B     (rows)
    const I plane_size = C * tiles;
#pragma unroll
    for (int k = 0; k < 36; ++k) V[k * plane_size + e] = d[k];
}

// One thread per (o, t), e = o * tiles + t: Y = A^T m A + bias[o] with m[k] = M[k][o][t];
// Y[r][s] goes to y[n, o, 2*ti + r, 2*tj + s] when that lies inside Ho x Wo.
template <typename T, typename I>
__global__ void winograd_output_transform(const T* __restrict__ M, const T* __restrict__ bias,
                                          bool has_bias, T* __restrict__ y, I N, I O, I Ho,
                                          I Wo, I th, I tw) {
    const I tiles = N * th * tw;
    const I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (e >= O * tiles) return;
    const I o = e / tiles, t = e - o * tiles;
    const I n = t / (th * tw), q = t - n * (th * tw), ti = q / tw, tj = q - ti * tw;

    const I plane_size = O * tiles;
    T m[36], am[12], Y[4];
#pragma unroll
    for (int k = 0; k < 36; ++k) m[k] = M[k * plane_size + e];
#pragma unroll
    for (int j = 0; j < 6; ++j) at6(m + j, 6, am + j, 6);          // am = A^T m   (2 x 6)
#pragma unroll
    for (int r = 0; r < 2; ++r) at6(am + 6 * r, 1, Y + 2 * r, 1);  // Y = am A     (2 x 2)
    const T b = has_bias ? bias[o] : (T)0;
    T* out = y + (n * O + o) * Ho * Wo;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
#pragma unroll
        for (int s = 0; s < 2; ++s) {
            const I h = 2 * ti + r, w = 2 * tj + s;
            if (h < Ho && w < Wo) out[h * Wo + w] = Y[2 * r + s] + b;
        }
    }
}
"""

_ITYPE = {32: "int", 64: "long long"}
_module = cp.RawModule(
    code=_SOURCE,
    options=("-std=c++14",),
    name_expressions=[
        f"{kernel}<{t}, {_ITYPE[bits]}>"
        for kernel in ("winograd_input_transform", "winograd_output_transform")
        for t in ("float", "double")
        for bits in (32, 64)
    ],
)


def _kernel(name: str, dtype: Any, largest: int) -> tuple[Any, Any]:
    """The compiled kernel for this dtype, with 32-bit indices when every array allows,
    and the matching integer type for its size arguments."""
    if dtype not in _CTYPE:
        raise TypeError(f"winograd 5x5 on the GPU: float32 or float64 needed, got {dtype}")
    bits = 32 if largest < 2**31 - 1 else 64
    f = _module.get_function(f"{name}<{_CTYPE[dtype]}, {_ITYPE[bits]}>")
    return f, (cp.int32 if bits == 32 else cp.int64)


_G_ON_DEVICE: dict[int, cp.ndarray] = {}


def filter_transform(w: cp.ndarray, dtype: Any) -> cp.ndarray:
    """See ``winograd.filter_transform``: U = G g G^T in float64, (O, C, 5, 5) -> (36, O, C).

    The same arithmetic as the reference, with G copied to each device once (a copy from
    the host on every call would also stall a CUDA-graph capture).
    """
    dev = cp.cuda.Device().id
    if dev not in _G_ON_DEVICE:
        _G_ON_DEVICE[dev] = cp.asarray(G)
    g = _G_ON_DEVICE[dev]
    O, C = w.shape[:2]
    u = cp.empty((ALPHA * ALPHA, O, C), dtype=dtype)
    if u.size:  # one thread per U[r * 6 + s, o, c] = sum_ab G[r, a] w[o, c, a, b] G[s, b]
        _filter_transform(cp.ascontiguousarray(w), g, O, C, u)
    return u


# G w G^T by an elementwise kernel rather than matrix products, in double precision
# like the reference: CuPy will not record its own cuBLAS calls into a CUDA graph.
_filter_transform = cp.ElementwiseKernel(
    "raw T w, raw float64 g, int32 O, int32 C",
    "U u",
    """
    const long long oc = i % ((long long)O * C);       // (o, c) of this element
    const int rs = (int)(i / ((long long)O * C)), r = rs / 6, s = rs % 6;
    double acc = 0.0;
    for (int a = 0; a < 5; ++a) {
        double row = 0.0;                               // (w[o, c] G^T)[a, s]
        for (int b = 0; b < 5; ++b) row += (double)w[oc * 25 + a * 5 + b] * g[s * 5 + b];
        acc += g[r * 5 + a] * row;
    }
    u = (U)acc;
    """,
    "minitorch_winograd_filter_transform",
)


def _blocks(n: int) -> tuple[int]:
    return ((n + _THREADS - 1) // _THREADS,)


def input_transform(x: cp.ndarray, ph: int, pw: int) -> cp.ndarray:
    """See ``winograd.input_transform``: (N, C, H, W) -> V (36, C, T), T = N * th * tw."""
    x = cp.ascontiguousarray(x)
    N, C, H, W = x.shape
    _, _, th, tw = tiling(H, W, ph, pw)
    tiles = N * th * tw
    v = cp.empty((ALPHA * ALPHA, C, tiles), dtype=x.dtype)
    if v.size == 0:
        return v
    f, I = _kernel("winograd_input_transform", x.dtype, max(x.size, v.size))
    f(_blocks(C * tiles), (_THREADS,), (x, v, *map(I, (N, C, H, W, ph, pw, th, tw))))
    return v


def output_transform(
    m: cp.ndarray,
    bias: cp.ndarray | None,
    N: int,
    Ho: int,
    Wo: int,
    out: cp.ndarray | None = None,
) -> cp.ndarray:
    """See ``winograd.output_transform``: M (36, O, T) (+ bias) -> y (N, O, Ho, Wo).

    ``out``, if given, is a C-contiguous (N, O, Ho, Wo) array to write y into.
    """
    m = cp.ascontiguousarray(m)
    O = m.shape[1]
    th, tw = -(-Ho // 2), -(-Wo // 2)
    y = cp.empty((N, O, Ho, Wo), dtype=m.dtype) if out is None else out
    if y.size == 0:
        return y
    has_bias = bias is not None
    b = cp.ascontiguousarray(bias, dtype=m.dtype) if has_bias else cp.zeros(1, dtype=m.dtype)
    f, I = _kernel("winograd_output_transform", m.dtype, max(m.size, y.size))
    args = (m, b, has_bias, y, *map(I, (N, O, Ho, Wo, th, tw)))
    f(_blocks(O * N * th * tw), (_THREADS,), args)
    return y


def winograd_conv2d(
    x: cp.ndarray,
    w: cp.ndarray,
    bias: cp.ndarray | None = None,
    padding: int | tuple[int, int] = 0,
) -> cp.ndarray:
    """See ``winograd.winograd_conv2d``: 5x5, stride 1, on the GPU.

    Args:
        x: images, shape (N, C, H, W), float32 or float64.
        w: filters, shape (O, C, 5, 5); bias: shape (O,) or None.
        padding: zero padding, an int or (ph, pw).
    Returns:
        y, shape (N, O, H + 2*ph - 4, W + 2*pw - 4), in x's dtype.
    """
    _check(x, w)
    N, _, H, W = x.shape
    ph, pw = _pair(padding)
    Ho, Wo, _, _ = tiling(H, W, ph, pw)
    u = filter_transform(w, x.dtype)  # U = G g G^T       (36, O, C)
    y = cp.empty((N, w.shape[0], Ho, Wo), dtype=x.dtype)
    # V and M are 9x larger than x and y; for large batches they are made for a chunk
    # of images at a time, so the transient memory stays under _CHUNK_BYTES
    per_image = ALPHA * ALPHA * max(w.shape[:2]) * -(-Ho // 2) * -(-Wo // 2) * x.itemsize
    step = max(1, _CHUNK_BYTES // max(per_image, 1))
    for n0 in range(0, N, step):
        xs = x[n0 : n0 + step]
        v = input_transform(xs, ph, pw)  # V = B^T d B         (36, C, T)
        m = matmul(u, v)  # M[k] = U[k] @ V[k]: one strided-batched GEMM   (36, O, T)
        del v
        output_transform(m, bias, len(xs), Ho, Wo, out=y[n0 : n0 + step])  # A^T M A + b
    return y


_CHUNK_BYTES = 256 * 2**20  # the largest V or M made at once


def winograd_conv2d_input_grad(
    dy: cp.ndarray, w: cp.ndarray, padding: int | tuple[int, int], input_hw: tuple[int, int]
) -> cp.ndarray:
    """See ``winograd.winograd_conv2d_input_grad``: dL/dx (N, C, H, W) from dy (N, O, Ho, Wo),
    as the Winograd convolution of dy (padded by 4 - P) with the flipped, channel-swapped w."""
    w_t, q, (eh, ew) = input_grad_as_conv(w, padding, dy.shape[2:], tuple(input_hw))
    dx = winograd_conv2d(dy, w_t.astype(dy.dtype, copy=False), None, q)
    H, W = input_hw
    if eh or ew:
        dx = cp.ascontiguousarray(dx[:, :, eh : eh + H, ew : ew + W])
    return dx
