"""The processes of a job and their collectives: MPI (mpi4py) and NCCL (CuPy).

``mpiexec -n R python script.py`` starts R copies of a script; each learns its
*rank* (0 ... R - 1), the *world size* R and its *local rank* (its number among
the processes on its own machine, which picks its GPU) from MPI. A communicator
then offers three collectives on the active backend's arrays:

* ``all_reduce(a)``: every rank's ``a`` becomes the element-wise sum over all ranks;
* ``broadcast(a, root)``: every rank's ``a`` becomes rank ``root``'s;
* ``barrier()``: no rank goes on before every rank has arrived.

NumPy arrays (the ``numpy`` and ``numba`` backends) go through MPI; CuPy arrays
go through NCCL on the current CUDA stream, so nothing waits for the device and a
CUDA graph can record the calls. Nothing here moves bytes itself.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "Communicator",
    "DistributedError",
    "MPICommunicator",
    "NCCLCommunicator",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_initialized",
    "mpi_world",
    "use_local_gpu",
]

INSTALL = 'pip install "minitorch-alexnet[distributed]" (mpi4py and the MPICH it runs on)'
MIN_CUPY = 14  # CuPy 14.0 fixed the NCCL unique-id bug of its TCP store (cupy/cupy#9430)

_world: Communicator | None = None  # the communicator init_process_group made


class DistributedError(RuntimeError):
    """Data parallelism cannot start or go on: a missing package, bad settings, a rank failed."""


def _mpi() -> Any:
    """mpi4py's ``MPI`` module (importing it initialises MPI), or a clear error."""
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise DistributedError(f"distributed training needs mpi4py: {INSTALL} ({e})") from None
    return MPI


def _local_rank(mpi_comm: Any) -> int:
    """This process's number among the processes of ``mpi_comm`` on its own machine."""
    return mpi_comm.Split_type(_mpi().COMM_TYPE_SHARED, key=mpi_comm.Get_rank()).Get_rank()


class Communicator:
    """Collectives over the ranks of a job (see the module docstring)."""

    backend = ""  # "mpi" or "nccl"

    def __init__(self, mpi_comm: Any) -> None:
        self.mpi = mpi_comm  # objects, barriers, and NumPy arrays for MPICommunicator
        self.rank: int = mpi_comm.Get_rank()
        self.world_size: int = mpi_comm.Get_size()
        self.local_rank: int = _local_rank(mpi_comm)

    def all_reduce(self, array: Any) -> Any:
        """Sum ``array`` over every rank, in place; returns it."""
        raise NotImplementedError

    def broadcast(self, array: Any, root: int = 0) -> Any:
        """Overwrite ``array`` with rank ``root``'s, in place; returns it."""
        raise NotImplementedError

    def barrier(self) -> None:
        """Wait until every rank has called it."""
        self.mpi.Barrier()

    def broadcast_object(self, obj: Any, root: int = 0) -> Any:
        """A small Python object (a path, a message) from rank ``root`` to every rank."""
        return self.mpi.bcast(obj, root=root)

    def all_reduce_floats(self, values: list[float]) -> list[float]:
        """The sums over every rank of a few host numbers (metrics, not gradients)."""
        from ..backend import host_xp

        sums = host_xp().array(values, dtype="float64")
        self.mpi.Allreduce(_mpi().IN_PLACE, sums, op=_mpi().SUM)
        return [float(v) for v in sums]

    def abort(self, code: int) -> None:
        """End every rank of the job now with exit status ``code`` (one rank failed)."""
        self.mpi.Abort(code)

    def __deepcopy__(self, memo: dict) -> Communicator:
        return self  # a handle on the other processes: copies of a layer share it

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rank={self.rank}, world_size={self.world_size})"


def _contiguous(array: Any, what: str) -> None:
    if not array.flags.c_contiguous:
        raise DistributedError(
            f"{what} needs a C-contiguous array, got shape {array.shape} with strides "
            f"{array.strides}; pass a contiguous copy (xp.ascontiguousarray)"
        )


class MPICommunicator(Communicator):
    """Collectives on NumPy arrays through MPI (the ``numpy`` and ``numba`` backends)."""

    backend = "mpi"

    def all_reduce(self, array: Any) -> Any:
        _contiguous(array, "all_reduce")
        self.mpi.Allreduce(_mpi().IN_PLACE, array, op=_mpi().SUM)
        return array

    def broadcast(self, array: Any, root: int = 0) -> Any:
        _contiguous(array, "broadcast")
        self.mpi.Bcast(array, root=root)
        return array


