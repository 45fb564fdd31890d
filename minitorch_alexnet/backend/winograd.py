"""Winograd F(2x2, 5x5) convolution: the readable reference (NumPy or CuPy).

A 5x5 convolution with stride 1 costs 25 multiplications per output pixel and
input channel. Winograd's minimal filtering algorithm computes a 2x2 block of
outputs from a 6x6 block of inputs with 36 multiplications instead of 4 * 25 = 100,
at the price of cheap linear transforms before and after.

One dimension first: F(2, 5)
----------------------------
The correlation of a signal d (6 values) with a filter g (5 values),

    y[k] = sum_{j=0..4} d[k + j] * g[j]            k = 0, 1,

is computed as

    y = A^T [ (G g) ⊙ (B^T d) ]                     (⊙: elementwise product)

with B^T (6x6), G (6x5) and A^T (2x6) below; the 6 elementwise products are the
only multiplications that involve both d and g.

Where the matrices come from (Toom-Cook / Lagrange interpolation). Write the
*linear convolution* of a 2-tap h with g as a polynomial product
s(x) = g(x) h(x), degree 5, so 6 coefficients. Evaluate g(x) and h(x) at the
6 points a = 0, 1, -1, 2, -2 and infinity (the value "at infinity" of a
polynomial is its leading coefficient), multiply the values pairwise, and
interpolate the degree-5 product back from its 6 values:

    s = L [ (E_g g) ⊙ (E_h h) ]

E_g (6x5) and E_h (6x2) evaluate: row a is [1, a, a^2, ...], the row for
infinity is [0, ..., 0, 1]. L (6x6) interpolates: it is the inverse of the
6x6 evaluation matrix. As a matrix, s = T(g) h with T(g)[t, k] = g[t - k], and
the correlation above is y = T(g)^T d: correlation is the transpose of
convolution. Transposing s = L diag(E_g g) E_h h gives

    y = E_h^T [ (E_g g) ⊙ (L^T d) ],   so   A^T = E_h^T,  G = E_g,  B^T = L^T,

up to a diagonal scale D moved from B^T to G (G = D E_g, B^T = D^-1 L^T) that
makes B^T integer. Row a of L^T holds the coefficients of the Lagrange basis
polynomial for point a, M_a(x) / N_a with M_a(x) = prod_{b != a} (x - b) over the
five finite points and N_a = M_a(a); the row for infinity holds the coefficients
of M(x) = prod_b (x - b) = x^5 - 5x^3 + 4x. Scaling row a by N_a leaves

    B^T rows:  M_a(x) for a = 0, 1, -1, 2, -2  and  M(x), coefficients x^0 .. x^5
    G rows:    [1, a, a^2, a^3, a^4] / N_a      and  [0, 0, 0, 0, 1]
    N_a:       N_0 = 4, N_1 = N_-1 = -6, N_2 = N_-2 = 24
    A^T:       columns [1, a] for the finite points and [0, 1] for infinity

Two dimensions: F(2x2, 5x5)
---------------------------
Nesting the 1-D algorithm along rows and columns, a 6x6 input tile d and a 5x5
filter g give the 2x2 output tile

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A.

Tiles start every 2 pixels (neighbouring 6x6 tiles overlap by 4). For a whole
convolution, with U = G g G^T per (out channel o, in channel c) and V = B^T d B
per (in channel c, tile t), the sum over input channels moves inside: at each of
the 36 transform positions (i, j)

    M[i,j][o, t] = sum_c U[i,j][o, c] * V[i,j][c, t],

that is, 36 independent matrix products U[36, O, C] @ V[36, C, T] with
T = N * tiles per image, followed by Y = A^T M A for every (o, t).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from . import array_module

K = 5  # filter size r
TILE = 2  # output tile m
ALPHA = TILE + K - 1  # input tile m + r - 1 = 6

# Evaluation points 0, 1, -1, 2, -2 and infinity (the last row/column of each matrix).
# B^T: rows are the coefficients (x^0 .. x^5) of M_a(x) = prod_{b != a} (x - b), e.g.
#   M_0(x) = (x^2 - 1)(x^2 - 4)  = 4 - 5x^2 + x^4,
#   M_1(x) = x(x + 1)(x^2 - 4)   = -4x - 4x^2 + x^3 + x^4,
# and of M(x) = x^5 - 5x^3 + 4x for infinity.
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

# G: row a evaluates g(x) = g0 + g1 x + ... + g4 x^4 at a, divided by N_a = M_a(a);
# the row for infinity picks the leading coefficient g4.
G = np.array(
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
AT = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 1],
    ],
    dtype=np.float64,
)


def _pair(padding: int | tuple[int, int]) -> tuple[int, int]:
    """``2`` -> ``(2, 2)``; a pair stays a pair."""
    ph, pw = (padding, padding) if isinstance(padding, int) else padding
    return int(ph), int(pw)


def tiling(H: int, W: int, ph: int, pw: int) -> tuple[int, int, int, int]:
    """Output size and tile counts of a 5x5, stride-1 convolution.

    Returns (Ho, Wo, th, tw): Ho = H + 2*ph - 4 (the same for Wo) and
    th = ceil(Ho / 2) tiles down, tw = ceil(Wo / 2) tiles across.
    """
    Ho, Wo = H + 2 * ph - K + 1, W + 2 * pw - K + 1
    if Ho < 1 or Wo < 1 or min(ph, pw) < 0:
        raise ValueError(
            f"winograd 5x5: input {H}x{W} with padding ({ph}, {pw}) is smaller than the kernel"
        )
    return Ho, Wo, -(-Ho // TILE), -(-Wo // TILE)


def _check(x: Any, w: Any) -> None:
    if x.ndim != 4 or w.ndim != 4 or w.shape[2:] != (K, K) or w.shape[1] != x.shape[1]:
        raise ValueError(
            f"winograd 5x5: expected x (N, C, H, W) and w (O, C, 5, 5), "
            f"got {tuple(x.shape)} and {tuple(w.shape)}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"winograd 5x5: x must be float32 or float64, got {x.dtype}")


def filter_transform(w: Any, dtype: Any) -> Any:
    """U = G g G^T for every filter, computed in float64 (it is tiny), then cast.

    Args:
        w: filters, shape (O, C, 5, 5).
        dtype: the dtype of the result.
    Returns:
        U, shape (36, O, C), contiguous: U[6*i + j, o, c] = (G w[o, c] G^T)[i, j].
    """
    xp = array_module(w)
    O, C = w.shape[:2]
    g = xp.asarray(G)
    u = g @ w.astype(xp.float64) @ g.T  # G w[o, c] G^T for every (o, c): (O, C, 6, 6)
    u = u.transpose(2, 3, 0, 1).reshape(ALPHA * ALPHA, O, C)  # (i, j) first: (36, O, C)
    return xp.ascontiguousarray(u.astype(dtype))


def input_transform(x: Any, ph: int, pw: int) -> Any:
    """V = B^T d B for every 6x6 input tile d of every channel.

    Args:
        x: images, shape (N, C, H, W).
        ph, pw: zero padding.
    Returns:
        V, shape (36, C, T) with T = N * th * tw tiles, t = (n * th + ti) * tw + tj:
        V[6*i + j, c, t] = (B^T d B)[i, j], d = the padded x[n, c] rows 2*ti .. 2*ti + 5,
        columns 2*tj .. 2*tj + 5.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    _, _, th, tw = tiling(H, W, ph, pw)
    # zero padding: ph/pw before, and after enough rows/columns for the last whole tile
    # (the tiling may run past the output by one row/column when Ho or Wo is odd)
    Hp, Wp = TILE * th + K - 1, TILE * tw + K - 1
    xpad = xp.zeros((N, C, Hp, Wp), dtype=x.dtype)
    xpad[:, :, ph : ph + H, pw : pw + W] = x
    # d[a, b, c, n, ti, tj] = xpad[n, c, 2*ti + a, 2*tj + b]: one strided slice per (a, b)
    d = xp.empty((ALPHA, ALPHA, C, N, th, tw), dtype=x.dtype)
    for a in range(ALPHA):
        for b in range(ALPHA):
            window = xpad[:, :, a : a + TILE * th : TILE, b : b + TILE * tw : TILE]
            d[a, b] = window.transpose(1, 0, 2, 3)  # (C, N, th, tw)
    d = d.reshape(ALPHA, ALPHA, C, N * th * tw)
    bt = xp.asarray(BT, dtype=x.dtype)
    v = xp.einsum("ia,abct->ibct", bt, d)  # B^T d   (columns)
    v = xp.einsum("jb,ibct->ijct", bt, v)  # (B^T d) B   (rows)
    return xp.ascontiguousarray(v.reshape(ALPHA * ALPHA, C, N * th * tw))


