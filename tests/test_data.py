"""CIFAR-10 reading (on a tiny archive in the official format), the DataLoader, synthetic data."""

import io
import os
import pickle
import tarfile

import numpy as np
import pytest

from minitorch_alexnet import backend as B
from minitorch_alexnet import data
from minitorch_alexnet.data.cifar import CIFAR10_ARCHIVE, CIFAR10_FOLDER
from minitorch_alexnet.data.files import MANIFEST

PER_BATCH = 12
N_TEST = 10
# the miniature archives here are not the official files, so loading them warns
pytestmark = pytest.mark.filterwarnings("ignore::minitorch_alexnet.data.UnverifiedDatasetWarning")


@pytest.fixture(autouse=True)
def _numpy_backend():
    with B.use_backend("numpy"):
        yield


def _batch(rng, n, label="training batch"):
    """A batch as the official files hold it: bytes keys, uint8 (n, 3072), list of int labels."""
    return {
        b"batch_label": label.encode(),
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
    }


def _add(tar, name, payload, **info):
    ti = tarfile.TarInfo(name)
    ti.size = len(payload)
    for k, v in info.items():
        setattr(ti, k, v)
    tar.addfile(ti, io.BytesIO(payload))


def _write_archive(path, seed=0, extra_members=()):
    """A miniature cifar-10-python.tar.gz (Python-2 style protocol-2 pickles) and its batches."""
    rng = np.random.default_rng(seed)
    batches = {f"data_batch_{i}": _batch(rng, PER_BATCH) for i in range(1, 6)}
    batches["test_batch"] = _batch(rng, N_TEST, "testing batch 1 of 1")
    meta = {b"label_names": [n.encode() for n in data.CIFAR10_CLASSES], b"num_vis": 3072}
    with tarfile.open(path, "w:gz") as tar:
        dir_info = tarfile.TarInfo(CIFAR10_FOLDER)
        dir_info.type = tarfile.DIRTYPE
        tar.addfile(dir_info)
        for name, b in batches.items():
            _add(tar, f"{CIFAR10_FOLDER}/{name}", pickle.dumps(b, protocol=2))
        _add(tar, f"{CIFAR10_FOLDER}/batches.meta", pickle.dumps(meta, protocol=2))
        for name, payload, info in extra_members:
            _add(tar, name, payload, **info)
    return batches


