"""Data parallelism on two real processes: ``mpiexec -n 2`` runs this file once.

Run as a script under ``mpiexec``, it performs every check on both ranks and rank 0
writes the numbers to a JSON file; the tests below start that one job (a module
fixture) and assert on its numbers, so the whole two-process part costs one launch.

* equivalence: float64, numpy backend: 2 ranks x batch B take the same steps as
  1 process x batch 2B (with SyncBatchNorm and dropout keyed by global example,
  and a net with neither);
* SyncBatchNorm over 2 ranks against PyTorch's BatchNorm over the whole batch, and
  a finite-difference check of its backward through the collectives;
* the training run: rank 0 alone writes, and its checkpoint resumes in one process.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve()
ROOT = HERE.parent.parent
STEPS, LOCAL_BATCH = 3, 8


# The training run on two ranks (SyncBatchNorm: float64 sums, E[x^2] - mu^2) and its
# continuation in one process (BatchNorm: float32, two passes) agree to rounding. On
# the synthetic images with the default reflect padding some channels' batch variance
# is nearly zero, where that rounding is magnified (2.7e-4 in the weights after one
# epoch, while two ranks and one rank of SyncBatchNorm agree to 6e-8): zero padding
# keeps the comparison about resuming, not about the two variance formulas.
ZERO_PADDED = {"crop_padding": 4, "padding_mode": "zeros"}


# ---------------------------------------------------------------- run under mpiexec
def _nets():
    from minitorch_alexnet import nn

    def with_bn_and_dropout():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(4),
            nn.MaxPool2d(4),
            nn.Flatten(),
            nn.Linear(4 * 8 * 8, 12),
            nn.BatchNorm1d(12),
            nn.Dropout(0.3),
            nn.Linear(12, 10),
        )

    def plain():
        return nn.Sequential(
            nn.Conv2d(3, 4, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(4),
            nn.Flatten(),
            nn.Linear(256, 10),
        )

    return {"sync_bn_dropout": with_bn_and_dropout, "plain": plain}


def _train(build, comm, train_set):
    """Parameters after STEPS steps: one process with batch 2B (comm None) or this rank."""
    import minitorch_alexnet as mt
    from minitorch_alexnet import data, distributed, nn, optim
    from minitorch_alexnet.train.loop import make_train_step

    mt.manual_seed(1)
    model = build().double()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)
    args = dict(augment=True, seed=3, drop_last=True)
    if comm is None:
        loader = data.DataLoader(train_set, batch_size=2 * LOCAL_BATCH, shuffle=True, **args)
    else:
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model, comm)
        model = distributed.convert_dropout(model, comm.rank, comm.world_size)
        distributed.broadcast_parameters(model, comm)
        opt = distributed.DistributedOptimizer(opt, comm)
        sampler = distributed.DistributedSampler(train_set, comm.world_size, comm.rank, seed=3)
        loader = data.DataLoader(train_set, batch_size=LOCAL_BATCH, sampler=sampler, **args)
    step = make_train_step(model, nn.CrossEntropyLoss(), opt)
    for k, (x, y) in enumerate(loader):
        if k == STEPS:
            break
        step(x.astype("float64"), y)
    return {name: p.data.copy() for name, p in model.named_parameters()}


def _equivalence(comm, out):
    import numpy as np

    from minitorch_alexnet import data

    train_set = data.make_synthetic(64, 10, seed=0).train
    for name, build in _nets().items():
        alone, ranks = _train(build, None, train_set), _train(build, comm, train_set)
        worst = max(np.abs(alone[k] - ranks[k]).max() for k in alone)
        out[f"equivalence_{name}"] = worst / max(np.abs(p).max() for p in alone.values())


def _syncbn_oracle(comm, out):
    import numpy as np
    import torch

    from minitorch_alexnet import nn

    worst = 0.0
    for shape in ((3, 4, 5, 5), (4, 6)):
        rng = np.random.default_rng(7)  # the same global batch on both ranks
        x = rng.normal(2.0, 3.0, (2 * shape[0], *shape[1:]))
        g = rng.normal(size=x.shape)
        mine = slice(comm.rank * shape[0], (comm.rank + 1) * shape[0])
        bn = nn.SyncBatchNorm(shape[1], momentum=0.3, process_group=comm).double()
        bn.weight.data[...] = rng.normal(size=shape[1])
        bn.bias.data[...] = rng.normal(size=shape[1])
        y = bn(x[mine].copy())
        dx = bn.backward(g[mine].copy())
        dgamma = comm.all_reduce(bn.weight.grad.copy())
        dbeta = comm.all_reduce(bn.bias.grad.copy())
        ref = (torch.nn.BatchNorm2d if len(shape) == 4 else torch.nn.BatchNorm1d)(
            shape[1], momentum=0.3
        ).double()
        with torch.no_grad():
            ref.weight.copy_(torch.from_numpy(bn.weight.data))
            ref.bias.copy_(torch.from_numpy(bn.bias.data))
        xt = torch.from_numpy(x).requires_grad_()
        yt = ref(xt)
        yt.backward(torch.from_numpy(g))
        pairs = [
            (y, yt.detach().numpy()[mine]),
            (dx, xt.grad.numpy()[mine]),
            (dgamma, ref.weight.grad.numpy()),
            (dbeta, ref.bias.grad.numpy()),
            (bn.running_mean, ref.running_mean.numpy()),
            (bn.running_var, ref.running_var.numpy()),
        ]
        worst = max([worst] + [np.abs(a - b).max() / (1 + np.abs(b).max()) for a, b in pairs])
    out["syncbn_vs_torch"] = worst


def _syncbn_finite_differences(comm, out):
    """d(sum over ranks of g_r . y_r)/dv by central differences, v in x of either rank,
    gamma and beta, against the backward pass (dgamma, dbeta all-reduced)."""
    import numpy as np

    from minitorch_alexnet import nn

    rng = np.random.default_rng(11 + comm.rank)
    x, g = rng.normal(size=(2, 3, 2, 2)), rng.normal(size=(2, 3, 2, 2))
    bn = nn.SyncBatchNorm(3, process_group=comm).double()
    bn.weight.data[...] = [0.5, 1.5, -1.0]
    loss = lambda: comm.all_reduce(np.array([(g * bn(x)).sum()]))[0]
    bn(x)
    dx = bn.backward(g.copy())
    analytic = {"x0": comm.broadcast(dx.copy(), 0), "x1": comm.broadcast(dx.copy(), 1)}
    analytic["weight"] = comm.all_reduce(bn.weight.grad.copy())
    analytic["bias"] = comm.all_reduce(bn.bias.grad.copy())
    h, worst = 1e-6, 0.0
    for name, num in analytic.items():
        if name in ("weight", "bias"):
            target = getattr(bn, name).data  # replicated: every rank moves it alike
        elif name == f"x{comm.rank}":
            target = x
        else:
            target = np.zeros(num.size)  # the other rank's input: nothing of ours moves
        for i in range(num.size):
            old = target.flat[i]
            target.flat[i] = old + h
            up = loss()
            target.flat[i] = old - h
            down = loss()
            target.flat[i] = old
            worst = max(worst, abs((up - down) / (2 * h) - num.flat[i]))
    out["syncbn_finite_differences"] = worst


def _training_run(comm, out, folder):
    from minitorch_alexnet.train import TrainConfig, train

    settings = dict(model="tiny", dataset="synthetic", backend="numpy", subset=128)
    settings.update(test_subset=64, batch_size=32, epochs=2, lr=0.02, progress=False, sync_bn=True)
    settings.update(ZERO_PADDED)
    history = train(TrainConfig(out=folder, stop_after=1, distributed=True, **settings))
    out["run_epochs"] = len(history)


def _syncbn_empty_slice(comm, out):
    """Rank 1 holds no example: it joins both all-reduces, and rank 0's numbers are
    BatchNorm's over rank 0's slice alone."""
    import numpy as np

    import minitorch_alexnet as mt
    from minitorch_alexnet import nn

    x = np.random.default_rng(4).normal(1.0, 2.0, (6, 3))
    g = np.random.default_rng(5).normal(size=(6, 3))
    mine = slice(0, 6) if comm.rank == 0 else slice(0, 0)
    sync = nn.SyncBatchNorm(3, process_group=comm).double()
    y = sync(mt.asarray(x[mine], "float64"))
    dx = sync.backward(mt.asarray(g[mine], "float64"))
    bn = nn.BatchNorm1d(3).double()
    y_ref = bn(mt.asarray(x, "float64"))
    dx_ref = bn.backward(mt.asarray(g, "float64"))
    worst = max(
        np.abs(y - y_ref[mine]).max(initial=0),
        np.abs(dx - dx_ref[mine]).max(initial=0),
        np.abs(sync.running_var - bn.running_var).max(),
    )
    out["syncbn_empty_slice"] = comm.mpi.allreduce(float(worst), op=_max())


def _max():
    from mpi4py import MPI

    return MPI.MAX


def main(path: str, folder: str) -> None:
    import minitorch_alexnet as mt
    from minitorch_alexnet import distributed

    mt.set_backend("numpy")
    comm = distributed.init_process_group()
    out = {"world_size": comm.world_size}
    _equivalence(comm, out)
    _syncbn_oracle(comm, out)
    _syncbn_finite_differences(comm, out)
    _syncbn_empty_slice(comm, out)
    _training_run(comm, out, folder)
    if comm.rank == 0:
        Path(path).write_text(json.dumps(out))


def fail_on_rank_1(folder: str) -> int:
    """A run whose rank 1 diverges alone after epoch 1, while rank 0 goes on."""
    from minitorch_alexnet.distributed import training
    from minitorch_alexnet.train import TrainConfig, run
    from minitorch_alexnet.train.loop import Diverged

    original = training.DataParallel.end_epoch

    def end_epoch(self, *args):
        if self.rank == 1:
            raise Diverged("rank 1 alone diverged")
        return original(self, *args)

    training.DataParallel.end_epoch = end_epoch
    settings = dict(model="tiny", dataset="synthetic", backend="numpy", subset=64, epochs=2)
    return run(TrainConfig(out=folder, test_subset=32, batch_size=32, distributed=True, **settings))


def cifar_on_rank_0(folder: str, mode: str) -> int:
    """A run on "CIFAR-10" (a small stand-in) that only rank 0 may download: rank 1's
    download finds rank 0's lock; with ``mode`` "only-rank-0", rank 1 never finds it."""
    import time

    from minitorch_alexnet import data
    from minitorch_alexnet.distributed.comm import mpi_world
    from minitorch_alexnet.train import TrainConfig, run

    rank, done = mpi_world().Get_rank(), Path(folder).parent / "downloaded"

    def load_cifar10(data_dir=None, download=True, progress=True):
        small = data.make_synthetic(64, 32, seed=1)
        here = data.DatasetSplits(small.train, small.test, "cifar10", "a stand-in")
        if mode == "only-rank-0" and rank == 1:
            raise data.DatasetNotFoundError("CIFAR-10 is not on this machine")
        if done.exists():
            return here
        if download and rank == 0:
            time.sleep(1.0)  # the download, while rank 1 would find its lock
            done.touch()
            return here
        if download:
            raise data.DownloadError("another process is downloading CIFAR-10")
        raise data.DatasetNotFoundError("CIFAR-10 is not in the data folder")

    data.load_cifar10 = load_cifar10
    settings = dict(model="tiny", backend="numpy", subset=64, test_subset=32, progress=False)
    return run(TrainConfig(out=folder, batch_size=32, epochs=1, distributed=True, **settings))


