"""Numba kernels for the CPU backend ``"numba"``.

Each function here has the signature of its twin in ``kernels_numpy.py`` and its
results (exactly for the copies and gathers; to rounding for the BatchNorm sums,
which accumulate in float64), but runs as compiled, parallel loops instead of
NumPy slicing: one pass over memory, no temporary arrays. The tests compare them.

* Compiled code is cached on disk (``cache=True``), so only the first run of a
  new installation pays the compile time.
* ``prange`` loops run on Numba's threads; BLAS runs the matrix products on its
  own threads, never at the same time, so the cores are not oversubscribed.
* Debugging: set ``NUMBA_DISABLE_JIT=1`` and these functions run as plain Python,
  so a debugger can step through them.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# small or memory-bound updates: the NumPy versions serve this backend as they are
from .kernels_numpy import batchnorm_update_running as batchnorm_update_running
from .kernels_numpy import inv_std as inv_std
from .kernels_numpy import matmul as matmul
from .kernels_numpy import out_size
from .kernels_numpy import relu_backward as relu_backward
from .kernels_numpy import sgd_update as sgd_update

_jit = dict(cache=True, nogil=True)


# ------------------------------------------------------------------ im2col / col2im
@njit(parallel=True, **_jit)
def _im2col(x, kh, kw, sh, sw, ph, pw, Ho, Wo, cols):  # pragma: no cover - compiled
    N, C, H, W = x.shape
    L = Ho * Wo
    for r in prange(C * kh * kw):  # one row of cols per (c, i, j)
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        for n in range(N):
            base = n * L
            for ho in range(Ho):
                h = ho * sh + i - ph
                dst = base + ho * Wo
                if h < 0 or h >= H:
                    for wo in range(Wo):
                        cols[r, dst + wo] = 0
                    continue
                for wo in range(Wo):
                    w = wo * sw + j - pw
                    cols[r, dst + wo] = x[n, c, h, w] if 0 <= w < W else 0


def im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> np.ndarray:
    """See ``kernels_numpy.im2col``: (N, C, H, W) -> (C*KH*KW, N*Ho*Wo)."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    cols = np.empty((C * kh * kw, N * Ho * Wo), dtype=x.dtype)
    _im2col(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, Ho, Wo, cols)
    return cols


@njit(parallel=True, **_jit)
def _col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, dx):  # pragma: no cover
    L = Ho * Wo
    for nc in prange(N * C):  # each image plane is written by one thread only
        n = nc // C
        c = nc % C
        for i in range(kh):  # same (i, j) order as the NumPy reference: same rounding
            for j in range(kw):
                r = (c * kh + i) * kw + j
                for ho in range(Ho):
                    h = ho * sh + i - ph
                    if h < 0 or h >= H:
                        continue
                    src = n * L + ho * Wo
                    for wo in range(Wo):
                        w = wo * sw + j - pw
                        if 0 <= w < W:
                            dx[n, c, h, w] += cols[r, src + wo]


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> np.ndarray:
    """See ``kernels_numpy.col2im``: (C*KH*KW, N*Ho*Wo) -> (N, C, H, W)."""
    N, C, H, W = x_shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    dx = np.zeros((N, C, H, W), dtype=cols.dtype)
    _col2im(np.ascontiguousarray(cols), N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, dx)
    return dx


# ------------------------------------------------------------------ max pooling
@njit(parallel=True, **_jit)
def _maxpool_fwd(x, kh, kw, sh, sw, ph, pw, out, idx):  # pragma: no cover - compiled
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        for ho in range(Ho):
            for wo in range(Wo):
                best = x[n, c, 0, 0]
                arg = -1
                for i in range(kh):
                    h = ho * sh + i - ph
                    if h < 0 or h >= H:
                        continue
                    for j in range(kw):
                        w = wo * sw + j - pw
                        if w < 0 or w >= W:
                            continue
                        v = x[n, c, h, w]
                        # first maximum wins; a NaN wins like in np.argmax
                        if arg < 0 or v > best or (v != v and best == best):
                            best = v
                            arg = h * W + w
                out[n, c, ho, wo] = best
                idx[n, c, ho, wo] = arg


