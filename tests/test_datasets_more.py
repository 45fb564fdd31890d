"""MNIST, Fashion-MNIST and image folders: reading, checking, downloading, and short
training runs, all on small files the tests make."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from minitorch_alexnet import data
from minitorch_alexnet.data import mnist

Image = pytest.importorskip("PIL.Image")

SCRIPT = Path(__file__).resolve().parent.parent / "examples" / "train_cifar.py"
NAMES = mnist.IDX_FILES


@pytest.fixture(scope="module")
def T():
    spec = importlib.util.spec_from_file_location("train_cifar_more", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _idx(array: np.ndarray) -> bytes:
    head = bytes((0, 0, 8, array.ndim)) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    return head + array.astype(np.uint8).tobytes()


def write_idx_folder(folder: Path, n_train: int = 96, n_test: int = 48, gz: bool = True) -> dict:
    """Four IDX files of learnable 28x28 images (a bar whose height is the label); their MD5s."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    md5 = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        labels = (np.arange(n) % 10).astype(np.uint8)
        rng.shuffle(labels)
        images = rng.integers(0, 60, (n, 28, 28)).astype(np.uint8)
        for i, label in enumerate(labels):
            images[i, 2 * label + 2 : 2 * label + 7, 4:24] = 255
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            blob = gzip.compress(_idx(array), mtime=0) if gz else _idx(array)
            (folder / (name if gz else name[:-3])).write_bytes(blob)
            md5[name] = hashlib.md5(blob).hexdigest()
    return md5


# ------------------------------------------------------------------ MNIST and Fashion-MNIST
def test_idx_files_load_with_an_unverified_warning(tmp_path):
    write_idx_folder(tmp_path / "mnist")
    with pytest.warns(data.UnverifiedDatasetWarning, match="train-images-idx3-ubyte.gz"):
        splits = data.load_mnist(tmp_path, download=False)
    assert splits.name == "mnist" and splits.source.endswith("(unverified: not the official files)")
    assert splits.train.images.shape == (96, 1, 28, 28) and splits.train.images.dtype == np.uint8
    assert splits.test.labels.dtype == np.int64 and len(splits.test) == 48
    assert splits.classes[3] == "3 - three"
    i = int(np.flatnonzero(splits.train.labels == 4)[0])
    assert splits.train.images[i, 0, 10:15, 4:24].min() == 255  # the bar of label 4, rows 10..14


def test_official_checksums_load_without_a_warning(tmp_path, recwarn):
    md5 = write_idx_folder(tmp_path / "fashion-mnist")
    spec = dataclasses.replace(mnist.FASHION_MNIST, md5=md5)
    splits = mnist.load_idx_dataset(spec, tmp_path, download=False)
    assert not recwarn.list and splits.source == str(tmp_path / "fashion-mnist")
    assert len(splits.classes) == 10 and splits.classes[0] == "T-shirt/top"
    assert splits.classes[9] == "Ankle boot"


def test_torchvisions_raw_folder_and_uncompressed_files_are_found(tmp_path):
    write_idx_folder(tmp_path / "FashionMNIST" / "raw", gz=False)
    with pytest.warns(data.UnverifiedDatasetWarning):
        splits = data.load_dataset("fashion-mnist", tmp_path, download=False)
    assert splits.name == "fashion-mnist" and len(splits.train) == 96
    assert "FashionMNIST" in splits.source


def test_the_other_datasets_official_files_are_refused_by_name(tmp_path, monkeypatch):
    # the same names for both: MNIST's official files in the data folder itself
    md5 = write_idx_folder(tmp_path)
    monkeypatch.setattr(mnist, "MNIST", dataclasses.replace(mnist.MNIST, md5=md5))
    for download in (False, True):  # found, so never downloaded over
        with pytest.raises(data.DatasetError) as e:
            data.load_fashion_mnist(tmp_path, download=download, progress=False)
        text = str(e.value)
        assert "is the official MNIST file train-images-idx3-ubyte.gz, not Fashion-MNIST's" in text
        assert str(tmp_path / "mnist") in text and str(tmp_path / "fashion-mnist") in text
    # asked for as MNIST, the same files are MNIST's, verified
    splits = mnist.load_idx_dataset(mnist.MNIST, tmp_path, download=False)
    assert splits.name == "mnist" and splits.source == str(tmp_path)


def test_unpacked_files_are_said_to_be_unchecked_not_wrong(tmp_path):
    write_idx_folder(tmp_path / "mnist", gz=False)
    with pytest.warns(data.UnverifiedDatasetWarning) as record:
        splits = data.load_mnist(tmp_path, download=False)
    text = str(record[0].message)
    assert "unpacked files cannot be checked against the official checksums" in text
    assert "not those of the official" not in text
    assert splits.source.endswith(
        "(unverified: unpacked files, not checked against the official MD5s)"
    )


