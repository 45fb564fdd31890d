"""SyncBatchNorm: batch normalisation whose statistics span every process of a job.

Each process (rank r of R) holds a slice x_r of the global batch. Per channel c,
with m_r values on rank r and M = sum_r m_r:

Forward (training), one all-reduce of 2C + 1 numbers (summed in float64, so that
the count cannot overflow and E[x^2] - mu^2 keeps its precision):
    S1 = sum_r sum(x_r)        S2 = sum_r sum(x_r^2)        M = sum_r m_r
    mu  = S1 / M               var = S2 / M - mu^2    (biased, as BatchNorm)
    xhat, y, running statistics: exactly BatchNorm's, with these mu and var
    (the running variance takes var * M / (M - 1), so M must be at least 2).
A rank with an empty slice (m_r = 0) still joins both all-reduces, with zeros.

Backward (training), one all-reduce of 2C numbers, with dy the local dL/dy:
    T1 = sum_r sum(dy_r)       T2 = sum_r sum(dy_r * xhat_r)
    dx_r   = gamma / sqrt(var + eps) * (dy_r - T1 / M - xhat_r * T2 / M)
    dgamma = sum(dy_r * xhat_r), dbeta = sum(dy_r): this rank's share only; the
    gradient all-reduce of data parallelism adds the shares of the other ranks.

With one process the all-reduce does nothing and this is BatchNorm. Evaluation
uses the running statistics, as BatchNorm does, and communicates nothing.
"""

from __future__ import annotations

import math
from typing import Any

from ..backend import array_module
from .batchnorm import _BatchNorm, batchnorm_forward
from .module import Module, is_grad_enabled

_default_group: Any = None  # set by minitorch_alexnet.distributed.init_process_group


def set_default_process_group(group: Any) -> None:
    """The group a ``SyncBatchNorm(process_group=None)`` synchronises over (None: alone)."""
    global _default_group
    _default_group = group


def _alone(a: Any) -> Any:
    """The all-reduce of a single process: the sum over one rank is the array itself."""
    return a


def syncbatchnorm_forward(
    x: Any,
    weight: Any,
    bias: Any,
    running_mean: Any,
    running_var: Any,
    momentum: float,
    eps: float,
    all_reduce: Any = _alone,
    save: bool = True,
) -> tuple[Any, dict | None]:
    """Normalise by the statistics of the global batch (training); see the module docstring.

    Args:
        x: this rank's (N, C, ...) slice; statistics per channel C.
        weight, bias, running_mean, running_var: (C,) each or None, as for BatchNorm.
        all_reduce: sums a 1-D array over the ranks, in place, and returns it.
    Returns:
        y (x's shape), and the context for :func:`syncbatchnorm_backward`.
    """
    xp = array_module(x)
    N, C = x.shape[:2]
    L = math.prod(x.shape[2:])  # (N, C, L); reshape cannot infer L when N is 0
    x64 = x.reshape(N, C, L).astype(xp.float64, copy=False)  # the 2C + 1 sums in float64
    count = xp.full(1, N * L, dtype=xp.float64)
    sums = xp.concatenate([x64.sum(axis=(0, 2)), (x64 * x64).sum(axis=(0, 2)), count])
    sums = all_reduce(sums)  # [S1 (C,), S2 (C,), M]: one message, empty slices included
    m = sums[2 * C]
    if N * L < 2 and float(m) < 2:  # M >= 2 unless every rank has < 2: all raise alike
        raise ValueError(
            f"SyncBatchNorm: training needs more than one value per channel over all "
            f"processes to estimate a variance, got {int(float(m))} (this process's input "
            f"shape {tuple(x.shape)}); use a larger global batch or call .eval()"
        )
    mu64 = sums[:C] / m
    var64 = xp.maximum(sums[C : 2 * C] / m - mu64 * mu64, 0)  # E[x^2] - mu^2, never below 0
    mu, var = mu64.astype(x.dtype), var64.astype(x.dtype)
    if running_mean is not None:  # running <- (1 - momentum) running + momentum batch
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        unbiased = var64 * (m / (m - 1))  # the variance enters unbiased
        running_var += (momentum * unbiased).astype(running_var.dtype)
    if x.size:  # normalising by given statistics is BatchNorm's evaluation path
        y, ctx = batchnorm_forward(x, weight, bias, mu, var, False, momentum, eps, save)
    else:  # an empty slice: nothing to normalise
        xhat, inv_std = x.reshape(N, C, L), 1 / xp.sqrt(var + eps)
        y, ctx = x.copy(), (dict(xhat=xhat, inv_std=inv_std, weight=weight) if save else None)
    if ctx is not None:
        ctx.update(count=m, all_reduce=all_reduce)
    return y, ctx


