"""examples/visualize_filters.py and examples/confusion_matrix.py, on a tiny synthetic
checkpoint and a tiny CIFAR-10-layout dataset written here."""

from __future__ import annotations

import importlib.util
import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet.checkpoint import save_checkpoint
from minitorch_alexnet.models import AlexNetCIFAR

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _load(name: str):
    path = ROOT / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


viz = _load("visualize_filters")
cmx = _load("confusion_matrix")


def _tiny_model() -> AlexNetCIFAR:
    mt.manual_seed(0)
    return AlexNetCIFAR(channels=(4, 4, 4, 4, 4), hidden=8)


@pytest.fixture
def checkpoint(tmp_path):
    with mt.use_backend("numpy"):
        return save_checkpoint(tmp_path / "ck.npz", _tiny_model(), epoch=1)


@pytest.fixture
def cifar(tmp_path):
    """A CIFAR-10 folder in the official layout: 5 training batches of 2, a test batch of 40."""
    folder = tmp_path / "data" / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def batch(n: int, name: str) -> None:
        d = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [int(v) for v in rng.integers(0, 10, n)],
        }
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))

    for i in range(1, 6):
        batch(2, f"data_batch_{i}")
    batch(40, "test_batch")
    meta = {b"label_names": [c.encode() for c in CLASSES]}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return tmp_path / "data"


# ---------------------------------------------------------------- filters
def test_filter_grid_normalises_each_filter_and_leaves_gutters():
    w = np.zeros((2, 3, 2, 2))
    w[0, 0] = [[0.0, 1.0], [2.0, 3.0]]  # red ramp; other channels 0
    w[1] = -5.0  # a constant filter
    img = viz.filter_grid(w, scale=2, gutter=1, cols=2, background=1.0)
    assert img.shape == (1 + 4 + 1, 1 + 2 * (4 + 1), 3)
    tile0 = img[1:5, 1:5]
    np.testing.assert_allclose(tile0[0, 0], [0.0, 0.0, 0.0])  # the minimum is black
    np.testing.assert_allclose(tile0[3, 3], [1.0, 0.0, 0.0])  # the maximum, red only
    np.testing.assert_allclose(tile0[0, 2], [1 / 3, 0.0, 0.0])  # upscaled 2x: column 1
    np.testing.assert_allclose(img[1:5, 6:10], 0.5)  # constant filter: mid-grey
    np.testing.assert_allclose(img[0], 1.0)  # top gutter
    np.testing.assert_allclose(img[:, 5], 1.0)  # gutter between the tiles


def test_filter_grid_shapes_and_errors():
    assert viz.filter_grid(np.ones((96, 3, 11, 11)), scale=1, gutter=1).shape == (
        8 * 12 + 1,
        12 * 12 + 1,
        3,
    )
    grey = viz.filter_grid(np.arange(8.0).reshape(2, 1, 2, 2), scale=1, gutter=0, cols=2)
    assert np.allclose(grey[..., 0], grey[..., 2])
    with pytest.raises(ValueError, match="1 or 3 input channels"):
        viz.filter_grid(np.ones((4, 5, 3, 3)))
    assert [viz.grid_columns(n) for n in (1, 7, 64, 96)] == [1, 3, 8, 12]


