"""SyncBatchNorm: batch normalisation whose statistics span every process of a job.

Each process (rank r of R) holds a slice x_r of the global batch. Per channel c,
with m_r values on rank r and M = sum_r m_r:

Forward (training), one all-reduce of 2C + 1 numbers:
    S1 = sum_r sum(x_r)        S2 = sum_r sum(x_r^2)        M = sum_r m_r
    mu  = S1 / M               var = S2 / M - mu^2    (biased, as BatchNorm)
    xhat, y, running statistics: exactly BatchNorm's, with these mu and var
    (the running variance takes var * M / (M - 1)).

Backward (training), one all-reduce of 2C numbers, with dy the local dL/dy:
    T1 = sum_r sum(dy_r)       T2 = sum_r sum(dy_r * xhat_r)
    dx_r   = gamma / sqrt(var + eps) * (dy_r - T1 / M - xhat_r * T2 / M)
    dgamma = sum(dy_r * xhat_r), dbeta = sum(dy_r): this rank's share only; the
    gradient all-reduce of data parallelism adds the shares of the other ranks.

With one process the all-reduce does nothing and this is BatchNorm. Evaluation
uses the running statistics, as BatchNorm does, and communicates nothing.
"""

from __future__ import annotations

from typing import Any

from ..backend import array_module
from ._checks import check_array, check_params_match, check_shape
from .batchnorm import _BatchNorm, batchnorm_backward, batchnorm_forward
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
    x3 = x.reshape(N, C, -1)  # (N, C, L)
    count = xp.full(1, x3.shape[0] * x3.shape[2], dtype=x.dtype)
    sums = xp.concatenate([x3.sum(axis=(0, 2)), (x3 * x3).sum(axis=(0, 2)), count])
    sums = all_reduce(sums)  # [S1 (C,), S2 (C,), M]: one message
    m = sums[2 * C]
    mu = sums[:C] / m
    var = xp.maximum(sums[C : 2 * C] / m - mu * mu, 0)  # E[x^2] - mu^2, never below 0
    if running_mean is not None:  # running <- (1 - momentum) running + momentum batch
        running_mean *= 1 - momentum
        running_mean += momentum * mu
        running_var *= 1 - momentum
        running_var += momentum * var * (m / (m - 1))  # the variance enters unbiased
    # normalising by given statistics is BatchNorm's evaluation path
    y, ctx = batchnorm_forward(x, weight, bias, mu, var, False, momentum, eps, save)
    if ctx is not None:
        ctx.update(count=m, all_reduce=all_reduce)
    return y, ctx


def syncbatchnorm_backward(grad_out: Any, ctx: dict) -> tuple[Any, Any, Any]:
    """dL/dy (N, C, ...) -> dL/dx (the same shape), and this rank's dL/dgamma, dL/dbeta
    ((C,) each, None without affine parameters)."""
    xp = array_module(grad_out)
    xhat, inv_std, gamma, m = ctx["xhat"], ctx["inv_std"], ctx["weight"], ctx["count"]
    N, C = grad_out.shape[:2]
    dy = grad_out.reshape(N, C, -1)  # (N, C, L)
    local = xp.concatenate([dy.sum(axis=(0, 2)), (dy * xhat).sum(axis=(0, 2))])  # (2C,)
    total = ctx["all_reduce"](local.copy())  # [T1, T2] over every rank
    mean_dy, mean_dy_xhat = total[:C] / m, total[C:] / m
    scale = inv_std if gamma is None else gamma * inv_std  # gamma / sqrt(var + eps)
    dx = scale[:, None] * (dy - mean_dy[:, None] - xhat * mean_dy_xhat[:, None])
    if gamma is None:
        return dx.reshape(grad_out.shape), None, None
    return dx.reshape(grad_out.shape), local[C:], local[:C]


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
        check_array(self, x)
        check_shape(self, x, self._ndims, self.num_features, self._layout)
        check_params_match(self, x)
        use_batch = self.training or not self.track_running_stats
        reduce = self._all_reduce()
        if use_batch and (x.size == 0 or (reduce is _alone and x.size // x.shape[1] == 1)):
            raise ValueError(
                f"{self._name()}: training needs more than one value per channel to "
                f"estimate a variance (and every rank a non-empty slice), got input shape "
                f"{tuple(x.shape)}; use a batch of at least 2 or call .eval()"
            )
        tracked = self.track_running_stats
        if self.training and tracked:
            self.num_batches_tracked += 1
        momentum = self.momentum
        if momentum is None:  # a cumulative moving average, as in PyTorch
            momentum = 1.0 / float(max(1, self.num_batches_tracked)) if tracked else 0.0
        gamma, beta = (self.weight.data, self.bias.data) if self.affine else (None, None)
        running = (self.running_mean, self.running_var) if tracked else (None, None)
        if use_batch:
            args = (momentum, self.eps, reduce, is_grad_enabled())
            y, ctx = syncbatchnorm_forward(x, gamma, beta, *running, *args)
        else:
            args = (False, 0.0, self.eps, is_grad_enabled())  # the running statistics
            y, ctx = batchnorm_forward(x, gamma, beta, *running, *args)
        self.save_for_backward(ctx)
        return y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy (N, C, ...) -> dL/dx; adds this rank's dL/dgamma and dL/dbeta to .grad.

        Training communicates (the two gradient sums), so every rank runs it, even
        with ``input_grad=False``.
        """
        ctx = self.saved(grad_out)
        if "all_reduce" in ctx:
            dx, dgamma, dbeta = syncbatchnorm_backward(grad_out, ctx)
        elif input_grad or self.affine:
            dx, dgamma, dbeta = batchnorm_backward(grad_out, ctx)
        else:
            return None
        if self.affine:
            self.weight.accumulate_grad(dgamma)  # dgamma = sum dy * xhat (this rank)
            self.bias.accumulate_grad(dbeta)  # dbeta = sum dy (this rank)
        return dx if input_grad else None

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
