"""The CUDA source of the Winograd kernels (``winograd/cuda.py``), made from the matrices.

Kept apart from ``winograd/cuda.py`` (which needs CuPy) so that the CPU tests can
check the generated transforms against the matrices of ``winograd/reference.py``.

Each transform is straight-line code, one line per row of its matrix that adds the
nonzero entries' terms; for the first row of the 6x6 B^T

    r[0] = (T)4 * z0 - (T)5 * z2 + z4;

and for a row of G whose entries are not binary fractions, their common factor times
whole numbers, e.g. row 1 of F(4x4, 5x5)'s G, [1, 1, 1, 1, 1] / N_1 with N_1 = -9/2:

    r[rs] = (T)(-2.0 / 9.0) * (z0 + z1 + z2 + z3 + z4);

Every variant becomes a struct of its constants and three transforms (``bt``, ``g``,
``at``) that the kernel templates take as their last argument.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

from .reference import Variant, weight_grad_variant


def _terms(coefficients: list[Fraction]) -> str:
    """``4 * z0 - 5 * z2 + z4`` for the coefficients [4, 0, -5, 0, 1]: the nonzero ones
    only, +-1 as an addition or subtraction, the others cast to T (``(T)5.25``)."""
    expr = ""
    for j, c in enumerate(coefficients):
        if c == 0:
            continue
        size = abs(c)
        number = str(size.numerator) if size.denominator == 1 else repr(float(size))
        term = f"z{j}" if size == 1 else f"(T){number} * z{j}"
        expr += (" - " if c < 0 else " + ") + term if expr else ("-" if c < 0 else "") + term
    return expr or "(T)0"


def _row_source(row: np.ndarray) -> str:
    """C for the dot product of a matrix row with z0, z1, ...: the entries exactly, as
    fractions; a row with an entry that is not a finite binary fraction (G's 1/N_a, such
    as -2/9) is written as its common factor times whole numbers, so every literal is
    exact: ``(T)(-2.0 / 9.0) * (z0 + z1 + z2 + z3 + z4)``."""
    row_f = [Fraction(float(c)).limit_denominator(1 << 24) for c in row]
    if any(float(f) != float(c) for f, c in zip(row_f, row)):  # not a small fraction
        row_f = [Fraction(float(c)) for c in row]
    nonzero = [f for f in row_f if f]
    if all(f.denominator & (f.denominator - 1) == 0 for f in nonzero):  # powers of 2
        return _terms(row_f)
    scale = Fraction(
        math.gcd(*(f.numerator for f in nonzero)), math.lcm(*(f.denominator for f in nonzero))
    )
    scale = scale if nonzero[0] > 0 else -scale
    inner = _terms([f / scale for f in row_f])
    return f"(T)({scale.numerator}.0 / {scale.denominator}.0) * ({inner})"


def _offset(k: int, stride: str) -> str:
    """The C offset of element k at ``stride``: ``0``, ``zs``, ``2 * zs``, ..."""
    return "0" if k == 0 else stride if k == 1 else f"{k} * {stride}"


def _apply_source(name: str, mat: np.ndarray) -> str:
    """C++ for r = mat @ z with strides: ``r[k * rs] = sum_j mat[k, j] * z[j * zs]``,
    one line per row (:func:`_row_source`)."""
    used = [j for j in range(mat.shape[1]) if np.any(mat[:, j])]
    loads = ", ".join(f"z{j} = z[{_offset(j, 'zs')}]" for j in used)
    lines = [
        "    template <typename T>",
        f"    static __device__ __forceinline__ void {name}(const T* z, int zs, T* r, int rs) {{",
        f"        const T {loads};",
    ]
    for k, row in enumerate(mat):
        lines.append(f"        r[{_offset(k, 'rs')}] = {_row_source(row)};")
    lines.append("    }")
    return "\n".join(lines)


def _struct_source(v: Variant) -> str:
    """The struct of variant v's constants and transforms, named ``v.ident``."""
    points = ", ".join(str(p) for p in v.points)
    return "\n".join(
        [
            f"// {v.name}: points {points} and infinity",
            f"struct {v.ident} {{",
            f"    static constexpr int alpha = {v.alpha}, m = {v.m}, r = {v.r};",
            "    // r = B^T z (alpha x alpha)",
            _apply_source("bt", v.BT),
            "    // r = G z (alpha x r): evaluates an r-tap filter at the points",
            _apply_source("g", v.G),
            "    // r = A^T z (m x alpha)",
            _apply_source("at", v.AT),
            "};",
        ]
    )


