"""Dropout masks that belong to examples of the global batch, not to a rank's slice.

One process with batch ``R b`` draws a mask for ``R b`` rows. For R ranks to drop
exactly the same units, each rank draws that same ``(R b, ...)`` mask from the
shared generator (every rank's is in the same state) and keeps its own rows
``r, r + R, ...``: the rows of its examples in the global batch
(:class:`~minitorch_alexnet.distributed.DistributedSampler` deals them that way).
The price is drawing R times the random numbers a rank uses: small beside the
convolutions, and what makes a run independent of how it is split.
"""

from __future__ import annotations

from typing import Any

from .. import backend as B
from ..nn import Dropout, Module

__all__ = ["GlobalBatchDropout", "convert_dropout"]


class GlobalBatchDropout(Dropout):
    """:class:`~minitorch_alexnet.nn.Dropout` whose mask rows are keyed by global example.

    Shapes: this rank's (b, *) -> the same; the mask is rows ``rank::world_size``
    of the ``(world_size b, *)`` mask that ``Dropout`` would draw.
    """

    def __init__(self, p: float = 0.5, *, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(p)
        self.rank, self.world_size = int(rank), int(world_size)

    def extra_repr(self) -> str:
        return f"p={self.p}, rank={self.rank}, world_size={self.world_size}"

    def forward(self, x: Any) -> Any:
        if not self.training or self.p == 0.0 or self.world_size == 1:
            return super().forward(x)
        ones = B.get_backend().xp.ones((self.world_size * x.shape[0], *x.shape[1:]), x.dtype)
        mask = super().forward(ones)[self.rank :: self.world_size]  # Dropout's m / (1 - p)
        self.save_for_backward(mask=mask)
        return x * mask


def convert_dropout(module: Module, rank: int, world_size: int) -> Module:
    """``module`` with every Dropout replaced by a :class:`GlobalBatchDropout` of its ``p``."""
    if type(module) is Dropout:
        return GlobalBatchDropout(module.p, rank=rank, world_size=world_size).train(module.training)
    for name, child in list(module.named_children()):
        converted = convert_dropout(child, rank, world_size)
        if converted is not child:
            module._modules[name] = converted  # in place: a Sequential keeps its order
    return module
