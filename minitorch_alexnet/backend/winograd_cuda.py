"""Winograd F(2x2, 5x5) and F(4x4, 3x3) on the GPU: CUDA kernels around one batched SGEMM.

The same algorithms and the same transform matrices as ``winograd.py`` (read that
file first for the math), in four steps:

1. filter transform U = G g G^T, shape (36, O, C): one thread per filter, in double
   precision like the reference (G is 6x5 or 6x3); for the input gradient the same
   kernel reads the filters flipped and channel-swapped, so w_t is never stored;
2. input transform V = B^T d B, shape (36, C, T): one thread per (channel, tile)
   reads its 6x6 patch from the NCHW input (zero outside the image) and writes the
   36 values, one to each of the 36 (C, T) planes of V. B^T is the same for both
   variants; only the tile stride m (2 or 4) differs, a kernel argument;
3. M = U @ V, shape (36, O, T): one strided-batched matrix product (cuBLAS);
4. output transform Y = A^T M A: one thread per (out channel, tile) reads its 36
   values of M, adds the bias and writes its m x m outputs straight into NCHW,
   dropping those past the edge when m does not divide Ho or Wo. A^T (m x 6) is
   compiled in for m = 2 and m = 4 (a template argument).

The transforms are written out with the constants of ``winograd.BT``,
``winograd.AT2`` and ``winograd.AT4`` (B^T has small integer entries; A^T holds
powers of the points: 0, +-1, +-2, 4, +-8). Tiles are numbered
t = (n * th + ti) * tw + tj, as in the reference.

This module is imported only when the cupy backend is used.
"""

from __future__ import annotations

from typing import Any

import cupy as cp

from ._cublas import matmul
from .winograd import ALPHA, Variant, _check, _pair, input_grad_padding, tiling, variant_of

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

// r[k * rs] = (A^T z)[k], k = 0..m-1. Row k of A^T holds the k-th powers of the points
// 0, 1, -1, 2, -2 (0^0 = 1) and, in the last row only, 1 for infinity:
//   m = 2: [1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 1]
//   m = 4: [1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]
// The points come in pairs +-a, so the even powers need z_a + z_-a and the odd ones
// z_a - z_-a: four sums shared by all rows.
template <int m, typename T>
__device__ __forceinline__ void at6(const T* z, int zs, T* r, int rs) {
    const T z0 = z[0], z5 = z[5 * zs];
    const T p1 = z[zs] + z[2 * zs], d1 = z[zs] - z[2 * zs];          // a = +-1
    const T p2 = z[3 * zs] + z[4 * zs], d2 = z[3 * zs] - z[4 * zs];  // a = +-2
    r[0] = z0 + p1 + p2;
    if (m == 2) {
        r[rs] = d1 + (T)2 * d2 + z5;
    } else {
        r[rs] = d1 + (T)2 * d2;
        r[2 * rs] = p1 + (T)4 * p2;
        r[3 * rs] = d1 + (T)8 * d2 + z5;
    }
}

// One thread per filter, e = o * C + c: U[k][o][c] = (G g G^T)[k / 6][k % 6] in double
// precision, with g = w[o, c] (w of shape (O, C, r, r)), or, when flip is set, the
// filter of the input gradient g[a][b] = w[c, o, r-1-a, r-1-b] (w of shape (C, O, r, r)).
// G is the 6 x r matrix of winograd.py, row-major.
template <typename T, int r>
__global__ void winograd_filter_transform(const T* __restrict__ w,
                                          const double* __restrict__ G, T* __restrict__ U,
                                          int O, int C, bool flip) {
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)O * C) return;
    const int o = (int)(e / C), c = (int)(e - (long long)o * C);
    const T* f = w + (flip ? (long long)c * O + o : e) * (r * r);
    double g[r * r], Gg[6 * r];
#pragma unroll
    for (int a = 0; a < r; ++a) {
#pragma unroll
        for (int b = 0; b < r; ++b)
            g[a * r + b] = (double)(flip ? f[(r - 1 - a) * r + (r - 1 - b)] : f[a * r + b]);
    }
