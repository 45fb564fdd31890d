"""SGD's update on the CPU: one compiled pass over p, grad and the momentum buffer."""

from __future__ import annotations

import numpy as np
from numba import njit

from ..dispatch import reference
from ..half import via_float32
from . import JIT
from .threads import parallel_for


@njit(**JIT)
def _sgd(lo, hi, p, g, buf, has_buf, first, lr, momentum, keep, nesterov, wd):  # pragma: no cover
    # the reference's formulas, one element at a time, each step rounded like NumPy's
    for k in range(lo, hi):
        d = g[k] + wd * p[k] if wd != 0 else g[k]
        if has_buf:
            b = d if first else buf[k] * momentum + keep * d
            buf[k] = b
            d = d + momentum * b if nesterov else b
        p[k] = p[k] - lr * d


@via_float32(updates=("p", "buf"))
def sgd_step(
    p: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray | None,
    first: bool,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """See ``optim/sgd.py``: one pass over p, grad and buf instead of five."""
    arrays = (p, grad) if buf is None else (p, grad, buf)
    if not all(a.flags.c_contiguous for a in arrays):  # pragma: no cover - parameters are
        reference("sgd_step")(p, grad, buf, first, lr, momentum, dampening, nesterov, weight_decay)
        return
    t = p.dtype.type  # the numbers in p's precision, as NumPy rounds them
    b = buf.ravel() if buf is not None else p.ravel()[:0]
    parallel_for(
        _sgd,
        p.size,
        p.ravel(),
        grad.ravel(),
        b,
        buf is not None,
        bool(first),
        t(lr),
        t(momentum),
        t(1 - dampening),
        bool(nesterov),
        t(weight_decay),
        grain=1 << 15,
    )
