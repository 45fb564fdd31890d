"""Winograd convolution, the readable reference (NumPy or CuPy arrays).

A k x k stride-1 convolution by F(m x m, r x r): filters and input tiles transformed
(U = G g G^T, V = B^T d B), multiplied elementwise and summed over channels as alpha^2
matrix products, and each output tile transformed back (Y = A^T M A); ``matrices.py``
derives the matrices. The input gradient is a Winograd convolution of dy with the
flipped filters; the weight gradient runs F(r x r, m x m) over dy's m x m blocks.

Precision. The larger m, the larger the entries of A^T (up to 2^3 = 8 for m = 4)
and of B^T (up to 21/4 for alpha = 8), and the more the terms that cancel, so
F(4x4, 3x3) rounds somewhat worse than F(2x2, 5x5), and F(4x4, 5x5) worse again;
tests/test_winograd.py measures and bounds each (its docstring has the numbers).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from .. import array_module
from .matrices import (
    AT2 as AT2,
)
from .matrices import (
    AT4 as AT4,
)
from .matrices import (
    BT as BT,
)
from .matrices import (
    G3 as G3,
)
from .matrices import (
    G5 as G5,
)
from .matrices import (
    HALF as HALF,
)
from .matrices import (
    SIX_POINTS as SIX_POINTS,
)
from .matrices import (
    VARIANTS as VARIANTS,
)
from .matrices import (
    F2x2_5x5 as F2x2_5x5,
)
from .matrices import (
    F3x3_5x5 as F3x3_5x5,
)
from .matrices import (
    F4x4_3x3 as F4x4_3x3,
)
from .matrices import (
    F4x4_5x5 as F4x4_5x5,
)
from .matrices import (
    Variant as Variant,
)
from .matrices import (
    variant_from_points as variant_from_points,
)
from .matrices import (
    winograd_matrices as winograd_matrices,
)


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


def _check(x: Any, w: Any, variant: Variant | None = None) -> Variant:
    """The variant for w (``variant``, or the default for its size), once x (N, C, H, W)
    and w (O, C, r, r) are known to fit."""
    if x.ndim != 4 or w.ndim != 4 or w.shape[1] != x.shape[1]:
        raise ValueError(
            f"winograd: expected x (N, C, H, W) and w (O, C, r, r), "
            f"got {tuple(x.shape)} and {tuple(w.shape)}"
        )
    if x.dtype.kind != "f":
        raise TypeError(f"winograd: x must be float32 or float64, got {x.dtype}")
    return _variant_for(w, variant)


def _variant_for(w: Any, variant: Variant | None) -> Variant:
    """``variant`` checked against w's kernel size, or the default for it."""
    v = variant_of(w)
    if variant is not None and variant.r != v.r:
        raise ValueError(f"winograd: {variant.name} does not fit filters {tuple(w.shape)}")
    return v if variant is None else variant


def filter_transform(w: Any, dtype: Any, variant: Variant | None = None) -> Any:
    """U = G g G^T for every filter, computed in float64 (it is tiny), then cast.

    Args:
        w: filters, shape (O, C, r, r) with r = 5 or 3.
        dtype: the dtype of the result.
        variant: the algorithm (default: ``VARIANTS[r]``, alpha = 6).
    Returns:
        U, shape (alpha^2, O, C), contiguous: U[alpha*i + j, o, c] = (G w[o, c] G^T)[i, j].
    """
    xp = array_module(w)
    O, C = w.shape[:2]
    v = _variant_for(w, variant)
    g = xp.asarray(v.G)
    u = g @ w.astype(xp.float64) @ g.T  # G w[o, c] G^T for every (o, c): (O, C, alpha, alpha)
    u = u.transpose(2, 3, 0, 1).reshape(v.alpha**2, O, C)  # (i, j) first: (alpha^2, O, C)
    return xp.ascontiguousarray(u.astype(dtype))