class NCCLCommunicator(Communicator):
    """Collectives on CuPy arrays through NCCL, queued on the current CUDA stream.

    Rank 0 makes NCCL's unique id and MPI hands it to the others; each process
    must already use its own GPU (:func:`use_local_gpu`).
    """

    backend = "nccl"

    def __init__(self, mpi_comm: Any) -> None:
        super().__init__(mpi_comm)
        cupy = _cupy()
        from cupy.cuda import nccl

        self.cupy, self.nccl = cupy, nccl
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = self.mpi.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(self.world_size, uid, self.rank)
        self._types = {
            "float16": nccl.NCCL_FLOAT16,
            "float32": nccl.NCCL_FLOAT32,
            "float64": nccl.NCCL_FLOAT64,
            "int32": nccl.NCCL_INT32,
            "int64": nccl.NCCL_INT64,
        }

    def _type(self, array: Any) -> int:
        if array.dtype.name not in self._types:
            raise DistributedError(f"NCCL collectives here take {', '.join(self._types)} arrays")
        return self._types[array.dtype.name]

    def all_reduce(self, array: Any) -> Any:
        _contiguous(array, "all_reduce")
        stream = self.cupy.cuda.get_current_stream().ptr
        ptr = array.data.ptr
        self.comm.allReduce(ptr, ptr, array.size, self._type(array), self.nccl.NCCL_SUM, stream)
        return array

    def broadcast(self, array: Any, root: int = 0) -> Any:
        _contiguous(array, "broadcast")
        stream = self.cupy.cuda.get_current_stream().ptr
        self.comm.bcast(array.data.ptr, array.size, self._type(array), root, stream)
        return array

    def barrier(self) -> None:
        self.cupy.cuda.get_current_stream().synchronize()  # this rank's queued work is done
        self.mpi.Barrier()


def _cupy() -> Any:
    try:
        import cupy
    except ImportError:
        raise DistributedError("NCCL needs CuPy: pip install cupy-cuda12x (or -cuda13x)") from None
    if int(cupy.__version__.split(".")[0]) < MIN_CUPY:
        raise DistributedError(
            f"NCCL through CuPy needs CuPy >= {MIN_CUPY} (found {cupy.__version__}; older ones "
            "can hand out a wrong NCCL unique id): pip install -U cupy-cuda12x"
        )
    from cupy.cuda import nccl

    if not nccl.available:
        raise DistributedError(
            "CuPy finds no NCCL library: pip install nvidia-nccl-cu12 (or -cu13 for CUDA 13)"
        )
    return cupy


def mpi_world() -> Any:
    """MPI's ``COMM_WORLD`` (MPI started), for ranks and host messages before any arrays."""
    return _mpi().COMM_WORLD


def use_local_gpu() -> int | None:
    """Make this process use GPU ``local_rank % GPUs``; returns it (None: no usable CuPy).

    Call it before the CuPy backend allocates anything, so that each process of a
    machine works on its own card.
    """
    try:
        import cupy

        count = cupy.cuda.runtime.getDeviceCount()
    except Exception:  # no CuPy, no driver, no GPU: a CPU run
        return None
    if count == 0:
        return None
    local = _local_rank(mpi_world())
    cupy.cuda.Device(local % count).use()
    return local % count


def init_process_group(backend: str | None = None) -> Communicator:
    """The communicator of this job, made once from the MPI environment (as ``mpiexec``
    sets it up; a script started without it is a job of one process).

    Args:
        backend: ``"mpi"`` (NumPy arrays), ``"nccl"`` (CuPy arrays), or None: NCCL when
            the active backend is on a GPU, else MPI.

    Returns:
        The communicator; also the default group of :class:`~minitorch_alexnet.nn.SyncBatchNorm`.
    """
    global _world
    from .. import backend as B
    from ..nn.syncbatchnorm import set_default_process_group

    if backend is None:
        backend = "nccl" if B.get_backend().device == "cuda" else "mpi"
    if backend not in ("mpi", "nccl"):
        raise DistributedError(f"backend must be 'mpi', 'nccl' or None, not {backend!r}")
    if _world is not None and _world.backend == backend:
        return _world
    kind = MPICommunicator if backend == "mpi" else NCCLCommunicator
    _world = kind(mpi_world().Dup())  # its own MPI context: no mix-ups
    set_default_process_group(_world)
    return _world


def is_initialized() -> bool:
    """Whether :func:`init_process_group` has made a communicator."""
    return _world is not None


def get_rank() -> int:
    """This process's rank (0 if no communicator was made)."""
    return _world.rank if _world is not None else 0


def get_world_size() -> int:
    """The number of processes (1 if no communicator was made)."""
    return _world.world_size if _world is not None else 1
