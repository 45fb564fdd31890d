"""BatchNorm on the CPU: per-channel sums and the elementwise steps as compiled loops."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..half import via_float32
from . import JIT
from .threads import parallel_for

# Sums are accumulated in float64 whatever the data type, so float32 statistics keep
# (close to) the accuracy of NumPy's pairwise summation. ``reassoc`` lets the compiler
# split each sum into SIMD lanes added at the end (one running sum waits 4 cycles for
# every addition): the result is equal to rounding, and 3-4x faster.
_sums = dict(fastmath={"reassoc"}, **JIT)


@njit(**_sums)
def _bn_stats(lo, hi, x, mean, var):  # pragma: no cover - compiled
    N, C, L = x.shape
    m = N * L
    for c in range(lo, hi):
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


@njit(**JIT)
def _bn_normalize(lo, hi, x, mean, inv_std, gamma, beta, y, xhat):  # pragma: no cover
    # gamma and beta are None without affine parameters, xhat is None when it is not
    # kept: Numba compiles a version of the loop for each case, with no test inside
    N, C, L = x.shape
    for n in range(lo, hi):  # memory order: fine for L = 1 (BatchNorm1d) and for images
        for c in range(C):
            mu, s = mean[c], inv_std[c]
            for k in range(L):
                h = (x[n, c, k] - mu) * s  # xhat, rounded to x's precision
                if xhat is not None:
                    xhat[n, c, k] = h
                y[n, c, k] = h if gamma is None else h * gamma[c] + beta[c]


@njit(**_sums)
def _bn_sums(lo, hi, dy, xhat, sum_dy, sum_dy_xhat):  # pragma: no cover - compiled
    N, C, L = dy.shape
    for c in range(lo, hi):
        s = 0.0
        q = 0.0
        for n in range(N):
            for k in range(L):
                s += dy[n, c, k]
                q += dy[n, c, k] * xhat[n, c, k]
        sum_dy[c] = s
        sum_dy_xhat[c] = q


@njit(**JIT)
def _bn_dx(lo, hi, dy, xhat, scale, sum_dy, sum_dy_xhat, batch_stats, dx):  # pragma: no cover
    N, C, L = dy.shape
    m = N * L
    for n in range(lo, hi):
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


@via_float32(updates=("running_mean", "running_var"))
def batchnorm_forward(
    x: np.ndarray,
    weight: np.ndarray | None,
    bias: np.ndarray | None,
    running_mean: np.ndarray | None,
    running_var: np.ndarray | None,
    batch_stats: bool,
    momentum: float,
    eps: float,
    save: bool = True,
) -> tuple[np.ndarray, dict | None]:
    """See ``nn/batchnorm.py``: the statistics in one compiled pass per channel (sums in
    float64), xhat and y in another."""
    N, C = x.shape[:2]
    x3 = np.ascontiguousarray(x).reshape(N, C, -1)
    if batch_stats:
        mu, var = np.empty(C, dtype=x.dtype), np.empty(C, dtype=x.dtype)
        parallel_for(_bn_stats, C, x3, mu, var)
        if running_mean is not None:  # the reference's update, as it is (C values)
            m = x3.shape[0] * x3.shape[2]
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += momentum * var * (m / (m - 1))
    else:
        mu, var = running_mean, running_var
    inv_std = 1 / np.sqrt(var + eps)
    # a separate xhat only when it is kept and differs from y. Allocated before y: in
    # the other order glibc's heap reuses freed blocks worse, and a training step's
    # peak resident memory was 60 MiB higher (AlexNetCIFAR, batch 128)
    xhat = np.empty_like(x3) if save and weight is not None else None
    y = np.empty_like(x3)
    parallel_for(_bn_normalize, N, x3, mu, inv_std, weight, bias, y, xhat)
    if not save:
        return y.reshape(x.shape), None
    xhat = y if weight is None else xhat  # without gamma and beta, y is xhat
    ctx = dict(xhat=xhat, inv_std=inv_std, weight=weight, batch_stats=batch_stats)
    return y.reshape(x.shape), ctx


@via_float32()
def batchnorm_backward(grad_out: np.ndarray, ctx: dict) -> tuple[np.ndarray, ...]:
    """See ``nn/batchnorm.py``: both sums in one compiled pass per channel, dx in another."""
    xhat, inv_std, gamma = ctx["xhat"], ctx["inv_std"], ctx["weight"]
    N, C = grad_out.shape[:2]
    dy3 = np.ascontiguousarray(grad_out).reshape(N, C, -1)
    sum_dy, sum_dy_xhat = np.empty(C, dtype=dy3.dtype), np.empty(C, dtype=dy3.dtype)
    parallel_for(_bn_sums, C, dy3, xhat, sum_dy, sum_dy_xhat)
    scale = inv_std if gamma is None else gamma * inv_std
    dx = np.empty_like(dy3)
    parallel_for(_bn_dx, N, dy3, xhat, scale, sum_dy, sum_dy_xhat, ctx["batch_stats"], dx)
    if gamma is None:
        return dx.reshape(grad_out.shape), None, None
    return dx.reshape(grad_out.shape), sum_dy_xhat, sum_dy
