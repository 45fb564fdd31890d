"""Faults in getting and reading CIFAR-10: hostile archives, damaged files, bad downloads.

The loader must answer each with a DatasetError naming the file, the problem and what
to do, or with the right result; never with lost or silently wrong data. The fuzz
tests are seeded and bounded. Downloads use a server on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import http.server
import io
import json
import os
import pickle
import pickletools
import tarfile
import threading
import time
import tracemalloc
import warnings
from unittest import mock

import numpy as np
import pytest

from minitorch_alexnet import data
from minitorch_alexnet.data import archive as archive_mod
from minitorch_alexnet.data.archive import check_member
from minitorch_alexnet.data.files import (
    CIFAR10_ARCHIVE,
    CIFAR10_FILE_MD5,
    CIFAR10_FOLDER,
    MANIFEST,
    MAX_BATCH_FILE_BYTES,
    MAX_MEMBER_BYTES,
)

N = 8  # images per miniature batch
NAMES = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]


# ---------------------------------------------------------------- miniature CIFAR files
def _batch(seed, n=N, filenames=None):
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"training batch",
        b"labels": [int(v) for v in rng.integers(0, 10, n)],
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{i}.png".encode() for i in range(filenames or n)],
    }


def _files(n=N):
    out = {name: pickle.dumps(_batch(k, n), protocol=2) for k, name in enumerate(NAMES)}
    meta = {b"label_names": [c.encode() for c in data.CIFAR10_CLASSES]}
    out["batches.meta"] = pickle.dumps(meta, protocol=2)
    return out


def _add(tar, name, payload=b"", **info):
    ti = tarfile.TarInfo(name)
    ti.size = len(payload)
    for k, v in info.items():
        setattr(ti, k, v)
    tar.addfile(ti, io.BytesIO(payload) if payload else None)


def _archive(path, extra=(), files=None):
    """A miniature cifar-10-python.tar.gz; ``extra``: (name, payload, TarInfo fields)."""
    with tarfile.open(path, "w:gz") as tar:
        _add(tar, CIFAR10_FOLDER, type=tarfile.DIRTYPE)
        for name, payload in (files or _files()).items():
            _add(tar, f"{CIFAR10_FOLDER}/{name}", payload)
        for name, payload, info in extra:
            _add(tar, name, payload, **info)
    return path


def _own_folder(root, files=None):
    """A cifar-10-batches-py/ of the user's own (not extracted by the loader)."""
    folder = root / CIFAR10_FOLDER
    folder.mkdir(parents=True)
    for name, payload in (files or _files()).items():
        (folder / name).write_bytes(payload)
    return folder


def _full_disk(f):
    """``f``, but its writes fail as on a full disk."""
    m = mock.MagicMock(wraps=f)
    m.__enter__.return_value = m
    m.__exit__.side_effect = lambda *exc: f.close()
    m.write.side_effect = OSError(errno.ENOSPC, "No space left on device")
    return m


def _outside_files(top, inside):
    """Every path under ``top`` (links not followed) that is not under ``inside``."""
    return sorted(str(p) for p in top.rglob("*") if not str(p).startswith(str(inside)))


# ---------------------------------------------------------------- 2: links
def test_link_chain_is_refused_by_the_member_check_itself(tmp_path):
    """a -> ., b -> a/a/../../.., b/FILE: each looks harmless lexically, together they escape."""
    for name, kind, link in [
        ("a", tarfile.SYMTYPE, "."),
        ("b", tarfile.SYMTYPE, "a/a/../../.."),
        ("hard", tarfile.LNKTYPE, "test_batch"),
    ]:
        ti = tarfile.TarInfo(name := f"{CIFAR10_FOLDER}/{name}")
        ti.type, ti.linkname = kind, link
        with pytest.raises(data.UnsafeArchiveError, match="link") as e:
            check_member(ti, tmp_path, tmp_path / "x.tar.gz")
        assert repr(name) in str(e.value) and "x.tar.gz" in str(e.value)
    ok = tarfile.TarInfo(f"{CIFAR10_FOLDER}/data_batch_1")
    check_member(ok, tmp_path, tmp_path / "x.tar.gz")  # a plain file passes