#pragma unroll
    for (int i = 0; i < 6; ++i) {                                  // Gg = G g   (6 x r)
#pragma unroll
        for (int b = 0; b < r; ++b) {
            double acc = 0.0;
#pragma unroll
            for (int a = 0; a < r; ++a) acc += G[i * r + a] * g[a * r + b];
            Gg[i * r + b] = acc;
        }
    }
    const long long plane_size = (long long)O * C;
#pragma unroll
    for (int i = 0; i < 6; ++i) {                                  // U = Gg G^T (6 x 6)
#pragma unroll
        for (int j = 0; j < 6; ++j) {
            double acc = 0.0;
#pragma unroll
            for (int b = 0; b < r; ++b) acc += Gg[i * r + b] * G[j * r + b];
            U[(i * 6 + j) * plane_size + e] = (T)acc;
        }
    }
}

// One thread per (c, t), e = c * tiles + t: V[k][c][t] = (B^T d B)[k / 6][k % 6], where
// d[a][b] = x[n, c, m*ti - ph + a, m*tj - pw + b] (0 outside the image); m is the tile
// stride (the output tile size: 2 for F(2x2, 5x5), 4 for F(4x4, 3x3)).
// I is the index type: int when every array has fewer than 2^31 elements.
template <typename T, typename I>
__global__ void winograd_input_transform(const T* __restrict__ x, T* __restrict__ V, I N, I C,
                                         I H, I W, I ph, I pw, I th, I tw, I m) {
    const I tiles = N * th * tw;
    const I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (e >= C * tiles) return;
    const I c = e / tiles, t = e - c * tiles;
    const I n = t / (th * tw), q = t - n * (th * tw), ti = q / tw, tj = q - ti * tw;
    const I h0 = m * ti - ph, w0 = m * tj - pw;
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

// One thread per (o, t), e = o * tiles + t: Y = A^T mt A + bias[o] with mt[k] = M[k][o][t];
// Y[r][s] goes to y[n, o, m*ti + r, m*tj + s] when that lies inside Ho x Wo.
template <typename T, typename I, int m>
__global__ void winograd_output_transform(const T* __restrict__ M, const T* __restrict__ bias,
                                          bool has_bias, T* __restrict__ y, I N, I O, I Ho,
                                          I Wo, I th, I tw) {
    const I tiles = N * th * tw;
    const I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (e >= O * tiles) return;
    const I o = e / tiles, t = e - o * tiles;
    const I n = t / (th * tw), q = t - n * (th * tw), ti = q / tw, tj = q - ti * tw;

    const I plane_size = O * tiles;
    T mt[36], am[m * 6], Y[m * m];
#pragma unroll
    for (int k = 0; k < 36; ++k) mt[k] = M[k * plane_size + e];
#pragma unroll
    for (int j = 0; j < 6; ++j) at6<m>(mt + j, 6, am + j, 6);          // am = A^T mt  (m x 6)
#pragma unroll
    for (int r = 0; r < m; ++r) at6<m>(am + 6 * r, 1, Y + m * r, 1);   // Y = am A     (m x m)
    const T b = has_bias ? bias[o] : (T)0;
    T* out = y + (n * O + o) * Ho * Wo;
#pragma unroll
    for (int r = 0; r < m; ++r) {
#pragma unroll
        for (int s = 0; s < m; ++s) {
            const I h = m * ti + r, w = m * tj + s;
            if (h < Ho && w < Wo) out[h * Wo + w] = Y[m * r + s] + b;
        }
    }
}
"""

_ITYPE = {32: "int", 64: "long long"}
_module = cp.RawModule(
    code=_SOURCE,
    options=("-std=c++14",),
    name_expressions=[
        f"winograd_filter_transform<{t}, {r}>" for t in ("float", "double") for r in (3, 5)
    ]
    + [
        f"winograd_input_transform<{t}, {_ITYPE[bits]}>"
        for t in ("float", "double")
        for bits in (32, 64)
    ]
    + [
        f"winograd_output_transform<{t}, {_ITYPE[bits]}, {m}>"
        for t in ("float", "double")
        for bits in (32, 64)
        for m in (2, 4)
    ],
)


def _kernel(name: str, dtype: Any, largest: int, extra: str = "") -> tuple[Any, Any]:
    """The compiled kernel for this dtype, with 32-bit indices when every array allows,
    and the matching integer type for its size arguments; ``extra`` adds template
    arguments (the output transform's tile size)."""
    if dtype not in _CTYPE:
        raise TypeError(f"winograd on the GPU: float32 or float64 needed, got {dtype}")
    bits = 32 if largest < 2**31 - 1 else 64
    f = _module.get_function(f"{name}<{_CTYPE[dtype]}, {_ITYPE[bits]}{extra}>")
    return f, (cp.int32 if bits == 32 else cp.int64)


_G_ON_DEVICE: dict[tuple[int, int], cp.ndarray] = {}


def filter_transform(w: cp.ndarray, dtype: Any, flip: bool = False) -> cp.ndarray:
    """See ``winograd.filter_transform``: U = G g G^T in float64, (O, C, r, r) -> (36, O, C).

    The same arithmetic as the reference, by a kernel rather than matrix products (CuPy
    will not record its own cuBLAS calls into a CUDA graph), with each G copied to each
    device once (a copy from the host on every call would also stall a graph capture).
    ``flip=True`` transforms the input gradient's filters instead, w_t[c, o] = w[o, c]
    turned by 180 degrees (``winograd.input_grad_as_conv``): (O, C, r, r) -> (36, C, O).
    """
    v = variant_of(w)
    key = (cp.cuda.Device().id, v.r)
    if key not in _G_ON_DEVICE:
        _G_ON_DEVICE[key] = cp.asarray(v.G)
    g = _G_ON_DEVICE[key]
    O, C = w.shape[1::-1] if flip else w.shape[:2]  # U's (O, C)
    U = cp.empty((ALPHA * ALPHA, O, C), dtype=dtype)
    if U.size == 0:
        return U
    w = cp.ascontiguousarray(w, dtype=dtype)
    if O * C >= 2**31:
        raise ValueError(f"winograd on the GPU: {O} x {C} filters are too many")
    f = _module.get_function(f"winograd_filter_transform<{_CTYPE[U.dtype]}, {v.r}>")
    f(_blocks(O * C), (_THREADS,), (w, g, U, cp.int32(O), cp.int32(C), flip))
    return U


def _blocks(n: int) -> tuple[int]:
    return ((n + _THREADS - 1) // _THREADS,)


def input_transform(x: cp.ndarray, ph: int, pw: int, v: Variant) -> cp.ndarray:
    """See ``winograd.input_transform``: (N, C, H, W) -> V (36, C, T), T = N * th * tw,
    tiles every v.m pixels."""
    x = cp.ascontiguousarray(x)
    N, C, H, W = x.shape
    _, _, th, tw = tiling(v, H, W, ph, pw)
    tiles = N * th * tw
    V = cp.empty((ALPHA * ALPHA, C, tiles), dtype=x.dtype)
    if V.size == 0:
        return V
    f, I = _kernel("winograd_input_transform", x.dtype, max(x.size, V.size))
    f(_blocks(C * tiles), (_THREADS,), (x, V, *map(I, (N, C, H, W, ph, pw, th, tw, v.m))))
    return V


def output_transform(
    M: cp.ndarray,
    bias: cp.ndarray | None,
    N: int,
    Ho: int,
    Wo: int,
    v: Variant,
    out: cp.ndarray | None = None,
) -> cp.ndarray:
    """See ``winograd.output_transform``: M (36, O, T) (+ bias) -> y (N, O, Ho, Wo).

    ``out``, if given, is a C-contiguous (N, O, Ho, Wo) array to write y into.
    """
    M = cp.ascontiguousarray(M)
    O = M.shape[1]
    th, tw = -(-Ho // v.m), -(-Wo // v.m)
    y = cp.empty((N, O, Ho, Wo), dtype=M.dtype) if out is None else out
    if y.size == 0:
        return y
    has_bias = bias is not None
    b = cp.ascontiguousarray(bias, dtype=M.dtype) if has_bias else M  # M: never read
    f, I = _kernel("winograd_output_transform", M.dtype, max(M.size, y.size), f", {v.m}")
    args = (M, b, has_bias, y, *map(I, (N, O, Ho, Wo, th, tw)))
    f(_blocks(O * N * th * tw), (_THREADS,), args)
    return y


def winograd_conv2d(
    x: cp.ndarray,
    w: cp.ndarray,
    bias: cp.ndarray | None = None,
    padding: int | tuple[int, int] = 0,
) -> cp.ndarray:
    """See ``winograd.winograd_conv2d``: 5x5 or 3x3, stride 1, on the GPU.

    Args:
        x: images, shape (N, C, H, W), float32 or float64.
        w: filters, shape (O, C, r, r), r = 5 or 3; bias: shape (O,) or None.
        padding: zero padding, an int or (ph, pw).
    Returns:
        y, shape (N, O, H + 2*ph - r + 1, W + 2*pw - r + 1), in x's dtype.
    """
    v = _check(x, w)
    return _convolve(x, filter_transform(w, x.dtype), v, bias, _pair(padding))


def _convolve(
    x: cp.ndarray, U: cp.ndarray, v: Variant, bias: cp.ndarray | None, padding: tuple[int, int]
) -> cp.ndarray:
    """Steps 2-4 for x (N, C, H, W) and transformed filters U (36, O, C): y (N, O, Ho, Wo)."""
    N, _, H, W = x.shape
    ph, pw = padding
    Ho, Wo, th, tw = tiling(v, H, W, ph, pw)
    y = cp.empty((N, U.shape[1], Ho, Wo), dtype=x.dtype)
    # V and M are 36 / m^2 times larger than x and y (9x for m = 2, 2.25x for m = 4, more
    # where tiles overhang the edge); for large batches they are made for a chunk of
    # images at a time, so the transient memory stays under _CHUNK_BYTES
    per_image = ALPHA * ALPHA * max(U.shape[1:]) * th * tw * x.itemsize
    step = max(1, _CHUNK_BYTES // max(per_image, 1))
    for n0 in range(0, N, step):
        xs = x[n0 : n0 + step]
        V = input_transform(xs, ph, pw, v)  # V = B^T d B      (36, C, T)
        M = matmul(U, V)  # M[k] = U[k] @ V[k]: one strided-batched GEMM   (36, O, T)
        del V
        output_transform(M, bias, len(xs), Ho, Wo, v, out=y[n0 : n0 + step])  # A^T M A + b
    return y


_CHUNK_BYTES = 256 * 2**20  # the largest V or M made at once


def winograd_conv2d_input_grad(
    dy: cp.ndarray, w: cp.ndarray, padding: int | tuple[int, int], input_hw: tuple[int, int]
) -> cp.ndarray:
    """See ``winograd.winograd_conv2d_input_grad``: dL/dx (N, C, H, W) from dy (N, O, Ho, Wo),
    as the Winograd convolution of dy (padded by r - 1 - P) with the flipped, channel-swapped
    w, which the filter transform reads straight from w."""
    v = _check(dy, w.transpose(1, 0, 2, 3))  # dy's channels are w's outputs
    q, (eh, ew) = input_grad_padding(v.r, padding, dy.shape[2:], tuple(input_hw))
    dx = _convolve(dy, filter_transform(w, dy.dtype, flip=True), v, None, q)
    H, W = input_hw
    if eh or ew:
        dx = cp.ascontiguousarray(dx[:, :, eh : eh + H, ew : ew + W])
    return dx