@pytest.fixture
def archive(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    path = src / CIFAR10_ARCHIVE
    batches = _write_archive(path)
    return path, batches


def _check_splits(splits, batches):
    assert splits.name == "cifar10"
    assert splits.train.images.shape == (5 * PER_BATCH, 3, 32, 32)
    assert splits.train.images.dtype == np.uint8
    assert splits.train.labels.dtype == np.int64
    assert splits.test.images.shape == (N_TEST, 3, 32, 32)
    # row layout: 1024 red values, then green, then blue, each row-major
    b1 = batches["data_batch_1"]
    np.testing.assert_array_equal(
        splits.train.images[0, 1], b1[b"data"][0, 1024:2048].reshape(32, 32)
    )
    np.testing.assert_array_equal(splits.train.labels[:PER_BATCH], b1[b"labels"])
    b5 = batches["data_batch_5"]
    np.testing.assert_array_equal(splits.train.labels[-PER_BATCH:], b5[b"labels"])
    np.testing.assert_array_equal(splits.test.labels, batches["test_batch"][b"labels"])
    assert splits.classes == data.CIFAR10_CLASSES


def test_archive_in_data_dir_is_verified_extracted_and_loaded(tmp_path, archive):
    path, batches = archive
    root = tmp_path / "root"
    root.mkdir()
    os.replace(path, root / CIFAR10_ARCHIVE)
    splits = data.load_cifar10(root, download=False, md5=data.md5sum(root / CIFAR10_ARCHIVE))
    _check_splits(splits, batches)
    assert (root / CIFAR10_FOLDER / "test_batch").is_file()
    assert not [p for p in root.iterdir() if p.name.startswith(".extract")]
    # a folder that already holds cifar-10-batches-py is used as it is: no archive needed
    (root / CIFAR10_ARCHIVE).unlink()
    _check_splits(data.load_cifar10(root, download=False), batches)
    _check_splits(data.load_cifar10(root / CIFAR10_FOLDER, download=False), batches)


def test_download_from_url(tmp_path, archive):
    path, batches = archive
    root = tmp_path / "cache"
    splits = data.load_cifar10(root, url=path.as_uri(), md5=data.md5sum(path), progress=False)
    _check_splits(splits, batches)
    assert (root / CIFAR10_ARCHIVE).is_file()
    assert not [p for p in root.iterdir() if p.name.endswith(".part")]


def test_env_var_and_xdg_choose_the_folder(tmp_path, monkeypatch, archive):
    path, batches = archive
    monkeypatch.delenv("MINITORCH_ALEXNET_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert data.default_data_dir() == tmp_path / "xdg" / "minitorch_alexnet"
    monkeypatch.setenv("MINITORCH_ALEXNET_DATA", str(path.parent))
    assert data.default_data_dir() == path.parent
    _check_splits(data.load_cifar10(download=False, md5=data.md5sum(path)), batches)


def test_bad_checksum_of_present_archive_is_refused(tmp_path, archive):
    path, _ = archive
    with pytest.raises(data.CorruptDatasetError) as e:
        data.load_cifar10(path.parent, download=False, md5="0" * 32)
    msg = str(e.value)
    assert str(path) in msg and "Delete it" in msg
    assert not (path.parent / CIFAR10_FOLDER).exists()  # nothing extracted, nothing used


def test_bad_checksum_of_download_deletes_it(tmp_path, archive):
    path, _ = archive
    root = tmp_path / "cache"
    with pytest.raises(data.CorruptDatasetError, match="MD5"):
        data.load_cifar10(root, url=path.as_uri(), md5="0" * 32, progress=False)
    assert list(root.iterdir()) == []


def test_truncated_archive_is_reported(tmp_path, archive):
    path, _ = archive
    blob = path.read_bytes()
    bad = tmp_path / "trunc"
    bad.mkdir()
    (bad / CIFAR10_ARCHIVE).write_bytes(blob[: len(blob) // 2])
    with pytest.raises(data.CorruptDatasetError, match="truncated or corrupt"):
        data.load_cifar10(bad, download=False, md5=None)
    assert not (bad / CIFAR10_FOLDER).exists()


@pytest.mark.parametrize(
    "name,info",
    [
        (f"{CIFAR10_FOLDER}/../../escaped", {}),
        ("/tmp/minitorch_alexnet_escaped", {}),
        (f"{CIFAR10_FOLDER}/link", {"type": tarfile.SYMTYPE, "linkname": "../../outside"}),
        (f"{CIFAR10_FOLDER}/abslink", {"type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}),
        (f"{CIFAR10_FOLDER}/hard", {"type": tarfile.LNKTYPE, "linkname": "../outside"}),
        (f"{CIFAR10_FOLDER}/fifo", {"type": tarfile.FIFOTYPE}),
    ],
    ids=["dotdot", "absolute", "symlink-out", "symlink-abs", "hardlink-out", "fifo"],
)
def test_unsafe_member_is_refused(tmp_path, name, info):
    root = tmp_path / "root"
    root.mkdir()
    payload = (
        b"" if info.get("type") in (tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.FIFOTYPE) else b"x"
    )
    _write_archive(root / CIFAR10_ARCHIVE, extra_members=[(name, payload, info)])
    with pytest.raises(data.UnsafeArchiveError, match="refusing to extract"):
        data.load_cifar10(root, download=False, md5=None)
    assert not (root / CIFAR10_FOLDER).exists()
    assert not (tmp_path / "escaped").exists()
    assert sorted(p.name for p in root.iterdir()) == [CIFAR10_ARCHIVE]


def test_missing_data_without_download(tmp_path):
    with pytest.raises(data.DatasetNotFoundError) as e:
        data.load_cifar10(tmp_path, download=False)
    msg = str(e.value)
    assert str(tmp_path / CIFAR10_FOLDER) in msg and data.CIFAR10_URL in msg


def test_download_failure_is_a_download_error(tmp_path):
    # port 9 on the loopback interface: refused at once, no network needed
    with pytest.raises(data.DownloadError, match="could not download"):
        data.load_cifar10(tmp_path, url="http://127.0.0.1:9/cifar.tar.gz", progress=False)
    assert isinstance(data.DownloadError("x"), data.DatasetNotFoundError)
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def _folder_with(tmp_path, archive, name, payload):
    """A folder of the user's own (no manifest: not extracted by the loader), a file replaced."""
    path, _ = archive
    root = tmp_path / "root"
    data.extract_archive(path, root)
    (root / CIFAR10_FOLDER / MANIFEST).unlink()
    (root / CIFAR10_FOLDER / name).write_bytes(payload)
    return root


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda b: {**b, b"data": b[b"data"][:, :100]}, "shape"),
        (lambda b: {**b, b"data": b[b"data"].astype(np.float32)}, "uint8"),
        (lambda b: {**b, b"labels": b[b"labels"][:-1]}, "labels"),
        (lambda b: {**b, b"labels": [12] * len(b[b"labels"])}, r"outside \[0, 10\)"),
        (lambda b: {b"labels": b[b"labels"]}, "no 'data'"),
    ],
    ids=["short-rows", "float", "label-count", "label-range", "no-data"],
)
def test_malformed_batch_is_reported(tmp_path, archive, mutate, match):
    _, batches = archive
    payload = pickle.dumps(mutate(batches["data_batch_3"]), protocol=2)
    root = _folder_with(tmp_path, archive, "data_batch_3", payload)
    with pytest.raises(data.CorruptDatasetError, match=match) as e:
        data.load_cifar10(root, download=False)
    assert "data_batch_3" in str(e.value) and "Delete the folder" in str(e.value)


def test_truncated_batch_is_reported(tmp_path, archive):
    _, batches = archive
    payload = pickle.dumps(batches["test_batch"], protocol=2)
    root = _folder_with(tmp_path, archive, "test_batch", payload[: len(payload) // 3])
    with pytest.raises(data.CorruptDatasetError, match="test_batch"):
        data.load_cifar10(root, download=False)


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_batch_pickle_cannot_run_code(tmp_path, archive):
    root = _folder_with(tmp_path, archive, "data_batch_1", pickle.dumps(_Evil(), protocol=2))
    with pytest.raises(data.CorruptDatasetError, match="not allowed"):
        data.load_cifar10(root, download=False)


def test_official_style_str_pickle_opcodes_are_read(tmp_path):
    """Files written by Python 2 store keys as BINSTRING opcodes; they load as bytes keys."""
    arr = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3072)
    body = pickle.dumps(arr, protocol=2)[2:-1]  # the array's opcodes, without PROTO and STOP
    key = lambda s: pickle.SHORT_BINSTRING + bytes([len(s)]) + s
    blob = (
        pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.MARK
        + key(b"data") + body
        + key(b"labels") + pickle.EMPTY_LIST + pickle.MARK + pickle.BININT1 + b"\x03"
        + pickle.BININT1 + b"\x07" + pickle.APPENDS
        + pickle.SETITEMS + pickle.STOP
    )  # fmt: skip
    path = tmp_path / "batch"
    path.write_bytes(blob)
    images, labels = data.read_batch(path)
    np.testing.assert_array_equal(images.reshape(2, -1), arr)
    np.testing.assert_array_equal(labels, [3, 7])


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_batches_pickled_with_any_protocol_are_read(tmp_path, protocol):
    """Copies re-pickled by Python 3 (any protocol, NumPy scalars as labels) read the same."""
    rng = np.random.default_rng(protocol)
    arr = rng.integers(0, 256, (3, 3072), dtype=np.uint8)
    labels = [np.int64(4), np.int64(0), 9]
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps({"data": arr, "labels": labels}, protocol=protocol))
    images, got = data.read_batch(path)
    np.testing.assert_array_equal(images.reshape(3, -1), arr)
    np.testing.assert_array_equal(got, [4, 0, 9])
    assert images.flags.writeable and images.flags.c_contiguous


# ---------------------------------------------------------------- DataLoader
def _indexed_dataset(n):
    """Images that carry their own index in two pixels (so batches can be traced back)."""
    images = np.random.default_rng(0).integers(0, 256, (n, 3, 32, 32), dtype=np.uint8)
    images[:, 0, 0, 0] = np.arange(n) % 256
    images[:, 0, 0, 1] = np.arange(n) // 256
    return data.ImageDataset(images, np.arange(n) % 10, data.CIFAR10_CLASSES, "indexed")


def _ids(x):
    x = B.to_numpy(x)
    return (x[:, 0, 0, 0] + 256 * x[:, 0, 0, 1]).astype(np.int64)


def test_batches_cover_the_epoch_in_order_without_shuffle():
    ds = _indexed_dataset(50)
    loader = data.DataLoader(ds, batch_size=16, normalize=False)
    assert len(loader) == 4
    batches = list(loader)
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    ids = np.concatenate([_ids(x) for x, _ in batches])
    np.testing.assert_array_equal(ids, np.arange(50))
    x, y = batches[0]
    assert x.dtype == np.float32 and x.shape == (16, 3, 32, 32) and y.dtype == np.int64
    np.testing.assert_array_equal(x, ds.images[:16].astype(np.float32))
    np.testing.assert_array_equal(y, ds.labels[:16])


def test_drop_last():
    loader = data.DataLoader(_indexed_dataset(50), batch_size=16, drop_last=True, shuffle=True)
    assert len(loader) == 3 and loader.num_examples == 48
    assert [len(y) for _, y in loader] == [16, 16, 16]
    with pytest.raises(ValueError, match="no batch"):
        data.DataLoader(_indexed_dataset(10), batch_size=16, drop_last=True)


def test_shuffle_is_a_seeded_permutation_per_epoch():
    ds = _indexed_dataset(64)

    def order(seed, epoch):
        loader = data.DataLoader(ds, batch_size=10, shuffle=True, normalize=False, seed=seed)
        loader.set_epoch(epoch)
        return np.concatenate([_ids(x) for x, _ in loader])

    a = order(1, 0)
    assert sorted(a) == list(range(64))  # every example exactly once
    assert not np.array_equal(a, np.arange(64))
    np.testing.assert_array_equal(a, order(1, 0))  # reproducible
    assert not np.array_equal(a, order(1, 1))  # a new order each epoch
    assert not np.array_equal(a, order(2, 0))  # depends on the seed
    # a full pass advances the epoch, so iterating twice equals epochs 0 and 1
    loader = data.DataLoader(ds, batch_size=10, shuffle=True, normalize=False, seed=1)
    list(loader)
    assert loader.epoch == 1
    np.testing.assert_array_equal(np.concatenate([_ids(x) for x, _ in loader]), order(1, 1))


def test_seed_none_comes_from_the_project_rng():
    ds = _indexed_dataset(8)
    B.manual_seed(5)
    a = data.DataLoader(ds, shuffle=True).seed
    B.manual_seed(5)
    assert data.DataLoader(ds, shuffle=True).seed == a


def test_labels_follow_their_images_under_shuffle():
    ds = _indexed_dataset(40)
    for x, y in data.DataLoader(ds, batch_size=7, shuffle=True, augment=False, normalize=False):
        np.testing.assert_array_equal(B.to_numpy(y), ds.labels[_ids(x)])


def _reference_crop_flip(img, oy, ox, flip, p):
    padded = np.pad(img, ((0, 0), (p, p), (p, p)))
    out = padded[:, oy : oy + img.shape[1], ox : ox + img.shape[2]]
    return out[:, :, ::-1] if flip else out


def test_crop_flip_matches_a_per_image_reference():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (9, 3, 8, 8), dtype=np.uint8)
    oy, ox = rng.integers(0, 7, (2, 9))
    flip = rng.random(9) < 0.5
    out = data.crop_flip(x, oy, ox, flip, padding=3)
    for n in range(9):
        np.testing.assert_array_equal(out[n], _reference_crop_flip(x[n], oy[n], ox[n], flip[n], 3))


def test_flip_twice_is_the_identity_and_centre_crop_too():
    x = np.random.default_rng(1).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    centre = np.full(5, 4)
    yes = np.ones(5, dtype=bool)
    once = data.crop_flip(x, centre, centre, yes, padding=4)
    np.testing.assert_array_equal(once, x[:, :, :, ::-1])
    np.testing.assert_array_equal(data.crop_flip(once, centre, centre, yes, padding=4), x)
    np.testing.assert_array_equal(data.crop_flip(x, centre, centre, ~yes, padding=4), x)


def test_crop_shifts_content_and_pads_with_zeros():
    x = np.random.default_rng(2).integers(1, 256, (2, 3, 32, 32), dtype=np.uint8)  # no zeros
    no = np.zeros(2, dtype=bool)
    # window one row down, four columns left: content moves up by 1 and right by 4
    out = data.crop_flip(x, np.full(2, 5), np.full(2, 0), no, padding=4)
    np.testing.assert_array_equal(out[:, :, :31, 4:], x[:, :, 1:, :28])
    assert not out[:, :, :, :4].any() and not out[:, :, 31, :].any()
    # the largest offset shifts by the padding, leaving a 4-pixel zero band bottom and right
    out = data.crop_flip(x, np.full(2, 8), np.full(2, 8), no, padding=4)
    np.testing.assert_array_equal(out[:, :, :28, :28], x[:, :, 4:, 4:])
    assert not out[:, :, 28:, :].any() and not out[:, :, :, 28:].any()


def test_normalize_uses_cifar_statistics():
    x = np.random.default_rng(3).integers(0, 256, (4, 3, 5, 5), dtype=np.uint8)
    out = data.normalize(x)
    mean = np.array(data.CIFAR10_MEAN).reshape(1, 3, 1, 1)
    std = np.array(data.CIFAR10_STD).reshape(1, 3, 1, 1)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, (x / 255.0 - mean) / std, rtol=1e-5, atol=1e-5)


def test_augmented_batches_are_crops_and_flips_of_their_images():
    ds = _indexed_dataset(24)
    candidates = {}  # every crop/flip of every image, by content
    for src in range(24):
        for oy in range(9):
            for ox in range(9):
                for f in (False, True):
                    img = _reference_crop_flip(ds.images[src], oy, ox, f, 4)
                    candidates.setdefault(img.tobytes(), []).append((src, oy, ox, f))
    seen_flip = seen_shift = False
    loader = data.DataLoader(ds, batch_size=8, shuffle=True, augment=True, normalize=False, seed=3)
    for x, y in loader:
        x = B.to_numpy(x).astype(np.uint8)
        for img, label in zip(x, B.to_numpy(y)):
            fits = candidates.get(img.tobytes())
            assert fits, "an augmented image is not a crop/flip of any dataset image"
            assert any(ds.labels[src] == label for src, _, _, _ in fits)
            seen_flip |= any(f for _, _, _, f in fits)
            seen_shift |= any((oy, ox) != (4, 4) for _, oy, ox, _ in fits)
    assert seen_flip and seen_shift


def test_augmentation_is_reproducible_per_epoch():
    ds = _indexed_dataset(20)
    make = lambda: data.DataLoader(ds, batch_size=8, shuffle=True, augment=True, seed=7)
    a, b = make(), make()
    b.set_epoch(3)
    a.set_epoch(3)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    a.set_epoch(4)
    assert not all(np.array_equal(xa, xb) for (xa, _), (xb, _) in zip(a, b))


def test_numba_backend_gives_the_same_batches():
    ds = _indexed_dataset(20)
    kw = dict(batch_size=8, shuffle=True, augment=True, seed=11)
    ref = list(data.DataLoader(ds, backend="numpy", **kw))
    got = list(data.DataLoader(ds, backend="numba", **kw))
    for (xa, ya), (xb, yb) in zip(ref, got):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


@pytest.mark.gpu
def test_cupy_loader_stays_on_the_device():
    cp = pytest.importorskip("cupy")
    if "cupy" not in B.available_backends():
        pytest.skip("no usable CUDA GPU")
    ds = _indexed_dataset(40)
    loader = data.DataLoader(ds, batch_size=16, shuffle=True, augment=True, seed=0, backend="cupy")
    assert isinstance(loader._images, cp.ndarray)
    ids = []
    for x, y in loader:
        assert isinstance(x, cp.ndarray) and isinstance(y, cp.ndarray)
        assert x.dtype == cp.float32 and y.dtype == cp.int64
        ids.append(B.to_numpy(y))
    assert len(np.concatenate(ids)) == 40
    # the same order of examples as on the CPU (the permutation is drawn on the host)
    cpu = data.DataLoader(ds, batch_size=16, shuffle=True, seed=0, backend="numpy")
    np.testing.assert_array_equal(np.concatenate(ids), np.concatenate([y for _, y in cpu]))


# ---------------------------------------------------------------- synthetic data
def test_synthetic_is_deterministic_balanced_and_cifar_shaped():
    a = data.make_synthetic(200, 50, seed=3)
    b = data.make_synthetic(200, 50, seed=3)
    c = data.make_synthetic(200, 50, seed=4)
    assert a.train.images.shape == (200, 3, 32, 32) and a.train.images.dtype == np.uint8
    assert a.test.images.shape == (50, 3, 32, 32) and a.train.labels.dtype == np.int64
    np.testing.assert_array_equal(a.train.images, b.train.images)
    np.testing.assert_array_equal(a.test.labels, b.test.labels)
    assert not np.array_equal(a.train.images, c.train.images)
    assert np.bincount(a.train.labels, minlength=10).tolist() == [20] * 10
    assert a.name == "synthetic" and len(a.classes) == 10


def test_synthetic_classes_are_distinguishable():
    """Nearest class-mean on the training set classifies held-out images far above chance."""
    s = data.make_synthetic(1000, 300, seed=0)
    feats = lambda ds: ds.images.reshape(len(ds), 3, -1).mean(axis=2)  # mean colour
    means = np.stack([feats(s.train)[s.train.labels == k].mean(axis=0) for k in range(10)])
    d = ((feats(s.test)[:, None, :] - means[None]) ** 2).sum(axis=2)
    acc = (d.argmin(axis=1) == s.test.labels).mean()
    assert acc > 0.5


def test_epoch_argument_equals_set_epoch():
    ds = _indexed_dataset(30)
    a = data.DataLoader(ds, batch_size=8, shuffle=True, augment=True, seed=2, epoch=5)
    b = data.DataLoader(ds, batch_size=8, shuffle=True, augment=True, seed=2)
    b.set_epoch(5)
    batches_a, batches_b = list(a), list(b)
    assert len(batches_a) == len(batches_b) == 4
    for (xa, ya), (xb, yb) in zip(batches_a, batches_b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert a.epoch == b.epoch == 6
