"""Winograd convolution, F(2x2, 5x5) and F(4x4, 3x3): the readable reference (NumPy or CuPy).

A k x k convolution with stride 1 costs k^2 multiplications per output pixel and
input channel. Winograd's minimal filtering algorithm F(m x m, r x r) computes an
m x m block of outputs of an r x r filter from an (m + r - 1) x (m + r - 1) block
of inputs with (m + r - 1)^2 multiplications, at the price of cheap linear
transforms before and after. Two variants live here, both with 6x6 input tiles:

    F(2x2, 5x5): 36 multiplications for 2x2 outputs instead of 4 * 25 = 100   (2.8x)
    F(4x4, 3x3): 36 multiplications for 4x4 outputs instead of 16 * 9 = 144   (4x)

One dimension first: F(m, r)
----------------------------
The correlation of a signal d (alpha = m + r - 1 values) with a filter g (r values),

    y[k] = sum_{j=0..r-1} d[k + j] * g[j]          k = 0 .. m-1,

is computed as

    y = A^T [ (G g) ⊙ (B^T d) ]                     (⊙: elementwise product)

with B^T (alpha x alpha), G (alpha x r) and A^T (m x alpha) below; the alpha
elementwise products are the only multiplications that involve both d and g.

Where the matrices come from (Toom-Cook / Lagrange interpolation). Write the
*linear convolution* of an m-tap h with g as a polynomial product
s(x) = g(x) h(x), of degree (r - 1) + (m - 1) = alpha - 1, so alpha coefficients.
Evaluate g(x) and h(x) at alpha points, multiply the values pairwise, and
interpolate the product back from its alpha values:

    s = L [ (E_g g) ⊙ (E_h h) ]

E_g (alpha x r) and E_h (alpha x m) evaluate: row a is [1, a, a^2, ...], and for
the point "infinity" (the value there of a polynomial is its leading coefficient)
[0, ..., 0, 1]. L (alpha x alpha) interpolates: it is the inverse of the
alpha x alpha evaluation matrix. As a matrix, s = T(g) h with T(g)[t, k] = g[t - k],
and the correlation above is y = T(g)^T d: correlation is the transpose of
convolution. Transposing s = L diag(E_g g) E_h h gives

    y = E_h^T [ (E_g g) ⊙ (L^T d) ],   so   A^T = E_h^T,  G = E_g,  B^T = L^T,

up to a diagonal scale D moved from B^T to G (G = D E_g, B^T = D^-1 L^T) that
makes B^T integer.

The key point: both variants have alpha = 6 (2 + 5 - 1 = 4 + 3 - 1), and both use
the six points 0, 1, -1, 2, -2 and infinity. L, hence B^T, depends only on the
points, so **B^T is the same matrix for both**; only G (which evaluates the filter,
r coefficients), A^T (which evaluates the output tile, m coefficients) and the tile
stride m differ. Row a of L^T holds the coefficients of the Lagrange basis
polynomial for point a, M_a(x) / N_a with M_a(x) = prod_{b != a} (x - b) over the
five finite points and N_a = M_a(a); the row for infinity holds the coefficients of
M(x) = prod_b (x - b) = x^5 - 5x^3 + 4x. Scaling row a by N_a leaves

    B^T rows:  M_a(x) for a = 0, 1, -1, 2, -2  and  M(x), coefficients x^0 .. x^5
    N_a:       N_0 = 4, N_1 = N_-1 = -6, N_2 = N_-2 = 24
    G rows:    [1, a, ..., a^(r-1)] / N_a        and  [0, ..., 0, 1]   (6 x r)
    A^T:       columns [1, a, ..., a^(m-1)]      and  [0, ..., 0, 1]   (m x 6)

Two dimensions: F(m x m, r x r)
-------------------------------
Nesting the 1-D algorithm along rows and columns, a 6x6 input tile d and an r x r
filter g give the m x m output tile

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A.

Tiles start every m pixels (neighbouring 6x6 tiles overlap by r - 1). For a whole
convolution, with U = G g G^T per (out channel o, in channel c) and V = B^T d B
per (in channel c, tile t), the sum over input channels moves inside: at each of
the 36 transform positions (i, j)

    M[i,j][o, t] = sum_c U[i,j][o, c] * V[i,j][c, t],

that is, 36 independent matrix products U[36, O, C] @ V[36, C, T] with
T = N * tiles per image, followed by Y = A^T M A for every (o, t).

Precision. The larger m, the larger the entries of A^T (up to 2^3 = 8 for m = 4)
and the more the terms that cancel, so F(4x4, 3x3) rounds somewhat worse than
F(2x2, 5x5); both stay well inside float32's needs (tests/test_winograd.py
measures and bounds it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from . import array_module

ALPHA = 6  # input tile m + r - 1, the same for both variants

# Evaluation points 0, 1, -1, 2, -2 and infinity (the last row/column of each matrix).
# B^T: rows are the coefficients (x^0 .. x^5) of M_a(x) = prod_{b != a} (x - b), e.g.
#   M_0(x) = (x^2 - 1)(x^2 - 4)  = 4 - 5x^2 + x^4,
#   M_1(x) = x(x + 1)(x^2 - 4)   = -4x - 4x^2 + x^3 + x^4,
# and of M(x) = x^5 - 5x^3 + 4x for infinity. Shared by both variants.
BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],  # M_0
        [0, -4, -4, 1, 1, 0],  # M_1
        [0, 4, -4, -1, 1, 0],  # M_-1
        [0, -2, -1, 2, 1, 0],  # M_2
        [0, 2, -1, -2, 1, 0],  # M_-2
        [0, 4, 0, -5, 0, 1],  # M (infinity)
    ],
    dtype=np.float64,
)

# ---- F(2x2, 5x5): r = 5, m = 2
# G: row a evaluates g(x) = g0 + g1 x + ... + g4 x^4 at a, divided by N_a = M_a(a);
# the row for infinity picks the leading coefficient g4.
G5 = np.array(
    [
        [1 / 4, 0, 0, 0, 0],  # a = 0,  N = 4
        [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6],  # a = 1,  N = -6
        [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],  # a = -1, N = -6
        [1 / 24, 2 / 24, 4 / 24, 8 / 24, 16 / 24],  # a = 2,  N = 24
        [1 / 24, -2 / 24, 4 / 24, -8 / 24, 16 / 24],  # a = -2, N = 24
        [0, 0, 0, 0, 1],  # infinity
    ],
    dtype=np.float64,
)

# A^T: column a evaluates a 2-tap polynomial h0 + h1 x at a: [1, a]; infinity: [0, 1].
AT2 = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 1],
    ],
    dtype=np.float64,
)

# ---- F(4x4, 3x3): r = 3, m = 4 (same points, same B^T)
# G: row a evaluates g(x) = g0 + g1 x + g2 x^2 at a, divided by N_a; infinity: g2.
G3 = np.array(
    [
        [1 / 4, 0, 0],  # a = 0,  N = 4
        [-1 / 6, -1 / 6, -1 / 6],  # a = 1,  N = -6
        [-1 / 6, 1 / 6, -1 / 6],  # a = -1, N = -6
        [1 / 24, 2 / 24, 4 / 24],  # a = 2,  N = 24
        [1 / 24, -2 / 24, 4 / 24],  # a = -2, N = 24
        [0, 0, 1],  # infinity
    ],
    dtype=np.float64,
)

# A^T: column a evaluates a 4-tap polynomial h0 + h1 x + h2 x^2 + h3 x^3 at a:
# [1, a, a^2, a^3]; infinity: [0, 0, 0, 1].
AT4 = np.array(
    [
        [1, 1, 1, 1, 1, 0],  # a^0
        [0, 1, -1, 2, -2, 0],  # a^1
        [0, 1, 1, 4, 4, 0],  # a^2
        [0, 1, -1, 8, -8, 1],  # a^3
    ],
    dtype=np.float64,
)


@dataclass(frozen=True, eq=False)
class Variant:
    """One Winograd algorithm F(m x m, r x r) with 6x6 input tiles (B^T is shared).

    Attributes:
        name: e.g. ``"F(2x2, 5x5)"``.
        r: the filter size.
        m: the output tile size, which is also the stride between input tiles.
        G: the filter transform, shape (6, r).
        AT: the output transform A^T, shape (m, 6).
    """

    name: str
    r: int
    m: int
    G: np.ndarray
    AT: np.ndarray


F2x2_5x5 = Variant("F(2x2, 5x5)", r=5, m=2, G=G5, AT=AT2)
F4x4_3x3 = Variant("F(4x4, 3x3)", r=3, m=4, G=G3, AT=AT4)
VARIANTS = {5: F2x2_5x5, 3: F4x4_3x3}  # by kernel size


def _pair(padding: int | tuple[int, int]) -> tuple[int, int]:
    """``2`` -> ``(2, 2)``; a pair stays a pair."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return int(ph), int(pw)