if __name__ == "__main__":
    if sys.argv[1] == "--fail-on-rank-1":
        sys.exit(fail_on_rank_1(sys.argv[2]))
    if sys.argv[1] == "--cifar-on-rank-0":
        sys.exit(cifar_on_rank_0(sys.argv[2], sys.argv[3]))
    main(*sys.argv[1:])


# ---------------------------------------------------------------- the tests
def _mpiexec() -> str:
    pytest.importorskip("mpi4py", reason='needs mpi4py: pip install -e ".[distributed]"')
    # the one beside this Python (the mpich wheel's), else any on the PATH
    found = shutil.which("mpiexec", path=str(Path(sys.executable).parent)) or shutil.which(
        "mpiexec"
    )
    if found is None:
        pytest.skip('needs mpiexec (pip install -e ".[distributed]" installs MPICH)')
    return found


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    """The numbers of one ``mpiexec -n 2`` run of this file, and its run folder."""
    mpiexec = _mpiexec()
    pytest.importorskip("torch", reason="the SyncBatchNorm oracle needs PyTorch")
    tmp = tmp_path_factory.mktemp("mpi")
    result, folder = tmp / "result.json", tmp / "run"
    cmd = [mpiexec, "-n", "2", sys.executable, str(HERE), str(result), str(folder)]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return json.loads(result.read_text()), folder, res