def input_transform(x: Any, ph: int, pw: int, v: Variant) -> Any:
    """V = B^T d B for every alpha x alpha input tile d of every channel; tiles every m
    pixels.

    Args:
        x: images, shape (N, C, H, W).
        ph, pw: zero padding.
        v: the variant (its r gives the output size, its m the tile stride, its
            alpha = m + r - 1 the tile size).
    Returns:
        V, shape (alpha^2, C, T) with T = N * th * tw tiles, t = (n * th + ti) * tw + tj:
        V[alpha*i + j, c, t] = (B^T d B)[i, j], d = the padded x[n, c] rows
        m*ti .. m*ti + alpha - 1, columns m*tj .. m*tj + alpha - 1.
    """
    xp = array_module(x)
    N, C, H, W = x.shape
    _, _, th, tw = tiling(v, H, W, ph, pw)
    m, alpha = v.m, v.alpha
    # zero padding: ph/pw before, and after enough rows/columns for the last whole tile
    # (the tiling may run past the output by up to m - 1 rows/columns)
    Hp, Wp = m * (th - 1) + alpha, m * (tw - 1) + alpha
    xpad = xp.zeros((N, C, Hp, Wp), dtype=x.dtype)  # Hp >= H + 2*ph: m*th >= Ho
    xpad[:, :, ph : ph + H, pw : pw + W] = x
    # d[a, b, c, n, ti, tj] = xpad[n, c, m*ti + a, m*tj + b]: one strided slice per (a, b)
    d = xp.empty((alpha, alpha, C, N, th, tw), dtype=x.dtype)
    for a in range(alpha):
        for b in range(alpha):
            window = xpad[:, :, a : a + m * th : m, b : b + m * tw : m]
            d[a, b] = window.transpose(1, 0, 2, 3)  # (C, N, th, tw)
    d = d.reshape(alpha, alpha, C, N * th * tw)
    bt = xp.asarray(v.BT, dtype=x.dtype)
    V = xp.einsum("ia,abct->ibct", bt, d)  # B^T d   (columns)
    V = xp.einsum("jb,ibct->ijct", bt, V)  # (B^T d) B   (rows)
    return xp.ascontiguousarray(V.reshape(alpha * alpha, C, N * th * tw))


