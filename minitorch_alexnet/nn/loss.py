"""CrossEntropyLoss: softmax and negative log-likelihood in one, averaged over the batch.

For logits z (N, K) and integer targets t (N,):

    log p[n, k] = z[n, k] - logsumexp_j z[n, j]        (computed stably: subtract max_j z first)
    loss        = -(1/N) * sum_n log p[n, t_n]

Backward, the famous short form:

    dloss/dz[n, k] = (p[n, k] - [k == t_n]) / N
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend
from ._checks import check_array
from .module import Module


class CrossEntropyLoss(Module):
    """Mean cross-entropy of logits against class indices.

    Usage::

        crit = CrossEntropyLoss()
        loss = crit(logits, targets)   # logits (N, K) float, targets (N,) int -> 0-d array
        dlogits = crit.backward()      # (N, K): gradient of the loss for the logits

    ``backward(grad_out)`` also accepts an upstream scalar gradient (default 1).
    """

    def __init__(self, label_smoothing: float = 0.0):
        super().__init__()
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1), got {label_smoothing}"
            )
        self.label_smoothing = float(label_smoothing)

    def extra_repr(self) -> str:
        return f"label_smoothing={self.label_smoothing}" if self.label_smoothing else ""

    def forward(self, logits: Any, targets: Any) -> Any:
        """logits (N, K), targets (N,) integers in [0, K) -> loss, a 0-d array."""
        check_array(self, logits, "logits")
        xp = get_backend().xp
        if logits.ndim != 2:
            raise ValueError(
                "CrossEntropyLoss: logits must be (N, num_classes), got shape "
                f"{tuple(logits.shape)}"
            )
        if not isinstance(targets, xp.ndarray) or targets.dtype.kind not in "iu":
            raise TypeError(
                "CrossEntropyLoss: targets must be an integer array of class indices on the "
                f"active backend, got {type(targets).__name__}"
                + (f" of dtype {targets.dtype}" if hasattr(targets, "dtype") else "")
                + "; use asarray(labels, 'int64')"
            )
        N, K = logits.shape
        if N == 0:
            raise ValueError("CrossEntropyLoss: the batch is empty; the mean loss is undefined")
        if targets.shape != (N,):
            raise ValueError(
                f"CrossEntropyLoss: targets must have shape ({N},) to match logits "
                f"{tuple(logits.shape)}, got {tuple(targets.shape)}"
            )
        # The range check reads two numbers back from the device; on the GPU that would
        # stall every training step, so it runs on the CPU backends only.
        if get_backend().device == "cpu" and N and (targets.min() < 0 or targets.max() >= K):
            raise ValueError(
                f"CrossEntropyLoss: targets must lie in [0, {K}), got values in "
                f"[{int(targets.min())}, {int(targets.max())}]"
            )
        z = logits - logits.max(axis=1, keepdims=True)  # stable: largest logit is 0
        log_p = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))  # log softmax
        rows = xp.arange(N)
        eps = self.label_smoothing
        nll = -log_p[rows, targets]  # -log p[n, t_n]
        if eps:
            nll = (1.0 - eps) * nll - eps * log_p.mean(axis=1)  # blend with the uniform target
        self.save_for_backward(log_p=log_p, targets=targets)
        return nll.mean()

    def backward(self, grad_out: Any = 1.0, *, input_grad: bool = True) -> Any:
        """-> dloss/dlogits (N, K) = grad_out * (softmax - onehot) / N (None with
        ``input_grad=False``: the loss has no parameters)."""
        c = self.saved()
        if not input_grad:
            return None
        log_p, t = c["log_p"], c["targets"]
        N, K = log_p.shape
        xp = get_backend().xp
        p = xp.exp(log_p)  # softmax
        target = xp.zeros_like(p)
        target[xp.arange(N), t] = 1.0 - self.label_smoothing
        if self.label_smoothing:
            target += self.label_smoothing / K
        return (p - target) * (grad_out / N)
