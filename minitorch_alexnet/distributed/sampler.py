"""Which examples each rank trains on: one shared permutation per epoch, dealt out.

Every rank draws the same permutation of the dataset for an epoch (the one a
shuffling :class:`~minitorch_alexnet.data.DataLoader` with the same seed draws),
and rank r of R takes positions r, r + R, r + 2R, ... of it. Rank r's k-th batch
of b examples is then positions ``kRb + r + R j`` (j < b), so the R batches of
step k together are positions ``kRb ... (k + 1)Rb - 1``: exactly the k-th batch
of one process with batch ``Rb``. An epoch still visits every example once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

from .. import backend as B
from ..data.loader import epoch_permutation
from .comm import get_rank, get_world_size, is_initialized

__all__ = ["DistributedSampler"]


class DistributedSampler:
    """This rank's share of each epoch's examples (``torch.utils.data.DistributedSampler``).

    Args:
        dataset: anything with ``len()``.
        num_replicas, rank: the world size and this rank (default: the communicator's).
        shuffle: a new permutation every epoch (the DataLoader's, for the same ``seed``).
        seed: seeds the permutation; must be the same on every rank.
        drop_last: leave out the last ``len(dataset) % num_replicas`` positions;
            otherwise the first positions are repeated to fill the last round.

    Iterating yields dataset indices (``len(self)`` of them) for the epoch set by
    :meth:`set_epoch`; :meth:`positions` says where each sits in the epoch's
    permutation, which keys augmentation and dropout so that they do not depend
    on how many ranks share the work.
    """

    def __init__(
        self,
        dataset: Any,
        num_replicas: int | None = None,
        rank: int | None = None,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if (num_replicas is None or rank is None) and not is_initialized():
            raise ValueError(
                "DistributedSampler: pass num_replicas and rank, or call "
                "minitorch_alexnet.distributed.init_process_group() first"
            )
        num_replicas = get_world_size() if num_replicas is None else num_replicas
        rank = get_rank() if rank is None else rank
        if not isinstance(num_replicas, int) or num_replicas < 1:
            raise ValueError(f"num_replicas must be a whole number >= 1, not {num_replicas!r}")
        if not isinstance(rank, int) or not 0 <= rank < num_replicas:
            raise ValueError(f"rank must be in [0, {num_replicas - 1}], not {rank!r}")
        self.n = len(dataset)
        if drop_last and self.n < num_replicas:
            raise ValueError(
                f"drop_last with {self.n} examples and {num_replicas} replicas leaves none"
            )
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle, self.seed, self.drop_last = shuffle, int(seed), drop_last
        self.epoch = 0
        if drop_last:
            self.num_samples = self.n // num_replicas
        else:
            self.num_samples = math.ceil(self.n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch: int) -> None:
        """Make the next pass the ``epoch``-th (call it on every rank, every epoch)."""
        self.epoch = int(epoch)

    def permutation(self) -> Any:
        """The epoch's order of all the examples, the same on every rank: host (n,) int64."""
        if not self.shuffle:
            return B.host_xp().arange(self.n)
        return epoch_permutation(self.seed, self.epoch, self.n)

    def positions(self) -> Any:
        """Where this rank's examples sit in the epoch's order: host (len(self),) int64.

        A position past the end (the repeats that fill the last round) counts from
        the start again, as the repeated example does.
        """
        np = B.host_xp()
        return np.arange(self.rank, self.total_size, self.num_replicas) % self.n

    def __iter__(self) -> Iterator[int]:
        return iter(self.permutation()[self.positions()].tolist())

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        return (
            f"DistributedSampler(n={self.n}, num_replicas={self.num_replicas}, rank={self.rank}, "
            f"shuffle={self.shuffle}, seed={self.seed}, epoch={self.epoch})"
        )
