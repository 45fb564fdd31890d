"""One flat gradient buffer, one all-reduce per step, and the optimiser that uses them.

Each rank computes the gradient of the mean loss over its own ``b`` examples. With
R ranks the global batch has ``R b`` examples, and its mean-loss gradient is

    g = 1/(R b) sum_{all examples} dl_i/dtheta = 1/R sum_r g_r

so a step sums the ranks' gradients and scales by 1/R. (Scaling the loss gradient
by 1/R before backward gives the same numbers: backward is linear in it.) Every
rank then holds the same g and, starting from the same weights, takes the same
step: the replicas never drift apart.

Summing hundreds of small arrays one by one would pay a collective's fixed cost
hundreds of times, so every parameter's ``.grad`` is a view into one contiguous
buffer and a step is a single all-reduce of that buffer.
"""

from __future__ import annotations

from typing import Any

from .. import backend as B
from ..nn import Module, Parameter
from .comm import Communicator, DistributedError

__all__ = ["DistributedOptimizer", "GradientBucket", "broadcast_parameters"]


def broadcast_parameters(module: Module, comm: Communicator, root: int = 0) -> None:
    """Give every rank rank ``root``'s parameters and buffers (before the first step)."""
    for p in module.parameters():
        comm.broadcast(p.data, root)
    for b in module.buffers():
        comm.broadcast(b, root)  # in place (a 0-d step count too)


class GradientBucket:
    """The gradients of ``params`` as views into one flat buffer per dtype.

    :meth:`attach` zeroes the buffers and makes each parameter's ``.grad`` its view
    (backward then adds into it in place); :meth:`all_reduce_mean` averages them.
    """

    def __init__(self, params: list[Parameter]) -> None:
        xp = B.get_backend().xp
        self.params = [p for p in params if p.requires_grad]
        self.views: list[Any] = []
        sizes: dict[str, int] = {}
        for p in self.params:
            sizes[p.dtype.name] = sizes.get(p.dtype.name, 0) + p.size
        self.flats: dict[str, Any] = {dtype: xp.zeros(n, dtype=dtype) for dtype, n in sizes.items()}
        offsets = dict.fromkeys(sizes, 0)
        for p in self.params:
            start = offsets[p.dtype.name]
            offsets[p.dtype.name] = start + p.size
            self.views.append(self.flats[p.dtype.name][start : start + p.size].reshape(p.shape))

    def attach(self) -> None:
        """Zero the buffers and point every ``.grad`` at its view."""
        for flat in self.flats.values():
            flat.fill(0)
        for p, view in zip(self.params, self.views):
            p.grad = view

    def all_reduce_mean(self, comm: Communicator) -> None:
        """Every ``.grad`` becomes the mean over the ranks: scale by 1/R, then sum."""
        for p, view in zip(self.params, self.views):
            if p.grad is not view:
                raise DistributedError(
                    "a parameter's .grad is no longer its view of the gradient buffer (something "
                    "called zero_grad() on the model or assigned .grad); call the wrapped "
                    "optimizer's zero_grad() before backward"
                )
        for flat in self.flats.values():
            if comm.world_size > 1:
                flat *= flat.dtype.type(1.0 / comm.world_size)
                comm.all_reduce(flat)


class DistributedOptimizer:
    """An optimiser whose ``step`` first averages the gradients over the ranks.

    Wraps ``optimizer`` (SGD, Adam, ...): ``zero_grad`` zeroes the flat gradient
    buffer, ``step`` all-reduces it once and then steps the wrapped optimiser; every
    other attribute (``param_groups``, ``state_dict``, ...) is the wrapped one's,
    so schedulers and checkpoints keep working with either.
    """

    def __init__(self, optimizer: Any, comm: Communicator) -> None:
        self.optimizer = optimizer
        self.comm = comm
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.bucket = GradientBucket(params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Zero the gradients (views, never None: the buffer must stay in place)."""
        self.bucket.attach()

    def step(self) -> None:
        """One all-reduce of the flat buffer (mean over ranks), then the wrapped step."""
        self.bucket.all_reduce_mean(self.comm)
        self.optimizer.step()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.optimizer, name)

    def __repr__(self) -> str:
        return f"DistributedOptimizer({self.optimizer!r}, {self.comm!r})"