def test_two_ranks_take_the_steps_of_one_process_with_twice_the_batch(job):
    numbers, _, _ = job
    assert numbers["world_size"] == 2
    assert numbers["equivalence_sync_bn_dropout"] <= 1e-12
    assert numbers["equivalence_plain"] <= 1e-12


def test_syncbatchnorm_over_two_ranks_is_batchnorm_over_the_whole_batch(job):
    numbers, _, _ = job
    assert numbers["syncbn_vs_torch"] <= 1e-10


def test_syncbatchnorm_backward_through_the_collectives(job):
    numbers, _, _ = job
    assert numbers["syncbn_finite_differences"] <= 1e-6


def test_rank_zero_alone_writes_and_logs(job):
    _, folder, res = job
    assert sorted(p.name for p in folder.iterdir()) == [
        "checkpoint.npz",
        "curves.png",
        "metrics.json",
    ]
    assert res.stdout.count("epoch 1/2: train loss") == 1  # one rank printed it
    assert not (folder.parent / "runs").exists()  # no rank made a numbered folder


def test_a_checkpoint_of_two_ranks_resumes_in_one_process(job, tmp_path):
    """Rank 0's checkpoint after epoch 1 continues in one process and ends where one
    process running both epochs ends (SyncBatchNorm and keyed dropout: same steps)."""
    import numpy as np

    from minitorch_alexnet.checkpoint import read_checkpoint
    from minitorch_alexnet.train import TrainConfig, train

    _, folder, _ = job
    resumed = tmp_path / "resumed"
    shutil.copytree(folder, resumed)
    settings = dict(model="tiny", dataset="synthetic", backend="numpy", subset=128)
    settings.update(test_subset=64, batch_size=32, epochs=2, lr=0.02, progress=False)
    settings.update(ZERO_PADDED)
    history = train(TrainConfig(out=resumed, resume=True, **settings))
    assert [h["epoch"] for h in history] == [1, 2]
    train(TrainConfig(out=tmp_path / "alone", **settings))
    a, _ = read_checkpoint(resumed / "checkpoint.npz")
    b, _ = read_checkpoint(tmp_path / "alone" / "checkpoint.npz")
    for key, value in ((k, v) for k, v in b.items() if k.startswith("model/")):
        np.testing.assert_allclose(a[key], value, rtol=1e-4, atol=1e-5, err_msg=key)


