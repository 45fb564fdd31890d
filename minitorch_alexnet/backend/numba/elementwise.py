"""ReLU on the CPU: each direction one compiled pass over memory."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..half import via_float32
from . import JIT
from .threads import parallel_for

GRAIN = 1 << 15  # elements worth a thread of their own


@njit(**JIT)
def _relu_forward(lo, hi, x, y, positive, with_mask):  # pragma: no cover - compiled
    for k in range(lo, hi):
        v = x[k]
        pos = v > 0
        y[k] = v if pos or v != v else 0  # max(v, 0), and a NaN stays NaN as in np.maximum
        if with_mask:
            positive[k] = pos


@via_float32()
def relu_forward(x: np.ndarray, save: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """See ``nn/activation.py``: y and the mask [x > 0] in one pass."""
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape, dtype=x.dtype)
    positive = np.empty(x.shape if save else 1, dtype=np.bool_)
    flat = (x.ravel(), y.ravel(), positive.ravel())  # flat views of the same memory
    parallel_for(_relu_forward, x.size, *flat, save, grain=GRAIN)
    return y, (positive if save else None)


@njit(**JIT)
def _relu_backward(lo, hi, dy, positive, dx):  # pragma: no cover - compiled
    for k in range(lo, hi):
        # dy * [x > 0] in one pass; dy * 0 (not a plain 0) keeps NumPy's NaN and -0.0
        dx[k] = dy[k] if positive[k] else dy[k] * 0


@via_float32()
def relu_backward(grad_out: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """See ``nn/activation.py``: dy * [x > 0] in one pass, any shape."""
    dx = np.empty(grad_out.shape, dtype=grad_out.dtype)
    dy, positive = np.ascontiguousarray(grad_out), np.ascontiguousarray(positive)
    flat = (dy.ravel(), positive.ravel(), dx.ravel())  # flat views of the same memory
    parallel_for(_relu_backward, dy.size, *flat, grain=GRAIN)
    return dx
