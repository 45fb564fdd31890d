"""What a training run does differently when ``mpiexec`` starts it on several processes.

:mod:`minitorch_alexnet.train.trainer` calls the hooks of :func:`parallel_hooks`:
:class:`SingleProcess`'s change nothing (a run without ``--distributed`` is what
it always was); :class:`DataParallel`'s are

* ``run_folder``: rank 0 alone chooses and locks the run's folder and tells the
  others which it is; only rank 0 writes files and prints (the other ranks'
  standard output goes nowhere, their errors still show);
* ``prepare``: the communicator, SyncBatchNorm (``--sync-bn``), dropout keyed by
  global example, and rank 0's weights on every rank;
* ``loader_args``: each rank's share of every global batch (``--batch-size`` is
  the global batch) from a :class:`DistributedSampler`;
* ``wrap``: the optimiser that averages the gradients every step;
* ``end_epoch``: the epoch's loss and accuracy over all ranks, and rank 0's
  BatchNorm statistics everywhere (as PyTorch DDP's buffer broadcast).

When one rank fails while the others wait in a collective, nothing would ever
end them; so a rank that leaves the run with an error aborts the whole job (after
its message), with the run's exit code.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from ..nn import BatchNorm1d, BatchNorm2d, Module, SyncBatchNorm
from .comm import Communicator, DistributedError, init_process_group, mpi_world, use_local_gpu
from .dropout import convert_dropout
from .grads import DistributedOptimizer, broadcast_parameters
from .sampler import DistributedSampler

__all__ = ["DataParallel", "Parallel", "SingleProcess", "parallel_hooks"]

FORWARD_S = 0.5  # how long a failed rank waits for its last messages to reach mpiexec
# the training run's exit codes (train.trainer.run), by the name of the exception
EXIT_CODES = {"TrainingError": 2, "OSError": 2, "Diverged": 3, "KeyboardInterrupt": 130}


def exit_code(error: BaseException) -> int:
    """The exit status the training command gives for ``error`` (1 if none is named)."""
    for kind in type(error).__mro__:
        if kind.__name__ in EXIT_CODES:
            return EXIT_CODES[kind.__name__]
    return 1


def parallel_hooks(config: Any, error: type[Exception]) -> Parallel:
    """The hooks of a run with ``config``: :class:`DataParallel` with ``config.distributed``,
    else :class:`SingleProcess`. ``error`` is the exception for problems the user can fix."""
    if config.distributed:
        return DataParallel(config, error)
    if config.sync_bn:
        raise error("--sync-bn needs --distributed: one process has nothing to synchronise")
    return SingleProcess()


class Parallel:
    """The hooks a training run calls; these change nothing (one process)."""

    writes = True  # whether this process writes the run's files

    def run_folder(
        self, open_folder: Callable[..., AbstractContextManager[Path]], config: Any
    ) -> AbstractContextManager[Path]:
        """The run's folder: ``open_folder(out, resume, overwrite)`` (the trainer's)."""
        return open_folder(config.out, config.resume, config.overwrite)

    def prepare(self, model: Module) -> Module:
        """The model to train."""
        return model

    def loader_args(self, dataset: Any, config: Any) -> dict[str, Any]:
        """The training DataLoader's batch size and order."""
        return {"batch_size": config.batch_size, "shuffle": True}

    def wrap(self, optimizer: Any) -> Any:
        """The optimiser the training step calls."""
        return optimizer

    def end_epoch(
        self, model: Module, loss: float, acc: float, rate: float
    ) -> tuple[float, float, float]:
        """The epoch's (mean loss, accuracy, images/s)."""
        return loss, acc, rate


class SingleProcess(Parallel):
    """One process: the run as it always was."""