def test_visualize_filters_writes_the_png(checkpoint, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    import matplotlib.image

    out = tmp_path / "f.png"
    assert viz.main([str(checkpoint), "--out", str(out), "--scale", "3"]) == 0
    img = matplotlib.image.imread(out)
    # 4 filters of 5x5 at 3 px per weight: a 2x2 grid of 15 px tiles with 2 px gutters
    assert img.shape[:2] == (2 * 17 + 2, 2 * 17 + 2)
    assert "model/conv1.0.weight of AlexNetCIFAR: 4 filters of 3x5x5" in capsys.readouterr().out


def test_visualize_filters_explains_a_missing_layer(tmp_path, capsys):
    with mt.use_backend("numpy"):
        path = save_checkpoint(tmp_path / "lin.npz", mt.nn.Linear(3, 2))
    assert viz.main([str(path)]) == 2
    assert "no array ending in 'conv1.0.weight'" in capsys.readouterr().err
    assert viz.main([str(tmp_path / "missing.npz")]) == 2


# ---------------------------------------------------------------- confusion matrix
def test_confusion_matrix_counts_known_predictions():
    labels = [0, 0, 1, 1, 1, 2]
    preds = [0, 1, 1, 1, 0, 0]
    cm = cmx.confusion_matrix(labels, preds, 4)
    expected = np.zeros((4, 4), dtype=np.int64)
    expected[0] = [1, 1, 0, 0]
    expected[1] = [1, 2, 0, 0]
    expected[2] = [1, 0, 0, 0]
    np.testing.assert_array_equal(cm, expected)
    acc = cmx.per_class_accuracy(cm)
    np.testing.assert_allclose(acc[:3], [0.5, 2 / 3, 0.0])
    assert np.isnan(acc[3])  # no examples of class 3
    text = cmx.format_report(cm, ["a", "b", "c", "d"])
    assert "Overall accuracy: 50.00% (3 / 6)" in text
    flat = " ".join(text.split())
    assert "b 66.7% (2 / 3)" in flat and "d n/a (0 / 0)" in flat
    assert "Most frequent confusion: a predicted as b (1 images)" in text
    with pytest.raises(ValueError, match="must lie in"):
        cmx.confusion_matrix([0, 5], [0, 0], 4)
    with pytest.raises(ValueError, match="2 labels but 1 predictions"):
        cmx.confusion_matrix([0, 1], [0], 4)


def test_confusion_matrix_script_end_to_end(checkpoint, cifar, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    out = tmp_path / "out"
    argv = [str(checkpoint), "--data-dir", str(cifar), "--out", str(out), "--backend", "numpy"]
    assert cmx.main(argv) == 0
    printed = capsys.readouterr().out
    text = (out / "confusion_matrix.txt").read_text()
    assert printed == text and (out / "confusion_matrix.png").stat().st_size > 1000
    assert "Confusion matrix on 40 test images" in text
    # the matrix in the text is the one of the model's own predictions
    with mt.use_backend("numpy"):
        model = _tiny_model()
        mt.checkpoint.load_checkpoint(checkpoint, model, restore_rng=False)
        splits = mt.data.load_cifar10(cifar, download=False)
        preds = cmx.predict(model, splits.test)
    cm = cmx.confusion_matrix(splits.test.labels, preds, 10)
    rows = [line.split()[2:] for line in text.splitlines() if line[:2].strip().isdigit()]
    np.testing.assert_array_equal(np.array(rows, dtype=np.int64), cm)


def test_a_model_that_always_says_cat(tmp_path, cifar, capsys):
    """Known predictions through the whole script: every image is called class 3."""
    with mt.use_backend("numpy"):
        model = _tiny_model()
        model.fc3[0].weight.data[...] = 0
        model.fc3[0].bias.data[...] = np.eye(10)[3]
        path = save_checkpoint(tmp_path / "cat.npz", model)
        labels = mt.data.load_cifar10(cifar, download=False).test.labels
    argv = [str(path), "--data-dir", str(cifar), "--out", str(tmp_path), "--limit", "30"]
    assert cmx.main(argv) == 0
    text = capsys.readouterr().out
    counts = np.bincount(labels[:30], minlength=10)
    assert f"Overall accuracy: {100 * counts[3] / 30:.2f}% ({counts[3]} / 30)" in text
    rows = [line.split()[2:] for line in text.splitlines() if line[:2].strip().isdigit()]
    cm = np.array(rows, dtype=np.int64)
    np.testing.assert_array_equal(cm[:, 3], counts)
    assert cm.sum() == cm[:, 3].sum() == 30


def test_confusion_matrix_reports_missing_data_and_bad_checkpoints(checkpoint, tmp_path, capsys):
    assert cmx.main([str(checkpoint), "--data-dir", str(tmp_path / "none")]) == 2
    assert "CIFAR-10 was not found" in capsys.readouterr().err
    with mt.use_backend("numpy"):
        path = save_checkpoint(tmp_path / "lin.npz", mt.nn.Linear(3, 2))
    assert cmx.main([str(path), "--data-dir", str(tmp_path)]) == 2
    assert "pass --model" in capsys.readouterr().err


# ---------------------------------------------------------------- classifying test images
def _checkpoint_with_average(path: Path, tta: bool) -> tuple[Path, AlexNetCIFAR, AlexNetCIFAR]:
    """A checkpoint whose ``ema`` entry holds other weights than the model's."""
    from minitorch_alexnet.optim.swa_utils import AveragedModel

    with mt.use_backend("numpy"):
        model = _tiny_model()
        mt.manual_seed(1)
        other = AlexNetCIFAR(channels=(4, 4, 4, 4, 4), hidden=8)
        averaged = AveragedModel(model, use_buffers=True)
        averaged.update_parameters(other)  # the first update copies: the average is `other`
        extra = {"config": {"model": "alexnet_cifar", "dataset": "cifar10", "tta": tta}}
        extra.update(classes=CLASSES, ema=averaged.state_dict())
        save_checkpoint(path, model, epoch=1, extra=extra)
    return path, model, other


@pytest.mark.parametrize("tta", [False, True])
def test_predict_images_uses_the_averaged_weights_and_flips_and_draws_them(
    tmp_path, cifar, capsys, tta
):
    pytest.importorskip("matplotlib")
    from minitorch_alexnet import data

    example = _load("predict_images")
    ck, model, other = _checkpoint_with_average(tmp_path / "ck.npz", tta)
    argv = [str(ck), "--data-dir", str(cifar), "--count", "5", "--out", str(tmp_path / "o")]
    assert example.main([*argv, "--backend", "numpy"]) == 0
    out = capsys.readouterr().out
    assert "averaged weights" in out and ("test-time flips" in out) == tta
    assert (tmp_path / "o" / "predictions.png").stat().st_size > 0
    lines = [line for line in out.splitlines() if line.startswith("test image ")]
    assert len(lines) == 5
    # the printed top 3 (classes and percentages) are the averaged model's own, with flips
    # when the run used them, and not the trained weights'
    test = data.load_cifar10(cifar, download=False).test
    pick = np.random.default_rng(0).choice(len(test), size=5, replace=False)  # as the example

    def top3(net):
        with mt.use_backend("numpy"):
            net.eval()
            x = data.normalize(test.images[pick])
            with mt.nn.no_grad():
                z = net(x)
                if tta:
                    z = (z + net(np.ascontiguousarray(x[..., ::-1]))) / 2
        p = np.exp(z - z.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        return [", ".join(f"{CLASSES[c]} {100 * q[c]:.1f}%" for c in np.argsort(-q)[:3]) for q in p]

    assert [int(line.split()[2]) for line in lines] == list(pick)
    want = top3(other)
    assert want != top3(model)  # the check can tell the two sets of weights apart
    for line, shown in zip(lines, want):
        assert line.split("): ")[1] == shown, line


def test_predict_images_without_cifar_says_so(tmp_path, capsys):
    example = _load("predict_images")
    ck, _, _ = _checkpoint_with_average(tmp_path / "ck.npz", False)
    assert example.main([str(ck), "--data-dir", str(tmp_path / "none"), "--backend", "numpy"]) == 2
    assert "error:" in capsys.readouterr().err
