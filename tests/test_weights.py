"""Weights in both directions: torchvision's AlexNet and PyTorch state dicts, through
safetensors and PyTorch files; and torchvision's AlexNet itself against PyTorch's."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import models, nn
from minitorch_alexnet.checkpoint import (
    WeightsError,
    load_weights,
    read_weights,
    save_safetensors,
    save_torch,
    save_weights,
)

pytestmark = pytest.mark.usefixtures("numpy_backend")

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")
from minitorch_alexnet.models.torch_reference import torchvision_alexnet  # noqa: E402

SUFFIXES = ["pt", "safetensors"]


@pytest.fixture(scope="module")
def pair():
    """torchvision's AlexNet in torch.nn (10 classes, random weights) and ours, both in eval."""
    torch.manual_seed(0)
    return torchvision_alexnet(num_classes=10).eval(), models.alexnet(num_classes=10).eval()


def _logits_torch(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def _assert_same_logits(ours, theirs):
    scale = np.abs(theirs).max()
    assert scale > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5 * scale)


# ------------------------------------------------------------------ the model itself
def test_torchvision_alexnet_has_torchvisions_layers_and_keys(pair):
    theirs, ours = pair
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
    assert list(ours_shapes) == list(theirs_shapes)  # same keys, same order
    assert ours_shapes == theirs_shapes
    count = sum(p.size for p in ours.parameters())
    assert count == sum(p.numel() for p in theirs.parameters())
    assert count + 990 * (4096 + 1) == 61_100_840  # with torchvision's 1000 classes
    assert ours.input_size == (3, 224, 224)
    assert isinstance(ours.avgpool, nn.AdaptiveAvgPool2d) and ours.avgpool.output_size == (6, 6)
    assert [m.p for m in ours.modules() if isinstance(m, nn.Dropout)] == [0.5, 0.5]
    assert models.TorchvisionAlexNet.__init__.__defaults__ == (1000, 0.5)


def test_forward_and_backward_match_torch(pair):
    """Logits, input gradient and every parameter gradient, at a size the adaptive
    pool has to average (67 -> a 1x1 map, spread to 6x6)."""
    theirs, ours = pair
    theirs.load_state_dict(
        {k: torch.from_numpy(mt.to_numpy(v)) for k, v in ours.state_dict().items()}
    )
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 67, 67)).astype(np.float32)
    g = rng.normal(size=(2, 10)).astype(np.float32)
    y = ours(mt.asarray(x))
    dx = ours.backward(mt.asarray(g))
    xt = torch.tensor(x, requires_grad=True)
    theirs.zero_grad()
    theirs(xt).backward(torch.from_numpy(g))
    _assert_same_logits(mt.to_numpy(y), _logits_torch(theirs, x))
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-3, atol=1e-5 * np.abs(dx).max())
    for key, p in dict(theirs.named_parameters()).items():
        got = mt.to_numpy(dict(ours.named_parameters())[key].grad)
        want = p.grad.numpy()
        np.testing.assert_allclose(
            got, want, rtol=1e-3, atol=1e-4 * np.abs(want).max(), err_msg=key
        )
    ours.zero_grad()


# ------------------------------------------------------------------ the round trips
@pytest.mark.parametrize("suffix", SUFFIXES)
def test_pytorch_weights_load_into_ours_and_give_the_same_logits(pair, tmp_path, suffix):
    theirs, ours = pair
    with torch.no_grad():  # theirs differ from ours now, whatever ran before
        for layer in (theirs.features[3], theirs.classifier[4]):
            layer.weight.normal_(0, 0.05, generator=torch.Generator().manual_seed(len(suffix)))
    path = tmp_path / f"alexnet.{suffix}"
    state = {k: v.contiguous() for k, v in theirs.state_dict().items()}
    assert not np.array_equal(mt.to_numpy(ours.features[3].weight.data), state["features.3.weight"])
    if suffix == "pt":
        torch.save(state, path)  # what a PyTorch user has
    else:
        from safetensors.torch import save_file

        save_file(state, path)
    assert load_weights(ours, path) == ([], [])
    x = np.random.default_rng(2).normal(size=(2, 3, 224, 224)).astype(np.float32)
    _assert_same_logits(mt.to_numpy(ours(mt.asarray(x))), _logits_torch(theirs, x))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_our_weights_load_into_pytorch_and_give_the_same_logits(pair, tmp_path, suffix):
    theirs, ours = pair
    rng = np.random.default_rng(len(suffix))
    for layer in (ours.features[0], ours.features[8], ours.classifier[6]):  # ours differ now
        layer.weight.data = mt.asarray(rng.normal(0, 0.05, layer.weight.shape), "float32")
    path = save_weights(ours, tmp_path / f"mine.{suffix}")
    if suffix == "pt":
        state = torch.load(path, weights_only=True)
    else:
        from safetensors.torch import load_file

        state = load_file(path)
    assert not torch.equal(theirs.classifier[6].weight, state["classifier.6.weight"])
    theirs.load_state_dict(state, strict=True)
    x = np.random.default_rng(4).normal(size=(2, 3, 96, 80)).astype(np.float32)
    _assert_same_logits(mt.to_numpy(ours(mt.asarray(x))), _logits_torch(theirs, x))


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_every_model_round_trips_buffers_included(tmp_path, suffix):
    """BatchNorm's running statistics and its 0-d step count survive, shape and dtype."""
    model = models.build_model("alexnet_mnist")
    model.conv1[2].running_mean[...] = 0.25
    model.conv1[2].num_batches_tracked[...] = 7
    path = save_weights(model, tmp_path / f"m.{suffix}")
    state = read_weights(path)
    assert state["conv1.2.num_batches_tracked"].shape == ()
    assert state["conv1.2.num_batches_tracked"].dtype == np.int64
    fresh = models.build_model("alexnet_mnist")
    load_weights(fresh, path)
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(mt.to_numpy(fresh.state_dict()[key]), value, err_msg=key)