def output_transform(M: Any, bias: Any, N: int, Ho: int, Wo: int, v: Variant) -> Any:
    """Y = A^T M A for every (out channel, tile), the tiles put back in place, + bias.

    Args:
        M: shape (alpha^2, O, T), T = N * th * tw.
        bias: shape (O,), or None.
        N, Ho, Wo: the output's batch size and size (Ho <= m*th, Wo <= m*tw).
        v: the variant (its A^T is m x alpha).
    Returns:
        y, shape (N, O, Ho, Wo), contiguous: y[n, o, m*ti + r, m*tj + s] = Y[r, s].
    """
    xp = array_module(M)
    O, m = M.shape[1], v.m
    th, tw = -(-Ho // m), -(-Wo // m)
    at = xp.asarray(v.AT, dtype=M.dtype)
    M = M.reshape(v.alpha, v.alpha, O, N, th, tw)
    y = xp.einsum("ri,ijonab->rjonab", at, M)  # A^T M   (columns)
    y = xp.einsum("sj,rjonab->rsonab", at, y)  # (A^T M) A   (rows): (m, m, O, N, th, tw)
    # y[r, s, o, n, ti, tj] -> out[n, o, m*ti + r, m*tj + s], cropped to Ho x Wo
    y = y.transpose(3, 2, 4, 0, 5, 1).reshape(N, O, m * th, m * tw)[:, :, :Ho, :Wo]
    if bias is not None:
        y = y + bias.astype(M.dtype, copy=False)[:, None, None]
    return xp.ascontiguousarray(y)


def winograd_conv2d(
    x: Any,
    w: Any,
    bias: Any = None,
    padding: int | tuple[int, int] = 0,
    variant: Variant | None = None,
) -> Any:
    """5x5 or 3x3 convolution with stride 1 (cross-correlation, as in PyTorch) by Winograd:
    F(2x2, 5x5) for 5x5 filters, F(4x4, 3x3) for 3x3, unless ``variant`` names another.

        y[n, o, h, w] = bias[o] + sum_{c, i, j} w[o, c, i, j] * x[n, c, h + i - ph, w + j - pw]

    Args:
        x: images, shape (N, C, H, W), float32 or float64; the result has its dtype.
        w: filters, shape (O, C, r, r), r = 5 or 3.
        bias: shape (O,), or None.
        padding: zero padding P, an int or a pair (ph, pw).
        variant: the algorithm for w's size (default ``VARIANTS[r]``).
    Returns:
        y, shape (N, O, Ho, Wo) with Ho = H + 2*ph - r + 1, Wo = W + 2*pw - r + 1.
    """
    v = _check(x, w, variant)
    xp = array_module(x)
    N, _, H, W = x.shape
    ph, pw = _pair(padding)
    Ho, Wo, _, _ = tiling(v, H, W, ph, pw)
    U = filter_transform(w, x.dtype, v)  # U = G g G^T          (alpha^2, O, C)
    V = input_transform(x, ph, pw, v)  # V = B^T d B           (alpha^2, C, T)
    M = xp.matmul(U, V)  # M[k] = U[k] @ V[k], k < alpha^2     (alpha^2, O, T)
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
    dy: Any,
    w: Any,
    padding: int | tuple[int, int],
    input_hw: tuple[int, int],
    variant: Variant | None = None,
) -> Any:
    """dL/dx of :func:`winograd_conv2d`, itself a Winograd convolution (see
    :func:`input_grad_as_conv`): dx = correlate(pad(dy, r - 1 - P), flip(w)^T).

    Args:
        dy: upstream gradient dL/dy, shape (N, O, Ho, Wo).
        w: the forward's filters, shape (O, C, r, r), r = 5 or 3.
        padding: the forward's padding P (int or (ph, pw)).
        input_hw: (H, W) of the forward's input.
        variant: the algorithm for w's size (default ``VARIANTS[r]``).
    Returns:
        dx, shape (N, C, H, W), in dy's dtype.
    """
    w_t, q, (eh, ew) = input_grad_as_conv(w, padding, dy.shape[2:], tuple(input_hw))
    dx = winograd_conv2d(dy, w_t.astype(dy.dtype, copy=False), None, q, variant)
    H, W = input_hw
    if eh or ew:
        dx = array_module(dx).ascontiguousarray(dx[:, :, eh : eh + H, ew : ew + W])
    return dx


@functools.cache
def weight_grad_variant(v: Variant) -> Variant:
    """The algorithm for dL/dw of ``v``'s convolution: F(r x r, m x m) at v's points.

    dL/dw is a sum over tiles of correlations of an input tile (alpha x alpha) with the
    m x m block of dy that the tile produced, each giving r x r values:

        dw[o, c, i, j] = sum_{n, ti, tj} sum_{a, b < m} dy[n, o, m*ti + a, m*tj + b]
                                                     * d[m*ti + a + i, m*tj + b + j]

    (d: the zero-padded input x[n, c]). In one dimension that is F(r, m), with the
    roles of output size and filter size swapped and alpha = r + m - 1 unchanged; the
    points are v's, so B^T is v's too. Derived once per variant (cached by identity:
    variants compare and hash as objects).
    """
    w = variant_from_points(v.r, v.m, v.points)
    if not np.array_equal(w.BT, v.BT):  # (a variant's matrices must fit its points)
        raise ValueError(f"winograd: {v.name} has a B^T its points do not give")
    return w


