"""Stochastic gradient descent with momentum, dampening, Nesterov and weight decay.

The update is PyTorch's ``torch.optim.SGD``, step for step. For each parameter
``p`` with gradient ``g``::

    d = g + weight_decay * p                       # L2 penalty folded into the gradient
    if momentum:
        buf = d                                    # first step: the buffer *is* the gradient
        buf = momentum * buf + (1 - dampening) * d # later steps
        d = d + momentum * buf if nesterov else buf
    p = p - lr * d
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ..backend.dispatch import overridable
from .optimizer import Optimizer, ParamsLike


@overridable
def sgd_step(
    p: Any,
    grad: Any,
    buf: Any,
    first: bool,
    lr: Any,
    momentum: Any,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """One SGD update of ``p`` (and of its momentum buffer ``buf``), in place.

    Args:
        p, grad: the parameter and its gradient, one shape.
        buf: the momentum buffer (p's shape), or None without momentum.
        first: ``buf`` holds nothing yet (the first step fills it with d).
        lr, momentum: numbers, or 0-d arrays of p's dtype (a CUDA graph reads them
            from device memory on every replay).
        dampening, nesterov, weight_decay: as in :class:`SGD`.
    """
    d = grad
    if weight_decay != 0:
        d = d + weight_decay * p  # d = g + weight_decay * p
    if buf is not None:
        if first:
            buf[...] = d  # buf = d
        else:
            buf *= momentum  # buf = momentum * buf + (1 - dampening) * d
            buf += (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    p -= lr * d  # p = p - lr * d


class SGD(Optimizer):
    """Stochastic gradient descent (PyTorch's formulas).

    Args:
        params: parameters (``model.parameters()``) or parameter-group dicts.
        lr: learning rate.
        momentum: momentum factor (0 disables the buffer).
        dampening: scales the new gradient's share of the momentum buffer by ``1 - dampening``.
        nesterov: Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        weight_decay: L2 penalty coefficient, added to the gradient.

    Per-parameter state: ``momentum_buffer``, an array of the parameter's shape.
    """

    _state_arrays = ("momentum_buffer",)

    def __init__(
        self,
        params: ParamsLike,
        lr: float,
        momentum: float = 0.0,
        dampening: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if momentum < 0.0:
            raise ValueError(f"invalid momentum: {momentum}")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            nesterov=nesterov,
            weight_decay=weight_decay,
        )
        super().__init__(params, defaults)

    def step(self) -> None:
        """One update of every parameter that has a gradient (in place on ``p.data``)."""
        xp = get_backend().xp
        for i, group in enumerate(self.param_groups):
            # numbers, or 0-d device arrays after hyperparameters_on_device()
            lr = self._hyper(i, group, "lr")
            momentum = self._hyper(i, group, "momentum")
            dampening = group["dampening"]
            nesterov = group["nesterov"]
            weight_decay = group["weight_decay"]
            for p in self._params_with_grad(group):
                buf, first = None, False
                if group["momentum"] != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:  # the first step fills the buffer with d
                        buf = state["momentum_buffer"] = xp.empty_like(p.data)
                        first = True
                # the update of the module docstring, in place on p.data and buf
                sgd_step(
                    p.data, p.grad, buf, first, lr, momentum, dampening, nesterov, weight_decay
                )
