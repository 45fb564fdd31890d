"""The training tricks (``--crop-padding/--padding-mode``, ``--flip alternate``, the
BatchNorm-and-bias parameter group, ``--ema``, ``--tta``): each does what its help
says, matches PyTorch where PyTorch has it, and survives a resume."""

import json
from pathlib import Path

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import data, nn, optim
from minitorch_alexnet.checkpoint import read_checkpoint
from minitorch_alexnet.models import build_model
from minitorch_alexnet.optim.swa_utils import (
    AveragedModel,
    get_ema_avg_fn,
    get_ema_multi_avg_fn,
    update_bn,
)
from minitorch_alexnet.train import ConfigError, TrainConfig, evaluate, trainer
from minitorch_alexnet.train.cli import config_from_args, parse_args

TEST_DIR = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _numpy():
    mt.set_backend("numpy")


def _distinct_images(n=16, side=6):
    """Images that differ from each other and from their own mirror images."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(n, 3, side, side), dtype=np.uint8)
    return data.ImageDataset(images, np.arange(n) % 10, tuple("0123456789"), "distinct")


# ---------------------------------------------------------------- the crop's padding
def test_reflect_padding_mirrors_the_image_at_its_edge():
    x = np.arange(2 * 1 * 4 * 5, dtype=np.uint8).reshape(2, 1, 4, 5)
    p = 2
    oy = np.array([0, 4])  # top-left and bottom-right windows: all padding shows
    ox = np.array([0, 4])
    out = data.crop_flip(x, oy, ox, np.array([False, False]), padding=p, padding_mode="reflect")

    def reflect(i, n):  # the index formula of "reflect": no edge pixel twice
        i = abs(i)
        return 2 * (n - 1) - i if i >= n else i

    for n in range(2):
        for i in range(4):
            for j in range(5):
                src = x[n, 0, reflect(oy[n] - p + i, 4), reflect(ox[n] - p + j, 5)]
                assert out[n, 0, i, j] == src, (n, i, j)
    zeros = data.crop_flip(x, oy, ox, np.array([False, False]), padding=p)
    assert zeros[0, 0, 0, 0] == 0 and out[0, 0, 0, 0] == x[0, 0, 2, 2]


def test_loader_refuses_unknown_modes_and_too_wide_reflect_padding():
    ds = _distinct_images(side=6)
    with pytest.raises(ValueError, match="padding_mode must be 'zeros' or 'reflect', not 'edge'"):
        data.DataLoader(ds, augment=True, padding_mode="edge")
    with pytest.raises(ValueError, match="flip must be 'random' or 'alternate', not 'sometimes'"):
        data.DataLoader(ds, augment=True, flip="sometimes")
    with pytest.raises(ValueError, match="padding < the image side"):
        data.DataLoader(ds, augment=True, padding=6, padding_mode="reflect")


# ---------------------------------------------------------------- alternating flips
def _flipped(loader, ds, epoch):
    """For each dataset index: was the image mirrored in ``epoch``? (no crop: padding 0)"""
    loader.set_epoch(epoch)
    flags = {}
    for x, _labels in loader:
        for image in x:
            for k, original in enumerate(ds.images):
                if np.array_equal(image, original):
                    flags[k] = False
                elif np.array_equal(image, original[..., ::-1]):
                    flags[k] = True
    assert len(flags) == len(ds)
    return flags


def test_alternate_flips_mirror_each_image_the_other_way_every_epoch():
    ds = _distinct_images(n=32)
    kw = dict(batch_size=8, shuffle=True, augment=True, padding=0, normalize=False, seed=3)
    loader = data.DataLoader(ds, flip="alternate", **kw)
    e0, e1, e2 = (_flipped(loader, ds, e) for e in range(3))
    assert 0 < sum(e0.values()) < len(ds)  # a coin per image in the first epoch
    assert all(e1[k] != e0[k] for k in e0)  # then the other way round
    assert e2 == e0
    random = data.DataLoader(ds, flip="random", **kw)
    r0, r1 = (_flipped(random, ds, e) for e in range(2))
    assert any(r1[k] == r0[k] for k in r0)  # independent coins repeat some flags


# ---------------------------------------------------------------- parameter groups
def test_norm_and_bias_parameters_get_their_own_lr_and_weight_decay():
    model = build_model("alexnet_cifar", num_classes=10)
    config = TrainConfig(norm_bias_lr_scale=2.0, norm_bias_weight_decay=0.0, lr=0.1)
    optimizer, scheduler = trainer.make_optimizer(model, config, steps_per_epoch=10)
    rest, scaled = optimizer.param_groups
    names = {id(p): n for n, p in model.named_parameters()}
    norm_names = {
        f"{m_name}.{p_name}"
        for m_name, m in model.named_modules()
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d)
        for p_name, _ in m.named_parameters()
    }
    scaled_names = {names[id(p)] for p in scaled["params"]}
    assert norm_names and norm_names <= scaled_names
    assert all(n.endswith("bias") or n in norm_names for n in scaled_names)
    assert all(
        not n.endswith("bias") and n not in norm_names
        for n in map(names.get, map(id, rest["params"]))
    )
    assert len(rest["params"]) + len(scaled["params"]) == len(list(model.parameters()))
    assert scaled["weight_decay"] == 0.0 and rest["weight_decay"] == config.weight_decay
    for _ in range(5):  # the scaled group's rate stays twice the other's along OneCycle
        assert scaled["lr"] == pytest.approx(2 * rest["lr"])
        optimizer.step()
        scheduler.step()
    one = trainer.make_optimizer(model, TrainConfig(), 10)[0]
    assert len(one.param_groups) == 1


@pytest.mark.torch
def test_parameter_groups_follow_torch_sgd_and_onecycle():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    w0 = rng.standard_normal((3, 4)).astype(np.float32)
    b0 = rng.standard_normal(3).astype(np.float32)
    lin = nn.Linear(4, 3)
    lin.weight.data[...] = w0
    lin.bias.data[...] = b0
    groups = [
        {"params": [lin.weight]},
        {"params": [lin.bias], "lr": 0.2, "weight_decay": 0.0},
    ]
    ours = optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
    ours_s = optim.OneCycleLR(ours, max_lr=[0.1, 0.2], total_steps=8, pct_start=0.25)
    tw = torch.nn.Parameter(torch.tensor(w0))
    tb = torch.nn.Parameter(torch.tensor(b0))
    theirs = torch.optim.SGD(
        [{"params": [tw]}, {"params": [tb], "lr": 0.2, "weight_decay": 0.0}],
        lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4,
    )  # fmt: skip
    theirs_s = torch.optim.lr_scheduler.OneCycleLR(
        theirs, max_lr=[0.1, 0.2], total_steps=8, pct_start=0.25
    )
    for _ in range(6):
        g_w = rng.standard_normal((3, 4)).astype(np.float32)
        g_b = rng.standard_normal(3).astype(np.float32)
        lin.weight.grad, lin.bias.grad = g_w.copy(), g_b.copy()
        tw.grad, tb.grad = torch.tensor(g_w), torch.tensor(g_b)
        ours.step()
        theirs.step()
        ours_s.step()
        theirs_s.step()
        np.testing.assert_allclose(lin.weight.data, tw.detach().numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lin.bias.data, tb.detach().numpy(), rtol=1e-5, atol=1e-6)


# ---------------------------------------------------------------- the average of the weights
def _net():
    return nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))


def test_ema_is_the_formula_and_the_first_update_copies():
    model = _net()
    averaged = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(0.9), use_buffers=True)
    rng = np.random.default_rng(0)
    w = model[0].weight.data
    averaged.update_parameters(model)  # a copy
    np.testing.assert_array_equal(averaged.module[0].weight.data, w)
    expected = w.copy()
    for _ in range(3):
        w += rng.standard_normal(w.shape).astype(np.float32)
        expected = 0.9 * expected + 0.1 * w
        averaged.update_parameters(model)
    np.testing.assert_allclose(averaged.module[0].weight.data, expected, rtol=1e-5, atol=1e-7)
    assert int(averaged.n_averaged) == 4
    one = AveragedModel(model, avg_fn=get_ema_avg_fn(0.5))
    one.update_parameters(model)
    w += 1.0
    one.update_parameters(model)
    np.testing.assert_allclose(one.module[0].weight.data, w - 0.5, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="decay"):
        get_ema_multi_avg_fn(1.5)
    with pytest.raises(RuntimeError, match="for evaluation"):
        averaged.backward(np.zeros((2, 3), np.float32))


@pytest.mark.torch
@pytest.mark.parametrize("use_buffers", [True, False])
def test_averaged_model_and_update_bn_match_torch(use_buffers):
    torch = pytest.importorskip("torch")
    from torch.optim import swa_utils as tswa

    rng = np.random.default_rng(2)
    ours = _net()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3))
    with torch.no_grad():
        theirs[0].weight.copy_(torch.tensor(ours[0].weight.data))
        theirs[0].bias.copy_(torch.tensor(ours[0].bias.data))
    avg_ours = AveragedModel(ours, multi_avg_fn=get_ema_multi_avg_fn(0.8), use_buffers=use_buffers)
    avg_theirs = tswa.AveragedModel(
        theirs, multi_avg_fn=tswa.get_ema_multi_avg_fn(0.8), use_buffers=use_buffers
    )
    for _ in range(4):
        x = rng.standard_normal((8, 4)).astype(np.float32)
        ours.train()
        ours(x)  # moves the running statistics
        theirs(torch.tensor(x))
        step = rng.standard_normal((3, 4)).astype(np.float32)
        ours[0].weight.data += step
        with torch.no_grad():
            theirs[0].weight += torch.tensor(step)
        avg_ours.update_parameters(ours)
        avg_theirs.update_parameters(theirs)
    mine = {k: np.asarray(v) for k, v in avg_ours.state_dict().items()}
    for k, v in avg_theirs.state_dict().items():
        np.testing.assert_allclose(mine[k], v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)
    batches = [rng.standard_normal((8, 4)).astype(np.float32) for _ in range(3)]
    update_bn(batches, avg_ours)
    tswa.update_bn([torch.tensor(b) for b in batches], avg_theirs)
    for k in ("module.1.running_mean", "module.1.running_var"):
        got = np.asarray(avg_ours.state_dict()[k])
        np.testing.assert_allclose(got, avg_theirs.state_dict()[k].numpy(), rtol=1e-5, err_msg=k)
    assert avg_ours.module[1].momentum == 0.1  # restored


# ---------------------------------------------------------------- test-time flips
def test_tta_averages_the_logits_of_each_image_and_its_mirror():
    model = build_model("tiny", num_classes=10)
    ds = _distinct_images(n=8, side=32)
    loader = data.DataLoader(ds, batch_size=4)
    criterion = nn.CrossEntropyLoss()
    loss, acc = evaluate(model, loader, criterion, tta=True)
    model.eval()
    x = data.normalize(ds.images)
    with nn.no_grad():
        logits = (model(x) + model(np.ascontiguousarray(x[..., ::-1]))) / 2
    expected = float(criterion(logits, ds.labels.astype(np.int64)))
    assert loss == pytest.approx(expected, rel=1e-5)
    assert acc == pytest.approx(float((logits.argmax(1) == ds.labels).mean()))
    assert evaluate(model, loader, criterion)[0] != pytest.approx(loss, rel=1e-6)


# ---------------------------------------------------------------- settings and runs
@pytest.mark.parametrize(
    "field,value",
    [("padding_mode", "edge"), ("flip", "never"), ("ema", 1.0), ("crop_padding", -1),
     ("norm_bias_lr_scale", 0.0), ("norm_bias_weight_decay", -1e-4)],
)  # fmt: skip
def test_impossible_trick_settings_are_refused_by_name(field, value):
    with pytest.raises(ConfigError) as e:
        TrainConfig(**{field: value})
    assert e.value.field == field


def test_the_flags_defaults_are_the_configs_and_tta_can_be_turned_off():
    assert config_from_args(parse_args([])) == TrainConfig()
    assert TrainConfig().tta and not config_from_args(parse_args(["--no-tta"])).tta


def test_every_trick_has_a_flag():
    args = parse_args(
        ["--crop-padding", "2", "--padding-mode", "reflect", "--flip", "alternate",
         "--norm-bias-lr-scale", "2", "--norm-bias-weight-decay", "0", "--ema", "0.999", "--tta"]
    )  # fmt: skip
    c = config_from_args(args)
    assert (c.crop_padding, c.padding_mode, c.flip) == (2, "reflect", "alternate")
    assert (c.norm_bias_lr_scale, c.norm_bias_weight_decay, c.ema, c.tta) == (2.0, 0.0, 0.999, True)


def _config(out, **kw):
    base = dict(
        model="tiny", dataset="synthetic", backend="numba", subset=256, test_subset=128,
        batch_size=32, epochs=3, out=out, progress=False, ema=0.9, tta=True,
        crop_padding=2, padding_mode="reflect", flip="alternate", norm_bias_lr_scale=2.0,
        norm_bias_weight_decay=0.0,
    )  # fmt: skip
    return TrainConfig(**{**base, **kw})


def test_a_run_with_every_trick_resumes_to_the_uninterrupted_result(tmp_path):
    whole = trainer.train(_config(tmp_path / "whole"))
    trainer.train(_config(tmp_path / "parts", stop_after=1))
    parts = trainer.train(_config(tmp_path / "parts", resume=True))
    assert len(whole) == len(parts) == 3
    for a, b in zip(whole, parts):
        assert a["test_loss"] == b["test_loss"] and a["test_acc"] == b["test_acc"]
    arrays_a, meta = read_checkpoint(tmp_path / "whole" / "checkpoint.npz")
    arrays_b, _ = read_checkpoint(tmp_path / "parts" / "checkpoint.npz")
    ema_keys = [k for k in arrays_a if "ema" in k]
    assert ema_keys, sorted(arrays_a)
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)
    assert meta["extra"]["config"]["tta"] is True


def test_the_reported_accuracy_is_the_averaged_model_with_flips(tmp_path, monkeypatch):
    seen = []
    real = trainer.evaluate

    def spy(model, loader, criterion=None, progress=False, tta=False):
        seen.append((type(model).__name__, tta))
        return real(model, loader, criterion, progress, tta)

    monkeypatch.setattr(trainer, "evaluate", spy)
    trainer.train(_config(tmp_path / "run", epochs=1))
    assert seen == [("AveragedModel", True)]
    seen.clear()
    trainer.train(_config(tmp_path / "plain", epochs=1, ema=0.0, tta=False))
    assert seen == [("Sequential", False)]


def test_a_first_epoch_test_loss_far_above_the_training_loss_is_explained(
    tmp_path, monkeypatch, capsys
):
    losses = iter([(400.0, 0.1), (400.0, 0.1), (1.0, 0.5)])
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: next(losses))
    trainer.train(_config(tmp_path / "spike", epochs=2, ema=0.0, tta=False))
    out = capsys.readouterr().out
    assert out.count("BatchNorm's running statistics") == 1  # once, after the first epoch
    trainer.train(_config(tmp_path / "calm", epochs=1, ema=0.0, tta=False))
    assert "running statistics" not in capsys.readouterr().out


def test_the_average_is_updated_when_an_epoch_is_shorter_than_its_interval(tmp_path):
    # 64 images in batches of 32: 2 steps an epoch, an update every 5 steps of the run
    trainer.train(_config(tmp_path / "short", subset=64, epochs=3))
    arrays, meta = read_checkpoint(tmp_path / "short" / "checkpoint.npz")
    n = [v for k, v in arrays.items() if k.endswith("n_averaged")]
    assert n and int(n[0]) == 6 // trainer.EMA_EVERY  # steps 1..6: one update, at step 5


def test_an_averaged_model_is_evaluated_at_its_models_input_side():
    from minitorch_alexnet.train.loop import input_side

    model = build_model("alexnet_mnist", num_classes=10)
    assert input_side(AveragedModel(model)) == input_side(model) == 28


def test_a_reflect_padding_as_wide_as_the_images_is_refused_with_exit_code_2(tmp_path, capsys):
    from minitorch_alexnet.train import run

    assert run(_config(tmp_path / "wide", crop_padding=32)) == 2
    err = capsys.readouterr().err
    assert "--crop-padding 32" in err and "padding < the image side" in err
    assert "Traceback" not in err


def test_a_resume_with_other_trick_settings_names_the_flags_to_pass(tmp_path):
    from minitorch_alexnet.train import TrainingError

    trainer.train(_config(tmp_path / "run", stop_after=1, crop_padding=4, padding_mode="zeros"))
    with pytest.raises(TrainingError) as e:
        trainer.train(_config(tmp_path / "run", resume=True, tta=False))
    message = str(e.value)
    assert "crop_padding: 4 -> 2" in message and "tta: True -> False" in message
    assert "(--crop-padding 4 --padding-mode zeros --tta)" in message


def test_the_note_on_the_first_epochs_loss_is_not_repeated_after_a_resume(
    tmp_path, monkeypatch, capsys
):
    trainer.train(_config(tmp_path / "run", stop_after=1, ema=0.0))
    capsys.readouterr()
    monkeypatch.setattr(trainer, "evaluate", lambda *a, **k: (400.0, 0.1))
    trainer.train(_config(tmp_path / "run", resume=True, ema=0.0))
    assert "running statistics" not in capsys.readouterr().out


# ---------------------------------------------------------------- the measuring script
def _tricks_script():
    import importlib.util

    path = TEST_DIR.parent / "benchmarks" / "tricks.py"
    spec = importlib.util.spec_from_file_location("tricks_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _result(tag, seed, plain, tta, **more):
    return {"impl": "minitorch", "tag": tag, "seed": seed, "plain": plain, "tta": tta, **more}


def test_the_final_set_takes_what_beats_the_baseline_by_the_margin(tmp_path):
    tricks = _tricks_script()
    results = [
        _result("baseline", 0, 0.850, 0.860, ema=0.849),
        _result("baseline", 1, 0.854, 0.866, ema=0.853),
        _result("reflect2", 0, 0.868, 0.880),
        _result("reflect2", 1, 0.866, 0.879),
        _result("ls0.2", 0, 0.853, 0.866),  # +0.05 point on the mean: inside the margin
        _result("ls0.2", 1, 0.852, 0.865),
    ]
    assert tricks.pick_final(results) == ["reflect2", "tta"]
    merged = tricks.settings_of(["reflect2", "tta"])
    assert merged == {"crop_padding": 2, "padding_mode": "reflect", "tta": True}
    with pytest.raises(SystemExit, match="no baseline"):
        tricks.pick_final(results[2:])


def test_the_table_gives_mean_and_range_and_counts_missing_seeds(tmp_path):
    tricks = _tricks_script()
    path = tmp_path / "r.jsonl"
    rows = [
        _result("baseline", 0, 0.85, 0.86),
        _result("baseline", 1, 0.86, 0.88, ema=0.84, ema_tta=0.85),
        {**_result("reflect2", 0, 0.87, 0.88), "impl": "pytorch"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lines = tricks.table(path).splitlines()
    assert lines[2] == (
        "| minitorch | baseline | 0,1 | 85.50 (85.00-86.00) | 87.00 (86.00-88.00) "
        "| 84.00 (84.00-84.00) n=1 | 85.00 (85.00-85.00) n=1 |"
    )
    assert lines[3].startswith("| pytorch | reflect2 | 0 | 87.00 (87.00-87.00) |")
    assert len(lines) == 4