def test_half_and_bfloat16_files_load_into_a_float32_model(tmp_path):
    model = models.build_model("tiny")
    state = {k: torch.from_numpy(mt.to_numpy(v).copy()) for k, v in model.state_dict().items()}
    for dtype in (torch.float16, torch.bfloat16):
        low = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        torch.save({"state_dict": low, "epoch": 3}, tmp_path / "ckpt.pth")  # nested, as scripts do
        load_weights(model, tmp_path / "ckpt.pth")
        assert model.state_dict()["0.weight"].dtype == np.float32
        np.testing.assert_allclose(
            model.state_dict()["0.weight"], low["0.weight"].float().numpy(), rtol=0
        )
        (tmp_path / "ckpt.pth").unlink()


def test_bfloat16_safetensors_files_load_into_a_float32_model(tmp_path):
    from safetensors.torch import save_file

    model = models.build_model("tiny")
    state = {k: torch.from_numpy(mt.to_numpy(v).copy()) for k, v in model.state_dict().items()}
    low = {k: v.to(torch.bfloat16) if v.is_floating_point() else v for k, v in state.items()}
    low["0.weight"].view(-1)[:3] = torch.tensor([1e-40, -3.0e38, float("inf")])  # edge values
    save_file(low, tmp_path / "bf16.safetensors")
    read = read_weights(tmp_path / "bf16.safetensors")
    assert set(read) == set(low)
    for key, value in low.items():
        want = value.float().numpy() if value.is_floating_point() else value.numpy()
        assert read[key].dtype == want.dtype and read[key].shape == want.shape, key
        np.testing.assert_array_equal(read[key], want, err_msg=key)  # exact
    load_weights(model, tmp_path / "bf16.safetensors")
    assert model.state_dict()["0.weight"].dtype == np.float32
    np.testing.assert_array_equal(model.state_dict()["0.weight"], low["0.weight"].float().numpy())


def test_training_checkpoints_are_sent_to_load_checkpoint(tmp_path):
    from minitorch_alexnet.checkpoint import save_checkpoint

    model = models.build_model("tiny")
    path = save_checkpoint(tmp_path / "ckpt.npz", model, epoch=1)
    (tmp_path / "ckpt").write_bytes(path.read_bytes())  # a zip archive whatever its name
    for target in (path, tmp_path / "ckpt"):
        for read in (read_weights, lambda p: load_weights(model, p)):
            with pytest.raises(WeightsError) as e:
                read(target)
            text = str(e.value)
            assert str(target) in text and "minitorch_alexnet training checkpoint" in text
            assert "load_checkpoint(path, model)" in text
            assert "torch.load" not in text and "needs the torch" not in text


def test_saving_onto_a_folder_says_so_even_with_overwrite(tmp_path):
    model = models.build_model("tiny")
    for suffix in SUFFIXES:
        folder = tmp_path / f"w.{suffix}"
        folder.mkdir()
        for overwrite in (False, True):
            with pytest.raises(IsADirectoryError, match="is a folder, not a file") as e:
                save_weights(model, folder, overwrite=overwrite)
            assert str(folder / f"model.{suffix}") in str(e.value)
        assert folder.is_dir() and not any(folder.iterdir())


