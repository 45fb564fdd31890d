"""Checkpoints: round trip, atomic writes, no pickles, clear errors, and loading across backends."""

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import backend as B
from minitorch_alexnet import nn, optim
from minitorch_alexnet.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint,
    save_checkpoint,
)


def _model(width=4, classes=5):
    return nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1),
        nn.BatchNorm2d(width),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(width * 4 * 4, classes),
    )


def _setup(seed=0, backend="numpy", adam=False):
    with B.use_backend(backend):
        mt.manual_seed(seed)
        model = _model()
        if adam:
            opt = optim.AdamW(model.parameters(), lr=0.01)
        else:
            opt = optim.SGD(
                model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4
            )
        sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=0.2)
    return model, opt, sched


def _batch(step):
    rng = np.random.default_rng(100 + step)
    return rng.standard_normal((6, 3, 8, 8)).astype(np.float32), rng.integers(0, 5, 6)


def _train(model, opt, sched, steps, start=0):
    crit = nn.CrossEntropyLoss()
    model.train()
    for s in range(start, start + steps):
        x, y = _batch(s)
        opt.zero_grad()
        crit(model(B.asarray(x)), B.asarray(y, "int64"))
        model.backward(crit.backward())
        opt.step()
        sched.step()


def _host_state(model):
    return {k: B.to_numpy(v).copy() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("adam", [False, True], ids=["sgd", "adamw"])
def test_round_trip_restores_everything_and_training_continues_identically(tmp_path, adam):
    with B.use_backend("numpy"):
        model, opt, sched = _setup(adam=adam)
        _train(model, opt, sched, 3)
        path = save_checkpoint(
            tmp_path / "ck.npz", model, opt, sched, epoch=3, extra={"acc": [0.5]}
        )
        rng_state = B.get_rng_state()
        B.host_rng().random(5)  # move the generator on; loading must bring it back

        model2, opt2, sched2 = _setup(seed=1, adam=adam)  # different initial weights
        meta = load_checkpoint(path, model2, opt2, sched2)
        assert meta["epoch"] == 3 and meta["extra"] == {"acc": [0.5]}
        assert B.get_rng_state() == rng_state
        for k, v in _host_state(model).items():
            np.testing.assert_array_equal(_host_state(model2)[k], v)
        assert sched2.get_last_lr() == sched.get_last_lr()
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]

        _train(model, opt, sched, 3, start=3)
        _train(model2, opt2, sched2, 3, start=3)
        for k, v in _host_state(model).items():
            np.testing.assert_array_equal(_host_state(model2)[k], v)


def test_file_holds_no_pickles_and_stores_buffers(tmp_path):
    model, opt, sched = _setup()
    _train(model, opt, sched, 1)
    path = save_checkpoint(tmp_path / "ck.npz", model, opt, sched, epoch=1)
    with np.load(path, allow_pickle=False) as z:
        assert all(z[k].dtype != object for k in z.files)
        assert "model/1.running_mean" in z.files and "model/0.weight" in z.files
        np.testing.assert_array_equal(z["model/1.running_var"], B.to_numpy(model[1].running_var))
    arrays, meta = read_checkpoint(path)
    assert meta["epoch"] == 1 and meta["optimizer_class"] == "SGD"
    assert any(k.startswith("optimizer/") for k in arrays)


def test_save_is_atomic(tmp_path, monkeypatch):
    model, opt, sched = _setup()
    path = save_checkpoint(tmp_path / "ck.npz", model, epoch=1)
    before = path.read_bytes()

    def broken_savez(f, **arrays):
        f.write(b"partial garbage")
        raise KeyboardInterrupt  # interrupted halfway through writing

    monkeypatch.setattr(np, "savez", broken_savez)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, model, epoch=2)
    assert path.read_bytes() == before  # the old checkpoint is untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]  # no temporary left
    monkeypatch.undo()
    assert load_checkpoint(path, _model())["epoch"] == 1


def test_missing_and_corrupt_files(tmp_path):
    model = _model()
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.npz", model)
    path = save_checkpoint(tmp_path / "ck.npz", model, epoch=1)
    blob = path.read_bytes()
    path.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path, model)
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(CheckpointError, match="not a minitorch_alexnet checkpoint"):
        load_checkpoint(tmp_path / "other.npz", model)


