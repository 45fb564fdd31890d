"""What a training run does differently when ``mpiexec`` starts it on several processes.

:mod:`minitorch_alexnet.train.trainer` calls the hooks of :func:`parallel_hooks`:
:class:`Parallel`'s change nothing (a run without ``--distributed`` is what it
always was); :class:`DataParallel`'s are

* ``run_folder``: rank 0 alone chooses and locks the run's folder and tells the
  others which it is; only rank 0 writes files and prints (the other ranks'
  standard output goes nowhere, their errors still show);
* ``load_data``: rank 0 loads (and downloads) the data first, then the others load
  it without downloading; every rank must end up with the same data;
* ``prepare``: the communicator, SyncBatchNorm (``--sync-bn``), dropout keyed by
  global example, and rank 0's weights on every rank;
* ``loader_args``: each rank's share of every global batch (``--batch-size`` is
  the global batch) from a :class:`DistributedSampler`;
* ``wrap``: the optimiser that averages the gradients every step;
* ``end_epoch``: the epoch's loss and accuracy over all ranks, and rank 0's
  BatchNorm statistics everywhere (as PyTorch DDP's buffer broadcast).

Settings that cannot work are refused on every rank before the run's folder is
opened, so every rank stops alike with a message (exit 2). When one rank fails
while the others wait in a collective, nothing would ever end them; so a rank that
leaves the run with an error aborts the whole job (after its message), with the
run's exit code, unless every rank raised that error together.
"""

from __future__ import annotations

import atexit
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..nn import BatchNorm1d, BatchNorm2d, Module, SyncBatchNorm
from .comm import Communicator, DistributedError, init_process_group, mpi_world, use_local_gpu
from .dropout import convert_dropout
from .grads import DistributedOptimizer, broadcast_parameters
from .sampler import DistributedSampler

__all__ = ["DataParallel", "Parallel", "parallel_hooks"]

FORWARD_S = 0.5  # how long a failed rank waits for its last messages to reach mpiexec


def parallel_hooks(
    config: Any, error: type[Exception], exit_code: Callable[[BaseException], int]
) -> Parallel:
    """The hooks of a run with ``config``: :class:`DataParallel` with ``config.distributed``,
    else :class:`Parallel`. ``error`` is the exception for problems the user can fix;
    ``exit_code`` gives the training command's exit status for an exception."""
    if config.distributed:
        return DataParallel(config, error, exit_code)
    if config.sync_bn:
        raise error("--sync-bn needs --distributed: one process has nothing to synchronise")
    return Parallel()


class Parallel:
    """The hooks a training run calls; these change nothing (one process)."""

    writes = True  # whether this process writes the run's files

    def run_folder(
        self, open_folder: Callable[..., AbstractContextManager[Path]], config: Any
    ) -> AbstractContextManager[Path]:
        """The run's folder: ``open_folder(out, resume, overwrite)`` (the trainer's)."""
        return open_folder(config.out, config.resume, config.overwrite)

    def load_data(self, load: Callable[[Any], Any], config: Any) -> Any:
        """The run's data: ``load(config)`` (the trainer's ``load_data``)."""
        return load(config)

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


class DataParallel(Parallel):
    """One rank of a data-parallel training run (see the module docstring)."""

    def __init__(
        self, config: Any, error: type[Exception], exit_code: Callable[[BaseException], int]
    ) -> None:
        try:
            self.world = mpi_world()
        except DistributedError as e:
            raise error(str(e)) from None
        self.rank, self.world_size = self.world.Get_rank(), self.world.Get_size()
        self.sync_bn, self.error, self.exit_code = bool(config.sync_bn), error, exit_code
        if config.batch_size % self.world_size:
            raise error(
                f"--batch-size {config.batch_size} is the global batch and must split evenly "
                f"over {self.world_size} processes; use a multiple of {self.world_size}"
            )
        self.local_batch = config.batch_size // self.world_size
        if not self.sync_bn and self.local_batch < 2 and _has_batchnorm(config.model):
            raise error(
                f"each of {self.world_size} processes gets 1 image of a batch, too few for its "
                "own BatchNorm statistics; use --sync-bn or a larger --batch-size"
            )
        self.comm: Communicator | None = None
        self._together: BaseException | None = None  # an error every rank raised at once
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
            elif self.world_size > 1 and e is not self._together:  # after its message, end all
                atexit.register(self._abort, self.exit_code(e))
            raise

    def _abort(self, code: int) -> None:
        """End every rank with ``code``, once this rank's messages are on their way."""
        sys.stdout.flush()
        sys.stderr.flush()
        time.sleep(FORWARD_S)  # mpiexec relays output asynchronously; Abort would cut it
        self.world.Abort(code)

    def load_data(self, load: Callable[[Any], Any], config: Any) -> Any:
        """Rank 0 loads (and downloads) the data first; then the others load it without
        downloading (theirs would find rank 0's download lock and fail). Every rank must
        end up with the same data, or every rank stops with the same message."""
        mine = self._load(load, config) if self.rank == 0 else None
        first = self.world.bcast(None if mine is None else mine[1], root=0)
        if self.rank != 0 and not isinstance(first, str):  # rank 0's data is in place
            mine = self._load(load, replace(config, download=False))
        splits, found, failure = mine if mine is not None else (None, "", None)
        everyone = self.world.allgather(found)  # (name, train, test), or what went wrong
        problem = _data_problem(everyone)
        if failure is not None:
            self._together = failure
            raise failure
        if problem:
            self._together = self.error(problem)
            raise self._together
        return splits

    def _load(self, load: Callable[[Any], Any], config: Any) -> tuple[Any, Any, Any]:
        """(splits, (name, train images, test images), None), or (None, message, error)."""
        try:
            splits = load(config)
        except Exception as e:
            return None, str(e) or type(e).__name__, e
        return splits, (splits.name, len(splits.train), len(splits.test)), None

    def prepare(self, model: Module) -> Module:
        """Make the communicator and give ``model`` SyncBatchNorm (``--sync-bn``), dropout
        keyed by global example, and rank 0's parameters and buffers."""
        try:
            self.comm = init_process_group()
        except DistributedError as e:
            raise self.error(str(e)) from None
        if self.sync_bn:
            model = SyncBatchNorm.convert_sync_batchnorm(model, self.comm)
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


def _has_batchnorm(model: str) -> bool:
    """Whether the model named ``model`` has BatchNorm layers (built on the host to see:
    nothing may touch a GPU before :func:`use_local_gpu`)."""
    from ..backend import use_backend
    from ..models import build_model

    with use_backend("numpy"):
        return any(isinstance(m, BatchNorm1d | BatchNorm2d) for m in build_model(model).modules())


def _data_problem(everyone: list[Any]) -> str:
    """What is wrong with the ranks' data (``DataParallel.load_data``), or ``""``."""
    failed = [(r, found) for r, found in enumerate(everyone) if isinstance(found, str)]
    if failed:
        rank, message = failed[0]  # rank 0's failure first: the others did not try
        whose = "rank 0" if rank == 0 else f"rank {rank} (rank 0 loaded it)"
        return f"{whose} could not load the data: {message}"
    if all(found == everyone[0] for found in everyone):
        return ""
    seen = "; ".join(
        f"rank {r}: {n} ({a} train / {b} test)" for r, (n, a, b) in enumerate(everyone)
    )
    return (
        f"the processes loaded different data ({seen}); every process must see the same "
        "data: put a copy in --data-dir on every machine (only rank 0 downloads), or use "
        "--dataset synthetic"
    )
