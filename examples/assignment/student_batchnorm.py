"""Assignment: write BatchNorm2d's forward and backward passes.

Fill in the two methods marked TODO, using only array operations of the active
backend (``xp = get_backend().xp``, which speaks the NumPy API), then check your
work:

    python -m minitorch_alexnet gradcheck student_batchnorm:make_layer
    python -m pytest test_batchnorm_assignment.py

``__init__`` is given: it creates the parameters and buffers the tests expect.
Do not rename them. The formulas are in the two docstrings.
"""

from __future__ import annotations

from typing import Any

# get_backend().xp is the array module to compute with (NumPy's API, on any backend)
from minitorch_alexnet import get_backend  # noqa: F401
from minitorch_alexnet.nn import Module, Parameter, init


class BatchNorm2d(Module):
    """Batch normalisation of (N, C, H, W) images, one mean and variance per channel C.

    Args:
        num_features: the number of channels C.
        eps: added to the variance before the square root.
        momentum: weight of the newest batch in the running statistics.

    Parameters: ``weight`` (gamma) and ``bias`` (beta), shape (C,).
    Buffers: ``running_mean`` and ``running_var``, shape (C,), used in evaluation mode;
    ``num_batches_tracked``, the number of training batches seen.
    """

    def __init__(self, num_features: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        C = (num_features,)
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(init.constant(C, 1.0))  # gamma
        self.bias = Parameter(init.constant(C, 0.0))  # beta
        self.register_buffer("running_mean", init.constant(C, 0.0))
        self.register_buffer("running_var", init.constant(C, 1.0))
        self.register_buffer("num_batches_tracked", init.constant((), 0, dtype="int64"))

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> y (N, C, H, W).

        Training mode, per channel c over the m = N*H*W values of the batch:
            mu = mean(x), var = mean((x - mu)^2)          (biased)
            xhat = (x - mu) / sqrt(var + eps);  y = gamma * xhat + beta
            running_mean <- (1 - momentum) * running_mean + momentum * mu
            running_var  <- (1 - momentum) * running_var + momentum * var * m / (m - 1)
            num_batches_tracked <- num_batches_tracked + 1
        Evaluation mode: the same y with mu, var replaced by running_mean, running_var,
        and no update. Save what backward needs with self.save_for_backward(...).
        """
        raise NotImplementedError("TODO: write BatchNorm2d.forward")

    def backward(self, grad_out: Any) -> Any:
        """dL/dy (N, C, H, W) -> dL/dx (N, C, H, W); adds dL/dgamma and dL/dbeta to .grad.

        Derive dx yourself (the BatchNorm page of the docs walks through it). In
        training mode mu and var are functions of every x of the channel, so dx has
        more terms than dy * gamma / sqrt(var + eps); in evaluation mode they are
        constants. Add the parameter gradients with self.bias.accumulate_grad(...) and
        self.weight.accumulate_grad(...): gradients accumulate, never assign .grad.
        """
        raise NotImplementedError("TODO: write BatchNorm2d.backward")


def make_layer() -> BatchNorm2d:
    """A layer for ``python -m minitorch_alexnet gradcheck student_batchnorm:make_layer``."""
    return BatchNorm2d(3)