def test_missing_files_are_a_clear_error_offline(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load_mnist(tmp_path, download=False)
    text = str(e.value)
    assert str(tmp_path / "mnist") in text and "MNIST/raw" in text
    assert "MINITORCH_ALEXNET_MNIST_URL" in text and "train-images-idx3-ubyte.gz" in text


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b[: len(b) // 2], "not a complete gzip file"),
        (lambda b: gzip.compress(b"\x00\x00\x09\x03" + gzip.decompress(b)[4:]), "not a 3-d IDX"),
        (lambda b: gzip.compress(gzip.decompress(b)[:-5]), "truncated or damaged"),
    ],
)
def test_damaged_files_are_refused_by_name(tmp_path, damage, message):
    write_idx_folder(tmp_path / "mnist")
    path = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(data.CorruptDatasetError, match=message) as e:
        data.load_mnist(tmp_path, download=False)
    assert str(path) in str(e.value)


def test_labels_out_of_range_and_mismatched_counts_are_refused(tmp_path):
    write_idx_folder(tmp_path / "mnist")
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte.gz"
    labels.write_bytes(gzip.compress(_idx(np.full(96, 12, np.uint8))))
    with pytest.raises(data.CorruptDatasetError, match="label 12; MNIST has 10 classes"):
        data.load_mnist(tmp_path, download=False)
    labels.write_bytes(gzip.compress(_idx(np.zeros(95, np.uint8))))
    with pytest.raises(data.CorruptDatasetError, match="96 images but .* 95 labels"):
        data.load_mnist(tmp_path, download=False)


def test_download_checks_md5_and_tries_the_next_mirror(tmp_path):
    md5 = write_idx_folder(tmp_path / "server")
    dead = (tmp_path / "no-such-folder").as_uri() + "/"
    spec = dataclasses.replace(mnist.MNIST, md5=md5, mirrors=(dead, (tmp_path / "server").as_uri()))
    splits = mnist.load_idx_dataset(spec, tmp_path / "data", progress=False)
    assert len(splits.train) == 96
    assert sorted(p.name for p in (tmp_path / "data" / "mnist").iterdir()) == sorted(NAMES)
    # the official checksums: a download that is not MNIST is deleted, never used
    with pytest.raises(data.CorruptDatasetError, match="deleted and not used"):
        data.load_mnist(tmp_path / "other", url=(tmp_path / "server").as_uri(), progress=False)
    assert not any((tmp_path / "other" / "mnist").iterdir())


def test_every_mirror_failing_is_one_download_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MINITORCH_ALEXNET_FASHION_MNIST_URL", "http://127.0.0.1:9/")
    with pytest.raises(data.DownloadError, match="could not download Fashion-MNIST"):
        data.load_fashion_mnist(tmp_path, progress=False)


# ------------------------------------------------------------------ image folders
def _image(path: Path, colour, size=(40, 30)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)


def write_image_folder(root: Path, per_class: int = 6) -> None:
    """root/blue, root/red: PNGs and JPEGs of several sizes, plus files to skip."""
    for i in range(per_class):
        _image(root / "red" / f"r{i}.png", (220, 20, 20), (40 + 3 * i, 30))
        _image(root / "blue" / "deeper" / f"b{i}.jpg", (20, 20, 220), (30, 50 + i))
    (root / "red" / "notes.txt").write_text("not an image")
    _image(root / "red" / ".hidden.png", (0, 255, 0))


def test_image_folder_classes_from_folders_and_images_squared(tmp_path):
    write_image_folder(tmp_path / "pics")
    folder = data.ImageFolder(tmp_path / "pics", size=12)
    assert folder.classes == ["blue", "red"] and folder.class_to_idx == {"blue": 0, "red": 1}
    assert len(folder) == 12 and folder.targets.count(1) == 6
    image, label = folder[len(folder) - 1]
    assert label == 1 and image.shape == (3, 12, 12) and image.dtype == np.uint8
    assert image[0].min() > 200 and image[2].max() < 40  # red, read as RGB


def test_the_centre_square_is_kept(tmp_path):
    img = Image.new("RGB", (30, 10), (0, 0, 255))
    img.paste((255, 0, 0), (10, 0, 20, 10))  # a red centre square between blue sides
    (tmp_path / "c" / "x").mkdir(parents=True)
    img.save(tmp_path / "c" / "x" / "wide.png")
    image, _ = data.ImageFolder(tmp_path / "c", size=10)[0]  # a crop, no scaling
    assert (image[0] == 255).all() and (image[2] == 0).all()