def dy_transform(dy: Any, v: Variant) -> Any:
    """U' = G' e G'^T for every m x m block e of dy (zero past its edge), G' = the
    filter transform of ``weight_grad_variant(v)`` (alpha x m).

    Args:
        dy: the gradient of the convolution's output, shape (N, O, Ho, Wo).
        v: the forward's variant (its tiles are the blocks here).
    Returns:
        U', shape (alpha^2, O, T), T = N * th * tw tiles numbered as in
        :func:`input_transform`: U'[alpha*i + j, o, t] = (G' e G'^T)[i, j].
    """
    xp = array_module(dy)
    N, O, Ho, Wo = dy.shape
    m, g = v.m, xp.asarray(weight_grad_variant(v).G, dtype=dy.dtype)
    th, tw = -(-Ho // m), -(-Wo // m)
    e = xp.zeros((N, O, m * th, m * tw), dtype=dy.dtype)
    e[:, :, :Ho, :Wo] = dy
    # e[n, o, ti, a, tj, b] -> (a, b, o, n, ti, tj): the m x m blocks, tile index last
    e = e.reshape(N, O, th, m, tw, m).transpose(3, 5, 1, 0, 2, 4).reshape(m, m, O, N * th * tw)
    u = xp.einsum("ia,abot->ibot", g, e)  # G' e   (columns)
    u = xp.einsum("jb,ibot->ijot", g, u)  # (G' e) G'^T   (rows)
    return xp.ascontiguousarray(u.reshape(v.alpha**2, O, N * th * tw))


def winograd_conv2d_weight_grad(
    x: Any,
    dy: Any,
    padding: int | tuple[int, int],
    kernel_size: int,
    variant: Variant | None = None,
) -> Any:
    """dL/dw of :func:`winograd_conv2d`, by Winograd F(r x r, m x m) (see
    :func:`weight_grad_variant`): the tiles' products summed over all tiles at once,

        M[k] = U'[k] @ V[k]^T,  k < alpha^2       (O, T) @ (T, C): one sum over the tiles
        dw[o, c] = A'^T M[:, o, c] A'             (r x r)

    with V = B^T d B of the input tiles (:func:`input_transform`, the forward's tiling),
    U' = G' e G'^T of dy's m x m blocks (:func:`dy_transform`) and A'^T (r x alpha) the
    output transform of F(r, m).

        dw[o, c, i, j] = sum_{n, h, w} dy[n, o, h, w] * x[n, c, h + i - ph, w + j - pw]

    Args:
        x: the forward's input, shape (N, C, H, W), float32 or float64.
        dy: dL/dy, shape (N, O, Ho, Wo), x's dtype.
        padding: the forward's padding (int or (ph, pw)).
        kernel_size: r (5 or 3).
        variant: the forward's algorithm (default ``VARIANTS[r]``).
    Returns:
        dw, shape (O, C, r, r), in x's dtype.
    """
    v = variant if variant is not None else VARIANTS.get(kernel_size)
    if v is None or v.r != kernel_size:
        raise ValueError(f"winograd weight gradient: no variant for {kernel_size}x{kernel_size}")
    xp = array_module(x)
    N, C, H, W = x.shape
    O = dy.shape[1]
    ph, pw = _pair(padding)
    if dy.shape != (N, O, *tiling(v, H, W, ph, pw)[:2]):
        raise ValueError(
            f"winograd weight gradient: dy {tuple(dy.shape)} does not come from x "
            f"{tuple(x.shape)} with a {kernel_size}x{kernel_size} kernel and padding ({ph}, {pw})"
        )
    V = input_transform(x, ph, pw, v)  # B^T d B                        (alpha^2, C, T)
    U = dy_transform(dy, v)  # G' e G'^T                                (alpha^2, O, T)
    M = xp.matmul(U, V.transpose(0, 2, 1))  # sum over tiles            (alpha^2, O, C)
    a = v.alpha
    at = xp.asarray(weight_grad_variant(v).AT, dtype=x.dtype)  # A'^T   (r, alpha)
    M = M.reshape(a, a, O, C)
    dw = xp.einsum("ri,ijoc->rjoc", at, M)  # A'^T M   (columns)
    dw = xp.einsum("sj,rjoc->rsoc", at, dw)  # (A'^T M) A'   (rows): (r, r, O, C)
    return xp.ascontiguousarray(dw.transpose(2, 3, 0, 1))