@pytest.mark.parametrize("has_filter", [True, False], ids=["with-data-filter", "no-data-filter"])
def test_link_chain_writes_nothing_outside_on_any_python(tmp_path, monkeypatch, has_filter):
    if not has_filter:  # Python 3.10.0-3.10.11 and 3.11.0-3.11.3 have no extraction filters
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    root = tmp_path / "x" / "root"
    root.mkdir(parents=True)
    extra = [
        (f"{CIFAR10_FOLDER}/a", b"", {"type": tarfile.SYMTYPE, "linkname": "."}),
        (f"{CIFAR10_FOLDER}/b", b"", {"type": tarfile.SYMTYPE, "linkname": "a/a/../../.."}),
        (f"{CIFAR10_FOLDER}/b/FILE", b"escaped!", {}),
    ]
    _archive(root / CIFAR10_ARCHIVE, extra)
    with pytest.raises(
        data.UnsafeArchiveError, match="refusing to extract member .*: it is a link"
    ):
        data.load_cifar10(root, download=False, md5=None)
    assert _outside_files(tmp_path, root) == [str(tmp_path / "x")]
    assert sorted(p.name for p in root.iterdir()) == [CIFAR10_ARCHIVE]


# ---------------------------------------------------------------- 8: sizes
def test_a_member_larger_than_any_cifar_file_is_refused_before_writing(tmp_path):
    big = b"\0" * (MAX_MEMBER_BYTES + 1)  # 40 MB of zeros: about 40 KB compressed
    path = _archive(tmp_path / CIFAR10_ARCHIVE, [(f"{CIFAR10_FOLDER}/big", big, {})])
    del big
    assert path.stat().st_size < 1_000_000
    with pytest.raises(data.UnsafeArchiveError, match="more than the 40000000 allowed") as e:
        data.extract_archive(path, tmp_path / "out")
    assert "'cifar-10-batches-py/big'" in str(e.value)
    assert list((tmp_path / "out").iterdir()) == []


def test_total_size_and_member_count_are_bounded(tmp_path):
    path = _archive(
        tmp_path / "a.tar.gz", [(f"{CIFAR10_FOLDER}/pad{i}", b"1" * 5000, {}) for i in range(3)]
    )
    total = sum(len(p) for p in _files().values()) + 15000
    with pytest.raises(data.UnsafeArchiveError, match="more than the .* allowed in all"):
        data.extract_archive(path, tmp_path / "o1", max_total_bytes=total - 1)
    with pytest.raises(data.UnsafeArchiveError, match="more than 5 members"):
        data.extract_archive(path, tmp_path / "o2", max_members=5)
    out = data.extract_archive(path, tmp_path / "o3", max_total_bytes=total)
    assert (out / "pad2").read_bytes() == b"1" * 5000


def test_a_bomb_hidden_in_a_header_is_cut_off(tmp_path):
    """A pax header is read by tarfile itself; the stream under it is bounded as well."""
    path = tmp_path / CIFAR10_ARCHIVE
    with tarfile.open(path, "w:gz", format=tarfile.PAX_FORMAT) as tar:
        ti = tarfile.TarInfo(f"{CIFAR10_FOLDER}/x")
        ti.pax_headers = {"comment": "z" * 3_000_000}
        tar.addfile(ti, io.BytesIO())
    with pytest.raises(data.UnsafeArchiveError, match="unpacks to more than"):
        data.extract_archive(path, tmp_path / "out", max_total_bytes=1000, max_members=2)


# ---------------------------------------------------------------- 24, 25, 28: extraction
def test_a_full_disk_is_reported_as_a_full_disk(tmp_path, monkeypatch):
    path = _archive(tmp_path / CIFAR10_ARCHIVE)
    real_open = open

    def fake_open(file, mode="r", *a, **k):
        f = real_open(file, mode, *a, **k)
        return _full_disk(f) if "w" in mode else f

    monkeypatch.setattr(archive_mod, "open", fake_open, raising=False)
    root = tmp_path / "root"
    with pytest.raises(data.DiskFullError) as e:
        data.extract_archive(path, root)
    msg = str(e.value)
    assert "disk is full" in msg and "corrupt" not in msg and "Delete it" not in msg
    assert isinstance(e.value, OSError) and e.value.errno == errno.ENOSPC
    assert list(root.iterdir()) == []  # nothing half-written kept
    assert path.is_file()  # the good archive is kept