def maxpool2d_forward(
    x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int
) -> tuple[np.ndarray, np.ndarray]:
    """See ``kernels_numpy.maxpool2d_forward``."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = np.empty((N, C, Ho, Wo), dtype=np.int64)
    _maxpool_fwd(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, out, idx)
    return out, idx


@njit(parallel=True, **_jit)
def _maxpool_bwd(g, idx, dx):  # pragma: no cover - compiled
    N, C, Ho, Wo = g.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = dx[n, c].ravel()  # a view: writes land in dx
        for ho in range(Ho):
            for wo in range(Wo):
                plane[idx[n, c, ho, wo]] += g[n, c, ho, wo]


def maxpool2d_backward(
    grad_out: np.ndarray,
    indices: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> np.ndarray:
    """See ``kernels_numpy.maxpool2d_backward``."""
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    _maxpool_bwd(np.ascontiguousarray(grad_out), np.ascontiguousarray(indices), dx)
    return dx


# ------------------------------------------------------------------ layout
@njit(parallel=True, **_jit)
def _cnhw_to_nchw(y, bias, has_bias, out):  # pragma: no cover - compiled
    C, N, HW = y.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        b = bias[c] if has_bias else 0
        for k in range(HW):
            out[n, c, k] = y[c, n, k] + b


def cnhw_to_nchw(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """See ``kernels_numpy.cnhw_to_nchw``: (C, N, H, W) (+ bias[c]) -> (N, C, H, W)."""
    C, N, H, W = y.shape
    out = np.empty((N, C, H, W), dtype=y.dtype)
    b = bias if bias is not None else np.zeros(1, dtype=y.dtype)
    _cnhw_to_nchw(
        np.ascontiguousarray(y).reshape(C, N, H * W), b, bias is not None, out.reshape(N, C, -1)
    )
    return out


# ------------------------------------------------------------------ batch normalisation
# Sums are accumulated in float64 whatever the data type, so float32 statistics keep
# (close to) the accuracy of NumPy's pairwise summation.
@njit(parallel=True, **_jit)
def _bn_stats(x, mean, var):  # pragma: no cover - compiled
    N, C, L = x.shape
    m = N * L
    for c in prange(C):
        s = 0.0
        for n in range(N):
            for k in range(L):
                s += x[n, c, k]
        mu = s / m
        q = 0.0
        for n in range(N):
            for k in range(L):
                d = x[n, c, k] - mu
                q += d * d
        mean[c] = mu
        var[c] = q / m


def batchnorm_stats(x3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """See ``kernels_numpy.batchnorm_stats``."""
    C = x3.shape[1]
    mean, var = np.empty(C, dtype=x3.dtype), np.empty(C, dtype=x3.dtype)
    _bn_stats(np.ascontiguousarray(x3), mean, var)
    return mean, var


@njit(parallel=True, **_jit)
def _bn_normalize(x, mean, inv_std, gamma, beta, y, xhat):  # pragma: no cover - compiled
    N, C, L = x.shape
    for n in prange(N):  # memory order: fine for L = 1 (BatchNorm1d) and for images
        for c in range(C):
            mu, s, g, b = mean[c], inv_std[c], gamma[c], beta[c]
            for k in range(L):
                h = (x[n, c, k] - mu) * s
                xhat[n, c, k] = h
                y[n, c, k] = h * g + b


def batchnorm_normalize(
    x3: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray]:
    """See ``kernels_numpy.batchnorm_normalize``."""
    y, xhat = np.empty_like(x3), np.empty_like(x3)
    C = x3.shape[1]
    g = gamma if gamma is not None else np.ones(C, dtype=x3.dtype)
    b = beta if beta is not None else np.zeros(C, dtype=x3.dtype)
    _bn_normalize(np.ascontiguousarray(x3), mean, inv_std, g, b, y, xhat)
    return y, xhat


@njit(parallel=True, **_jit)
def _bn_sums(dy, xhat, sum_dy, sum_dy_xhat):  # pragma: no cover - compiled
    N, C, L = dy.shape
    for c in prange(C):
        s = 0.0
        q = 0.0
        for n in range(N):
            for k in range(L):
                s += dy[n, c, k]
                q += dy[n, c, k] * xhat[n, c, k]
        sum_dy[c] = s
        sum_dy_xhat[c] = q


@njit(parallel=True, **_jit)
def _bn_dx(dy, xhat, scale, sum_dy, sum_dy_xhat, batch_stats, dx):  # pragma: no cover
    N, C, L = dy.shape
    m = N * L
    for n in prange(N):
        for c in range(C):
            s = scale[c]
            if batch_stats:
                a = sum_dy[c] / m
                b = sum_dy_xhat[c] / m
                for k in range(L):
                    dx[n, c, k] = s * (dy[n, c, k] - a - xhat[n, c, k] * b)
            else:
                for k in range(L):
                    dx[n, c, k] = dy[n, c, k] * s


def batchnorm_backward(
    dy3: np.ndarray, xhat3: np.ndarray, scale: np.ndarray, batch_stats: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """See ``kernels_numpy.batchnorm_backward``."""
    C = dy3.shape[1]
    dy3 = np.ascontiguousarray(dy3)
    sum_dy, sum_dy_xhat = np.empty(C, dtype=dy3.dtype), np.empty(C, dtype=dy3.dtype)
    _bn_sums(dy3, xhat3, sum_dy, sum_dy_xhat)
    dx = np.empty_like(dy3)
    _bn_dx(dy3, xhat3, scale, sum_dy, sum_dy_xhat, batch_stats, dx)
    return dx, sum_dy, sum_dy_xhat
