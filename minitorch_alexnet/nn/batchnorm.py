"""BatchNorm1d and BatchNorm2d.

Per channel c, over the m = N*H*W values of the batch (N*L for 1-D inputs):

Forward (training):
    mu    = mean(x)                      var = mean((x - mu)^2)   (biased)
    xhat  = (x - mu) / sqrt(var + eps)
    y     = gamma * xhat + beta
    running_mean <- (1 - momentum) * running_mean + momentum * mu
    running_var  <- (1 - momentum) * running_var  + momentum * var * m / (m - 1)   (unbiased)

Forward (evaluation): the same with mu, var replaced by running_mean, running_var.

Backward (training), with dxhat = dy * gamma:
    dbeta  = sum(dy)                     dgamma = sum(dy * xhat)
    dx     = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat * mean(dy * xhat))
The two mean(...) terms are there because mu and var depend on every x in the batch.

Backward (evaluation): mu and var are constants, so dx = dy * gamma / sqrt(running_var + eps).
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import array_module
from ..backend.dispatch import overridable
from . import init
from ._checks import check_array, check_params_match, check_shape
from .module import Module, Parameter, ShapeMismatch, is_grad_enabled


@overridable
def batchnorm_forward(
    x: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    batch_stats: bool,
    momentum: float,
    eps: float,
    save: bool = True,
) -> tuple[Any, dict | None]:
    """Normalise each channel, and update the running statistics in place.

    Args:
        x: (N, C, ...), statistics per channel C over every other axis.
        weight, bias: gamma and beta, (C,) each, or None (no affine parameters).
        running_mean, running_var: (C,) each, or None (not tracked).
        batch_stats: normalise by the batch's statistics (and update the running ones
            with factor ``momentum``), else by the running ones.
        eps: added to the variance; save: keep what backward needs (see conv2d_forward).
    Returns:
        y (x's shape), and the context for :func:`batchnorm_backward`.
    """
    N, C = x.shape[:2]
    x3 = x.reshape(N, C, -1)  # (N, C, L): statistics over axes 0 and 2
    m = x3.shape[0] * x3.shape[2]  # values per channel
    if batch_stats:
        mu = x3.mean(axis=(0, 2))  # (C,)
        var = ((x3 - mu[:, None]) ** 2).mean(axis=(0, 2))  # biased, (C,)
        if running_mean is not None:  # running <- (1 - momentum) running + momentum batch
            running_mean *= 1 - momentum
            running_mean += momentum * mu
            running_var *= 1 - momentum
            running_var += momentum * var * (m / (m - 1))  # the variance enters unbiased
    else:
        mu, var = running_mean, running_var
    inv_std = 1 / array_module(x).sqrt(var + eps)  # 1 / sqrt(var + eps), (C,)
    xhat = (x3 - mu[:, None]) * inv_std[:, None]
    y = xhat if weight is None else xhat * weight[:, None] + bias[:, None]  # gamma xhat + beta
    ctx = dict(xhat=xhat, inv_std=inv_std, weight=weight, batch_stats=batch_stats)
    return y.reshape(x.shape), (ctx if save else None)


@overridable
def batchnorm_backward(grad_out: Any, ctx: dict) -> tuple[Any, Any, Any]:
    """dL/dy (N, C, ...) -> dL/dx (the same shape), dL/dgamma and dL/dbeta ((C,) each,
    None without affine parameters); ``ctx`` is :func:`batchnorm_forward`'s context."""
    xhat, inv_std, gamma = ctx["xhat"], ctx["inv_std"], ctx["weight"]
    N, C = grad_out.shape[:2]
    dy = grad_out.reshape(N, C, -1)  # (N, C, L)
    m = dy.shape[0] * dy.shape[2]
    sum_dy = dy.sum(axis=(0, 2))  # = dbeta
    sum_dy_xhat = (dy * xhat).sum(axis=(0, 2))  # = dgamma
    scale = inv_std if gamma is None else gamma * inv_std  # gamma / sqrt(var + eps)
    if ctx["batch_stats"]:  # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat))
        dx = scale[:, None] * (dy - (sum_dy / m)[:, None] - xhat * (sum_dy_xhat / m)[:, None])
    else:  # running statistics are constants: dx = scale * dy
        dx = dy * scale[:, None]
    if gamma is None:
        return dx.reshape(grad_out.shape), None, None
    return dx.reshape(grad_out.shape), sum_dy_xhat, sum_dy


class _BatchNorm(Module):
    _ndims: tuple[int, ...] = ()
    _layout = ""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
    ):
        super().__init__()
        name = type(self).__name__
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"{name}: num_features must be an int >= 1, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"{name}: eps must be > 0 (it keeps 1/sqrt(var + eps) finite)")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(
                f"{name}: momentum must be in [0, 1] (or None for a cumulative average), "
                f"got {momentum!r}"
            )
        self.num_features, self.eps, self.momentum = num_features, float(eps), momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        C = (num_features,)
        self.weight = Parameter(init.constant(C, 1.0)) if affine else None  # gamma
        self.bias = Parameter(init.constant(C, 0.0)) if affine else None  # beta
        if track_running_stats:
            self.register_buffer("running_mean", init.constant(C, 0.0))
            self.register_buffer("running_var", init.constant(C, 1.0))
            self.register_buffer("num_batches_tracked", init.constant((), 0, dtype="int64"))

    def reset_running_stats(self) -> None:
        """Running mean 0, variance 1, no batches counted; in place (a recorded graph
        keeps reading the same arrays)."""
        if self.track_running_stats:
            self.running_mean[...] = 0
            self.running_var[...] = 1
            self.num_batches_tracked[...] = 0

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input's shape (N, C, ...); ShapeMismatch unless its layout and C fit."""
        if len(input_shape) not in self._ndims:
            raise ShapeMismatch(self, input_shape, "ndim", self._layout)
        if input_shape[1] != self.num_features:
            raise ShapeMismatch(self, input_shape, "channels", self.num_features)
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, 2 per element: inference's ``y = a * x + b``, the statistics
        folded into a per-channel scale ``a`` and shift ``b``."""
        return 2 * math.prod(input_shape[1:])

    def describe(self) -> str:
        """``BatchNorm2d(96)``."""
        return f"{type(self).__name__}({self.num_features})"

    def _start(self, x: Any, per_rank: bool = True) -> tuple[bool, float, tuple[Any, ...]]:
        """Check ``x`` and count a training batch; returns (normalise by the batch's
        statistics?, the running statistics' momentum, (gamma, beta, running_mean,
        running_var), None where absent). ``per_rank=False`` leaves the "one value per
        channel" check to the caller (SyncBatchNorm counts over all processes)."""
        check_array(self, x)
        check_shape(self, x, self._ndims, self.num_features, self._layout)
        check_params_match(self, x)
        use_batch = self.training or not self.track_running_stats
        if per_rank and use_batch and x.size // x.shape[1] == 1:  # none (empty) is fine
            raise ValueError(
                f"{self._name()}: training needs more than one value per channel to "
                f"estimate a variance, got input shape {tuple(x.shape)}; use a batch "
                "of at least 2 or call .eval()"
            )
        tracked = self.track_running_stats
        if self.training and tracked:
            self.num_batches_tracked += 1
        if self.momentum is None:  # a cumulative moving average, as in PyTorch
            momentum = 1.0 / float(max(1, self.num_batches_tracked)) if tracked else 0.0
        else:
            momentum = self.momentum
        gamma, beta = (self.weight.data, self.bias.data) if self.affine else (None, None)
        running = (self.running_mean, self.running_var) if tracked else (None, None)
        return use_batch, momentum, (gamma, beta, *running)

    def forward(self, x: Any) -> Any:
        """x (N, C, ...) -> y of the same shape."""
        use_batch, momentum, (gamma, beta, running_mean, running_var) = self._start(x)
        if x.size == 0:  # an empty batch: nothing to normalise, the statistics stay (PyTorch)
            self.save_for_backward(empty=True)
            return x.copy()
        y, ctx = batchnorm_forward(
            x, gamma, beta, running_mean, running_var, use_batch, momentum, self.eps,
            is_grad_enabled(),
        )  # fmt: skip
        self.save_for_backward(ctx)
        return y

    def _gradients(self, grad_out: Any, ctx: dict) -> tuple[Any, Any, Any]:
        """(dL/dx, dL/dgamma, dL/dbeta) from forward's ``ctx`` (SyncBatchNorm's differ)."""
        return batchnorm_backward(grad_out, ctx)

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, C, ...) -> dL/dx; adds dL/dgamma and dL/dbeta to .grad.

        ``input_grad=False`` returns None; ``batchnorm_backward`` still computes dx
        alongside the parameters' gradients (it shares their sums), unless there
        are no parameters, when nothing is computed at all.
        """
        ctx = self.saved(grad_out)
        if not (input_grad or self.affine):
            return None
        if "empty" in ctx:  # an empty batch: dx is empty, dgamma = dbeta = 0
            zeros = array_module(grad_out).zeros(self.num_features, dtype=grad_out.dtype)
            dx, dgamma, dbeta = grad_out.copy(), zeros, zeros.copy()
        else:
            dx, dgamma, dbeta = self._gradients(grad_out, ctx)  # batchnorm_backward(grad_out, ctx)
        if self.affine:
            self.weight.accumulate_grad(dgamma)  # dgamma = sum dy * xhat
            self.bias.accumulate_grad(dbeta)  # dbeta = sum dy
        return dx if input_grad else None


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs; statistics per feature C."""

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) inputs; statistics per channel C."""

    _ndims = (4,)
    _layout = "(N, C, H, W)"