class DataParallel(Parallel):
    """One rank of a data-parallel training run (see the module docstring)."""

    def __init__(self, config: Any, error: type[Exception]) -> None:
        try:
            self.world = mpi_world()
        except DistributedError as e:
            raise error(str(e)) from None
        self.rank, self.world_size = self.world.Get_rank(), self.world.Get_size()
        self.sync_bn, self.error = bool(config.sync_bn), error
        if config.batch_size % self.world_size:
            raise error(
                f"--batch-size {config.batch_size} is the global batch and must split evenly "
                f"over {self.world_size} processes; use a multiple of {self.world_size}"
            )
        self.local_batch = config.batch_size // self.world_size
        self.comm: Communicator | None = None
        self.writes = self.rank == 0
        if config.backend in (None, "cupy"):
            use_local_gpu()  # before the CuPy backend allocates anything
        if self.rank != 0:  # rank 0 alone logs
            sys.stdout = open(os.devnull, "w")  # for the life of the process

    @contextmanager
    def run_folder(
        self, open_folder: Callable[..., AbstractContextManager[Path]], config: Any
    ) -> Iterator[Path]:
        """Rank 0 opens the folder, the others learn its path; a failure anywhere ends all."""
        told = False  # whether the others know the folder
        try:
            if self.rank != 0:
                found = self.world.bcast(None, root=0)
                told = True
                if isinstance(found, str):
                    raise self.error(f"rank 0 could not open the run's folder: {found}")
                yield found
                self.world.Barrier()
            else:
                with open_folder(config.out, config.resume, config.overwrite) as out:
                    self.world.bcast(Path(out), root=0)
                    told = True
                    yield out
                    self.world.Barrier()  # nobody still needs the folder when its lock goes
        except BaseException as e:
            if not told:  # rank 0 failed to open the folder: the others stop with it
                self.world.bcast(str(e), root=0)
            elif self.world_size > 1:  # a rank failed mid-run: after its message, end all
                atexit.register(self._abort, exit_code(e))
            raise

    def _abort(self, code: int) -> None:
        """End every rank with ``code``, once this rank's messages are on their way."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(FORWARD_S)  # mpiexec relays output asynchronously; Abort would cut it
        self.world.Abort(code)

    def prepare(self, model: Module) -> Module:
        """Make the communicator and give ``model`` SyncBatchNorm (``--sync-bn``), dropout
        keyed by global example, and rank 0's parameters and buffers."""
        try:
            self.comm = init_process_group()
        except DistributedError as e:
            raise self.error(str(e)) from None
        if self.sync_bn:
            model = SyncBatchNorm.convert_sync_batchnorm(model, self.comm)
        elif self.local_batch < 2 and any(
            isinstance(m, BatchNorm1d | BatchNorm2d) for m in model.modules()
        ):
            raise self.error(
                f"each of {self.world_size} processes gets 1 image of a batch, too few for its "
                "own BatchNorm statistics; use --sync-bn or a larger --batch-size"
            )
        model = convert_dropout(model, self.rank, self.world_size)
        broadcast_parameters(model, self.comm)
        return model

    def loader_args(self, dataset: Any, config: Any) -> dict[str, Any]:
        """This rank's share of every global batch: ``batch_size / world_size`` examples."""
        ranks = (self.world_size, self.rank)
        sampler = DistributedSampler(dataset, *ranks, shuffle=True, seed=config.seed)
        return {"batch_size": self.local_batch, "shuffle": False, "sampler": sampler}

    def wrap(self, optimizer: Any) -> DistributedOptimizer:
        """``optimizer`` behind one gradient all-reduce per step."""
        return DistributedOptimizer(optimizer, self._comm())

    def end_epoch(
        self, model: Module, loss: float, acc: float, rate: float
    ) -> tuple[float, float, float]:
        """(mean loss, accuracy, images/s) of the epoch over every rank; rank 0's
        buffers (BatchNorm's running statistics) to every rank before evaluation."""
        comm = self._comm()
        total_loss, total_acc, total_rate = comm.all_reduce_floats([loss, acc, rate])
        for buffer in model.buffers():  # the weights are identical; the buffers are not
            comm.broadcast(buffer)
        return total_loss / self.world_size, total_acc / self.world_size, total_rate

    def _comm(self) -> Communicator:
        if self.comm is None:
            raise DistributedError("call prepare(model) before the other hooks")
        return self.comm