# ------------------------------------------------------------------ clear errors
def test_missing_unexpected_and_misshaped_keys_are_named(tmp_path):
    model = models.build_model("tiny")
    state = {k: mt.to_numpy(v) for k, v in model.state_dict().items()}
    state.pop("0.bias")
    state["head.weight"] = np.zeros(3, np.float32)
    state["14.weight"] = np.zeros((5, 5), np.float32)
    state["0.weight"] = state["0.weight"] + 1.0
    path = save_safetensors(state, tmp_path / "bad.safetensors")
    before = mt.to_numpy(model.state_dict()["0.weight"]).copy()
    with pytest.raises(WeightsError) as e:
        load_weights(model, path)
    text = str(e.value)
    assert str(path) in text
    assert "missing keys: 0.bias" in text and "unexpected keys: head.weight" in text
    assert "14.weight" in text and "(5, 5)" in text
    # all or nothing: not even the keys that fit were loaded
    np.testing.assert_array_equal(mt.to_numpy(model.state_dict()["0.weight"]), before)


def test_non_strict_load_reports_what_it_skipped(tmp_path):
    model = models.build_model("tiny")
    state = {k: mt.to_numpy(v) for k, v in model.state_dict().items() if k != "0.bias"}
    state["extra"] = np.ones(2, np.float32)
    path = save_torch(state, tmp_path / "partial.pt")
    assert load_weights(model, path, strict=False) == (["0.bias"], ["extra"])


def test_data_parallel_prefix_gets_a_hint(tmp_path):
    model = models.build_model("tiny")
    state = {f"module.{k}": torch.from_numpy(mt.to_numpy(v)) for k, v in model.state_dict().items()}
    torch.save(state, tmp_path / "ddp.pt")
    with pytest.raises(WeightsError, match="DataParallel"):
        load_weights(model, tmp_path / "ddp.pt")


class _Payload:
    def __reduce__(self):
        return (os.mkdir, (os.environ["MT_WEIGHTS_CANARY"],))


def test_pytorch_files_are_read_without_running_their_code(tmp_path, monkeypatch):
    canary = tmp_path / "code-ran"
    monkeypatch.setenv("MT_WEIGHTS_CANARY", str(canary))
    torch.save({"0.weight": _Payload()}, tmp_path / "evil.pt")
    with pytest.raises(WeightsError, match="weights_only=True"):
        read_weights(tmp_path / "evil.pt")
    assert not canary.exists()
    torch.save([torch.zeros(2)], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="not a state dict"):
        read_weights(tmp_path / "list.pt")


def test_damaged_or_unknown_files_are_clear_errors(tmp_path):
    from safetensors.torch import save_file

    save_file({"w": torch.zeros(3, dtype=torch.float8_e4m3fn)}, tmp_path / "f8.safetensors")
    with pytest.raises(WeightsError, match="'w' holds F8_E4M3 values, which NumPy has no type"):
        read_weights(tmp_path / "f8.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsError, match="not a valid safetensors file"):
        read_weights(tmp_path / "junk.safetensors")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(WeightsError, match="could not be read"):
        read_weights(tmp_path / "junk.pt")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(WeightsError, match="not a safetensors or PyTorch file"):
        read_weights(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no file"):
        read_weights(tmp_path / "absent.pt")
    with pytest.raises(ValueError, match=r"\*\.safetensors"):
        save_weights(models.build_model("tiny"), tmp_path / "weights.npz")


def test_a_saved_file_is_never_replaced_unasked(tmp_path):
    model = models.build_model("tiny")
    for suffix in SUFFIXES:
        path = tmp_path / f"w.{suffix}"
        path.write_bytes(b"keep me")
        with pytest.raises(FileExistsError, match="overwrite=True"):
            save_weights(model, path)
        assert path.read_bytes() == b"keep me"
        save_weights(model, path, overwrite=True)
        assert set(read_weights(path)) == set(model.state_dict())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.pt", "w.safetensors"]  # no temporaries


def test_safetensors_need_no_torch_and_pt_files_say_they_do(tmp_path):
    model = models.build_model("tiny")
    save_weights(model, tmp_path / "w.safetensors")
    save_weights(model, tmp_path / "w.pt")
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from minitorch_alexnet.checkpoint import read_weights\n"
        f"print(len(read_weights({str(tmp_path / 'w.safetensors')!r})))\n"
        "try:\n"
        f"    read_weights({str(tmp_path / 'w.pt')!r})\n"
        "except ImportError as e:\n"
        "    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    count, message = out.stdout.strip().splitlines()
    assert int(count) == len(model.state_dict())
    assert "needs the torch package" in message and "pip install torch" in message


def test_summary_shows_torchvisions_alexnet(capsys):
    from minitorch_alexnet import cli_summary

    assert cli_summary.main(["--model", "torchvision_alexnet", "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "AdaptiveAvgPool2d-14" in out and "[-1, 256, 6, 6]" in out
    assert "Linear-21" in out and "[-1, 1000]" in out and "Total params: 61,100,840" in out
