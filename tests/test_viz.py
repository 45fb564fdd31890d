"""minitorch_alexnet.viz (saliency and activation maps) and examples/saliency.py."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import viz
from minitorch_alexnet.checkpoint import save_checkpoint
from minitorch_alexnet.models import AlexNetCIFAR, tiny_cnn

ROOT = Path(__file__).resolve().parent.parent


def _tiny(seed: int = 0) -> AlexNetCIFAR:
    mt.manual_seed(seed)
    return AlexNetCIFAR(channels=(4, 4, 6, 6, 4), hidden=8)


def _trained_looking(model) -> None:
    """Running statistics away from their start, so evaluation mode matters."""
    rng = np.random.default_rng(1)
    for name, b in model.named_buffers():
        if name.endswith("running_mean"):
            b[...] = rng.normal(0, 0.3, b.shape)
        elif name.endswith("running_var"):
            b[...] = rng.uniform(0.5, 2.0, b.shape)


def test_saliency_is_the_gradient_of_the_class_score():
    """|d logit[n, target] / d x| against central differences, in float64 on numpy."""
    with mt.use_backend("numpy"):
        model = _tiny().double()
        _trained_looking(model)
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32))
        target = np.array([3, 7])
        maps, logits = viz.saliency_maps(model, x, target)
        assert maps.shape == (2, 32, 32) and logits.shape == (2, 10)
        model.eval()
        with mt.nn.no_grad():
            np.testing.assert_allclose(mt.to_numpy(model(x)), logits, rtol=1e-12)

            def score(xx, n):
                return float(mt.to_numpy(model(xx))[n, target[n]])

            eps = 1e-6
            for n, h, w in [(0, 5, 9), (1, 16, 16), (0, 31, 0)]:
                grads = []
                for c in range(3):
                    up, down = x.copy(), x.copy()
                    up[n, c, h, w] += eps
                    down[n, c, h, w] -= eps
                    grads.append((score(up, n) - score(down, n)) / (2 * eps))
                assert maps[n, h, w] == pytest.approx(max(abs(g) for g in grads), rel=1e-5)


def test_default_target_is_the_predicted_class():
    with mt.use_backend("numpy"):
        model = _tiny().double()
        x = np.random.default_rng(2).standard_normal((3, 3, 32, 32))
        maps, logits = viz.saliency_maps(model, x)
        again, _ = viz.saliency_maps(model, x, logits.argmax(axis=1))
        np.testing.assert_array_equal(maps, again)
        other, _ = viz.saliency_maps(model, x, (logits.argmax(axis=1) + 1) % 10)
        assert not np.allclose(maps, other)


def test_the_model_is_left_as_it_was():
    with mt.use_backend("numpy"):
        model = _tiny()
        model.train()
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
        first = next(iter(model.parameters()))
        first.grad = np.full(first.shape, 0.5, dtype=first.dtype)
        viz.saliency_maps(model, x)
        assert model.training
        np.testing.assert_array_equal(first.grad, 0.5)  # not added to
        assert all(p.grad is None for p in list(model.parameters())[1:])
        viz.activation_maps(model, x, "conv2")
        assert model.training


def test_mid_training_a_frozen_layer_and_a_pending_backward_survive():
    """Each module keeps its own mode (a BatchNorm frozen in eval inside a training
    model stays frozen), and a forward waiting for its backward can still be finished."""
    with mt.use_backend("numpy"):
        model = AlexNetCIFAR(num_classes=10).train()
        frozen = next(m for m in model.modules() if isinstance(m, mt.nn.BatchNorm2d))
        frozen.eval()
        x = np.random.default_rng(1).standard_normal((2, 3, 32, 32)).astype("float32")
        y = model(x)  # training forward, its cache kept for backward
        viz.saliency_maps(model, x)
        assert model.training and not frozen.training
        model.backward(np.ones(y.shape, dtype=y.dtype))  # the cache is still there


def test_activation_maps_are_the_blocks_outputs():
    with mt.use_backend("numpy"):
        model = _tiny()
        x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype("float32")
        acts = viz.activation_maps(model, x, "conv2")
        model.eval()
        with mt.nn.no_grad():
            expected = model.conv2(model.conv1(x))
        np.testing.assert_array_equal(acts, mt.to_numpy(expected))
        assert acts.shape == (2, 6 - 2, 7, 7)  # conv2 has 4 channels: (4, 4, 6, 6, 4)
        seq = tiny_cnn(width=4)
        assert viz.activation_maps(seq, x, "0").shape == (2, 4, 32, 32)
        with pytest.raises(KeyError, match="conv1"):
            viz.activation_maps(model, x, "fc1")


def test_bad_input_is_refused_with_the_fix():
    model = _tiny()
    x = np.zeros((2, 3, 32, 32), dtype="float32")
    with pytest.raises(ValueError, match=r"images\[None\]"):
        viz.saliency_maps(model, x[0])
    with pytest.raises(ValueError, match=r"2 class numbers in \[0, 10\)"):
        viz.saliency_maps(model, x, [1, 10])
    with mt.nn.no_grad(), pytest.raises(RuntimeError, match="outside"):
        viz.saliency_maps(model, x)


def test_for_display_undoes_normalize():
    images = np.random.default_rng(0).integers(0, 256, (2, 3, 4, 5), dtype=np.uint8)
    x = mt.data.normalize(images)
    pictures = viz.for_display(x, mt.data.CIFAR10_MEAN, mt.data.CIFAR10_STD)
    assert pictures.shape == (2, 4, 5, 3)
    np.testing.assert_allclose(pictures, images.transpose(0, 2, 3, 1) / 255, atol=1e-5)


# ---------------------------------------------------------------- the example script
def _script():
    spec = importlib.util.spec_from_file_location("example_saliency", ROOT / "examples/saliency.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def cifar(tmp_path):
    """A CIFAR-10 folder in the official layout; the test batch has every class."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(labels: list[int], name: str) -> None:
        d = {
            b"data": rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8),
            b"labels": labels,
        }
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))

    for i in range(1, 6):
        batch([0, 1], f"data_batch_{i}")
    batch([c for c in range(10) for _ in range(2)][::-1], "test_batch")
    names = [f"class{c}".encode() for c in range(10)]
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}, protocol=2))
    return tmp_path / "data"