def test_a_folder_in_place_of_a_file_is_a_clear_error(tmp_path):
    folder = _own_folder(tmp_path / "own")
    (folder / "data_batch_3").unlink()
    (folder / "data_batch_3").mkdir()
    with pytest.raises(data.CorruptDatasetError, match="data_batch_3: is a folder") as e:
        data.load_cifar10(tmp_path / "own", download=False)
    assert not isinstance(e.value, OSError)  # so no caller mistakes it for a write problem
    (folder / "test_batch").unlink()
    (folder / "test_batch").mkdir()
    with pytest.raises(data.CorruptDatasetError, match="test_batch: is a folder"):
        data.read_batch(folder / "test_batch")
    (tmp_path / "arch" / CIFAR10_ARCHIVE).mkdir(parents=True)
    with pytest.raises(data.CorruptDatasetError, match="is a folder, not the archive"):
        data.load_cifar10(tmp_path / "arch", download=False)
    with pytest.raises(data.CorruptDatasetError, match="is not a file"):
        data.extract_archive(tmp_path / "arch" / CIFAR10_ARCHIVE, tmp_path / "out")


def test_stale_extraction_folders_are_removed_and_a_foreign_folder_is_kept(tmp_path):
    root = tmp_path / "root"
    stale = root / ".extract-old"
    (stale / "junk").mkdir(parents=True)
    os.utime(stale, (time.time() - 7200,) * 2)
    path = _archive(tmp_path / CIFAR10_ARCHIVE)
    data.extract_archive(path, root)
    assert sorted(p.name for p in root.iterdir()) == [CIFAR10_FOLDER]
    data.extract_archive(path, root)  # its own folder it replaces
    (root / CIFAR10_FOLDER / MANIFEST).unlink()
    with pytest.raises(data.CorruptDatasetError, match="not extracted by this loader"):
        data.extract_archive(path, root)  # a folder of the user's it leaves alone
    assert (root / CIFAR10_FOLDER / "test_batch").is_file()


