"""Assignment: stochastic gradient descent with momentum, Nesterov and weight decay.

Write ``SGD.step`` with PyTorch's formulas (``torch.optim.SGD``). For each parameter p
with gradient g, and the hyper-parameters of its group:

    d = g + weight_decay * p                      (weight decay: an L2 penalty's gradient)
    with momentum > 0, a buffer per parameter, kept in self.state[p]["momentum_buffer"]:
        first step:  buf = d
        later steps: buf = momentum * buf + (1 - dampening) * d
        d = d + momentum * buf   with Nesterov,   else   d = buf
    p = p - lr * d

Parameters without a gradient (p.grad is None) are skipped. Check your work:

    python -m pytest              # every test you are given
    python -m pytest -m task1     # plain steps and weight decay only

Do not use the library's SGD (``minitorch_alexnet.optim.SGD``, ``optim/sgd.py``'s
``sgd_step`` or a backend's): a submission that subclasses, imports or calls them
scores 0. The base class ``Optimizer`` (parameter groups, ``zero_grad``, ``state``)
is yours to use.
"""

from __future__ import annotations

from minitorch_alexnet.optim import Optimizer


class SGD(Optimizer):
    """SGD (PyTorch's formulas).

    Args:
        params: parameters (``model.parameters()``) or parameter-group dicts.
        lr, momentum, dampening, weight_decay: numbers; nesterov: a bool.
    Each group of ``self.param_groups`` is a dict with "params" and those names.
    """

    def __init__(self, params, lr: float, momentum: float = 0.0, dampening: float = 0.0,
                 nesterov: bool = False, weight_decay: float = 0.0):  # fmt: skip
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum needs momentum > 0 and dampening = 0")
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, nesterov=nesterov,
                        weight_decay=weight_decay)  # fmt: skip
        super().__init__(params, defaults)

    def step(self) -> None:
        """One update of every parameter that has a gradient, in place on p.data."""
        # BEGIN SOLUTION
        for group in self.param_groups:
            lr, momentum, dampening = group["lr"], group["momentum"], group["dampening"]
            nesterov, weight_decay = group["nesterov"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad
                if weight_decay != 0:
                    d = d + weight_decay * p.data
                if momentum != 0:
                    state = self.state.setdefault(p, {})
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = d.copy()
                    else:
                        buf *= momentum
                        buf += (1 - dampening) * d
                    d = d + momentum * buf if nesterov else buf
                p.data -= lr * d
        # END SOLUTION
