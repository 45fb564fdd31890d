"""Adam and AdamW (PyTorch's formulas, including bias correction and AMSGrad).

For each parameter ``p`` with gradient ``g`` at step ``t`` (counted from 1)::

    AdamW only:  p = p * (1 - lr * weight_decay)   # decoupled weight decay
    Adam only:   g = g + weight_decay * p          # L2 penalty in the gradient
    m = m + (1 - beta1) * (g - m)                  # first moment (an exponential average)
    v = beta2 * v + (1 - beta2) * g * g            # second moment
    v_hat = max(v_hat, v) if amsgrad else v
    denom = sqrt(v_hat) / sqrt(1 - beta2**t) + eps
    p = p - lr / (1 - beta1**t) * m / denom
"""

from __future__ import annotations

from ..backend import get_backend
from .optimizer import Optimizer, ParamsLike


class Adam(Optimizer):
    """Adam (Kingma & Ba), as ``torch.optim.Adam``.

    Args:
        params: parameters (``model.parameters()``) or parameter-group dicts.
        lr: learning rate.
        betas: decay rates of the first and second moment averages.
        eps: added to the denominator for numerical stability.
        weight_decay: L2 penalty coefficient (added to the gradient).
        amsgrad: use the running maximum of the second moment (AMSGrad).

    Per-parameter state: ``step`` (an int), ``exp_avg`` and ``exp_avg_sq`` (and
    ``max_exp_avg_sq`` with AMSGrad), arrays of the parameter's shape.
    """

    _state_arrays = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")

    def _required_state(self, group: dict) -> tuple[str, ...]:
        """What :meth:`step` reads from a parameter's state once it has one."""
        needed = ("step", "exp_avg", "exp_avg_sq")
        return (*needed, "max_exp_avg_sq") if group["amsgrad"] else needed

    _decoupled = False

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
    ):
        if lr < 0.0:
            raise ValueError(f"invalid learning rate: {lr}")
        if eps < 0.0:
            raise ValueError(f"invalid eps: {eps}")
        if not (0.0 <= betas[0] < 1.0 and 0.0 <= betas[1] < 1.0):
            raise ValueError(f"invalid betas: {betas}; both must be in [0, 1)")
        if weight_decay < 0.0:
            raise ValueError(f"invalid weight_decay: {weight_decay}")
        defaults = dict(
            lr=lr,
            betas=tuple(betas),
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
        )
        super().__init__(params, defaults)

    def step(self) -> None:
        """One update of every parameter that has a gradient (in place on ``p.data``)."""
        xp = get_backend().xp
        for group in self.param_groups:
            lr = group["lr"]
            beta1, beta2 = group["betas"]
            eps = group["eps"]
            weight_decay = group["weight_decay"]
            amsgrad = group["amsgrad"]
            for p in self._params_with_grad(group):
                g = p.grad
                state = self.state.get(p)
                if not state:
                    zeros = xp.zeros_like
                    state = {"step": 0, "exp_avg": zeros(p.data), "exp_avg_sq": zeros(p.data)}
                    if amsgrad:
                        state["max_exp_avg_sq"] = zeros(p.data)
                    self.state[p] = state
                if weight_decay != 0:
                    if self._decoupled:
                        p.data *= 1 - lr * weight_decay
                    else:
                        g = g + weight_decay * p.data
                state["step"] += 1
                t = state["step"]
                m, v = state["exp_avg"], state["exp_avg_sq"]
                m += (1 - beta1) * (g - m)
                v *= beta2
                v += (1 - beta2) * g * g
                if amsgrad:
                    v_hat = state["max_exp_avg_sq"]
                    xp.maximum(v_hat, v, out=v_hat)
                else:
                    v_hat = v
                bias_correction1 = 1 - beta1**t
                bias_correction2_sqrt = (1 - beta2**t) ** 0.5
                denom = xp.sqrt(v_hat) / bias_correction2_sqrt + eps
                p.data -= (lr / bias_correction1) * (m / denom)


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter), as ``torch.optim.AdamW``.

    The parameter is shrunk by ``1 - lr * weight_decay`` before the Adam update,
    instead of adding ``weight_decay * p`` to the gradient. Same arguments as
    :class:`Adam`; ``weight_decay`` defaults to ``1e-2``.
    """

    _decoupled = True

    def __init__(
        self,
        params: ParamsLike,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
    ):
        super().__init__(params, lr, betas, eps, weight_decay, amsgrad)
