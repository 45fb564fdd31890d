"""CrossEntropyLoss: softmax and negative log-likelihood in one, averaged over the batch.

For logits z (N, K) and integer targets t (N,), the plain case:

    log p[n, k] = z[n, k] - logsumexp_j z[n, j]        (computed stably: subtract max_j z first)
    loss        = -(1/N) * sum_n log p[n, t_n]

Backward, the famous short form:

    dloss/dz[n, k] = (p[n, k] - [k == t_n]) / N

Class weights, ``ignore_index``, label smoothing, the reductions and inputs (N, K, d1, ...)
replace the one-hot [k == t_n] by a target distribution q and 1/N by the weight sum
(NLLLoss's math, nn/softmax.py): dloss/dz[n, k] = g_n * (p[n, k] * sum_j q[n, j] - q[n, k]).
"""

from __future__ import annotations

from typing import Any

from ..backend import get_backend, host_xp, to_numpy
from ._checks import check_array
from .module import Module
from .softmax import (
    as_batch,
    check_class_input,
    check_loss_args,
    class_weight,
    log_softmax_backward,
    log_softmax_forward,
    nll_backward,
    nll_forward,
)


class CrossEntropyLoss(Module):
    """Mean cross-entropy of logits against class indices.

    Usage::

        crit = CrossEntropyLoss()
        loss = crit(logits, targets)   # logits (N, K) float, targets (N,) int -> 0-d array
        dlogits = crit.backward()      # (N, K): gradient of the loss for the logits

    ``backward(grad_out)`` also accepts an upstream gradient (default 1), of the loss's
    shape. PyTorch's arguments: ``weight`` (one per class), ``ignore_index``,
    ``reduction`` ("mean", "sum" or "none": the per-element losses), ``label_smoothing``,
    and logits (N, K, d1, ...) with targets (N, d1, ...). The mean divides by the sum of
    the weights of the targets not ignored: NaN for an empty batch, as in PyTorch.

    Targets outside ``[0, K)``: on the CPU the forward raises a ValueError. On the GPU,
    checking would read the targets back and stall every training step, and CuPy's
    indexing wraps instead of failing, so the forward marks the step instead: the loss
    and its gradient come out NaN (computed on the device, no host read), and
    ``crit.check()`` raises a ValueError if any forward since the last check met such
    a target, the CPU's message when it was the last one (it reads one flag from the
    device; call it when a loss reads NaN). A NaN loss also makes the training loop
    stop with ``Diverged``.
    """

    def __init__(
        self,
        weight: Any = None,
        ignore_index: int = -100,
        reduction: str = "mean",
        label_smoothing: float = 0.0,
    ):
        super().__init__()
        check_loss_args("CrossEntropyLoss", weight, ignore_index, reduction)
        if not 0.0 <= label_smoothing <= 1.0:
            raise ValueError(
                f"CrossEntropyLoss: label_smoothing must be in [0, 1], got {label_smoothing}"
            )
        self.weight, self.ignore_index, self.reduction = weight, ignore_index, reduction
        self.label_smoothing = float(label_smoothing)

    def extra_repr(self) -> str:
        parts = [] if self.reduction == "mean" else [f"reduction={self.reduction!r}"]
        if self.label_smoothing:
            parts.append(f"label_smoothing={self.label_smoothing}")
        return ", ".join(parts)

    def forward(self, logits: Any, targets: Any) -> Any:
        """logits (N, K, d1, ...), targets (N, d1, ...) integers in [0, K) or ignore_index
        -> the loss: 0-d, or (N, d1, ...) with reduction "none"."""
        check_array(self, logits, "logits")
        xp = get_backend().xp
        if not isinstance(targets, xp.ndarray) or targets.dtype.kind not in "iu":
            raise _not_class_indices(targets)
        logits, targets, one = as_batch(logits, targets)  # PyTorch's unbatched (K,), ()
        if logits.ndim < 2:
            raise ValueError(
                "CrossEntropyLoss: logits must be (N, num_classes) or (N, num_classes, d1, "
                f"...), or (num_classes,) with a 0-d target, got shape {tuple(logits.shape)}"
            )
        check_class_input("CrossEntropyLoss", logits, targets)
        K, ii = logits.shape[1], self.ignore_index
        weight = class_weight("CrossEntropyLoss", self.weight, logits)
        # The range check reads two numbers back from the device; on the GPU that would
        # stall every training step, so there the range is checked on the device and an
        # out-of-range target makes the loss NaN (see the class docstring and check()).
        bad = None
        object.__setattr__(self, "_range_flag", None)
        out_of_range = (targets != ii) & ((targets < 0) | (targets >= K))
        if _checks_range_on_host():
            if targets.size and out_of_range.any():
                raise _range_error(targets, K, ii)
        else:
            bad = out_of_range.any()  # a 0-d device array: nothing is read back here
            seen = self.__dict__.get("_bad_seen")  # any bad step since the last check()
            if seen is None or not isinstance(seen, xp.ndarray):
                seen = xp.zeros((), dtype=bool)
                object.__setattr__(self, "_bad_seen", seen)
            xp.logical_or(seen, bad, out=seen)  # in place: a CUDA graph replays it too
            object.__setattr__(self, "_range_flag", (bad, targets, K, ii))
            targets = xp.where(out_of_range, 0, targets)  # CuPy would wrap; the loss is NaN
        log_p = log_softmax_forward(logits, 1)
        eps = self.label_smoothing
        loss, ctx = nll_forward(log_p, targets, weight, ii, self.reduction, eps)
        self.save_for_backward(ctx, log_p=log_p, bad=bad, one=one)
        loss = loss.reshape(()) if one else loss
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
        bad, targets, K, ignore_index = self.__dict__["_range_flag"]
        if bool(bad):
            raise _range_error(targets, K, ignore_index)
        raise ValueError(
            f"CrossEntropyLoss: an earlier forward pass since the last check() met targets "
            f"outside [0, {K}) (the last batch's are in range); that step's loss and gradient "
            "were NaN, and so is whatever was updated with them. Look for labels below 0 or "
            "not below the number of classes."
        )

    def backward(self, grad_out: Any = 1.0, *, input_grad: bool = True) -> Any:
        """-> dloss/dlogits = g * (softmax * sum_c q - q), logits' shape (q: the target
        distribution, nn/softmax.py; g: grad_out, divided by the weight sum for "mean").
        ``grad_out`` is the loss's shape ((N, d1, ...) for "none"), 1 by default. None with
        ``input_grad=False``: the loss has no parameters."""
        c = self.saved(None if isinstance(grad_out, (int, float)) else grad_out)
        if not input_grad:
            return None
        xp = get_backend().xp
        if c["one"] and self.reduction == "none":  # the 0-d loss of one example
            grad_out = xp.asarray(grad_out).reshape(1)
        grad = log_softmax_backward(nll_backward(grad_out, c), c["log_p"], 1)
        grad = grad[0] if c["one"] else grad
        bad = c.get("bad")  # a target out of range on the GPU: the gradient is NaN too
        return grad if bad is None else xp.where(bad, grad.dtype.type("nan"), grad)


def _checks_range_on_host() -> bool:
    """Whether the forward checks the targets' range at once (the CPU backends) rather
    than on the device (CuPy; see :class:`CrossEntropyLoss`)."""
    return get_backend().device == "cpu"


def _range_error(targets: Any, K: int, ignore_index: int) -> ValueError:
    targets = targets[targets != ignore_index]
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
