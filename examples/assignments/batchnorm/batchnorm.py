"""Assignment: write BatchNorm2d's forward and backward passes.

Fill in the two methods that raise ``NotImplementedError``, using only array
operations of the active backend (``get_backend().xp``, which speaks the NumPy
API), then check your work:

    python -m pytest                                        # the tests you are given
    python -m pytest -m task1                               # only task 1 (forward)
    python -m minitorch_alexnet gradcheck batchnorm:make_layer

``__init__`` is given: it creates the parameters and buffers the tests expect.
Do not rename them. The formulas are in the two docstrings. Do not use the
library's own BatchNorm (``minitorch_alexnet.nn.BatchNorm2d``, its functions in
``nn/batchnorm.py`` or a backend's): a submission that subclasses, imports or calls
them scores 0 on the tasks that do.
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
        # BEGIN SOLUTION
        xp = get_backend().xp
        N, C, H, W = x.shape
        if self.training:
            m = N * H * W
            mu = x.mean(axis=(0, 2, 3))  # (C,)
            var = ((x - mu[None, :, None, None]) ** 2).mean(axis=(0, 2, 3))  # (C,), biased
            f = self.momentum
            self.running_mean[...] = (1 - f) * self.running_mean + f * mu
            self.running_var[...] = (1 - f) * self.running_var + f * var * (m / (m - 1))
            self.num_batches_tracked += 1
        else:
            mu, var = self.running_mean, self.running_var
        inv_std = 1.0 / xp.sqrt(var + self.eps)  # (C,)
        xhat = (x - mu[None, :, None, None]) * inv_std[None, :, None, None]
        y = self.weight.data[None, :, None, None] * xhat + self.bias.data[None, :, None, None]
        self.save_for_backward(xhat=xhat, inv_std=inv_std, batch_stats=self.training)
        return y
        # END SOLUTION

    def backward(self, grad_out: Any) -> Any:
        """dL/dy (N, C, H, W) -> dL/dx (N, C, H, W); adds dL/dgamma and dL/dbeta to .grad.

        Derive dx yourself (the BatchNorm page of the docs walks through it). In
        training mode mu and var are functions of every x of the channel, so dx has
        more terms than dy * gamma / sqrt(var + eps); in evaluation mode they are
        constants. Add the parameter gradients with self.bias.accumulate_grad(...) and
        self.weight.accumulate_grad(...): gradients accumulate, never assign .grad.
        """
        # BEGIN SOLUTION
        # with dxhat = dy * gamma and the means per channel over (N, H, W):
        #   dbeta = sum(dy), dgamma = sum(dy * xhat)
        #   training:   dx = (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)) / sqrt(var + eps)
        #   evaluation: dx = dxhat / sqrt(running_var + eps)
        s = self.saved()
        xhat, inv_std = s["xhat"], s["inv_std"][None, :, None, None]
        self.bias.accumulate_grad(grad_out.sum(axis=(0, 2, 3)))  # dbeta
        self.weight.accumulate_grad((grad_out * xhat).sum(axis=(0, 2, 3)))  # dgamma
        dxhat = grad_out * self.weight.data[None, :, None, None]
        if not s["batch_stats"]:
            return dxhat * inv_std
        mean_dxhat = dxhat.mean(axis=(0, 2, 3), keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=(0, 2, 3), keepdims=True)
        return inv_std * (dxhat - mean_dxhat - xhat * mean_dxhat_xhat)
        # END SOLUTION


def make_layer() -> BatchNorm2d:
    """A layer for ``python -m minitorch_alexnet gradcheck batchnorm:make_layer``."""
    return BatchNorm2d(3)
