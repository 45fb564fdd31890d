"""Naive loop implementations: the definitions, line by line, with no tricks.

Far too slow for training; the tests hold the im2col convolution and the
max-pooling kernels against them. Host (NumPy) arrays only.
"""

from __future__ import annotations

import numpy as np

from .geometry import out_size


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
    Ho, Wo = out_size(H, KH, sh, ph), out_size(W, KW, sw, pw)
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


def maxpool2d_naive(
    x: np.ndarray, kernel: tuple[int, int], stride: tuple[int, int], padding: tuple[int, int]
) -> np.ndarray:
    """y[n, c, ho, wo] = max of x[n, c, ho*S + i - P, wo*S + j - P] over the window (in bounds)."""
    N, C, H, W = x.shape
    (kh, kw), (sh, sw), (ph, pw) = kernel, stride, padding
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
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
