"""Softmax, LogSoftmax and NLLLoss: probabilities over one dimension, and the loss on them.

Along the dimension ``dim`` (the classes, C of them), for each position:

    softmax(x)_c     = exp(x_c - m) / sum_j exp(x_j - m)      m = max_j x_j (the result is
    log_softmax(x)_c = (x_c - m) - log sum_j exp(x_j - m)       the same for any m; this one
                                                                keeps exp from overflowing)
Backward, with y = softmax(x) and g = dL/dy (or dL/d log y):

    softmax:     dx_c = y_c * (g_c - sum_j g_j y_j)
    log_softmax: dx_c = g_c - y_c * sum_j g_j

NLLLoss takes log-probabilities lp (N, C, d1, ...) and class indices t (N, d1, ...). Each
element n has a target distribution q_n over the classes, zero where t_n is ignored:

    q[n, c] = w[t_n] * (1 - eps) * [c == t_n] + w[c] * eps / C     (eps: label smoothing)
    l_n     = -sum_c q[n, c] * lp[n, c]            reduction "none": the l_n
    sum: sum_n l_n       mean: sum_n l_n / sum_n w[t_n]   (the sums over elements not ignored)

and dL/dlp[n, c] = -g_n * q[n, c], with g_n the upstream gradient (divided by the weight
sum for "mean"). CrossEntropyLoss (nn/loss.py) is log_softmax followed by this.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

from ..backend import array_module, get_backend
from ._checks import check_array
from .module import Module, is_grad_enabled

REDUCTIONS = ("none", "mean", "sum")


def softmax_forward(x: Any, dim: int) -> Any:
    """x -> exp(x - max) / sum exp(x - max) along ``dim``; the shape is kept."""
    xp = array_module(x)
    if x.shape[dim] == 0:
        return x.copy()
    e = xp.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def softmax_backward(grad_out: Any, y: Any, dim: int) -> Any:
    """dy and y = softmax(x) -> dx = y * (dy - sum_j dy_j y_j)."""
    return y * (grad_out - (grad_out * y).sum(axis=dim, keepdims=True))


def log_softmax_forward(x: Any, dim: int) -> Any:
    """x -> (x - max) - log sum exp(x - max) along ``dim``; the shape is kept."""
    xp = array_module(x)
    if x.shape[dim] == 0:
        return x.copy()
    z = x - x.max(axis=dim, keepdims=True)  # the largest is 0: exp cannot overflow
    return z - xp.log(xp.exp(z).sum(axis=dim, keepdims=True))


def log_softmax_backward(grad_out: Any, log_y: Any, dim: int) -> Any:
    """dL/d(log y) and log y -> dx = g - softmax * sum_j g_j."""
    return grad_out - array_module(log_y).exp(log_y) * grad_out.sum(axis=dim, keepdims=True)


def nll_forward(
    log_p: Any, targets: Any, weight: Any, ignore_index: int, reduction: str, eps: float = 0.0
) -> tuple[Any, dict]:
    """log_p (N, C, ...) and targets (N, ...) -> the loss (by ``reduction``) and the
    context for :func:`nll_backward`: the target distribution q and the divisor."""
    xp = array_module(log_p)
    C = log_p.shape[1]
    col = (1, C) + (1,) * (log_p.ndim - 2)  # broadcasts a per-class value along dim 1
    keep = targets != ignore_index
    t = xp.where(keep, targets, 0)  # any class for the ignored ones: they are masked out
    w = xp.ones(C, dtype=log_p.dtype) if weight is None else weight
    w_t = xp.where(keep, w[t], 0).astype(log_p.dtype)  # w[t_n], 0 where ignored
    onehot = xp.arange(C).reshape(col) == t[:, None]
    q = onehot * (w_t * (1.0 - eps))[:, None]
    lp_t = xp.take_along_axis(log_p, t[:, None], axis=1)[:, 0]  # lp[n, t_n]
    loss = xp.where(keep, -(w_t * (1.0 - eps)) * lp_t, 0)
    if eps:
        smooth = (w * (eps / C)).reshape(col) * keep[:, None]
        q = q + smooth
        loss = loss - xp.where(keep, (smooth * log_p).sum(axis=1), 0)
    loss = loss.astype(log_p.dtype)
    q = q.astype(log_p.dtype)
    divisor = w_t.sum() if reduction == "mean" else None
    if reduction == "sum":
        loss = loss.sum()
    elif reduction == "mean":  # 0 / 0 = nan when nothing counts (PyTorch's answer too)
        loss = xp.where(divisor == 0, xp.nan, loss.sum() / xp.where(divisor == 0, 1, divisor))
        loss = loss.astype(log_p.dtype)
    return loss, {"q": q, "divisor": divisor, "reduction": reduction}


def nll_backward(grad_out: Any, ctx: dict) -> Any:
    """dL/dloss (the loss's shape) -> dL/dlog_p = -g * q, log_p's shape."""
    q, reduction = ctx["q"], ctx["reduction"]
    xp = array_module(q)
    g = xp.asarray(grad_out, dtype=q.dtype)
    if reduction == "none":
        g = g[:, None]
    elif reduction == "mean":
        d = ctx["divisor"]  # 0 only when every q is 0: the gradient is 0, as in PyTorch
        g = (g / xp.where(d == 0, 1, d)).astype(q.dtype)
    return -q * g


def check_loss_args(name: str, weight: Any, ignore_index: int, reduction: str) -> None:
    """The arguments NLLLoss and CrossEntropyLoss share, checked as PyTorch does."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"{name}: {reduction!r} is not a valid value for reduction {REDUCTIONS}")
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, int):
        raise TypeError(f"{name}: ignore_index must be an int, got {ignore_index!r}")
    if weight is not None and (getattr(weight, "ndim", None) != 1):
        raise TypeError(
            f"{name}: weight must be a 1-D array of one weight per class, got {weight!r}"
        )