def output_transform(m: Any, bias: Any, N: int, Ho: int, Wo: int) -> Any:
    """Y = A^T M A for every (out channel, tile), the tiles put back in place, + bias.

    Args:
        m: M, shape (36, O, T), T = N * th * tw.
        bias: shape (O,), or None.
        N, Ho, Wo: the output's batch size and size (Ho <= 2*th, Wo <= 2*tw).
    Returns:
        y, shape (N, O, Ho, Wo), contiguous: y[n, o, 2*ti + r, 2*tj + s] = Y[r, s].
    """
    xp = array_module(m)
    O = m.shape[1]
    th, tw = -(-Ho // TILE), -(-Wo // TILE)
    at = xp.asarray(AT, dtype=m.dtype)
    m = m.reshape(ALPHA, ALPHA, O, N, th, tw)
    y = xp.einsum("ri,ijonab->rjonab", at, m)  # A^T M   (columns)
    y = xp.einsum("sj,rjonab->rsonab", at, y)  # (A^T M) A   (rows): (2, 2, O, N, th, tw)
    # y[r, s, o, n, ti, tj] -> out[n, o, 2*ti + r, 2*tj + s], cropped to Ho x Wo
    y = y.transpose(3, 2, 4, 0, 5, 1).reshape(N, O, TILE * th, TILE * tw)[:, :, :Ho, :Wo]
    if bias is not None:
        y = y + bias.astype(m.dtype, copy=False)[:, None, None]
    return xp.ascontiguousarray(y)


def winograd_conv2d(x: Any, w: Any, bias: Any = None, padding: int | tuple[int, int] = 0) -> Any:
    """5x5 convolution with stride 1 (cross-correlation, as in PyTorch) by Winograd F(2x2, 5x5).

        y[n, o, h, w] = bias[o] + sum_{c, i, j} w[o, c, i, j] * x[n, c, h + i - ph, w + j - pw]

    Args:
        x: images, shape (N, C, H, W), float32 or float64; the result has its dtype.
        w: filters, shape (O, C, 5, 5).
        bias: shape (O,), or None.
        padding: zero padding P, an int or a pair (ph, pw).
    Returns:
        y, shape (N, O, Ho, Wo) with Ho = H + 2*ph - 4, Wo = W + 2*pw - 4.
    """
    _check(x, w)
    xp = array_module(x)
    N, _, H, W = x.shape
    ph, pw = _pair(padding)
    Ho, Wo, _, _ = tiling(H, W, ph, pw)
    u = filter_transform(w, x.dtype)  # U = G g G^T          (36, O, C)
    v = input_transform(x, ph, pw)  # V = B^T d B            (36, C, T)
    m = xp.matmul(u, v)  # M[k] = U[k] @ V[k], k = 0..35      (36, O, T)
    return output_transform(m, bias, N, Ho, Wo)  # Y = A^T M A  (N, O, Ho, Wo)


def input_grad_as_conv(
    w: Any, padding: int | tuple[int, int], dy_hw: tuple[int, int], input_hw: tuple[int, int]
) -> tuple[Any, tuple[int, int], tuple[int, int]]:
    """Recast dL/dx of a 5x5 stride-1 convolution as a forward 5x5 convolution of dy.

        dx[n, c, h, w] = sum_{o, i, j} dy[n, o, h + P - i, w + P - j] * w[o, c, i, j]
                       = sum_{o, i', j'} dy[n, o, h - (4 - P) + i', ...] * w[o, c, 4 - i', 4 - j']

    with i' = 4 - i: a correlation of dy, padded by 4 - P, with the flipped kernel whose
    channels are swapped, w_t[c, o, i', j'] = w[o, c, 4 - i', 4 - j']. When P > 4 the
    "padding" 4 - P is negative: correlate without padding and crop P - 4 from each side.

    Args:
        w: filters, shape (O, C, 5, 5).
        padding: the forward's padding P (int or (ph, pw)).
        dy_hw: (Ho, Wo) of dy; input_hw: (H, W) of x.
    Returns:
        w_t, shape (C, O, 5, 5); the padding (qh, qw) for the correlation of dy;
        the crop (eh, ew) to take from each side of its result.
    """
    ph, pw = _pair(padding)
    (Ho, Wo), (H, W) = dy_hw, input_hw
    if (Ho, Wo) != (H + 2 * ph - K + 1, W + 2 * pw - K + 1):
        raise ValueError(
            f"winograd 5x5 input gradient: dy of size {Ho}x{Wo} does not come from an "
            f"input of size {H}x{W} with padding ({ph}, {pw})"
        )
    xp = array_module(w)
    w_t = xp.ascontiguousarray(w[:, :, ::-1, ::-1].transpose(1, 0, 2, 3))
    qh, qw = K - 1 - ph, K - 1 - pw
    return w_t, (max(qh, 0), max(qw, 0)), (max(-qh, 0), max(-qw, 0))


def winograd_conv2d_input_grad(
    dy: Any, w: Any, padding: int | tuple[int, int], input_hw: tuple[int, int]
) -> Any:
    """dL/dx of :func:`winograd_conv2d`, itself a Winograd convolution (see
    :func:`input_grad_as_conv`): dx = correlate(pad(dy, 4 - P), flip(w)^T).

    Args:
        dy: upstream gradient dL/dy, shape (N, O, Ho, Wo).
        w: the forward's filters, shape (O, C, 5, 5).
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
