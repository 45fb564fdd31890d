"""SGD's update on the GPU: one kernel per parameter instead of five or six array operations."""

from __future__ import annotations

import cupy as cp

from ..half import via_float32

_sgd_plain = cp.ElementwiseKernel(
    "T grad, T lr, T weight_decay",
    "T p",
    "p = p - lr * (grad + weight_decay * p);",
    "minitorch_sgd_plain",
)
_sgd_momentum = cp.ElementwiseKernel(
    "T grad, T lr, T momentum, T dampening, T weight_decay, bool first, bool nesterov",
    "T p, T buf",
    """
    T d = grad + weight_decay * p;
    buf = first ? d : momentum * buf + (1 - dampening) * d;
    d = nesterov ? d + momentum * buf : buf;
    p = p - lr * d;
    """,
    "minitorch_sgd_momentum",
)


@via_float32(updates=("p", "buf"))
def sgd_step(
    p: cp.ndarray,
    grad: cp.ndarray,
    buf: cp.ndarray | None,
    first: bool,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """See ``optim/sgd.py`` (one fused kernel, in place).

    ``lr`` and ``momentum`` may be 0-d device arrays of ``p``'s dtype (what a CUDA
    graph needs: the kernel then reads them from device memory on every replay).
    """

    def t(v):  # a number becomes a scalar of p's dtype; a device array passes as it is
        return v if isinstance(v, cp.ndarray) else p.dtype.type(v)

    if buf is None:
        _sgd_plain(grad, t(lr), t(weight_decay), p)
    else:
        _sgd_momentum(
            grad, t(lr), t(momentum), t(dampening), t(weight_decay), first, nesterov, p, buf
        )
