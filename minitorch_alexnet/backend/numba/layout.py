"""Layout changes around a convolution's matrix product, each in one compiled pass.

The product Y = W X_col comes out channels first, (O, N, Ho, Wo); the network wants
images first, (N, O, Ho, Wo). Forward turns it round and adds the bias on the way;
backward lays dY out like Y again and adds up each channel's rows (db) on the way.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import JIT
from .threads import parallel_for


@njit(**JIT)
def _cnhw_to_nchw(lo, hi, y, bias, has_bias, out):  # pragma: no cover - compiled
    C, N, HW = y.shape
    for nc in range(lo, hi):
        n = nc // C
        c = nc % C
        b = bias[c] if has_bias else 0
        for k in range(HW):
            out[n, c, k] = y[c, n, k] + b


def cnhw_to_nchw(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """(C, N, H, W) (+ bias[c] where given, bias (C,)) -> contiguous (N, C, H, W)."""
    C, N, H, W = y.shape
    out = np.empty((N, C, H, W), dtype=y.dtype)
    b = bias if bias is not None else np.zeros(1, dtype=y.dtype)
    y3 = np.ascontiguousarray(y).reshape(C, N, H * W)
    parallel_for(_cnhw_to_nchw, N * C, y3, b, bias is not None, out.reshape(N, C, H * W))
    return out


@njit(fastmath={"reassoc"}, **JIT)
def _nchw_to_cnhw(lo, hi, x, out, sums):  # pragma: no cover - compiled
    # one task per channel: copy its N planes and add them up on the way (in float64,
    # in SIMD lanes: see batchnorm.py); sums is None when not wanted
    N, C, L = x.shape
    for c in range(lo, hi):
        s = 0.0
        for n in range(N):
            for k in range(L):
                v = x[n, c, k]
                out[c, n, k] = v
                s += v
        if sums is not None:
            sums[c] = s


def nchw_to_cnhw(x: np.ndarray, sums: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, C, H, W) -> contiguous (C, N, H, W), and with ``sums`` each channel's sum over
    n, h, w, shape (C,) (else None): the copy and the sums in one pass."""
    N, C, H, W = x.shape
    out = np.empty((C, N, H, W), dtype=x.dtype)
    s = np.empty(C, dtype=x.dtype) if sums else None
    x3 = np.ascontiguousarray(x).reshape(N, C, H * W)
    parallel_for(_nchw_to_cnhw, C, x3, out.reshape(C, N, H * W), s)
    return out, s