def test_a_bad_global_batch_stops_every_rank_with_a_message(tmp_path):
    mpiexec = _mpiexec()
    cmd = [mpiexec, "-n", "2", sys.executable, str(ROOT / "examples" / "train_cifar.py")]
    cmd += ["--distributed", "--batch-size", "33", "--dataset", "synthetic", "--no-progress"]
    cmd += ["--model", "tiny", "--subset", "66", "--out", str(tmp_path / "run")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "must split evenly over 2 processes" in res.stderr


def test_syncbatchnorm_with_an_empty_slice_on_one_rank(job):
    numbers, _, _ = job
    assert numbers["syncbn_empty_slice"] <= 1e-12


def _cifar_job(tmp_path, mode):
    cmd = [_mpiexec(), "-n", "2", sys.executable, str(HERE), "--cifar-on-rank-0"]
    cmd += [str(tmp_path / "r"), mode]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)


def test_rank_0_downloads_the_data_before_the_others_load_it(tmp_path):
    """Rank 1's own download would find rank 0's lock and fall back to synthetic data."""
    res = _cifar_job(tmp_path, "download")
    assert res.returncode == 0, res.stderr[-2000:]
    assert "SYNTHETIC" not in res.stderr + res.stdout
    assert "dataset cifar10 (64 train / 32 test" in res.stdout


def test_ranks_with_different_data_stop_together_with_a_message(tmp_path):
    res = _cifar_job(tmp_path, "only-rank-0")
    assert res.returncode == 2, res.stderr[-2000:]
    assert res.stderr.count("the processes loaded different data") == 2  # every rank
    assert "rank 1: synthetic" in res.stderr and "MPI_Abort" not in res.stderr


def test_a_setting_every_rank_refuses_ends_the_job_cleanly(tmp_path):
    """Refused before the run's folder opens: exit 2 on every rank, no MPI abort."""
    cmd = [_mpiexec(), "-n", "2", sys.executable, str(ROOT / "examples" / "train_cifar.py")]
    cmd += ["--distributed", "--batch-size", "2", "--dataset", "synthetic", "--no-progress"]
    cmd += ["--model", "tiny", "--subset", "8", "--out", str(tmp_path / "run")]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "too few for its own BatchNorm statistics" in res.stderr
    assert "MPI_Abort" not in res.stderr and not (tmp_path / "run").exists()


def test_a_rank_that_fails_alone_ends_the_job_with_its_exit_code(tmp_path):
    """Rank 0 would wait for rank 1 in the next all-reduce forever; instead the job ends."""
    cmd = [
        _mpiexec(),
        "-n",
        "2",
        sys.executable,
        str(HERE),
        "--fail-on-rank-1",
        str(tmp_path / "r"),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    assert res.returncode == 3, res.stderr[-2000:]  # the exit code of a diverged run
    assert "rank 1 alone diverged" in res.stderr