def test_load_image_folder_splits_each_class(tmp_path):
    write_image_folder(tmp_path / "pics")
    splits = data.load_image_folder(tmp_path / "pics", size=16, test_fraction=0.34)
    assert splits.name == "imagefolder" and splits.classes == ("blue", "red")
    assert splits.train.images.shape == (8, 3, 16, 16)
    assert sorted(splits.test.labels.tolist()) == [0, 0, 1, 1]
    again = data.load_image_folder(tmp_path / "pics", size=16, test_fraction=0.34)
    np.testing.assert_array_equal(again.train.images, splits.train.images)  # seeded


def test_train_and_val_folders_are_used_as_they_are(tmp_path):
    write_image_folder(tmp_path / "set" / "train", per_class=3)
    write_image_folder(tmp_path / "set" / "val", per_class=2)
    splits = data.load_image_folder(tmp_path / "set", size=8)
    assert (len(splits.train), len(splits.test)) == (6, 4)
    _image(tmp_path / "set" / "val" / "green" / "g.png", (0, 255, 0))
    with pytest.raises(data.DatasetError, match="green"):
        data.load_image_folder(tmp_path / "set", size=8)


def test_image_folder_errors_name_the_problem(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="not there"):
        data.load_image_folder(tmp_path / "absent")
    (tmp_path / "flat").mkdir()
    _image(tmp_path / "flat" / "a.png", (1, 2, 3))
    with pytest.raises(data.DatasetNotFoundError, match="no class folders"):
        data.load_image_folder(tmp_path / "flat")
    (tmp_path / "empty" / "cat").mkdir(parents=True)
    with pytest.raises(data.DatasetNotFoundError, match="no images"):
        data.load_image_folder(tmp_path / "empty")
    write_image_folder(tmp_path / "bad")
    broken = tmp_path / "bad" / "red" / "broken.png"
    broken.write_bytes(b"\x89PNG not really")
    with pytest.raises(data.CorruptDatasetError, match="broken.png"):
        data.load_image_folder(tmp_path / "bad", size=8)
    with pytest.raises(data.DatasetError, match="--data-dir"):
        data.load_dataset("imagefolder")


# ------------------------------------------------------------------ short training runs
def _train(T, tmp_path, *flags):
    out = tmp_path / "run"
    argv = ["--backend", "numpy", "--epochs", "1", "--batch-size", "16", "--lr", "0.05"]
    argv += ["--no-progress", "--no-download", "--out", str(out), *flags]
    return T.main(argv), out


@pytest.mark.filterwarnings("ignore::minitorch_alexnet.data.UnverifiedDatasetWarning")
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_short_run_on_idx_files(T, tmp_path, capsys, dataset):
    write_idx_folder(tmp_path / "data" / dataset, n_train=64, n_test=32)
    code, out = _train(
        T, tmp_path, "--dataset", dataset, "--data-dir", str(tmp_path / "data"),
        "--model", "alexnet_mnist", "--no-augment",
    )  # fmt: skip
    assert code == 0
    stdout = capsys.readouterr().out
    assert f"dataset {dataset} (64 train / 32 test" in stdout
    assert "(unverified: not the official files)" in stdout and "SYNTHETIC" not in stdout
    history = json.loads((out / "metrics.json").read_text())
    assert len(history) == 1 and np.isfinite(history[0]["train_loss"])


def test_short_run_on_an_image_folder(T, tmp_path, capsys):
    write_image_folder(tmp_path / "pics", per_class=20)
    code, out = _train(
        T, tmp_path, "--dataset", "imagefolder", "--data-dir", str(tmp_path / "pics"),
        "--model", "tiny", "--epochs", "2", "--padding-mode", "zeros", "--crop-padding", "4",
    )  # fmt: skip
    # zero padding: the images are single colours, which reflect padding keeps constant,
    # so that after 4 steps BatchNorm's running statistics (not the batch's) still split
    # them badly; black borders give every crop some structure
    assert code == 0
    stdout = capsys.readouterr().out
    assert "dataset imagefolder (32 train / 8 test" in stdout and "(32x32)" in stdout
    history = json.loads((out / "metrics.json").read_text())
    assert history[-1]["test_acc"] == 1.0  # red against blue


def test_named_datasets_never_fall_back_to_synthetic_data(T, tmp_path, capsys):
    code, _ = _train(T, tmp_path, "--dataset", "mnist", "--data-dir", str(tmp_path / "none"))
    assert code == 2
    captured = capsys.readouterr()
    assert "--dataset mnist: MNIST was not found" in captured.err
    assert "SYNTHETIC" not in captured.err + captured.out
    code, _ = _train(T, tmp_path, "--dataset", "imagefolder")
    assert code == 2 and "--data-dir" in capsys.readouterr().err