def test_mismatched_model_and_optimizer_are_reported(tmp_path):
    model, opt, sched = _setup()
    path = save_checkpoint(tmp_path / "ck.npz", model, opt, sched, epoch=1)
    with pytest.raises(CheckpointError, match="shape mismatches") as e:
        load_checkpoint(path, _model(width=6))
    assert str(path) in str(e.value)
    with pytest.raises(CheckpointError, match="missing keys"):
        load_checkpoint(path, nn.Sequential(_model(), nn.ReLU()))
    other = _model()
    with pytest.raises(CheckpointError, match="SGD optimizer, not of a Adam"):
        load_checkpoint(path, other, optim.Adam(other.parameters()))
    bare = save_checkpoint(tmp_path / "bare.npz", model)
    with pytest.raises(CheckpointError, match="no optimizer state"):
        load_checkpoint(bare, other, optim.SGD(other.parameters(), lr=0.1))


@pytest.mark.parametrize("src,dst", [("numpy", "numba"), ("numba", "numpy")])
def test_checkpoint_moves_between_cpu_backends(tmp_path, src, dst):
    model, opt, sched = _setup(backend=src)
    with B.use_backend(src):
        _train(model, opt, sched, 2)
        path = save_checkpoint(tmp_path / "ck.npz", model, opt, sched, epoch=2)
    model2, opt2, sched2 = _setup(seed=3, backend=dst)
    with B.use_backend(dst):
        meta = load_checkpoint(path, model2, opt2, sched2)
        assert meta["backend"] == src
        _train(model, opt, sched, 2, start=2)
        _train(model2, opt2, sched2, 2, start=2)
    for k, v in _host_state(model).items():
        np.testing.assert_array_equal(_host_state(model2)[k], v)


@pytest.mark.gpu
def test_checkpoint_moves_between_cpu_and_gpu(tmp_path):
    cp = pytest.importorskip("cupy")
    if "cupy" not in B.available_backends():
        pytest.skip("no usable CUDA GPU")
    model, opt, sched = _setup(backend="numba")
    with B.use_backend("numba"):
        _train(model, opt, sched, 2)
        path = save_checkpoint(tmp_path / "cpu.npz", model, opt, sched, epoch=2)
    model2, opt2, sched2 = _setup(seed=3, backend="cupy")
    with B.use_backend("cupy"):
        load_checkpoint(path, model2, opt2, sched2)
        p = next(model2.parameters())
        assert isinstance(p.data, cp.ndarray)
        assert all(
            isinstance(b, cp.ndarray)
            for s in opt2.state.values()
            for b in s.values()
            if hasattr(b, "shape")
        )
        path2 = save_checkpoint(tmp_path / "gpu.npz", model2, opt2, sched2, epoch=2)
    for k, v in _host_state(model).items():
        np.testing.assert_array_equal(_host_state(model2)[k], v)
    model3, opt3, sched3 = _setup(seed=4, backend="numpy")
    with B.use_backend("numpy"):
        load_checkpoint(path2, model3, opt3, sched3)
    for k, v in _host_state(model).items():
        np.testing.assert_array_equal(_host_state(model3)[k], v)


def test_a_failed_load_leaves_the_model_as_it_was(tmp_path):
    from minitorch_alexnet import nn, optim
    from minitorch_alexnet.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    source = nn.Linear(3, 2)
    save_checkpoint(tmp_path / "c.npz", source, optim.SGD(source.parameters(), lr=0.1))
    target = nn.Linear(3, 2)
    before = {k: v.copy() for k, v in target.state_dict().items()}
    wrong_optimizer = optim.Adam(target.parameters())
    with pytest.raises(CheckpointError, match="SGD optimizer, not of a Adam"):
        load_checkpoint(tmp_path / "c.npz", target, wrong_optimizer)
    for k, v in target.state_dict().items():
        np.testing.assert_array_equal(v, before[k])


def test_a_file_that_is_not_an_archive_is_named_without_pickle_advice(tmp_path):
    from minitorch_alexnet.checkpoint import CheckpointError, read_checkpoint

    path = tmp_path / "c.npz"
    path.write_text("hello")
    with pytest.raises(CheckpointError, match="not an .npz archive") as info:
        read_checkpoint(path)
    assert "pickle" not in str(info.value)


def test_extra_arrays_any_layout_round_trip_and_unstorable_values_write_nothing(tmp_path):
    model = _model()
    grid = np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3))
    path = save_checkpoint(
        tmp_path / "ck.npz", model, extra={"grid": grid, 3: ["a", None, 1.5], "__x": True}
    )
    extra = load_checkpoint(path, _model())["extra"]
    np.testing.assert_array_equal(extra["grid"], grid)
    assert extra[3] == ["a", None, 1.5] and extra["__x"] is True
    for bad in ({"objects": np.array([{}], dtype=object)}, {(1, 2): 3}, object()):
        with pytest.raises(TypeError, match="cannot store"):
            save_checkpoint(tmp_path / "bad.npz", model, extra=bad)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck.npz"]
