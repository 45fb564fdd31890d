"""Naive loop references: the definitions, line by line, with no tricks.

Each function is a layer's forward or backward pass written as plain nested loops
straight from its defining sum, one output (or one gradient term) at a time. They
are far too slow for training; the tests hold the layers' reference functions
(im2col convolution, strided max-pooling, the vectorised BatchNorm formulas) and
the backends' kernels against them. Host NumPy arrays only.

The backward passes use the chain rule on the forward sum: every term
``y[...] += a * b`` of the forward sends ``dy[...] * b`` to ``da`` and
``dy[...] * a`` to ``db``. No closed form is used, so a mistake in the layer's
formula (a flipped kernel, a missing stride, a dropped mean term) shows up as a
difference.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = [
    "batchnorm_backward_naive",
    "conv2d_backward_naive",
    "conv2d_naive",
    "linear_backward_naive",
    "maxpool2d_backward_naive",
    "maxpool2d_naive",
    "relu_backward_naive",
]


def _out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """floor((H + 2P - K) / S) + 1: the window positions along one side."""
    return (size + 2 * padding - kernel) // stride + 1


# ---------------------------------------------------------------- Conv2d
def conv2d_naive(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int = 1,
) -> np.ndarray:
    """y[n, o, ho, wo] = b[o] + sum_{c, i, j} w[o, c, i, j] * xpad[n, g*Cg + c, ho*S + i, wo*S + j].

    Shapes: x (N, C, H, W), weight (O, C/G, KH, KW), bias (O,) -> y (N, O, Ho, Wo).
    """
    N, C, H, W = x.shape
    O, Cg, KH, KW = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = _out_size(H, KH, sh, ph), _out_size(W, KW, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    y = np.zeros((N, O, Ho, Wo), dtype=np.result_type(x, weight))
    per_group = O // groups
    for n in range(N):
        for o in range(O):
            g = o // per_group  # the group this filter belongs to
            for ho in range(Ho):
                for wo in range(Wo):
                    total = 0.0 if bias is None else bias[o]
                    for c in range(Cg):
                        for i in range(KH):
                            for j in range(KW):
                                total += (
                                    weight[o, c, i, j] * xp[n, g * Cg + c, ho * sh + i, wo * sw + j]
                                )
                    y[n, o, ho, wo] = total
    return y


def conv2d_backward_naive(
    grad_out: np.ndarray,
    x: np.ndarray,
    weight: np.ndarray,
    stride: tuple[int, int],
    padding: tuple[int, int],
    groups: int = 1,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dw, db of :func:`conv2d_naive` for the upstream gradient dy = ``grad_out``.

    Each term ``w[o, c, i, j] * xpad[n, g*Cg + c, ho*S + i, wo*S + j]`` of y[n, o, ho, wo]:

        dxpad[n, g*Cg + c, ho*S + i, wo*S + j] += dy[n, o, ho, wo] * w[o, c, i, j]
        dw[o, c, i, j]                         += dy[n, o, ho, wo] * xpad[n, g*Cg + c, ...]
        db[o]                                  += dy[n, o, ho, wo]

    and dx is dxpad without its padding. Shapes: grad_out (N, O, Ho, Wo), x (N, C, H, W),
    weight (O, C/G, KH, KW) -> dx (N, C, H, W), dw (O, C/G, KH, KW), db (O,) (the bias
    gradient, whether or not the layer has a bias).
    """
    N, C, H, W = x.shape
    O, Cg, KH, KW = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    Ho, Wo = grad_out.shape[2:]
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    dt = np.result_type(grad_out, x, weight)
    dxp = np.zeros(xp.shape, dtype=dt)
    dw = np.zeros(weight.shape, dtype=dt)
    db = np.zeros(O, dtype=dt)
    per_group = O // groups
    for n in range(N):
        for o in range(O):
            g = o // per_group
            for ho in range(Ho):
                for wo in range(Wo):
                    d = grad_out[n, o, ho, wo]
                    db[o] += d
                    for c in range(Cg):
                        for i in range(KH):
                            for j in range(KW):
                                h, w = ho * sh + i, wo * sw + j
                                dxp[n, g * Cg + c, h, w] += d * weight[o, c, i, j]
                                dw[o, c, i, j] += d * xp[n, g * Cg + c, h, w]
    return dxp[:, :, ph : ph + H, pw : pw + W], dw, db


# ---------------------------------------------------------------- MaxPool2d
def _winner(
    x: np.ndarray, n: int, c: int, ho: int, wo: int, window: tuple[int, ...]
) -> tuple[int, int]:
    """(h, w) of the window's maximum: the first in row-major window order on a tie,
    padding (outside the image) never; (-1, -1) for a window with no pixel inside."""
    kh, kw, sh, sw, ph, pw = window
    H, W = x.shape[2:]
    best, where = -np.inf, (-1, -1)
    for i in range(kh):
        for j in range(kw):
            h, w = ho * sh + i - ph, wo * sw + j - pw
            if 0 <= h < H and 0 <= w < W and (where == (-1, -1) or x[n, c, h, w] > best):
                best, where = x[n, c, h, w], (h, w)
    return where