def syncbatchnorm_backward(grad_out: Any, ctx: dict) -> tuple[Any, Any, Any]:
    """dL/dy (N, C, ...) -> dL/dx (the same shape), and this rank's dL/dgamma, dL/dbeta
    ((C,) each, None without affine parameters)."""
    xp = array_module(grad_out)
    xhat, inv_std, gamma, m = ctx["xhat"], ctx["inv_std"], ctx["weight"], ctx["count"]
    N, C = grad_out.shape[:2]
    dy = grad_out.reshape(N, C, xhat.shape[2])  # (N, C, L)
    f64, dtype = xp.float64, grad_out.dtype  # sums in float64, as forward's
    sum_dy, sum_dy_xhat = dy.sum(axis=(0, 2), dtype=f64), (dy * xhat).sum(axis=(0, 2), dtype=f64)
    local = xp.concatenate([sum_dy, sum_dy_xhat])  # (2C,): this rank's shares
    total = ctx["all_reduce"](local.copy())  # [T1, T2] over every rank
    mean_dy, mean_dy_xhat = (total[:C] / m).astype(dtype), (total[C:] / m).astype(dtype)
    scale = inv_std if gamma is None else gamma * inv_std  # gamma / sqrt(var + eps)
    dx = scale[:, None] * (dy - mean_dy[:, None] - xhat * mean_dy_xhat[:, None])
    if gamma is None:
        return dx.reshape(grad_out.shape), None, None
    return dx.reshape(grad_out.shape), local[C:].astype(dtype), local[:C].astype(dtype)


class SyncBatchNorm(_BatchNorm):
    """Batch normalisation over (N, C, ...) inputs with statistics of the global batch.

    Like ``torch.nn.SyncBatchNorm``: the arguments of BatchNorm and ``process_group``,
    anything with ``all_reduce(array)`` that sums in place over the processes (a
    communicator of :mod:`minitorch_alexnet.distributed`); None means the group that
    ``distributed.init_process_group`` set up, or this process alone if none.
    Turn a model's BatchNorm layers into these with :meth:`convert_sync_batchnorm`.
    """

    _ndims = (2, 3, 4, 5)
    _layout = "(N, C, ...)"

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
    ):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)
        if process_group is not None and not callable(getattr(process_group, "all_reduce", None)):
            raise TypeError(
                "SyncBatchNorm: process_group must have an all_reduce(array) method (a "
                "communicator from minitorch_alexnet.distributed.init_process_group), got "
                f"{type(process_group).__name__}"
            )
        self.process_group = process_group

    def _all_reduce(self) -> Any:
        group = self.process_group if self.process_group is not None else _default_group
        return _alone if group is None else group.all_reduce

    def forward(self, x: Any) -> Any:
        """x (N, C, ...) -> y of the same shape; training all-reduces the statistics."""
        if self.training or not self.track_running_stats:
            _, momentum, arrays = self._start(x, per_rank=False)  # M counted over the ranks
            args = (momentum, self.eps, self._all_reduce(), is_grad_enabled())
            y, ctx = syncbatchnorm_forward(x, *arrays, *args)
            self.save_for_backward(ctx)
            return y
        return super().forward(x)  # the running statistics: BatchNorm's, nothing to send

    def _gradients(self, grad_out: Any, ctx: dict) -> tuple[Any, Any, Any]:
        """Training: :func:`syncbatchnorm_backward`, which communicates (every rank runs
        the same backward, so every rank calls it); this rank's dL/dgamma and dL/dbeta."""
        if "all_reduce" in ctx:
            return syncbatchnorm_backward(grad_out, ctx)
        return super()._gradients(grad_out, ctx)  # evaluation: BatchNorm's

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """``module`` with every BatchNorm1d/2d replaced by a SyncBatchNorm that shares its
        parameters and buffers (PyTorch's classmethod); returns the converted module."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            sync = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
            )
            if module.affine:
                sync.weight, sync.bias = module.weight, module.bias
            for name, buffer in module.named_buffers():
                sync.register_buffer(name, buffer)
            sync.train(module.training)
            return sync
        for name, child in list(module.named_children()):
            converted = cls.convert_sync_batchnorm(child, process_group)
            if converted is not child:
                module._modules[name] = converted  # in place: a Sequential keeps its order
        return module
