"""Data parallelism within one process: the sampler, keyed augmentation and dropout,
SyncBatchNorm at world size 1, the gradient buffer, and the NCCL path (``-m gpu``).

The two-process checks are in ``test_distributed_mpi.py`` (one ``mpiexec -n 2`` job).
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
from conftest import requires_gpu

import minitorch_alexnet as mt
from minitorch_alexnet import data, distributed, nn, optim
from minitorch_alexnet.distributed import DistributedSampler, GlobalBatchDropout
from minitorch_alexnet.gradcheck import gradcheck
from minitorch_alexnet.nn import syncbatchnorm
from minitorch_alexnet.train import TrainConfig, TrainingError, train


# ---------------------------------------------------------------- the sampler
@pytest.mark.parametrize("n", [12, 13])
@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_the_ranks_share_out_one_permutation(n, world):
    ranks = [DistributedSampler(range(n), world, r, seed=5) for r in range(world)]
    for epoch in (0, 1):
        for s in ranks:
            s.set_epoch(epoch)
        seen = [i for s in ranks for i in s]
        assert all(len(s) == -(-n // world) for s in ranks)
        # every image once; the last round filled with repeats of the first positions
        assert sorted(set(seen)) == list(range(n))
        assert len(seen) - n == (-n) % world
        order = np.random.default_rng([5, epoch, 0]).permutation(n)
        assert [next(iter(s)) for s in ranks] == list(order[:world])  # rank r: position r


def test_each_image_exactly_once_an_epoch_and_a_new_order_the_next():
    ranks = [DistributedSampler(range(50), 2, r, seed=0) for r in range(2)]
    epochs = []
    for epoch in range(2):
        for s in ranks:
            s.set_epoch(epoch)
        seen = [i for s in ranks for i in s]
        assert sorted(seen) == list(range(50))
        epochs.append(seen)
    assert epochs[0] != epochs[1]


def test_drop_last_leaves_out_the_remainder():
    ranks = [DistributedSampler(range(11), 3, r, shuffle=False, drop_last=True) for r in range(3)]
    assert [list(s) for s in ranks] == [[0, 3, 6], [1, 4, 7], [2, 5, 8]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(num_replicas=2, rank=2), "rank must be in"),
        (dict(num_replicas=0, rank=0), "num_replicas must be"),
        (dict(rank=0), "init_process_group"),
    ],
)
def test_the_sampler_refuses_what_cannot_work(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DistributedSampler(range(4), **kwargs)


def test_a_sampler_excludes_shuffle():
    train_set = data.make_synthetic(8, 2).train
    with pytest.raises(ValueError, match="sampler and shuffle"):
        data.DataLoader(train_set, shuffle=True, sampler=DistributedSampler(train_set, 1, 0))


def _batches(loader):
    return [(x.copy(), y.copy()) for x, y in loader]


def test_ranks_batches_interleave_into_the_single_process_batch():
    """Images, labels, crops and flips of rank r's row j are the single process's row
    2j + r: the split changes nothing about what the global batch holds."""
    train_set = data.make_synthetic(40, 2).train
    args = dict(augment=True, seed=9, drop_last=True)
    alone = _batches(data.DataLoader(train_set, batch_size=8, shuffle=True, **args))
    ranks = [
        _batches(
            data.DataLoader(
                train_set, batch_size=4, sampler=DistributedSampler(train_set, 2, r, seed=9), **args
            )
        )
        for r in range(2)
    ]
    assert len(alone) == len(ranks[0]) == len(ranks[1]) == 5
    for k, (x, y) in enumerate(alone):
        np.testing.assert_array_equal(x[0::2], ranks[0][k][0])
        np.testing.assert_array_equal(x[1::2], ranks[1][k][0])
        np.testing.assert_array_equal(y[1::2], ranks[1][k][1])


def test_one_rank_sampler_is_the_shuffling_loader():
    train_set = data.make_synthetic(20, 2).train
    args = dict(batch_size=6, augment=True, seed=4, epoch=1)
    alone = _batches(data.DataLoader(train_set, shuffle=True, **args))
    sampled = _batches(
        data.DataLoader(train_set, sampler=DistributedSampler(train_set, 1, 0, seed=4), **args)
    )
    for (x, y), (x1, y1) in zip(alone, sampled, strict=True):
        np.testing.assert_array_equal(x, x1)
        np.testing.assert_array_equal(y, y1)


# ---------------------------------------------------------------- dropout by global example
def test_dropout_rows_belong_to_global_examples(numpy_backend):
    x = mt.asarray(np.ones((6, 5)), "float64")
    mt.manual_seed(3)
    whole = nn.Dropout(0.4)(mt.asarray(np.ones((12, 5)), "float64"))
    for rank in range(2):
        mt.manual_seed(3)
        drop = GlobalBatchDropout(0.4, rank=rank, world_size=2)
        y = drop(x)
        np.testing.assert_array_equal(y, whole[rank::2])
        np.testing.assert_array_equal(drop.backward(np.full(y.shape, 2.0)), 2 * whole[rank::2])
    assert np.array_equal(GlobalBatchDropout(0.4, world_size=2).eval()(x), x)


def test_convert_dropout_keeps_the_order_and_the_state():
    model = nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.2), nn.Linear(4, 2))
    before = list(model.state_dict())
    distributed.convert_dropout(model, 1, 2)
    assert [type(m).__name__ for m in model] == ["Linear", "GlobalBatchDropout", "Linear"]
    assert model[1].p == 0.2 and list(model.state_dict()) == before


# ---------------------------------------------------------------- SyncBatchNorm, one process
@pytest.mark.parametrize("shape", [(4, 3, 5, 5), (6, 4), (3, 2, 7)])
def test_syncbatchnorm_gradcheck(shape):
    x = np.random.default_rng(0).normal(1.0, 2.0, shape)
    result = gradcheck(nn.SyncBatchNorm(shape[1]), x)
    assert result.ok, str(result)


@pytest.mark.torch
@pytest.mark.parametrize("train_mode", [True, False])
def test_syncbatchnorm_alone_is_torch_batchnorm(train_mode):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, g = rng.normal(2.0, 3.0, (5, 3, 4, 4)), rng.normal(size=(5, 3, 4, 4))
    bn = nn.SyncBatchNorm(3, momentum=0.2).double()
    ref = torch.nn.BatchNorm2d(3, momentum=0.2).double()
    with torch.no_grad():
        ref.weight.copy_(torch.from_numpy(rng.normal(size=3)))
        ref.running_var.fill_(2.0)
    bn.weight.data[...] = ref.weight.detach().numpy()
    bn.running_var[...] = 2.0
    bn.train(train_mode), ref.train(train_mode)
    xt = torch.from_numpy(x).requires_grad_()
    yt = ref(xt)
    yt.backward(torch.from_numpy(g))
    y = bn(mt.asarray(x))
    dx = bn.backward(mt.asarray(g))
    np.testing.assert_allclose(y, yt.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(dx, xt.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(bn.weight.grad, ref.weight.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(bn.bias.grad, ref.bias.grad.numpy(), atol=1e-12)
    np.testing.assert_allclose(bn.running_mean, ref.running_mean.numpy(), atol=1e-12)
    np.testing.assert_allclose(bn.running_var, ref.running_var.numpy(), atol=1e-12)


def test_convert_sync_batchnorm_shares_parameters_and_buffers():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten())
    weight, before = model[1].weight, list(model.state_dict())
    out = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert out is model and isinstance(model[1], nn.SyncBatchNorm)
    assert model[1].weight is weight and list(model.state_dict()) == before
    assert isinstance(nn.SyncBatchNorm.convert_sync_batchnorm(nn.BatchNorm1d(3)), nn.SyncBatchNorm)


def test_syncbatchnorm_refuses_a_group_without_all_reduce():
    with pytest.raises(TypeError, match="all_reduce"):
        nn.SyncBatchNorm(3, process_group=object())


# ---------------------------------------------------------------- the gradient buffer
class _Alone:
    """A communicator of one rank, without MPI."""

    rank, world_size = 0, 1

    def all_reduce(self, a):
        return a


def _step(opt_of, model_seed=0):
    mt.manual_seed(model_seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    opt = opt_of(optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-3))
    x = mt.asarray(np.random.default_rng(0).normal(size=(6, 5)), "float32")
    for _ in range(2):
        opt.zero_grad()
        model.backward(model(x))
        opt.step()
    return model, opt


def test_the_gradients_are_views_of_one_buffer_and_the_step_is_sgds():
    plain, _ = _step(lambda o: o)
    model, opt = _step(lambda o: distributed.DistributedOptimizer(o, _Alone()))
    (flat,) = opt.bucket.flats.values()
    assert flat.size == sum(p.size for p in model.parameters())
    assert all(np.shares_memory(p.grad, flat) for p in model.parameters())
    for p, q in zip(plain.parameters(), model.parameters()):
        np.testing.assert_array_equal(p.data, q.data)
    assert opt.param_groups is opt.optimizer.param_groups  # schedulers see the same groups


def test_a_replaced_gradient_is_refused_with_the_fix():
    model, opt = _step(lambda o: distributed.DistributedOptimizer(o, _Alone()))
    model.zero_grad()  # sets .grad to None: no longer the buffer's views
    with pytest.raises(distributed.DistributedError, match="zero_grad"):
        opt.step()


# ---------------------------------------------------------------- set-up and its errors
def test_sync_bn_without_distributed_is_refused(tmp_path):
    config = TrainConfig(model="tiny", dataset="synthetic", sync_bn=True, out=tmp_path / "r")
    with pytest.raises(TrainingError, match="--sync-bn needs --distributed"):
        train(config)


def test_missing_mpi4py_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)
    with pytest.raises(distributed.DistributedError, match=r"minitorch-alexnet\[distributed\]"):
        distributed.comm.mpi_world()


@pytest.fixture
def fresh_world(monkeypatch):
    """init_process_group's communicator and SyncBatchNorm's default, undone afterwards."""
    pytest.importorskip("mpi4py", reason='needs mpi4py: pip install -e ".[distributed]"')
    monkeypatch.setattr(distributed.comm, "_world", None)
    monkeypatch.setattr(syncbatchnorm, "_default_group", None)


def test_mpi_world_size_one_without_mpiexec(fresh_world):
    comm = distributed.init_process_group("mpi")
    assert (comm.rank, comm.world_size, comm.backend) == (0, 1, "mpi")
    a = np.arange(5.0)
    assert comm.all_reduce(a) is a and np.array_equal(a, np.arange(5.0))
    assert comm.all_reduce_floats([1.5, 2.0]) == [1.5, 2.0]
    with pytest.raises(distributed.DistributedError, match="contiguous"):
        comm.all_reduce(np.zeros((4, 4))[:, 0])


# ---------------------------------------------------------------- NCCL (a GPU)
@pytest.mark.gpu
@requires_gpu
def test_nccl_world_size_one(fresh_world):
    with mt.use_backend("cupy"):
        cupy = mt.get_backend().xp
        comm = distributed.init_process_group()  # the active backend is on a GPU: NCCL
        assert comm.backend == "nccl" and comm.world_size == 1
        a = cupy.arange(6, dtype=cupy.float32)
        comm.all_reduce(a)
        comm.broadcast(a, 0)
        comm.barrier()
        np.testing.assert_array_equal(cupy.asnumpy(a), np.arange(6))
        plain, _ = _step(lambda o: o)
        model, _ = _step(lambda o: distributed.DistributedOptimizer(o, comm))
        for p, q in zip(plain.parameters(), model.parameters()):
            np.testing.assert_array_equal(cupy.asnumpy(p.data), cupy.asnumpy(q.data))


# ---------------------------------------------------------------- review fixes
class _OtherRank:
    """A group of two whose other rank holds ``other``: its sums join every all-reduce."""

    def __init__(self, other):
        self.other, self.calls = other, 0

    def all_reduce(self, a):
        self.calls += 1
        if self.calls == 1:  # forward: [S1, S2, M] of the other rank's slice
            x3 = self.other.reshape(self.other.shape[0], self.other.shape[1], -1)
            count = [x3.shape[0] * x3.shape[2]]
            a += np.concatenate([x3.sum(axis=(0, 2)), (x3 * x3).sum(axis=(0, 2)), count])
        return a


def test_an_empty_slice_joins_the_all_reduce_with_zeros(numpy_backend):
    """A rank without examples must not raise before the all-reduce (the others would
    wait in it forever): it adds zeros, and the statistics are the other rank's."""
    other = np.random.default_rng(2).normal(1.0, 2.0, (5, 3))
    group = _OtherRank(other)
    sync = nn.SyncBatchNorm(3, process_group=group).double()
    y = sync(mt.asarray(np.zeros((0, 3)), "float64"))
    assert y.shape == (0, 3) and group.calls == 1
    bn = nn.BatchNorm1d(3).double()
    bn(mt.asarray(other, "float64"))
    np.testing.assert_allclose(sync.running_mean, bn.running_mean, atol=1e-12)
    np.testing.assert_allclose(sync.running_var, bn.running_var, atol=1e-12)
    dx = sync.backward(mt.asarray(np.zeros((0, 3)), "float64"))
    assert dx.shape == (0, 3) and group.calls == 2  # backward's all-reduce too
    np.testing.assert_array_equal(sync.weight.grad, np.zeros(3))


