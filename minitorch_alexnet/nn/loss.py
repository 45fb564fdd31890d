"""CrossEntropyLoss: softmax and negative log-likelihood in one, averaged over the batch.

For logits z (N, K) and integer targets t (N,):

    log p[n, k] = z[n, k] - logsumexp_j z[n, j]        (computed stably: subtract max_j z first)
    loss        = -(1/N) * sum_n log p[n, t_n]

Backward, the famous short form:

    dloss/dz[n, k] = (p[n, k] - [k == t_n]) / N
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend, host_xp, to_numpy
from ._checks import check_array
from .module import Module


class CrossEntropyLoss(Module):
    """Mean cross-entropy of logits against class indices.

    Usage::

        crit = CrossEntropyLoss()
        loss = crit(logits, targets)   # logits (N, K) float, targets (N,) int -> 0-d array
        dlogits = crit.backward()      # (N, K): gradient of the loss for the logits

    ``backward(grad_out)`` also accepts an upstream scalar gradient (default 1).

    Targets outside ``[0, K)``: on the CPU the forward raises a ValueError. On the GPU,
    checking would read the targets back and stall every training step, and CuPy's
    indexing wraps instead of failing, so the forward marks the step instead: the loss
    and its gradient come out NaN (computed on the device, no host read), and
    ``crit.check()`` raises a ValueError if any forward since the last check met such
    a target, the CPU's message when it was the last one (it reads one flag from the
    device; call it when a loss reads NaN). A NaN loss also makes the training loop
    stop with ``Diverged``.
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
            raise _not_class_indices(targets)
        N, K = logits.shape
        if N == 0:
            raise ValueError("CrossEntropyLoss: the batch is empty; the mean loss is undefined")
        if targets.shape != (N,):
            raise ValueError(
                f"CrossEntropyLoss: targets must have shape ({N},) to match logits "
                f"{tuple(logits.shape)}, got {tuple(targets.shape)}"
            )
        # The range check reads two numbers back from the device; on the GPU that would
        # stall every training step, so there the range is checked on the device and an
        # out-of-range target makes the loss NaN (see the class docstring and check()).
        bad = None
        object.__setattr__(self, "_range_flag", None)
        if _checks_range_on_host():
            if targets.min() < 0 or targets.max() >= K:
                raise _range_error(targets, K)
        else:
            out_of_range = (targets < 0) | (targets >= K)
            bad = out_of_range.any()  # a 0-d device array: nothing is read back here
            seen = self.__dict__.get("_bad_seen")  # any bad step since the last check()
            if seen is None or not isinstance(seen, xp.ndarray):
                seen = xp.zeros((), dtype=bool)
                object.__setattr__(self, "_bad_seen", seen)
            xp.logical_or(seen, bad, out=seen)  # in place: a CUDA graph replays it too
            object.__setattr__(self, "_range_flag", (bad, targets, K))
            targets = targets.clip(0, K - 1)  # CuPy would wrap them; the loss is NaN anyway
        z = logits - logits.max(axis=1, keepdims=True)  # stable: largest logit is 0
        log_p = z - xp.log(xp.exp(z).sum(axis=1, keepdims=True))  # log softmax
        rows = xp.arange(N)
        eps = self.label_smoothing
        nll = -log_p[rows, targets]  # -log p[n, t_n]
        if eps:
            nll = (1.0 - eps) * nll - eps * log_p.mean(axis=1)  # blend with the uniform target
        self.save_for_backward(log_p=log_p, targets=targets, bad=bad)
        loss = nll.mean()
        return loss if bad is None else xp.where(bad, loss.dtype.type("nan"), loss)

    def check(self) -> None:
        """Raise a ValueError if a forward pass on the GPU since the last ``check()`` met a
        target outside ``[0, K)`` (the one the CPU raises at once when it was the last
        pass); do nothing otherwise. Reads one flag from the device, so it waits for the
        work queued so far. Each such step is reported once."""
        seen = self.__dict__.get("_bad_seen")
        if seen is None or not bool(seen):
            return
        seen.fill(False)
        bad, targets, K = self.__dict__["_range_flag"]
        if bool(bad):
            raise _range_error(targets, K)
        raise ValueError(
            f"CrossEntropyLoss: an earlier forward pass since the last check() met targets "
            f"outside [0, {K}) (the last batch's are in range); that step's loss and gradient "
            "were NaN, and so is whatever was updated with them. Look for labels below 0 or "
            "not below the number of classes."
        )

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
        grad = (p - target) * (grad_out / N)
        bad = c.get("bad")  # a target out of range on the GPU: the gradient is NaN too
        return grad if bad is None else xp.where(bad, grad.dtype.type("nan"), grad)


def _checks_range_on_host() -> bool:
    """Whether the forward checks the targets' range at once (the CPU backends) rather
    than on the device (CuPy; see :class:`CrossEntropyLoss`)."""
    return get_backend().device == "cpu"


def _range_error(targets: Any, K: int) -> ValueError:
    return ValueError(
        f"CrossEntropyLoss: targets must lie in [0, {K}), got values in "
        f"[{int(targets.min())}, {int(targets.max())}]; labels are class indices counted "
        f"from 0, so logits with {K} columns take labels 0 to {K - 1}"
    )


def _not_class_indices(targets: Any) -> TypeError:
    """The error for targets that are not an integer array of the active backend; for
    fractional values it says so, since converting those to integers truncates them."""
    what = type(targets).__name__ + (
        f" of dtype {targets.dtype}" if hasattr(targets, "dtype") else ""
    )
    head = (
        "CrossEntropyLoss: targets must be an integer array of class indices on the active "
        f"backend, got {what}"
    )
    np = host_xp()
    try:
        host = np.asarray(to_numpy(targets))
    except Exception:  # something no array can be made of: the plain message
        host = np.zeros(0, dtype=np.int64)
    if host.dtype.kind in "fc" and host.size:
        fractional = host[~(np.isfinite(host) & (host == np.round(host)))]
        if fractional.size:
            shown = ", ".join(f"{v:g}" for v in fractional[:3].tolist())
            return TypeError(
                f"{head}, with values that are not whole numbers ({shown}). Class indices "
                "are whole numbers, and converting these to integers (asarray(labels, "
                "'int64'), astype(int)) would silently truncate them; fix the labels where "
                "they are made (CrossEntropyLoss takes class indices, not soft or "
                "probability targets)"
            )
        return TypeError(
            f"{head}; its values are whole numbers: convert them with asarray(labels, 'int64')"
        )
    return TypeError(f"{head}; use asarray(labels, 'int64')")