def class_weight(name: str, weight: Any, x: Any) -> Any:
    """``weight`` as an array of x's backend and dtype, checked against C = x.shape[1]."""
    if weight is None:
        return None
    if weight.shape[0] != x.shape[1]:
        raise ValueError(
            f"{name}: weight must have one entry per class ({x.shape[1]}), got {weight.shape[0]}"
        )
    return get_backend().xp.asarray(weight, dtype=x.dtype)


def as_batch(x: Any, targets: Any) -> tuple[Any, Any, bool]:
    """PyTorch's unbatched form, one example x (C,) with a 0-d target, as a batch of one:
    (x[None], targets[None], True); anything else unchanged, with False."""
    if getattr(x, "ndim", None) == 1 and getattr(targets, "ndim", None) == 0:
        return x[None], targets[None], True
    return x, targets, False


def check_class_input(name: str, x: Any, targets: Any) -> None:
    """x (N, C, d1, ...) and integer targets (N, d1, ...)."""
    if x.ndim < 2:
        raise ValueError(
            f"{name}: input must be (N, C) or (N, C, d1, ...), or (C,) with a 0-d target, "
            f"got {tuple(x.shape)}"
        )
    xp = get_backend().xp
    if not isinstance(targets, xp.ndarray) or targets.dtype.kind not in "iu":
        raise TypeError(f"{name}: targets must be an integer array of class indices")
    want = x.shape[:1] + x.shape[2:]
    if targets.shape != want:
        raise ValueError(
            f"{name}: targets must have shape {want} to match input {tuple(x.shape)}, "
            f"got {tuple(targets.shape)}"
        )


def _dim(layer: Module, ndim: int) -> int:
    """The layer's ``dim`` for an ndim-D input, from 0; None picks PyTorch's old default."""
    d = layer.dim
    if d is None:
        warnings.warn(f"{layer._name()}: pass dim explicitly", UserWarning, stacklevel=3)
        d = 0 if ndim in (0, 1, 3) else 1
    if not -ndim <= d < max(ndim, 1):
        raise IndexError(
            f"{layer._name()}: dim {d} is out of range for a {ndim}-D input: it must lie "
            f"in [{-ndim}, {ndim - 1}]"
        )
    return d % max(ndim, 1)


class Softmax(Module):
    """Probabilities along ``dim``: any shape -> the same shape, summing to 1 along dim."""

    forward_fn, backward_fn = staticmethod(softmax_forward), staticmethod(softmax_backward)

    def __init__(self, dim: int | None = None):
        super().__init__()
        if dim is not None and (isinstance(dim, bool) or not isinstance(dim, int)):
            raise TypeError(f"{type(self).__name__}: dim must be an int, got {dim!r}")
        self.dim = dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}"

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The input's shape."""
        return tuple(input_shape)

    def flops(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, about 5 per element (max, subtract, exp, sum, divide or log)."""
        return 5 * math.prod(input_shape[1:])

    def forward(self, x: Any) -> Any:
        check_array(self, x)
        dim = _dim(self, x.ndim)
        y = self.forward_fn(x, dim)
        if is_grad_enabled():
            self.save_for_backward(y=y, dim=dim)
        return y

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dy -> dL/dx, x's shape (None with ``input_grad=False``: no parameters)."""
        c = self.saved(grad_out)
        return self.backward_fn(grad_out, c["y"], c["dim"]) if input_grad else None


class LogSoftmax(Softmax):
    """Log-probabilities along ``dim``, computed stably (not ``log(softmax(x))``)."""

    forward_fn, backward_fn = staticmethod(log_softmax_forward), staticmethod(log_softmax_backward)


class NLLLoss(Module):
    """Negative log-likelihood of log-probabilities (N, C, d1, ...) against class indices
    (N, d1, ...); ``weight`` (C,), ``ignore_index`` and ``reduction`` as in PyTorch."""

    def __init__(self, weight: Any = None, ignore_index: int = -100, reduction: str = "mean"):
        super().__init__()
        check_loss_args(type(self).__name__, weight, ignore_index, reduction)
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction

    def extra_repr(self) -> str:
        return f"reduction={self.reduction!r}"

    def forward(self, log_p: Any, targets: Any) -> Any:
        check_array(self, log_p)
        log_p, targets, one = as_batch(log_p, targets)
        check_class_input(type(self).__name__, log_p, targets)
        C, ii = log_p.shape[1], self.ignore_index
        bad = (targets != ii) & ((targets < 0) | (targets >= C))
        if targets.size and bool(bad.any()):
            raise IndexError(f"{self._name()}: targets must lie in [0, {C}) or be {ii}")
        w = class_weight(type(self).__name__, self.weight, log_p)
        loss, ctx = nll_forward(log_p, targets, w, ii, self.reduction)
        self.save_for_backward(ctx, one=one)
        return loss.reshape(()) if one else loss

    def backward(self, grad_out: Any = 1.0, *, input_grad: bool = True) -> Any:
        """dL/dloss (1 by default; the loss's shape for "none") -> dL/dlog_p."""
        c = self.saved(None if isinstance(grad_out, (int, float)) else grad_out)
        if not input_grad:
            return None
        if c["one"] and self.reduction == "none":
            grad_out = get_backend().xp.asarray(grad_out).reshape(1)
        grad = nll_backward(grad_out, c)
        return grad[0] if c["one"] else grad
