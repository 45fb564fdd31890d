"""``minitorch-alexnet train`` and ``predict``: the installed command trains, and a
trained checkpoint classifies image files as the model does on the same pixels."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import data
from minitorch_alexnet.__main__ import main
from minitorch_alexnet.checkpoint import read_checkpoint
from minitorch_alexnet.train import predict as P

Image = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    argv = ["train", "--model", "tiny", "--dataset", "synthetic", "--epochs", "1"]
    argv += ["--subset", "128", "--test-subset", "64", "--no-progress", "--out", str(out)]
    assert main(argv) == 0
    return out / "checkpoint.npz"


def test_the_command_trains_and_records_the_class_names(trained):
    _, meta = read_checkpoint(trained)
    assert meta["extra"]["classes"] == list(data.SYNTHETIC_CLASSES)
    assert meta["extra"]["config"]["model"] == "tiny"


def test_predict_gives_the_models_own_probabilities(trained, tmp_path, capsys):
    """Images saved as PNG at the model's side: reading, normalising and the model's
    evaluation must give what the model gives on the same pixels directly (with the
    run's test-time flips, on by default: the logits of each image and its mirror
    averaged)."""
    images = data.make_synthetic(n_train=4, n_test=4, seed=3).test.images  # uint8 (4, 3, 32, 32)
    paths = []
    for k, img in enumerate(images):
        paths.append(tmp_path / f"{k}.png")
        Image.fromarray(np.ascontiguousarray(img.transpose(1, 2, 0))).save(paths[-1])
    model, info = P.load_trained(trained)
    got = P.predict(model, info, paths)
    assert info["tta"] is True
    with mt.nn.no_grad():
        x = data.normalize(mt.asarray(images), info["mean"], info["std"])
        both = (model(x), model(mt.asarray(np.ascontiguousarray(mt.to_numpy(x)[..., ::-1]))))
    z = (mt.to_numpy(both[0]).astype(np.float64) + mt.to_numpy(both[1])) / 2
    want = np.exp(z - z.max(1, keepdims=True))
    want /= want.sum(1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert main(["predict", "--checkpoint", str(trained), "--top", "2", *map(str, paths)]) == 0
    out = capsys.readouterr().out.splitlines()
    best = info["classes"][int(want[0].argmax())]
    assert out[1].startswith(f"{paths[0]}: {best} ")
    assert len(out) == 1 + len(paths) and out[1].count("%") == 2


def test_a_grey_model_reads_images_as_luma(tmp_path):
    Image.fromarray(np.full((8, 8, 3), (255, 0, 0), np.uint8)).save(tmp_path / "red.png")
    grey = P.read_images([tmp_path / "red.png"], side=4, channels=1)
    assert grey.shape == (1, 1, 4, 4) and (grey == 76).all()  # 0.299 * 255


def test_problems_exit_2_with_a_message(trained, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no runs/ here
    assert main(["predict", "x.png"]) == 2
    assert "train first" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(trained), "missing.png"]) == 2
    assert "missing.png: no such image file" in capsys.readouterr().err
    assert main(["predict", "--checkpoint", str(trained), "--model", "nonet", "x.png"]) == 2
    assert "unknown model 'nonet'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["train", "--epochs", "0"])
    assert e.value.code == 2 and "--epochs" in capsys.readouterr().err