_KERNELS = r"""
// One thread per filter, e = o * C + c: U[k][o][c] = (G g G^T)[k / alpha][k % alpha] in
// double precision, with g = w[o, c] (w of shape (O, C, r, r)), or, when flip is set,
// the filter of the input gradient g[a][b] = w[c, o, r-1-a, r-1-b] (w of shape (C, O, r, r)).
template <typename T, typename V>
__global__ void filter_transform(const T* __restrict__ w, T* __restrict__ U, int O, int C,
                                 bool flip) {
    constexpr int r = V::r, A = V::alpha;
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)O * C) return;
    const int o = (int)(e / C), c = (int)(e - (long long)o * C);
    const T* f = w + (flip ? (long long)c * O + o : e) * (r * r);
    double g[r * r], Gg[A * r], u[A * A];
#pragma unroll
    for (int a = 0; a < r; ++a) {
#pragma unroll
        for (int b = 0; b < r; ++b)
            g[a * r + b] = (double)(flip ? f[(r - 1 - a) * r + (r - 1 - b)] : f[a * r + b]);
    }
#pragma unroll
    for (int b = 0; b < r; ++b) V::g(g + b, r, Gg + b, r);         // Gg = G g   (alpha x r)
#pragma unroll
    for (int i = 0; i < A; ++i) V::g(Gg + r * i, 1, u + A * i, 1);  // u = Gg G^T (alpha x alpha)
    const long long plane_size = (long long)O * C;
#pragma unroll
    for (int k = 0; k < A * A; ++k) U[k * plane_size + e] = (T)u[k];
}

// The thread index e = row * tiles + t of the tile kernels below, split into the row
// (a channel) and tile t = (n * th + ti) * tw + tj's image n and tile position (ti, tj).
template <typename I>
__device__ __forceinline__ void split_tile_index(I e, I tiles, I th, I tw, I& row, I& n,
                                                 I& ti, I& tj) {
    row = e / tiles;
    const I t = e - row * tiles;
    n = t / (th * tw);
    const I q = t - n * (th * tw);
    ti = q / tw;
    tj = q - ti * tw;
}

// One thread per (c, t), e = c * tiles + t: V[k][c][t] = (B^T d B)[k / alpha][k % alpha],
// where d[a][b] = x[n, c, m*ti - ph + a, m*tj - pw + b] (0 outside the image); the tile
// stride m is the output tile size of V. I is the index type: int when every array has
// fewer than 2^31 elements.
template <typename T, typename I, typename V>
__global__ void input_transform(const T* __restrict__ x, T* __restrict__ Vt, I N, I C, I H,
                                I W, I ph, I pw, I th, I tw) {
    constexpr int A = V::alpha, m = V::m;
    const I tiles = N * th * tw;
    const I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (e >= C * tiles) return;
    I c, n, ti, tj;
    split_tile_index(e, tiles, th, tw, c, n, ti, tj);
    const I h0 = m * ti - ph, w0 = m * tj - pw;
    const T* plane = x + (n * C + c) * H * W;

    T d[A * A], bd[A * A];
#pragma unroll
    for (int a = 0; a < A; ++a) {
#pragma unroll
        for (int b = 0; b < A; ++b) {
            const I h = h0 + a, w = w0 + b;
            d[a * A + b] = (h >= 0 && h < H && w >= 0 && w < W) ? plane[h * W + w] : (T)0;
        }
    }
#pragma unroll
    for (int b = 0; b < A; ++b) V::bt(d + b, A, bd + b, A);           // bd = B^T d (columns)
#pragma unroll
    for (int i = 0; i < A; ++i) V::bt(bd + A * i, 1, d + A * i, 1);   // d = bd B   (rows)
    const I plane_size = C * tiles;
#pragma unroll
    for (int k = 0; k < A * A; ++k) Vt[k * plane_size + e] = d[k];
}

// One thread per (o, t), e = o * tiles + t: Y = A^T mt A + bias[o] with mt[k] = M[k][o][t];
// Y[r][s] goes to y[n, o, m*ti + r, m*tj + s] when that lies inside Ho x Wo.
template <typename T, typename I, typename V>
__global__ void output_transform(const T* __restrict__ M, const T* __restrict__ bias,
                                 bool has_bias, T* __restrict__ y, I N, I O, I Ho, I Wo, I th,
                                 I tw) {
    constexpr int A = V::alpha, m = V::m;
    const I tiles = N * th * tw;
    const I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (e >= O * tiles) return;
    I o, n, ti, tj;
    split_tile_index(e, tiles, th, tw, o, n, ti, tj);

    const I plane_size = O * tiles;
    T mt[A * A], am[m * A], Y[m * m];
#pragma unroll
    for (int k = 0; k < A * A; ++k) mt[k] = M[k * plane_size + e];
#pragma unroll
    for (int j = 0; j < A; ++j) V::at(mt + j, A, am + j, A);          // am = A^T mt (m x alpha)
#pragma unroll
    for (int r = 0; r < m; ++r) V::at(am + A * r, 1, Y + m * r, 1);   // Y = am A    (m x m)
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

// Weight gradient, W = the variant F(r x r, m x m) (its filter size W::r is the forward's
// tile size m). One thread per (o, t), e = o * tiles + t: U[k][o][t] = (G' e G'^T)[k / alpha]
// [k % alpha] for the m x m block e[a][b] = dy[n, o, m*ti + a, m*tj + b] (0 outside Ho x Wo).
template <typename T, typename I, typename W>
__global__ void dy_transform(const T* __restrict__ dy, T* __restrict__ U, I N, I O, I Ho, I Wo,
                             I th, I tw) {
    constexpr int A = W::alpha, m = W::r;
    const I tiles = N * th * tw;
    const I e = (I)blockIdx.x * (I)blockDim.x + (I)threadIdx.x;
    if (e >= O * tiles) return;
    I o, n, ti, tj;
    split_tile_index(e, tiles, th, tw, o, n, ti, tj);
    const T* plane = dy + (n * O + o) * Ho * Wo;

    T blk[m * m], ge[A * m], u[A * A];
#pragma unroll
    for (int a = 0; a < m; ++a) {
#pragma unroll
        for (int b = 0; b < m; ++b) {
            const I h = m * ti + a, w = m * tj + b;
            blk[a * m + b] = (h < Ho && w < Wo) ? plane[h * Wo + w] : (T)0;
        }
    }
#pragma unroll
    for (int b = 0; b < m; ++b) W::g(blk + b, m, ge + b, m);          // ge = G' e  (alpha x m)
#pragma unroll
    for (int i = 0; i < A; ++i) W::g(ge + m * i, 1, u + A * i, 1);    // u = ge G'^T
    const I plane_size = O * tiles;
#pragma unroll
    for (int k = 0; k < A * A; ++k) U[k * plane_size + e] = u[k];
}

// One thread per filter, e = o * C + c: dw[o, c] = A'^T mt A' (r x r, W::m = r) with
// mt[k] = M[k][o][c].
template <typename T, typename W>
__global__ void weight_output_transform(const T* __restrict__ M, T* __restrict__ dw, int O,
                                        int C) {
    constexpr int A = W::alpha, r = W::m;
    const long long e = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (e >= (long long)O * C) return;
    const long long plane_size = (long long)O * C;
    T mt[A * A], am[r * A];
#pragma unroll
    for (int k = 0; k < A * A; ++k) mt[k] = M[k * plane_size + e];
#pragma unroll
    for (int j = 0; j < A; ++j) W::at(mt + j, A, am + j, A);          // am = A'^T mt
#pragma unroll
    for (int i = 0; i < r; ++i) W::at(am + A * i, 1, dw + e * (r * r) + r * i, 1);  // am A'
}
"""


def source(v: Variant) -> str:
    """The CUDA source compiled for variant v: its struct, its weight-gradient
    variant's struct, and the kernel templates."""
    return "\n\n".join([_struct_source(v), _struct_source(weight_grad_variant(v)), _KERNELS])