def test_pick_takes_the_first_images_of_each_class():
    script = _script()
    labels = [2, 0, 1, 0, 2, 1]
    assert script.pick(labels, 3).tolist() == [1, 2, 0]
    assert script.pick(labels, 3, per_class=2).tolist() == [1, 2, 0, 3, 5, 4]
    with pytest.raises(ValueError, match="class 0 has 2 test images"):
        script.pick(labels, 3, per_class=3)


@pytest.mark.filterwarnings("ignore::minitorch_alexnet.data.UnverifiedDatasetWarning")
def test_the_script_writes_both_figures(tmp_path, cifar, capsys):
    pytest.importorskip("matplotlib")
    with mt.use_backend("numpy"):
        ck = save_checkpoint(tmp_path / "ck.npz", _tiny(), epoch=1)
    out = tmp_path / "out"
    argv = [str(ck), "--data-dir", str(cifar), "--out", str(out), "--backend", "numpy"]
    assert _script().main(argv) == 0
    text = capsys.readouterr().out
    assert "of 10 images right" in text and text.count("top 3:") == 10
    for name in ("saliency.png", "activations.png"):
        assert (out / name).stat().st_size > 5000
    assert _script().main([*argv, "--target", "predicted", "--layer", "conv2"]) == 0
    capsys.readouterr()
    assert _script().main([*argv, "--layer", "fc9"]) == 2
    assert "choose one of" in capsys.readouterr().err
    assert _script().main([str(tmp_path / "none.npz"), "--data-dir", str(cifar)]) == 2


def test_tile_scales_each_image_and_leaves_gutters():
    maps = np.zeros((3, 2, 2))
    maps[0] = [[0.0, 1.0], [2.0, 4.0]]
    maps[1] = 7.0  # constant: mid-grey
    maps[2] = [[-1.0, 0.0], [0.0, 1.0]]
    grid = viz.tile(maps, cols=2, gutter=1)
    assert grid.shape == (1 + 2 * 3, 1 + 2 * 3)
    np.testing.assert_allclose(grid[1:3, 1:3], [[0.0, 0.25], [0.5, 1.0]])
    np.testing.assert_allclose(grid[1:3, 4:6], 0.5)
    np.testing.assert_allclose(grid[4:6, 1:3], [[0.0, 0.5], [0.5, 1.0]])
    np.testing.assert_allclose(grid[4:6, 4:6], 1.0)  # the empty cell stays white
    assert np.all(grid[0] == 1.0) and np.all(grid[:, 3] == 1.0)
    rgb = viz.tile(np.random.default_rng(0).random((5, 3, 3, 3)), cols=4)
    assert rgb.shape == (1 + 2 * 4, 1 + 4 * 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        viz.tile(np.zeros((2, 3)))