def tiling(v: Variant, H: int, W: int, ph: int, pw: int) -> tuple[int, int, int, int]:
    """Output size and tile counts of an r x r, stride-1 convolution by variant ``v``.

    Returns (Ho, Wo, th, tw): Ho = H + 2*ph - r + 1 (the same for Wo) and
    th = ceil(Ho / m) tiles down, tw = ceil(Wo / m) tiles across.
    """
    Ho, Wo = H + 2 * ph - v.r + 1, W + 2 * pw - v.r + 1
    if Ho < 1 or Wo < 1 or min(ph, pw) < 0:
        raise ValueError(
            f"winograd {v.r}x{v.r}: input {H}x{W} with padding ({ph}, {pw}) is smaller "
            "than the kernel"
        )
    return Ho, Wo, -(-Ho // v.m), -(-Wo // v.m)


def variant_of(w: Any) -> Variant:
    """The variant for filters w of shape (O, C, r, r): F(2x2, 5x5) or F(4x4, 3x3)."""
    if w.ndim != 4 or w.shape[2] != w.shape[3] or w.shape[2] not in VARIANTS:
        raise ValueError(
            f"winograd: expected filters (O, C, 5, 5) or (O, C, 3, 3), got {tuple(w.shape)}"
        )
    return VARIANTS[w.shape[2]]


def _check(x: Any, w: Any) -> Variant:
    """The variant for w, once x (N, C, H, W) and w (O, C, r, r) are known to fit."""
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(
            f"winograd: expected x (N, C, H, W) and w (O, C, r, r), "
            f"got {tuple(x.shape)} and {tuple(w.shape)}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"winograd: x must be float32 or float64, got {x.dtype}")
    return variant_of(w)


def filter_transform(w: Any, dtype: Any) -> Any:
    """U = G g G^T for every filter, computed in float64 (it is tiny), then cast.

    Args:
        w: filters, shape (O, C, r, r) with r = 5 or 3.
        dtype: the dtype of the result.
    Returns:
        U, shape (36, O, C), contiguous: U[6*i + j, o, c] = (G w[o, c] G^T)[i, j].
    """
    xp = array_module(w)
    O, C = w.shape[:2]
    g = xp.asarray(variant_of(w).G)
    u = g @ w.astype(xp.float64) @ g.T  # G w[o, c] G^T for every (o, c): (O, C, 6, 6)
    u = u.transpose(2, 3, 0, 1).reshape(ALPHA * ALPHA, O, C)  # (i, j) first: (36, O, C)
    return xp.ascontiguousarray(u.astype(dtype))


def input_transform(x: Any, ph: int, pw: int, v: Variant) -> Any:
    """V = B^T d B for every 6x6 input tile d of every channel; tiles every m pixels.

    Args:
        x: images, shape (N, C, H, W).
        ph, pw: zero padding.
        v: the variant (its r gives the output size, its m the tile stride).
    Returns:
        V, shape (36, C, T) with T = N * th * tw tiles, t = (n * th + ti) * tw + tj:
        V[6*i + j, c, t] = (B^T d B)[i, j], d = the padded x[n, c] rows m*ti .. m*ti + 5,
        columns m*tj .. m*tj + 5.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    _, _, th, tw = tiling(v, H, W, ph, pw)
    m = v.m
    # zero padding: ph/pw before, and after enough rows/columns for the last whole tile
    # (the tiling may run past the output by up to m - 1 rows/columns)
    Hp, Wp = m * (th - 1) + ALPHA, m * (tw - 1) + ALPHA
    xpad = xp.zeros((N, C, Hp, Wp), dtype=x.dtype)  # Hp >= H + 2*ph: m*th >= Ho
    xpad[:, :, ph : ph + H, pw : pw + W] = x
    # d[a, b, c, n, ti, tj] = xpad[n, c, m*ti + a, m*tj + b]: one strided slice per (a, b)
    d = xp.empty((ALPHA, ALPHA, C, N, th, tw), dtype=x.dtype)
    for a in range(ALPHA):
        for b in range(ALPHA):
            window = xpad[:, :, a : a + m * th : m, b : b + m * tw : m]
            d[a, b] = window.transpose(1, 0, 2, 3)  # (C, N, th, tw)
    d = d.reshape(ALPHA, ALPHA, C, N * th * tw)
    bt = xp.asarray(BT, dtype=x.dtype)
    V = xp.einsum("ia,abct->ibct", bt, d)  # B^T d   (columns)
    V = xp.einsum("jb,ibct->ijct", bt, V)  # (B^T d) B   (rows)
    return xp.ascontiguousarray(V.reshape(ALPHA * ALPHA, C, N * th * tw))


def output_transform(M: Any, bias: Any, N: int, Ho: int, Wo: int, v: Variant) -> Any:
    """Y = A^T M A for every (out channel, tile), the tiles put back in place, + bias.

    Args:
        M: shape (36, O, T), T = N * th * tw.
        bias: shape (O,), or None.
        N, Ho, Wo: the output's batch size and size (Ho <= m*th, Wo <= m*tw).
        v: the variant (its A^T is m x 6).
    Returns:
        y, shape (N, O, Ho, Wo), contiguous: y[n, o, m*ti + r, m*tj + s] = Y[r, s].
    """
    xp = array_module(M)
    O, m = M.shape[1], v.m
    th, tw = -(-Ho // m), -(-Wo // m)
    at = xp.asarray(v.AT, dtype=M.dtype)
    M = M.reshape(ALPHA, ALPHA, O, N, th, tw)
    y = xp.einsum("ri,ijonab->rjonab", at, M)  # A^T M   (columns)
    y = xp.einsum("sj,rjonab->rsonab", at, y)  # (A^T M) A   (rows): (m, m, O, N, th, tw)
    # y[r, s, o, n, ti, tj] -> out[n, o, m*ti + r, m*tj + s], cropped to Ho x Wo
    y = y.transpose(3, 2, 4, 0, 5, 1).reshape(N, O, m * th, m * tw)[:, :, :Ho, :Wo]
    if bias is not None:
        y = y + bias.astype(M.dtype, copy=False)[:, None, None]
    return xp.ascontiguousarray(y)


def winograd_conv2d(x: Any, w: Any, bias: Any = None, padding: int | tuple[int, int] = 0) -> Any:
    """5x5 or 3x3 convolution with stride 1 (cross-correlation, as in PyTorch) by Winograd:
    F(2x2, 5x5) for 5x5 filters, F(4x4, 3x3) for 3x3.

        y[n, o, h, w] = bias[o] + sum_{c, i, j} w[o, c, i, j] * x[n, c, h + i - ph, w + j - pw]

    Args:
        x: images, shape (N, C, H, W), float32 or float64; the result has its dtype.
        w: filters, shape (O, C, r, r), r = 5 or 3.
        bias: shape (O,), or None.
        padding: zero padding P, an int or a pair (ph, pw).
    Returns:
        y, shape (N, O, Ho, Wo) with Ho = H + 2*ph - r + 1, Wo = W + 2*pw - r + 1.
    """
    v = _check(x, w)
    xp = array_module(x)
    N, _, H, W = x.shape
    ph, pw = _pair(padding)
    Ho, Wo, _, _ = tiling(v, H, W, ph, pw)
    U = filter_transform(w, x.dtype)  # U = G g G^T          (36, O, C)
    V = input_transform(x, ph, pw, v)  # V = B^T d B         (36, C, T)
    M = xp.matmul(U, V)  # M[k] = U[k] @ V[k], k = 0..35      (36, O, T)
    return output_transform(M, bias, N, Ho, Wo, v)  # Y = A^T M A  (N, O, Ho, Wo)


def input_grad_padding(
    r: int, padding: int | tuple[int, int], dy_hw: tuple[int, int], input_hw: tuple[int, int]
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Padding and crop of the convolution that gives dL/dx of an r x r stride-1 convolution
    (see :func:`input_grad_as_conv`): (qh, qw) = r - 1 - P where that is >= 0, and the
    crop (eh, ew) = P - (r - 1) from each side of the result where it is negative.

    Args:
        r: the kernel size.
        padding: the forward's padding P (int or (ph, pw)).
        dy_hw: (Ho, Wo) of dy; input_hw: (H, W) of x.
    """
    ph, pw = _pair(padding)
    (Ho, Wo), (H, W) = dy_hw, input_hw
    if (Ho, Wo) != (H + 2 * ph - r + 1, W + 2 * pw - r + 1):
        raise ValueError(
            f"winograd {r}x{r} input gradient: dy of size {Ho}x{Wo} does not come from an "
            f"input of size {H}x{W} with padding ({ph}, {pw})"
        )
    qh, qw = r - 1 - ph, r - 1 - pw
    return (max(qh, 0), max(qw, 0)), (max(-qh, 0), max(-qw, 0))


def input_grad_as_conv(
    w: Any, padding: int | tuple[int, int], dy_hw: tuple[int, int], input_hw: tuple[int, int]
) -> tuple[Any, tuple[int, int], tuple[int, int]]:
    """Recast dL/dx of an r x r stride-1 convolution as a forward r x r convolution of dy.

        dx[n, c, h, w] = sum_{o, i, j} dy[n, o, h + P - i, w + P - j] * w[o, c, i, j]
                       = sum_{o, i', j'} dy[n, o, h - (r-1-P) + i', ...] * w[o, c, r-1-i', r-1-j']

    with i' = r - 1 - i: a correlation of dy, padded by r - 1 - P, with the flipped kernel
    whose channels are swapped, w_t[c, o, i', j'] = w[o, c, r-1 - i', r-1 - j']. When
    P > r - 1 the "padding" r - 1 - P is negative: correlate without padding and crop
    P - (r - 1) from each side.

    Args:
        w: filters, shape (O, C, r, r).
        padding: the forward's padding P (int or (ph, pw)).
        dy_hw: (Ho, Wo) of dy; input_hw: (H, W) of x.
    Returns:
        w_t, shape (C, O, r, r); the padding (qh, qw) for the correlation of dy;
        the crop (eh, ew) to take from each side of its result.
    """
    q, crop = input_grad_padding(variant_of(w).r, padding, dy_hw, input_hw)
    xp = array_module(w)
    w_t = xp.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    return w_t, q, crop


def winograd_conv2d_input_grad(
    dy: Any, w: Any, padding: int | tuple[int, int], input_hw: tuple[int, int]
) -> Any:
    """dL/dx of :func:`winograd_conv2d`, itself a Winograd convolution (see
    :func:`input_grad_as_conv`): dx = correlate(pad(dy, r - 1 - P), flip(w)^T).

    Args:
        dy: upstream gradient dL/dy, shape (N, O, Ho, Wo).
        w: the forward's filters, shape (O, C, r, r), r = 5 or 3.
        padding: the forward's padding P (int or (ph, pw)).
        input_hw: (H, W) of the forward's input.
    Returns:
        dx, shape (N, C, H, W), in dy's dtype.
    """
    w_t, q, (eh, ew) = input_grad_as_conv(w, padding, dy.shape[2:], tuple(input_hw))
    dx = winograd_conv2d(dy, w_t.astype(dy.dtype, copy=False), None, q)
    H, W = input_hw
    if eh or ew:
        dx = array_module(dx).ascontiguousarray(dx[:, :, eh : eh + H, ew : ew + W])
    return dx