# ---------------------------------------------------------------- 11: checksums
def test_a_flipped_pixel_in_an_extracted_folder_is_an_error(tmp_path):
    root = tmp_path / "root"
    data.extract_archive(_archive(tmp_path / CIFAR10_ARCHIVE), root)
    batch = root / CIFAR10_FOLDER / "data_batch_2"
    blob = bytearray(batch.read_bytes())
    blob[len(blob) // 2] ^= 0x01  # inside the pixel string: the pickle stays well-formed
    batch.write_bytes(bytes(blob))
    with pytest.raises(data.CorruptDatasetError, match="changed or was damaged since") as e:
        data.load_cifar10(root, download=False)
    assert str(batch) in str(e.value) and "Delete the folder" in str(e.value)
    manifest = json.loads((root / CIFAR10_FOLDER / MANIFEST).read_text())
    assert sorted(manifest["files"]) == sorted([*NAMES, "batches.meta"])
    for name in NAMES[2:]:
        assert manifest["files"][name]["md5"] == data.md5sum(root / CIFAR10_FOLDER / name)


def test_a_damaged_manifest_is_an_error(tmp_path):
    root = tmp_path / "root"
    data.extract_archive(_archive(tmp_path / CIFAR10_ARCHIVE), root)
    (root / CIFAR10_FOLDER / MANIFEST).write_text("{not json")
    with pytest.raises(data.CorruptDatasetError, match=MANIFEST):
        data.load_cifar10(root, download=False)


def test_own_folder_that_matches_no_checksum_loads_with_a_warning(tmp_path):
    """A re-encoded copy in the official layout: used, and named as unverified."""
    folder = _own_folder(tmp_path)
    with pytest.warns(data.UnverifiedDatasetWarning, match="UNVERIFIED") as w:
        splits = data.load_cifar10(tmp_path, download=False)
    assert str(folder) in str(w[0].message) and "data_batch_1" in str(w[0].message)
    assert "unverified" in splits.source and len(splits.train) == 5 * N


def test_files_with_the_official_checksums_load_without_a_warning(tmp_path, monkeypatch):
    files = _files()
    folder = _own_folder(tmp_path, files)
    for name in files:  # pretend these are the official bytes
        monkeypatch.setitem(CIFAR10_FILE_MD5, name, data.md5sum(folder / name))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        splits = data.load_cifar10(tmp_path, download=False)
    assert splits.source == str(folder)


# ---------------------------------------------------------------- 5: damaged batches
def _assert_clean_failure_or_valid(path):
    """read_batch gives a well-formed batch or a CorruptDatasetError naming ``path``."""
    try:
        images, labels = data.read_batch(path)
    except data.CorruptDatasetError as e:
        assert str(path) in str(e)
        return False
    assert images.dtype == np.uint8 and images.shape[1:] == (3, 32, 32)
    assert labels.shape == (len(images),) and 0 <= labels.min() and labels.max() < 10
    return True


@pytest.mark.parametrize(
    "blob,what",
    [
        # memo slot 2**30: a plain unpickler grows its memo to gigabytes
        (pickle.PROTO + b"\x02" + pickle.EMPTY_DICT + pickle.LONG_BINPUT + b"\0\0\0\x40.", "memo"),
        # a 4 GB bytes object announced in a 20-byte file
        (pickle.PROTO + b"\x03" + pickle.BINBYTES + b"\xf0\xff\xff\xff" + b"x" * 8 + b".", "bytes"),
        # the codec name flipped: LookupError in a plain unpickler
        (pickle.dumps(_batch(0), protocol=2).replace(b"latin1", b"zzzzz1", 1), "codec"),
    ],
    ids=["memo-bomb", "length-bomb", "codec"],
)
def test_crafted_batches_fail_cleanly_without_allocating(tmp_path, blob, what):
    path = tmp_path / "data_batch_1"
    path.write_bytes(blob)
    tracemalloc.start()
    try:
        with pytest.raises(data.CorruptDatasetError) as e:
            data.read_batch(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert str(path) in str(e.value) and "Delete the folder" in str(e.value)
    assert peak < 20 * len(blob) + 2_000_000, f"{what}: {peak} bytes allocated"


def test_oversized_batch_is_refused_before_reading(tmp_path):
    path = tmp_path / "test_batch"
    with open(path, "wb") as f:
        f.truncate(MAX_BATCH_FILE_BYTES + 1)  # sparse: nothing written
    with pytest.raises(data.CorruptDatasetError, match="more than any CIFAR-10 batch"):
        data.read_batch(path)


def test_fuzz_byte_flips_and_truncations_of_a_batch(tmp_path):
    """Seeded flips (300 filenames: the memo needs 4-byte indices, as in official files)."""
    blob = pickle.dumps(_batch(1, filenames=300), protocol=2)
    ops = list(pickletools.genops(blob))
    pixels = max(ops, key=lambda op: len(op[1]) if isinstance(op[1], str) else 0)
    lo, hi = pixels[2] + 5, pixels[2] + 5 + len(pixels[1].encode("utf-8"))
    rng = np.random.default_rng(0)
    structure = [i for i in range(len(blob)) if not lo <= i < hi]
    positions = rng.choice(structure, 200, replace=False).tolist()
    positions += rng.integers(lo, hi, 20).tolist()
    path = tmp_path / "data_batch_1"
    tracemalloc.start()
    try:
        for pos in positions:
            bad = bytearray(blob)
            bad[pos] ^= int(rng.integers(1, 256))
            path.write_bytes(bytes(bad))
            tracemalloc.reset_peak()
            _assert_clean_failure_or_valid(path)
            assert tracemalloc.get_traced_memory()[1] < 20 * len(blob), f"flip at {pos}"
    finally:
        tracemalloc.stop()
    for cut in rng.integers(0, len(blob), 40).tolist() + [0, 1, 2, len(blob) - 1]:
        path.write_bytes(blob[:cut])
        assert not _assert_clean_failure_or_valid(path)


def test_fuzz_flips_in_an_extracted_folder_never_load_silently(tmp_path):
    root = tmp_path / "root"
    data.extract_archive(_archive(tmp_path / CIFAR10_ARCHIVE), root)
    folder = root / CIFAR10_FOLDER
    rng = np.random.default_rng(1)
    for _ in range(25):
        name = NAMES[int(rng.integers(0, len(NAMES)))]
        good = (folder / name).read_bytes()
        bad = bytearray(good)
        bad[int(rng.integers(0, len(bad)))] ^= int(rng.integers(1, 256))
        (folder / name).write_bytes(bytes(bad))
        with pytest.raises(data.CorruptDatasetError, match=name):
            data.load_cifar10(root, download=False)
        (folder / name).write_bytes(good)


# ---------------------------------------------------------------- 17, 28: downloads
class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.payload``; ``server.modes`` says how to answer each request in turn."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        srv = self.server
        mode = srv.modes.pop(0) if srv.modes else srv.default
        asked = self.headers.get("Range")
        srv.ranges.append(asked)
        body, start = srv.payload, 0
        if asked and mode != "no-range":
            start = int(asked.split("=")[1].rstrip("-"))
        rest = body[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.send_header("ETag", '"v1"')
        self.send_header("Connection", "close")
        if mode == "cut-chunked":  # one chunk announced, half of it sent, then silence
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(f"{len(rest):x}\r\n".encode() + rest[: len(rest) // 2])
            return
        self.send_header("Content-Length", str(len(rest)))
        self.end_headers()
        if mode == "short":
            self.wfile.write(rest[: len(rest) // 3])
        elif mode == "trickle":  # a byte every 50 ms, for at most 4 s
            with contextlib.suppress(OSError):
                for i in range(80):
                    self.wfile.write(rest[i : i + 1])
                    time.sleep(0.05)
        else:
            self.wfile.write(rest)


@pytest.fixture
def server():
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.daemon_threads = True
    srv.payload = os.urandom(300_000)
    srv.modes, srv.default, srv.ranges = [], "normal", []
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}/cifar-10-python.tar.gz"
    thread = threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


def _download(srv, root, **kw):
    kw.setdefault("md5", hashlib.md5(srv.payload).hexdigest())
    return data.download_cifar10(root, url=srv.url, progress=False, timeout=5, **kw)


@pytest.mark.parametrize("then", ["normal", "no-range"])
def test_a_chunked_body_cut_mid_chunk_is_resumed(tmp_path, server, then):
    """Resumed at once where the server honours Range; fetched afresh where it does not."""
    server.modes, server.default = ["cut-chunked"], then
    assert _download(server, tmp_path).read_bytes() == server.payload
    assert server.ranges[0] is None and int(server.ranges[1][6:-1]) > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == [CIFAR10_ARCHIVE]


def test_a_broken_download_is_kept_and_resumed_by_the_next_run(tmp_path, server):
    server.default = "cut-chunked"
    with pytest.raises(data.DownloadError, match="broke off") as e:
        _download(server, tmp_path, retries=1)
    part = tmp_path / (CIFAR10_ARCHIVE + ".part")
    assert str(part) in str(e.value) and "run again to resume" in str(e.value)
    kept = part.stat().st_size
    assert 0 < kept < len(server.payload)
    assert not (tmp_path / CIFAR10_ARCHIVE).exists()
    server.default, server.ranges = "normal", []
    assert _download(server, tmp_path).read_bytes() == server.payload
    assert server.ranges == [f"bytes={kept}-"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [CIFAR10_ARCHIVE]


def test_a_body_shorter_than_its_length_is_never_taken_as_complete(tmp_path, server):
    server.default = "short"
    with pytest.raises(data.DownloadError, match=f"of {len(server.payload)} bytes"):
        _download(server, tmp_path, md5=None, retries=0)
    assert not (tmp_path / CIFAR10_ARCHIVE).exists()
    with pytest.raises(data.DownloadError, match="nothing arrived"):
        _download(server, tmp_path / "empty", deadline=0)
    assert list((tmp_path / "empty").iterdir()) == []


def test_a_trickling_server_meets_the_deadline(tmp_path, server):
    server.default = "trickle"
    t0 = time.monotonic()
    with pytest.raises(data.DownloadError, match="did not finish within 1 s"):
        _download(server, tmp_path, deadline=1.0)
    assert time.monotonic() - t0 < 3.0


def test_stale_parts_of_killed_downloads_are_removed_or_resumed(tmp_path, server):
    old = tmp_path / f"{CIFAR10_ARCHIVE}.k3j2l1x0.part"  # a random name of an older version
    old.write_bytes(b"junk")
    os.utime(old, (time.time() - 7200,) * 2)
    foreign = tmp_path / f"{CIFAR10_ARCHIVE}.part"  # no record of where it came from
    foreign.write_bytes(b"x" * 1000)
    assert _download(server, tmp_path).read_bytes() == server.payload
    assert server.ranges == [None]  # not resumed: it could be anything
    assert sorted(p.name for p in tmp_path.iterdir()) == [CIFAR10_ARCHIVE]


def test_a_full_disk_while_downloading_says_so(tmp_path, server, monkeypatch):
    real_fdopen = os.fdopen
    monkeypatch.setattr(os, "fdopen", lambda *a, **k: _full_disk(real_fdopen(*a, **k)))
    with pytest.raises(data.DiskFullError, match="disk is full") as e:
        _download(server, tmp_path)
    assert "broke off" not in str(e.value) and e.value.errno == errno.ENOSPC


# ---------------------------------------------------------------- hostile archives, fuzzed
_POOL = [
    (f"{CIFAR10_FOLDER}/extra", b"e", {}),
    (f"{CIFAR10_FOLDER}/sub/f", b"f", {}),
    (f"{CIFAR10_FOLDER}/../../up", b"u", {}),
    ("/abs/path", b"a", {}),
    ("C:\\win", b"w", {}),
    ("lnk", b"", {"type": tarfile.SYMTYPE, "linkname": "."}),
    ("lnk2", b"", {"type": tarfile.SYMTYPE, "linkname": "lnk/lnk/../../.."}),
    ("lnk2/out", b"o", {}),
    (f"{CIFAR10_FOLDER}/hl", b"", {"type": tarfile.LNKTYPE, "linkname": "../up"}),
    (f"{CIFAR10_FOLDER}/fifo", b"", {"type": tarfile.FIFOTYPE}),
    (f"{CIFAR10_FOLDER}/big", b"b" * 3000, {}),
    (f"{CIFAR10_FOLDER}/extra/clash", b"c", {}),
]


def test_fuzz_hostile_archives_never_write_outside(tmp_path):
    rng = np.random.default_rng(2)
    base = _files(n=1)
    for k in range(60):
        picks = [_POOL[i] for i in rng.choice(len(_POOL), int(rng.integers(1, 4)), replace=False)]
        box = tmp_path / f"case{k}"
        root = box / "a" / "root"
        root.mkdir(parents=True)
        path = _archive(box / "x.tar.gz", picks, files=base)
        try:
            out = data.extract_archive(path, root, max_member_bytes=2000)
        except data.DatasetError:
            assert sorted(p.name for p in root.iterdir()) == []
        else:
            assert out == root / CIFAR10_FOLDER
            assert all(not p.is_symlink() for p in root.rglob("*"))
        assert _outside_files(box, root) == sorted([str(box / "a"), str(path)])


def test_fuzz_archive_byte_flips_and_truncations(tmp_path):
    """A damaged archive is refused, or, where the damage is in no content (a gzip header
    field), extracts exactly the original files: never different bytes."""
    files = _files()
    blob = _archive(tmp_path / "good.tar.gz", files=files).read_bytes()
    rng = np.random.default_rng(3)
    path = tmp_path / CIFAR10_ARCHIVE
    cases = [(int(p), None) for p in rng.integers(0, len(blob), 60)] + [
        (None, int(c)) for c in rng.integers(0, len(blob), 20)
    ]
    for k, (flip, cut) in enumerate(cases):
        bad = bytearray(blob[:cut] if cut is not None else blob)
        if flip is not None:
            bad[flip] ^= int(rng.integers(1, 256))
        path.write_bytes(bytes(bad))
        root = tmp_path / f"r{k}"
        try:
            out = data.extract_archive(path, root)
        except data.CorruptDatasetError:
            assert list(root.iterdir()) == []
            continue
        assert cut is None
        for name, payload in files.items():
            assert (out / name).read_bytes() == payload, (flip, name)


@pytest.mark.parametrize("labels", [[3.7, 2.0], [2.5, 1.0], [np.nan, 1.0], [np.inf, 0.0]])
def test_fractional_labels_are_refused_not_truncated(labels):
    """A float label 3.7 used to become class 3 without a word."""
    from minitorch_alexnet.data import ImageDataset
    from minitorch_alexnet.data.synthetic import synthetic_images

    images = np.zeros((2, 3, 4, 4), np.uint8)
    with pytest.raises(ValueError, match="whole numbers .* would truncate"):
        ImageDataset(images, np.array(labels), tuple("abcd"), "t")
    with pytest.raises(ValueError, match="whole numbers"):
        synthetic_images(np.array(labels), seed=0, size=4)


def test_whole_float_labels_become_exact_int64_and_strings_are_refused():
    from minitorch_alexnet.data import ImageDataset

    images = np.zeros((2, 3, 4, 4), np.uint8)
    ds = ImageDataset(images, np.array([3.0, 1.0]), tuple("abcd"), "t")
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [3, 1]
    with pytest.raises(TypeError, match="integer class indices"):
        ImageDataset(images, np.array(["3", "1"]), tuple("abcd"), "t")