def test_a_group_of_one_with_one_value_per_channel_is_refused(fresh_world):
    """mpiexec -n 1 --sync-bn with batch 1: M = 1 made the running variance m/(m-1) = inf."""
    comm = distributed.init_process_group("mpi")
    sync = nn.SyncBatchNorm(3, process_group=comm)
    with pytest.raises(ValueError, match="more than one value per channel over all processes"):
        sync(mt.asarray(np.ones((1, 3)), "float32"))
    assert np.all(np.isfinite(sync.running_var))


def test_syncbatchnorm_sums_in_float64(numpy_backend):
    """E[x^2] - mu^2 in float32 loses the variance of values far from 0."""
    x = np.random.default_rng(0).normal(1e4, 1.0, (4096, 2)).astype("float32")
    sync = nn.SyncBatchNorm(2, momentum=1.0, process_group=_Alone())
    sync(mt.asarray(x, "float32"))
    want = x.astype("float64").var(axis=0, ddof=1)
    np.testing.assert_allclose(sync.running_var, want, rtol=1e-3)


def test_the_loader_and_the_sampler_share_one_epoch_permutation():
    from minitorch_alexnet.data.loader import epoch_permutation

    train_set = data.make_synthetic(13, 2).train
    loader = data.DataLoader(train_set, batch_size=4, shuffle=True, seed=7)
    sampler = DistributedSampler(train_set, 1, 0, seed=7)
    sampler.set_epoch(2)
    want = epoch_permutation(7, 2, 13)
    np.testing.assert_array_equal(np.asarray(loader._order(2)), want)
    np.testing.assert_array_equal(sampler.permutation(), want)


def test_one_mapping_from_errors_to_exit_codes():
    from minitorch_alexnet.checkpoint import SaveInterrupted
    from minitorch_alexnet.distributed import training
    from minitorch_alexnet.train.loop import Diverged
    from minitorch_alexnet.train.trainer import exit_code

    assert not hasattr(training, "EXIT_CODES") and not hasattr(training, "exit_code")
    errors = [TrainingError("x"), PermissionError("x"), Diverged("x"), KeyboardInterrupt()]
    assert [exit_code(e) for e in errors] == [2, 2, 3, 130]
    assert exit_code(SaveInterrupted.__new__(SaveInterrupted)) == 130
    assert exit_code(ValueError("a bug")) == 1


def test_one_process_gets_the_plain_hooks_and_one_local_rank_helper(fresh_world):
    from minitorch_alexnet.distributed import training
    from minitorch_alexnet.train.trainer import exit_code

    config = TrainConfig(model="tiny", dataset="synthetic")
    hooks = training.parallel_hooks(config, TrainingError, exit_code)
    assert type(hooks) is training.Parallel
    assert not hasattr(training, "SingleProcess")
    assert distributed.comm._local_rank(distributed.comm.mpi_world()) == 0
    assert distributed.init_process_group("mpi").local_rank == 0
