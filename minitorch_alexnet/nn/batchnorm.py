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

from typing import Any

from ..backend import get_backend
from . import init
from ._checks import check_array, check_params_match, check_shape
from .module import Module, Parameter, is_grad_enabled


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

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )

    def forward(self, x: Any) -> Any:
        """x (N, C, ...) -> y of the same shape."""
        check_array(self, x)
        check_shape(self, x, self._ndims, self.num_features, self._layout)
        check_params_match(self, x)
        B = get_backend()
        N, C = x.shape[:2]
        x3 = x.reshape(N, C, -1)  # (N, C, L): statistics over axes 0 and 2
        m = N * x3.shape[2]
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            if m < 2:
                raise ValueError(
                    f"{self._name()}: training needs more than one value per channel to "
                    f"estimate a variance, got input shape {tuple(x.shape)}; use a batch "
                    "of at least 2 or call .eval()"
                )
            mu, var = B.kernels.batchnorm_stats(x3)  # mean and biased variance, (C,) each
            if self.training and self.track_running_stats:
                self._update_running(mu, var, m)
        else:
            mu, var = self.running_mean, self.running_var
        inv_std = B.kernels.inv_std(var, self.eps)  # 1 / sqrt(var + eps), (C,)
        gamma = self.weight.data if self.affine else None
        beta = self.bias.data if self.affine else None
        # xhat = (x - mu) * inv_std;  y = gamma * xhat + beta
        keep = is_grad_enabled()  # xhat is for backward only: not kept under no_grad
        y, xhat = B.kernels.batchnorm_normalize(x3, mu, inv_std, gamma, beta, keep_xhat=keep)
        self._save_for_backward(xhat=xhat, inv_std=inv_std, batch_stats=use_batch)
        return y.reshape(x.shape)

    def _update_running(self, mu: Any, var: Any, m: int) -> None:
        self.num_batches_tracked += 1
        if self.momentum is None:  # cumulative moving average, as PyTorch
            f = 1.0 / float(self.num_batches_tracked)
        else:
            f = self.momentum
        # running <- (1 - f) * running + f * batch value; the variance enters unbiased
        get_backend().kernels.batchnorm_update_running(
            self.running_mean, self.running_var, mu, var, f, m
        )

    def backward(self, grad_out: Any) -> Any:
        """dL/dy (N, C, ...) -> dL/dx; adds dL/dgamma and dL/dbeta to .grad."""
        s = self._saved(grad_out)
        xhat, inv_std = s["xhat"], s["inv_std"]
        N, C = grad_out.shape[:2]
        dy = grad_out.reshape(N, C, -1)
        scale = self.weight.data * inv_std if self.affine else inv_std  # gamma / sqrt(var + eps)
        # dx = scale * (dy - mean(dy) - xhat * mean(dy * xhat))   (batch statistics)
        # dx = scale * dy                                          (running statistics)
        dx, sum_dy, sum_dy_xhat = get_backend().kernels.batchnorm_backward(
            dy, xhat, scale, s["batch_stats"]
        )
        if self.affine:
            self.bias.accumulate_grad(sum_dy)  # dbeta = sum dy
            self.weight.accumulate_grad(sum_dy_xhat)  # dgamma = sum dy * xhat
        return dx.reshape(grad_out.shape)


class BatchNorm1d(_BatchNorm):
    """Batch normalisation over (N, C) or (N, C, L) inputs; statistics per feature C."""

    _ndims = (2, 3)
    _layout = "(N, C) or (N, C, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation over (N, C, H, W) inputs; statistics per channel C."""

    _ndims = (4,)
    _layout = "(N, C, H, W)"
