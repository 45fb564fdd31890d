"""Data-parallel training: one process per device, the same model on each, the
global batch split between them and the gradients averaged every step.

Launch with MPI (``pip install "minitorch-alexnet[distributed]"``)::

    mpiexec -n 2 python examples/train_cifar.py --distributed --sync-bn

* :mod:`.comm`: ranks from the MPI environment; all-reduce, broadcast and barrier
  through MPI (NumPy arrays) or NCCL (CuPy arrays);
* :mod:`.grads`: one flat gradient buffer and :class:`DistributedOptimizer`;
* :mod:`.sampler`: :class:`DistributedSampler`, each rank's share of an epoch;
* :mod:`.dropout`: dropout masks keyed by the example's place in the global batch;
* :mod:`.training`: the hooks the training run calls.

``docs/distributed.md`` explains the method and its cost. Nothing here imports
mpi4py or CuPy until a communicator is made.
"""

from ..nn.syncbatchnorm import SyncBatchNorm
from .comm import (
    Communicator,
    DistributedError,
    MPICommunicator,
    NCCLCommunicator,
    get_rank,
    get_world_size,
    init_process_group,
    is_initialized,
    use_local_gpu,
)
from .dropout import GlobalBatchDropout, convert_dropout
from .grads import DistributedOptimizer, GradientBucket, broadcast_parameters
from .sampler import DistributedSampler

__all__ = [
    "Communicator",
    "DistributedError",
    "DistributedOptimizer",
    "DistributedSampler",
    "GlobalBatchDropout",
    "GradientBucket",
    "MPICommunicator",
    "NCCLCommunicator",
    "SyncBatchNorm",
    "broadcast_parameters",
    "convert_dropout",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_initialized",
    "use_local_gpu",
]
