"""Data-parallel scaling: training images per second against the number of processes.

    python benchmarks/scaling.py                                 # CPU: 1 and 2 processes
    python benchmarks/scaling.py --backend cupy --world-sizes 1 2 4 8 --batch 128
    python benchmarks/scaling.py --model alexnet --batch 32 --json scaling.json

For each world size R, ``mpiexec -n R`` starts this file as a worker; every rank
trains with the same per-process batch (weak scaling, as DDP is used), so R
processes push R times the images per step. Reported per R: images per second
of the whole job, the scaling efficiency (images/s over R times one process's),
the time of one step and of its gradient all-reduce alone (the flat buffer of the
model's gradients, timed by itself), and PyTorch DDP with the same model and
per-process batch when torch is installed (gloo on the CPU, NCCL on GPUs).

On the CPU the cores are shared out: each of R processes gets cores / R threads,
ours and PyTorch's alike, so the numbers say what the communication and the split
cost, not what more hardware buys. On a machine of several GPUs each process
takes the GPU of its local rank.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


# ---------------------------------------------------------------- one rank (under mpiexec)
def _timed(fn, steps: int, sync) -> float:
    for _ in range(3):  # warm-up: compilation, allocation, first collectives
        fn()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    sync()
    return (time.perf_counter() - start) / steps


def worker_ours(args: argparse.Namespace) -> dict:
    import minitorch_alexnet as mt
    from minitorch_alexnet import distributed, models, nn, optim
    from minitorch_alexnet.train.loop import make_train_step

    if args.backend == "cupy":
        distributed.use_local_gpu()  # each process its own GPU, before any allocation
    mt.set_backend(args.backend)
    comm = distributed.init_process_group()
    mt.manual_seed(0)
    model = models.build_model(args.model)
    model = distributed.convert_dropout(model, comm.rank, comm.world_size)
    distributed.broadcast_parameters(model, comm)
    sgd = optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    opt = distributed.DistributedOptimizer(sgd, comm)
    side = model.input_size[-1] if getattr(model, "input_size", None) else 32
    rng = mt.backend.host_xp().random.default_rng(comm.rank)
    x = mt.asarray(rng.normal(size=(args.batch, 3, side, side)), "float32")
    y = mt.asarray(rng.integers(0, 10, args.batch), "int64")
    step = make_train_step(model, nn.CrossEntropyLoss(), opt)
    sync = mt.get_backend().synchronize
    seconds = _timed(lambda: step(x, y), args.steps, sync)
    (flat,) = opt.bucket.flats.values()
    reduce_s = _timed(lambda: comm.all_reduce(flat), args.steps, sync) if comm.world_size > 1 else 0
    return {"step_s": seconds, "all_reduce_s": reduce_s, "gradient_mb": flat.nbytes / 1e6}


def worker_torch(args: argparse.Namespace) -> dict:
    import torch
    import torch.distributed as dist
    from mpi4py import MPI

    from minitorch_alexnet.models.torch_reference import build_torch_model

    world = MPI.COMM_WORLD
    rank, size = world.Get_rank(), world.Get_size()
    where = None
    if rank == 0:  # a free port on rank 0's machine, for PyTorch's rendezvous
        with socket.socket() as s:
            s.bind(("", 0))
            where = (socket.gethostname(), s.getsockname()[1])
    host, port = world.bcast(where, root=0)
    os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = host, str(port)
    gpu = args.backend == "cupy"
    if gpu:
        local = world.Split_type(MPI.COMM_TYPE_SHARED, key=rank).Get_rank()
        torch.cuda.set_device(local % torch.cuda.device_count())
    dist.init_process_group("nccl" if gpu else "gloo", rank=rank, world_size=size)
    device = torch.device("cuda" if gpu else "cpu")
    model = build_torch_model(args.model).to(device)
    ddp = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    side = 227 if args.model in ("alexnet", "alexnet2012") else 32
    x = torch.randn(args.batch, 3, side, side, device=device)
    y = torch.randint(0, 10, (args.batch,), device=device)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss_fn(ddp(x), y).backward()  # DDP all-reduces the gradients in buckets
        opt.step()

    sync = torch.cuda.synchronize if gpu else (lambda: None)
    seconds = _timed(step, args.steps, sync)
    dist.destroy_process_group()
    return {"step_s": seconds}


# ---------------------------------------------------------------- the driver
def launch(args: argparse.Namespace, world: int, framework: str) -> dict | None:
    """One ``mpiexec -n world`` job of this file; rank 0's numbers (None if it failed)."""
    mpiexec = shutil.which("mpiexec", path=str(Path(sys.executable).parent))
    mpiexec = mpiexec or shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit('mpiexec not found: pip install -e ".[distributed]"')
    threads = str(max(1, (os.cpu_count() or 1) // world))
    env = {**os.environ, "NUMBA_NUM_THREADS": threads, "OMP_NUM_THREADS": threads}
    cmd = [mpiexec, "-n", str(world), sys.executable, __file__, "--worker", framework]
    cmd += ["--backend", args.backend, "--model", args.model, "--batch", str(args.batch)]
    cmd += ["--steps", str(args.steps)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=args.timeout)
    lines = [line for line in res.stdout.splitlines() if line.startswith("{")]
    if res.returncode != 0 or not lines:
        print(
            f"  {framework} with {world} processes failed:\n{res.stderr[-1500:]}", file=sys.stderr
        )
        return None
    return json.loads(lines[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", default="numba", choices=("numpy", "numba", "cupy"))
    p.add_argument("--model", default="alexnet_cifar", help="alexnet_cifar, alexnet, tiny, ...")
    p.add_argument("--batch", type=int, default=32, help="images per process and step")
    p.add_argument("--steps", type=int, default=5, help="timed steps (after 3 warm-up steps)")
    p.add_argument("--world-sizes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--no-torch", action="store_true", help="skip PyTorch DDP")
    p.add_argument("--json", default=None, help="also write the rows to this file")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per mpiexec job")
    p.add_argument("--worker", choices=("ours", "torch"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker:
        numbers = (worker_ours if args.worker == "ours" else worker_torch)(args)
        from mpi4py import MPI

        if MPI.COMM_WORLD.Get_rank() == 0:
            print(json.dumps(numbers), flush=True)
        return

    try:
        import torch  # noqa: F401

        with_torch = not args.no_torch
    except ImportError:
        with_torch = False
    with_torch = with_torch and args.model in ("alexnet", "alexnet_cifar", "alexnet2012")
    print(f"{args.model}, batch {args.batch} per process, backend {args.backend}")
    print("procs | images/s | efficiency | step ms | all-reduce ms (MB) | torch DDP images/s")
    rows, base = [], None
    for world in args.world_sizes:
        ours = launch(args, world, "ours")
        theirs = launch(args, world, "torch") if with_torch else None
        if ours is None:
            continue
        rate = world * args.batch / ours["step_s"]
        base = base or rate / world
        row = {"world_size": world, "images_per_second": rate, "efficiency": rate / (world * base)}
        row.update(ours)
        if theirs is not None:
            row["torch_images_per_second"] = world * args.batch / theirs["step_s"]
        rows.append(row)
        torch_rate = f"{row['torch_images_per_second']:.0f}" if theirs else "-"
        print(
            f"{world:5d} | {rate:8.1f} | {row['efficiency']:10.0%} | {1e3 * ours['step_s']:7.0f} | "
            f"{1e3 * ours['all_reduce_s']:8.1f} ({ours['gradient_mb']:.1f}) | {torch_rate}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
