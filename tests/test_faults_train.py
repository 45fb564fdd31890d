"""Training never loses a run and never reports something untrue.

Each test is a fault a probe found in examples/train_cifar.py and the training
package: a new run replacing a finished one, two runs sharing a folder, a
"last good" checkpoint with infinite BatchNorm statistics, flags that crash
instead of being refused, a resume into a folder where the checkpoint should be,
and an interrupted save reported as done.
"""

import importlib.util
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from minitorch_alexnet import models, nn
from minitorch_alexnet.checkpoint import SaveInterrupted, read_checkpoint
from minitorch_alexnet.train import ConfigError, Diverged, TrainConfig, loop, rundir, trainer

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "train_cifar.py"
SMALL = ["--dataset", "synthetic", "--model", "tiny", "--backend", "numba", "--no-progress"]
SMALL += ["--subset", "128", "--test-subset", "64", "--batch-size", "64", "--epochs", "1"]


@pytest.fixture(scope="module")
def T():
    spec = importlib.util.spec_from_file_location("train_cifar_faults", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bytes(folder):
    """The run's files as bytes, to show that nothing in them changed."""
    return {p.name: p.read_bytes() for p in sorted(Path(folder).iterdir()) if p.is_file()}


def _epochs(folder):
    return read_checkpoint(Path(folder) / "checkpoint.npz")[1]["epoch"]


def _config(tmp_path, **kw):
    settings = dict(model="tiny", dataset="synthetic", backend="numba", test_subset=32)
    settings.update(epochs=1, batch_size=64, out=tmp_path / "run", progress=False)
    return TrainConfig(**{**settings, **kw})


def _dead_pid():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# ---------------------------------------------------------------- 3: never replace a run
def test_runs_without_out_get_new_numbered_folders(T, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert T.main(SMALL) == 0
    first = _bytes("runs/cifar/1")
    assert T.main(SMALL) == 0  # the README's command, run twice
    assert sorted(os.listdir("runs/cifar")) == ["1", "2"]
    assert _bytes("runs/cifar/1") == first
    assert {"checkpoint.npz", "metrics.json"} <= set(_bytes("runs/cifar/2"))
    assert "in runs/cifar/2" in capsys.readouterr().out.strip().splitlines()[-1]
    assert not any(p.name == rundir.LOCK_NAME for p in Path("runs/cifar").rglob("*"))


def test_resume_without_out_continues_the_latest_run(T, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    two = [*SMALL[:-2], "--epochs", "2"]
    assert T.main([*two, "--stop-after", "1"]) == 0
    assert T.main([*two, "--stop-after", "1"]) == 0
    assert T.main([*two, "--resume"]) == 0
    assert _epochs("runs/cifar/1") == 1 and _epochs("runs/cifar/2") == 2


def test_an_out_that_holds_a_run_is_refused_and_kept(T, tmp_path, capsys):
    out = tmp_path / "run"
    assert T.main([*SMALL, "--out", str(out)]) == 0
    before = _bytes(out)
    capsys.readouterr()
    assert T.main([*SMALL, "--out", str(out), "--seed", "1"]) == 2
    err = capsys.readouterr().err
    assert "already holds a run" in err and "--resume" in err and "--overwrite" in err
    assert "Traceback" not in err
    assert _bytes(out) == before
    # --overwrite replaces it on purpose
    assert T.main([*SMALL, "--out", str(out), "--seed", "1", "--overwrite"]) == 0
    after = read_checkpoint(out / "checkpoint.npz")[1]["extra"]["config"]
    assert after["seed"] == 1


def test_an_empty_out_is_refused(T, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        T.main([*SMALL, "--out", ""])
    assert e.value.code == 2
    assert "argument --out" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
    with pytest.raises(ConfigError, match="out"):
        TrainConfig(out="")


@pytest.mark.parametrize(
    "flags,field",
    [(["--overwrite", "--resume", "--out", "x"], "--overwrite"), (["--overwrite"], "--overwrite")],
)
def test_overwrite_needs_out_and_contradicts_resume(T, capsys, flags, field):
    with pytest.raises(SystemExit) as e:
        T.parse_args(flags)
    assert e.value.code == 2 and f"argument {field}" in capsys.readouterr().err


def test_a_run_that_fails_before_writing_leaves_no_empty_folder(T, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert T.main([*SMALL, "--backend", "numpy", "--cuda-graph"]) == 2
    assert not Path("runs/cifar/1").exists()


# ---------------------------------------------------------------- 6: one run per folder
HOLD = (
    "import sys, time; from minitorch_alexnet.train import rundir; "
    "rundir.RunLock(sys.argv[1]).acquire(); print('locked', flush=True); time.sleep(120)"
)


def test_a_second_run_on_a_folder_in_use_is_refused(T, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(out)], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        assert T.main([*SMALL, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert f"in use by another run (pid {holder.pid}" in err and "Traceback" not in err
        assert sorted(os.listdir(out)) == [rundir.LOCK_NAME]
    finally:
        holder.kill()
        holder.wait()
    # the holder died without cleaning up: its lock is stale, and taken over
    assert (out / rundir.LOCK_NAME).read_text().strip() == str(holder.pid)
    assert T.main([*SMALL, "--out", str(out)]) == 0
    assert not (out / rundir.LOCK_NAME).exists()


def test_two_runs_started_together_on_one_folder_lose_nothing(tmp_path):
    out = tmp_path / "run"
    argv = [sys.executable, str(SCRIPT), *SMALL, "--out", str(out)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}  # this tree's package
    runs = [
        subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(2)
    ]
    results = sorted((p.wait(timeout=600), p.stderr.read()) for p in runs)
    assert [code for code, _ in results] == [0, 2]
    refused = results[1][1]
    assert "in use by another run (" in refused or "already holds a run" in refused
    assert _epochs(out) == 1


def test_the_lock_without_flock_removes_the_lock_of_a_dead_process(tmp_path, monkeypatch):
    monkeypatch.setattr(rundir, "fcntl", None)  # the portable O_EXCL lock file
    stale = tmp_path / rundir.LOCK_NAME
    stale.write_text(f"{_dead_pid()}\n")
    lock = rundir.RunLock(tmp_path).acquire()
    assert stale.read_text().strip() == str(os.getpid())
    with pytest.raises(rundir.TrainingError, match=f"pid {os.getpid()}"):
        rundir.RunLock(tmp_path).acquire()
    lock.release()
    assert not stale.exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        stale.write_text(f"{sleeper.pid}\n")  # alive: not stale
        with pytest.raises(rundir.TrainingError, match=f"pid {sleeper.pid}"):
            rundir.RunLock(tmp_path).acquire()
    finally:
        sleeper.kill()
        sleeper.wait()
    old = time.time() - 60
    stale.write_text("")  # a pid never written, long ago
    os.utime(stale, (old, old))
    rundir.RunLock(tmp_path).acquire().release()


# ---------------------------------------------------------------- 9: divergence in the state
def _poisoned(model, at):
    """``model`` whose first BatchNorm running variance becomes inf at training forward ``at``."""
    forward, calls = model.forward, [0]
    bn = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))

    def patched(x):
        out = forward(x)
        if model.training:
            calls[0] += 1
            if calls[0] == at:
                bn.running_var[0] = np.inf  # the loss stays finite: training uses batch stats
        return out

    model.forward = patched
    return model


def test_a_non_finite_statistic_is_divergence_and_never_saved(T, tmp_path, monkeypatch, capsys):
    real_build = trainer.build_model
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: _poisoned(real_build(*a, **k), 3))
    out = tmp_path / "run"  # 2 steps per epoch: poisoned in epoch 2
    assert T.main([*SMALL[:-2], "--epochs", "3", "--out", str(out)]) == 3
    err = capsys.readouterr().err
    assert "running_var became NaN or infinite in epoch 2/3" in err
    assert "last good checkpoint (epoch 1)" in err and "Traceback" not in err
    arrays, meta = read_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 1
    assert all(np.isfinite(v).all() for v in arrays.values() if v.dtype.kind == "f")


def test_resume_refuses_a_checkpoint_with_non_finite_state(T, tmp_path, monkeypatch, capsys):
    real_build = trainer.build_model
    monkeypatch.setattr(trainer, "build_model", lambda *a, **k: _poisoned(real_build(*a, **k), 1))
    monkeypatch.setattr(trainer, "check_finite_state", lambda *a: None)  # as before the fix
    out = tmp_path / "run"
    three = [*SMALL[:-2], "--epochs", "3", "--out", str(out)]
    assert T.main([*three, "--stop-after", "1"]) == 0
    monkeypatch.undo()
    capsys.readouterr()
    assert T.main([*three, "--resume"]) == 2
    err = capsys.readouterr().err
    assert "running_var became NaN or infinite" in err and "cannot be continued" in err


def test_the_state_is_checked_once_per_checkpoint_not_per_step(tmp_path, monkeypatch):
    calls = []
    real = trainer.check_finite_state
    monkeypatch.setattr(trainer, "check_finite_state", lambda *a: calls.append(a) or real(*a))
    config = _config(tmp_path, subset=256, epochs=2)
    trainer.train(config)  # 2 epochs of 4 steps
    assert len(calls) == 2
    model = models.build_model("tiny")
    name, weight = next(iter(model.named_parameters()))
    weight.data[0] = np.nan
    optimizer, _ = trainer.make_optimizer(model, config, 4)
    with pytest.raises(Diverged, match=rf"^{name} became NaN or infinite here$"):
        loop.check_finite_state(model, optimizer, "here")


# ---------------------------------------------------------------- 15: flags that cannot work
@pytest.mark.parametrize(
    "flag,value",
    [
        ("--lr", "-1"),
        ("--lr", "0"),
        ("--lr", "nan"),
        ("--lr", "inf"),
        ("--momentum", "-0.5"),
        ("--momentum", "0"),
        ("--momentum", "1"),
        ("--weight-decay", "-1"),
        ("--weight-decay", "nan"),
        ("--label-smoothing", "-0.1"),
        ("--label-smoothing", "1"),
        ("--label-smoothing", "1.5"),
        ("--seed", "-1"),
        ("--epochs", "0"),
        ("--batch-size", "-2"),
    ],
)
def test_flags_that_cannot_work_are_usage_errors(T, capsys, flag, value):
    with pytest.raises(SystemExit) as e:
        T.parse_args([flag, value])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert f"argument {flag}: must be" in err and "usage:" in err and "Traceback" not in err


def test_a_training_batch_of_one_with_batchnorm1d_is_refused(T, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    base = ["--dataset", "synthetic", "--backend", "numba", "--test-subset", "8", "--no-progress"]
    assert T.main([*base, "--subset", "8", "--batch-size", "1"]) == 2
    err = capsys.readouterr().err
    assert "batches of 1 image" in err and "BatchNorm1d" in err and "--batch-size 2" in err
    assert "Traceback" not in err
    assert T.main([*base, "--subset", "1"]) == 2  # one image: one batch of 1
    assert "at least 2 training images" in capsys.readouterr().err
    assert not Path("runs/cifar/1").exists()
    # BatchNorm2d alone (tiny) has a variance over each image's pixels: allowed
    config = TrainConfig(model="tiny", batch_size=1)
    trainer.check_batch_statistics(models.build_model("tiny"), config, 8)


def test_a_last_batch_of_one_is_dropped(tmp_path, monkeypatch, capsys):
    """65 images in batches of 64 with BatchNorm1d: one step per epoch, the 65th left out."""

    def small_with_batchnorm1d(name, num_classes):
        layers = [nn.Flatten(), nn.Linear(3 * 32 * 32, 16), nn.BatchNorm1d(16), nn.ReLU()]
        return nn.Sequential(*layers, nn.Linear(16, num_classes))

    monkeypatch.setattr(trainer, "build_model", small_with_batchnorm1d)
    assert len(trainer.train(_config(tmp_path, subset=65))) == 1
    assert "1 epochs of 1 steps, batch 64" in capsys.readouterr().out


# ---------------------------------------------------------------- 21: a folder as checkpoint
def test_resume_into_a_folder_named_checkpoint_is_refused_up_front(T, tmp_path, capsys):
    out = tmp_path / "run"
    (out / "checkpoint.npz").mkdir(parents=True)
    assert T.main([*SMALL, "--out", str(out), "--resume"]) == 2
    captured = capsys.readouterr()
    assert "checkpoint.npz is a folder, not a checkpoint" in captured.err
    assert "epoch 1/1" not in captured.out and "starting from scratch" not in captured.out
    assert sorted(os.listdir(out)) == ["checkpoint.npz"]


# ---------------------------------------------------------------- 20: Ctrl-C while saving
class _CtrlCWhilePacked(dict):
    """``extra`` whose packing meets a Ctrl-C: the save is abandoned midway."""

    def __iter__(self):
        raise KeyboardInterrupt


@pytest.mark.parametrize("finished", [False, True])
def test_ctrl_c_while_saving_reports_what_the_file_holds(
    T, tmp_path, monkeypatch, capsys, finished
):
    real_save, calls = trainer.save_checkpoint, [0]

    def save(path, *args, **kwargs):
        calls[0] += 1
        if calls[0] != 2:
            return real_save(path, *args, **kwargs)
        if not finished:  # epoch 2's save is abandoned: the file keeps epoch 1
            return real_save(path, *args, **{**kwargs, "extra": _CtrlCWhilePacked()})
        real_save(path, *args, **kwargs)  # a first Ctrl-C lets the write finish
        raise SaveInterrupted(Path(path), 2, True, 2)

    monkeypatch.setattr(trainer, "save_checkpoint", save)
    out = tmp_path / "run"
    assert T.main([*SMALL[:-2], "--epochs", "3", "--out", str(out)]) == 130
    err = capsys.readouterr().err
    held = 2 if finished else 1
    assert _epochs(out) == held
    assert f"interrupted while saving epoch 2. {out / 'checkpoint.npz'} holds epoch {held};" in err
    assert "Traceback" not in err and not (out / rundir.LOCK_NAME).exists()


def test_resume_refuses_a_checkpoint_without_run_settings_and_changes_nothing(tmp_path):
    """extra: null (a checkpoint not written by a run) used to read as "written with other
    settings (model: None -> ...)"; and a settings mismatch used to be found only after
    the weights had been loaded into the model."""
    from minitorch_alexnet import optim
    from minitorch_alexnet.checkpoint import save_checkpoint
    from minitorch_alexnet.train.trainer import (
        RESUME_DEFAULTS,
        RESUME_KEYS,
        TrainingError,
        resume_from,
    )

    def setup():
        model = models.tiny_cnn()
        opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
        return model, opt, optim.OneCycleLR(opt, max_lr=0.1, total_steps=10)

    saved_model, saved_opt, saved_sched = setup()
    for p in saved_model.parameters():
        p.data += 1.0  # differs from a fresh model's weights
    settings = {**{k: RESUME_DEFAULTS.get(k) for k in RESUME_KEYS}, "model": "tiny"}
    for extra, match in (
        (None, "holds no run settings"),
        ({"config": {"model": "alexnet"}}, "other settings"),
    ):
        path = save_checkpoint(tmp_path / "c.npz", saved_model, saved_opt, saved_sched, 1, extra)
        model, opt, sched = setup()
        before = [p.data.copy() for p in model.parameters()]
        with pytest.raises(TrainingError, match=match):
            resume_from(path, model, opt, sched, settings)
        for a, p in zip(before, model.parameters()):
            np.testing.assert_array_equal(a, p.data)  # nothing loaded