def maxpool2d_naive(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> np.ndarray:
    """y[n, c, ho, wo] = max of x[n, c, ho*S + i - P, wo*S + j - P] over the window (in bounds)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    Ho, Wo = _out_size(H, kh, sh, ph), _out_size(W, kw, sw, pw)
    y = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    for n in range(N):
        for c in range(C):
            for ho in range(Ho):
                for wo in range(Wo):
                    best = -np.inf
                    for i in range(kh):
                        for j in range(kw):
                            h, w = ho * sh + i - ph, wo * sw + j - pw
                            if 0 <= h < H and 0 <= w < W:
                                best = max(best, x[n, c, h, w])
                    y[n, c, ho, wo] = best
    return y


def maxpool2d_backward_naive(
    grad_out: np.ndarray,
    x: np.ndarray,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> np.ndarray:
    """dx of :func:`maxpool2d_naive`: each window's gradient to the pixel that won it.

        dx[n, c, h*, w*] += dy[n, c, ho, wo]    (h*, w*) the window's maximum

    A tie goes to the first maximum in row-major window order (the layer's rule);
    a pixel that wins several overlapping windows collects all their gradients,
    added in output order (ho, wo). Shapes: grad_out (N, C, Ho, Wo), x (N, C, H, W)
    -> dx (N, C, H, W).
    """
    N, C = x.shape[:2]
    window = (*kernel, *stride, *padding)
    Ho, Wo = grad_out.shape[2:]
    dx = np.zeros(x.shape, dtype=np.result_type(grad_out, x))
    for n in range(N):
        for c in range(C):
            for ho in range(Ho):
                for wo in range(Wo):
                    h, w = _winner(x, n, c, ho, wo, window)
                    if h >= 0:
                        dx[n, c, h, w] += grad_out[n, c, ho, wo]
    return dx


# ---------------------------------------------------------------- Linear and ReLU
def linear_backward_naive(
    grad_out: np.ndarray, x: np.ndarray, weight: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dw, db of y[n, o] = b[o] + sum_k w[o, k] * x[n, k], term by term:

    dx[n, k] += dy[n, o] * w[o, k]    dw[o, k] += dy[n, o] * x[n, k]    db[o] += dy[n, o]
    """
    N, K = x.shape
    O = weight.shape[0]
    dt = np.result_type(grad_out, x, weight)
    dx, dw, db = np.zeros((N, K), dt), np.zeros((O, K), dt), np.zeros(O, dt)
    for n in range(N):
        for o in range(O):
            db[o] += grad_out[n, o]
            for k in range(K):
                dx[n, k] += grad_out[n, o] * weight[o, k]
                dw[o, k] += grad_out[n, o] * x[n, k]
    return dx, dw, db


def relu_backward_naive(grad_out: np.ndarray, x: np.ndarray) -> np.ndarray:
    """dx of y = max(x, 0): dy where x > 0, else 0 (the derivative taken as 0 at x = 0)."""
    dx = np.zeros(x.shape, dtype=np.result_type(grad_out, x))
    for index in np.ndindex(*x.shape):
        if x[index] > 0:
            dx[index] = grad_out[index]
    return dx


# ---------------------------------------------------------------- BatchNorm
def batchnorm_backward_naive(
    grad_out: np.ndarray,
    x: np.ndarray,
    gamma: np.ndarray | None,
    eps: float = 1e-5,
    running_mean: np.ndarray | None = None,
    running_var: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """dx, dgamma, dbeta of BatchNorm, y = gamma[c] * xhat + beta[c], per channel c.

    x is (N, C, ...); gamma (C,), or None for a layer without affine parameters
    (gamma = 1; dgamma, dbeta are then computed all the same). A channel's m values
    are every x[n, c, ...]. In training mode (no running statistics given)
    xhat[p] = (x[p] - mu) * s with mu the channel's mean, var its biased variance
    and s = 1 / sqrt(var + eps). Every xhat[p] depends on every x[q] of the channel,
    through mu and var:

        d xhat[p] / d x[q] = s * ([p == q] - 1/m - xhat[p] * xhat[q] / m)

    and dx[q] = sum over p of dy[p] * gamma[c] * d xhat[p] / d x[q], a double loop
    over the channel (m**2 terms). With ``running_mean`` and ``running_var`` (evaluation
    mode) mu and var are those constants, and d xhat[p] / d x[q] = s * [p == q].

        dgamma[c] = sum over p of dy[p] * xhat[p]        dbeta[c] = sum over p of dy[p]
    """
    N, C = x.shape[:2]
    x3 = x.reshape(N, C, -1)
    dy3 = grad_out.reshape(N, C, -1)
    L = x3.shape[2]
    m = N * L
    dt = np.result_type(grad_out, x)
    dx3 = np.zeros(x3.shape, dtype=dt)
    dgamma, dbeta = np.zeros(C, dt), np.zeros(C, dt)
    for c in range(C):
        points = [(n, k) for n in range(N) for k in range(L)]  # the channel's m values
        if running_var is None:
            mu = sum(x3[n, c, k] for n, k in points) / m
            var = sum((x3[n, c, k] - mu) ** 2 for n, k in points) / m
        else:
            mu, var = running_mean[c], running_var[c]
        s = 1 / math.sqrt(var + eps)
        g = 1.0 if gamma is None else gamma[c]  # no affine parameters: gamma = 1
        xhat = {p: (x3[p[0], c, p[1]] - mu) * s for p in points}
        for p in points:
            dgamma[c] += dy3[p[0], c, p[1]] * xhat[p]
            dbeta[c] += dy3[p[0], c, p[1]]
        for q in points:
            total = 0.0
            for p in points:
                if running_var is None:
                    dxhat_dx = s * ((p == q) - 1 / m - xhat[p] * xhat[q] / m)
                else:
                    dxhat_dx = s * (p == q)
                total += dy3[p[0], c, p[1]] * g * dxhat_dx
            dx3[q[0], c, q[1]] = total
    return dx3.reshape(x.shape), dgamma, dbeta
