"""Training: examples/train_cifar.py end to end and the minitorch_alexnet.train API it calls,
on small synthetic or miniature CIFAR-format data."""

import importlib.util
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import data, models, nn
from minitorch_alexnet.checkpoint import read_checkpoint
from minitorch_alexnet.train import (
    Diverged,
    TrainConfig,
    TrainingError,
    evaluate,
    loop,
    run,
    train,
    trainer,
)

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "train_cifar.py"


@pytest.fixture(scope="module")
def T():
    spec = importlib.util.spec_from_file_location("train_cifar", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _flags(out, *extra):
    return [
        "--dataset",
        "synthetic",
        "--model",
        "tiny",
        "--backend",
        "numba",
        "--subset",
        "256",
        "--test-subset",
        "128",
        "--batch-size",
        "64",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


def _metrics(out):
    return json.loads((Path(out) / "metrics.json").read_text())


def test_short_synthetic_run_learns_and_writes_its_outputs(T, tmp_path, capsys):
    out = tmp_path / "run"
    argv = _flags(out, "--epochs", "2", "--subset", "1000", "--test-subset", "500")
    argv += ["--batch-size", "32", "--lr", "0.05"]
    assert T.main(argv) == 0
    stdout = capsys.readouterr().out
    history = _metrics(out)
    assert [h["epoch"] for h in history] == [1, 2]
    assert set(history[0]) == {
        "epoch",
        "train_loss",
        "train_acc",
        "test_loss",
        "test_acc",
        "seconds",
        "images_per_second",
    }
    assert history[-1]["test_acc"] > 0.5  # chance is 0.1
    assert history[-1]["train_loss"] < history[0]["train_loss"]
    if importlib.util.find_spec("matplotlib") is not None:
        assert (out / "curves.png").stat().st_size > 0
    else:  # the plot is optional ([plot] extra); the run must not fail without it
        assert not (out / "curves.png").exists()
    _, meta = read_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 2
    last = stdout.strip().splitlines()[-1]
    assert last.startswith("done: dataset synthetic | backend numba | model tiny")
    assert "best test accuracy" in last and "final test accuracy" in last and "total time" in last
    assert "NOT CIFAR-10's" in stdout


def _all_arrays(path):
    arrays, meta = read_checkpoint(path)
    return arrays, meta


def test_resume_gives_the_uninterrupted_result(T, tmp_path):
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert T.main(_flags(whole, "--epochs", "3")) == 0
    assert T.main(_flags(parts, "--epochs", "3", "--stop-after", "1")) == 0
    assert read_checkpoint(parts / "checkpoint.npz")[1]["epoch"] == 1
    assert T.main(_flags(parts, "--epochs", "3", "--stop-after", "1", "--resume")) == 0
    assert T.main(_flags(parts, "--epochs", "3", "--resume")) == 0
    a, meta_a = _all_arrays(whole / "checkpoint.npz")
    b, meta_b = _all_arrays(parts / "checkpoint.npz")
    assert meta_a["epoch"] == meta_b["epoch"] == 3
    assert sorted(a) == sorted(b)
    assert any(k.startswith("optimizer/") for k in a)
    for k in a:  # weights, BatchNorm buffers and momentum buffers, bit for bit
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    for ha, hb in zip(_metrics(whole), _metrics(parts)):
        for key in ("train_loss", "train_acc", "test_loss", "test_acc"):
            assert ha[key] == hb[key]


def test_resume_with_other_settings_is_refused(T, tmp_path, capsys):
    out = tmp_path / "run"
    assert T.main(_flags(out, "--epochs", "2", "--stop-after", "1")) == 0
    capsys.readouterr()
    assert T.main(_flags(out, "--epochs", "2", "--lr", "0.3", "--resume")) == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "lr: 0.1 -> 0.3" in err and "Traceback" not in err


def _sabotaged(model, at, what):
    """``model`` whose training forward number ``at`` and later return NaN or raise Ctrl-C."""
    forward = model.forward
    calls = [0]

    def patched(x):
        out = forward(x)
        if model.training:
            calls[0] += 1
            if calls[0] >= at:
                if what == "interrupt":
                    raise KeyboardInterrupt
                out = out * float("nan")
        return out

    model.forward = patched  # an instance attribute: same parameters, same state_dict keys
    return model


@pytest.mark.parametrize("what,code", [("nan", 3), ("interrupt", 130)])
def test_nan_loss_or_ctrl_c_keeps_the_last_good_checkpoint(
    T, tmp_path, capsys, monkeypatch, what, code
):
    real_build = trainer.build_model  # the one the package's run builds its model with
    # 256 images in batches of 64: 4 steps per epoch; sabotage the 2nd step of epoch 2
    monkeypatch.setattr(
        trainer, "build_model", lambda *a, **k: _sabotaged(real_build(*a, **k), 6, what)
    )
    out = tmp_path / "run"
    assert T.main(_flags(out, "--epochs", "3")) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    _, meta = read_checkpoint(out / "checkpoint.npz")
    assert meta["epoch"] == 1
    arrays, _ = read_checkpoint(out / "checkpoint.npz")
    assert all(np.isfinite(v).all() for k, v in arrays.items() if v.dtype.kind == "f")
    assert len(_metrics(out)) == 1
    if what == "nan":
        assert "the training loss became nan" in err and "last good checkpoint (epoch 1)" in err
    else:
        assert "interrupted in epoch 2" in err and "holds epoch 1; continue with --resume" in err
    # the run continues from the kept checkpoint
    monkeypatch.setattr(trainer, "build_model", real_build)
    assert T.main(_flags(out, "--epochs", "3", "--resume")) == 0
    assert [h["epoch"] for h in _metrics(out)] == [1, 2, 3]


def test_missing_cifar_is_a_clear_error(T, tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    argv = ["--dataset", "cifar10", "--data-dir", str(empty), "--out", str(tmp_path / "o")]
    assert T.main([*argv, "--no-download"]) == 2
    err = capsys.readouterr().err
    assert str(empty / "cifar-10-batches-py") in err and "cifar-10-python.tar.gz" in err
    assert "--dataset synthetic" in err and "Traceback" not in err
    # downloading fails (an address that refuses at once): the same clear exit
    monkeypatch.setenv("MINITORCH_ALEXNET_CIFAR_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    assert T.main([*argv, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "could not download" in err and "Traceback" not in err


def test_auto_falls_back_to_synthetic_with_a_banner(T, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MINITORCH_ALEXNET_CIFAR_URL", "http://127.0.0.1:9/cifar-10-python.tar.gz")
    argv = _flags(tmp_path / "run", "--epochs", "1", "--dataset", "auto")
    argv += ["--data-dir", str(tmp_path / "nothing")]
    assert T.main(argv) == 0
    captured = capsys.readouterr()
    assert "SYNTHETIC" in captured.err and "NOT CIFAR-10's" in captured.err
    assert "dataset synthetic" in captured.out.strip().splitlines()[-1]


def _write_cifar_folder(root, n=64):
    """A miniature cifar-10-batches-py/ with Python-2 style (protocol 2, bytes keys) pickles."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))


def test_runs_on_cifar_format_data(T, tmp_path, capsys):
    _write_cifar_folder(tmp_path / "data")
    argv = _flags(tmp_path / "run", "--epochs", "1", "--dataset", "cifar10", "--no-download")
    argv += ["--data-dir", str(tmp_path / "data")]
    assert T.main(argv) == 0
    out = capsys.readouterr().out
    assert "dataset cifar10 (256 train / 64 test" in out
    assert out.strip().splitlines()[-1].startswith("done: dataset cifar10")


def test_build_model_names(T):
    assert isinstance(models.build_model("alexnet_cifar"), models.AlexNetCIFAR)
    tiny = models.build_model("tiny")
    assert loop.input_side(tiny) == 32
    assert sum(p.size for p in tiny.parameters()) == 34_058
    assert loop.input_side(models.build_model("alexnet")) == 227
    x = np.arange(2 * 3 * 4 * 4, dtype=np.float32).reshape(2, 3, 4, 4)
    up = loop.resize_nearest(x, 8)
    assert up.shape == (2, 3, 8, 8)
    np.testing.assert_array_equal(up[:, :, ::2, ::2], x)
    np.testing.assert_array_equal(up[:, :, 1::2, 1::2], x)


def test_one_registry_of_model_names(T):
    """The script offers exactly the package's models and keeps no builder of its own."""
    assert set(models.MODELS) == {
        "alexnet", "alexnet_cifar", "alexnet2012", "torchvision_alexnet", "alexnet_mnist", "tiny"
    }  # fmt: skip
    for name in models.MODELS:
        assert T.parse_args(["--model", name]).model == name
    with pytest.raises(SystemExit):
        T.parse_args(["--model", "resnet"])
    assert not hasattr(T, "build_model") and not hasattr(T, "MODELS")
    # the loop, evaluation and bookkeeping live in the package only
    for name in ("train", "train_one_epoch", "evaluate", "resume_from", "plot_curves"):
        assert not hasattr(T, name), name


def test_unusable_out_folder_is_a_clear_error_in_a_real_process(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    argv = _flags(blocker / "run", "--epochs", "1")
    res = subprocess.run(
        [sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert "error:" in res.stderr and "--out" in res.stderr


# ---------------------------------------------------------------- the package API
def _config(out, **kw):
    settings = dict(model="tiny", dataset="synthetic", backend="numba", subset=256)
    settings.update(test_subset=128, batch_size=64, out=out, progress=False)
    return TrainConfig(**{**settings, **kw})


def test_flags_become_the_config_one_for_one(T):
    config = T.config_from_args(T.parse_args(["--no-download", "--no-progress", "--lr", "0.3"]))
    assert config == TrainConfig(download=False, progress=False, lr=0.3)
    defaults = T.config_from_args(T.parse_args([]))
    assert defaults == TrainConfig()
    assert defaults.download and defaults.progress and defaults.augment


def test_train_returns_the_history_it_writes(tmp_path, capsys):
    history = train(_config(tmp_path / "run", epochs=2))
    assert [h["epoch"] for h in history] == [1, 2]
    assert history == _metrics(tmp_path / "run")
    assert read_checkpoint(tmp_path / "run" / "checkpoint.npz")[1]["epoch"] == 2
    # resuming a finished run trains nothing and returns the saved history
    assert train(_config(tmp_path / "run", epochs=2, resume=True)) == history
    assert "resuming from" in capsys.readouterr().out


@pytest.mark.parametrize(
    "bad",
    [
        dict(epochs=0),
        dict(batch_size=-1),
        dict(subset=0),
        dict(test_subset=0),
        dict(stop_after=0),
        dict(model="resnet"),
        dict(dataset="imagenet"),
    ],
)
def test_config_refuses_bad_settings(bad):
    with pytest.raises(ValueError):
        TrainConfig(**bad)


def test_train_raises_what_run_turns_into_exit_codes(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    config = TrainConfig(dataset="cifar10", data_dir=empty, download=False, out=tmp_path / "o")
    with pytest.raises(TrainingError, match="--dataset synthetic"):
        train(config)
    assert run(config) == 2
    assert "error: --dataset cifar10" in capsys.readouterr().err

    real_build = trainer.build_model
    monkeypatch.setattr(
        trainer, "build_model", lambda *a, **k: _sabotaged(real_build(*a, **k), 2, "nan")
    )
    with pytest.raises(Diverged, match="nan"):
        train(_config(tmp_path / "run", epochs=2))
    assert "No checkpoint was written" in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


def test_evaluate_is_the_mean_over_all_examples(tmp_path):
    """Batches of unequal size (50, 50, 28) weigh by their examples, in evaluation mode."""
    mt.manual_seed(0)
    model = models.build_model("tiny")
    model.train()
    test = data.make_synthetic(16, 128, seed=1).test
    loader = data.DataLoader(test, batch_size=50)
    loss, acc = evaluate(model, loader)
    assert not model.training

    with nn.no_grad():
        logits = np.concatenate([mt.to_numpy(model(x)) for x, _ in loader]).astype(np.float64)
    labels = np.asarray(test.labels)
    top = logits.max(axis=1, keepdims=True)
    log_z = top[:, 0] + np.log(np.exp(logits - top).sum(axis=1))
    expected_loss = float(np.mean(log_z - logits[np.arange(len(labels)), labels]))
    expected_acc = float(np.mean(logits.argmax(axis=1) == labels))
    assert loss == pytest.approx(expected_loss, rel=1e-5)
    assert acc == expected_acc
    smoothed, _ = evaluate(model, loader, nn.CrossEntropyLoss(label_smoothing=0.5))
    assert smoothed != pytest.approx(loss)  # the criterion given is the one used


def test_the_package_imports_no_example_and_no_plotting_library():
    code = (
        "import sys; import minitorch_alexnet.train; "
        "assert 'matplotlib' not in sys.modules, 'matplotlib'; "
        "assert not any(m == 'train_cifar' or m.startswith('examples') for m in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
