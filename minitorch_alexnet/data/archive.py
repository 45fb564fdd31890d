"""Extracting the CIFAR-10 archive safely, and the manifest of what was extracted.

The archive is read as a stream (gzip, then tar) and every member is checked
before a byte of it is written (:func:`check_member`): only regular files and
folders with plain relative names are accepted; links of any kind are refused
(CIFAR-10 has none, and a chain of links can lead outside the folder however each
link looks on its own), and so are devices and FIFOs. The members are written by
this module itself, never by ``tarfile``'s extraction, so the same rules hold on
every Python version, with or without ``tarfile``'s extraction filters.

Sizes are bounded: a member may hold at most ``max_member_bytes`` and all of them
together ``max_total_bytes`` (CIFAR-10's own sizes plus a margin), and the stream
itself is cut off past that, so a small "zip bomb" cannot fill the disk or memory.
After the last member the rest of the gzip stream is read, so its CRC is checked.

Everything goes to a temporary folder that is renamed into place at the end, with
a manifest (:data:`~.files.MANIFEST`: each file's MD5 and size) that the loader
checks the folder against on every later load.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
import zlib
from pathlib import Path, PurePosixPath
from typing import Any

from .dataset import CorruptDatasetError, DatasetError, DatasetNotFoundError, UnsafeArchiveError
from .files import (
    CIFAR10_FOLDER,
    MANIFEST,
    MAX_ARCHIVE_MEMBERS,
    MAX_MEMBER_BYTES,
    MAX_TOTAL_BYTES,
    remove_stale,
    write_error,
)

__all__ = ["check_member", "extract_archive", "read_manifest"]

_CHUNK = 1 << 20
_TRAILER_SLACK = 1 << 20  # tar headers, padding and end blocks beyond the members' bytes


def _refuse(archive: Path, name: str, why: str) -> UnsafeArchiveError:
    return UnsafeArchiveError(
        f"{archive}: refusing to extract member {name!r}: {why}. The archive is not a "
        "genuine CIFAR-10 archive; delete it and download a fresh copy."
    )


def check_member(member: tarfile.TarInfo, dest: Path, archive: Path) -> None:
    """Refuse a member that is not a regular file or folder with a plain name inside ``dest``.

    Refused: absolute names, drive letters, backslashes, ``..``, symbolic and hard
    links (whatever they point at), devices, FIFOs and sparse files. Judged from the
    name alone, so it holds whatever already exists on disk; ``dest`` (resolved) is
    checked too, as a second line of defence.

    Raises:
        UnsafeArchiveError: naming the archive, the member and the reason.
    """
    name = member.name
    parts = name.split("/")
    if not name or "\x00" in name:
        raise _refuse(archive, name, "empty or malformed name")
    if name.startswith(("/", "\\")) or PurePosixPath(name).is_absolute():
        raise _refuse(archive, name, "absolute path")
    if "\\" in name or (len(name) > 1 and name[1] == ":"):
        raise _refuse(archive, name, "backslash or drive letter in the name")
    if ".." in parts:
        raise _refuse(archive, name, "path contains '..'")
    if member.issym() or member.islnk():
        raise _refuse(
            archive, name, f"it is a link (to {member.linkname!r}); CIFAR-10 archives have none"
        )
    if member.issparse() or not (member.isreg() or member.isdir()):
        raise _refuse(archive, name, "not a regular file or folder (device, FIFO or other)")
    dest = Path(dest).resolve()
    target = Path(os.path.normpath(dest / name))
    if target != dest and dest not in target.parents:
        raise _refuse(archive, name, "path resolves outside the target folder")


class _Bounded:
    """A read-only stream that refuses to give more than ``budget`` bytes in all."""

    def __init__(self, raw: Any, budget: int, archive: Path) -> None:
        self.raw, self.budget, self.used, self.archive = raw, budget, 0, archive

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = _CHUNK
        block = self.raw.read(min(n, self.budget - self.used + 1))
        self.used += len(block)
        if self.used > self.budget:
            raise UnsafeArchiveError(
                f"{self.archive}: refusing to extract it: it unpacks to more than {self.budget} "
                "bytes, far more than CIFAR-10 (186 MB). It is not a genuine CIFAR-10 archive; "
                "delete it and download a fresh copy."
            )
        return block


def _write_member(tar: tarfile.TarFile, m: tarfile.TarInfo, target: Path, archive: Path) -> dict:
    """Write one regular member to ``target``; its MD5 and size."""
    src = tar.extractfile(m)
    assert src is not None  # a regular member always has a file object
    h = hashlib.md5(usedforsecurity=False)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        out = open(target, "wb")  # closed below; its write errors are told apart from reading
    except OSError as e:
        raise _write_failed(e, target, archive, m.name) from None
    with out:
        left = m.size
        while left:
            block = src.read(min(_CHUNK, left))  # read errors: the archive's fault
            if not block:
                raise tarfile.ReadError(f"member {m.name!r} ends early")
            left -= len(block)
            h.update(block)
            try:
                out.write(block)
            except OSError as e:
                raise _write_failed(e, target, archive, m.name) from None
        try:
            out.flush()
        except OSError as e:
            raise _write_failed(e, target, archive, m.name) from None
    return {"md5": h.hexdigest(), "size": m.size}


def _write_failed(e: OSError, target: Path, archive: Path, name: str) -> DatasetError:
    if e.errno in (errno.EEXIST, errno.ENOTDIR, errno.EISDIR):  # two members collide
        return CorruptDatasetError(
            f"{archive}: member {name!r} collides with another member ({e.strerror}); the "
            "archive is not a genuine CIFAR-10 archive. Delete it and download a fresh copy."
        )
    return write_error(e, "writing", target)


def _unpack(archive: Path, tmp: Path, limits: tuple[int, int, int]) -> dict[str, dict]:
    """Check and write every member into ``tmp``; the records of the CIFAR folder's files."""
    max_members, max_member, max_total = limits
    budget = max_total + max_members * 1024 + _TRAILER_SLACK
    records: dict[str, dict] = {}
    total = count = 0
    with open(archive, "rb") as raw, gzip.GzipFile(fileobj=raw, mode="rb") as gz:
        bounded = _Bounded(gz, budget, archive)
        with tarfile.open(fileobj=bounded, mode="r|") as tar:  # type: ignore[call-overload]
            for m in tar:
                count += 1
                if count > max_members:
                    raise _refuse(archive, m.name, f"more than {max_members} members")
                check_member(m, tmp, archive)
                target = tmp / m.name
                if m.isdir():
                    try:
                        target.mkdir(parents=True, exist_ok=True)
                    except OSError as e:
                        raise _write_failed(e, target, archive, m.name) from None
                    continue
                if m.size > max_member:
                    why = f"it holds {m.size} bytes, more than the {max_member} allowed for one"
                    raise _refuse(archive, m.name, why + " file (CIFAR-10's largest is 31 MB)")
                total += m.size
                if total > max_total:
                    why = f"the members hold more than the {max_total} bytes allowed in all"
                    raise _refuse(archive, m.name, why + " (CIFAR-10 holds 186 MB)")
                record = _write_member(tar, m, target, archive)
                rel = PurePosixPath(os.path.normpath(m.name)).parts
                if len(rel) >= 2 and rel[0] == CIFAR10_FOLDER and rel[1:] != (MANIFEST,):
                    records["/".join(rel[1:])] = record
        while bounded.read(_CHUNK):  # the rest of the stream, so that gzip checks its CRC
            pass
    return records


def extract_archive(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    max_member_bytes: int = MAX_MEMBER_BYTES,
    max_total_bytes: int = MAX_TOTAL_BYTES,
    max_members: int = MAX_ARCHIVE_MEMBERS,
) -> Path:
    """Extract a CIFAR-10 ``.tar.gz`` safely into ``dest`` and return ``dest/cifar-10-batches-py``.

    Every member is checked (see :func:`check_member`) and its size bounded before
    it is written; extraction goes to a temporary folder inside ``dest`` that is
    renamed into place at the end, with a manifest of each file's MD5, so an
    interrupted or refused run leaves nothing behind. An existing
    ``cifar-10-batches-py/`` is replaced only if this function extracted it (it has
    the manifest); any other is left alone and reported.

    Raises:
        UnsafeArchiveError: a member is a link or special file, would land outside
            ``dest``, or the archive unpacks to more than the limits allow.
        CorruptDatasetError: the archive is truncated, not a tar.gz, fails its CRC,
            or lacks the folder; or ``dest`` holds a folder of its own by that name.
        DiskFullError: the disk filled up (nothing half-written is kept).
        DatasetIOError: ``dest`` cannot be written.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.exists():
        raise DatasetNotFoundError(f"{archive} does not exist")
    if not archive.is_file():
        raise CorruptDatasetError(f"{archive} is not a file (a folder?); delete or rename it")
    final = dest / CIFAR10_FOLDER
    if os.path.lexists(final) and not (final / MANIFEST).is_file():
        raise CorruptDatasetError(
            f"{final} already exists and was not extracted by this loader (it has no "
            f"{MANIFEST}); it was left as it is. If it is incomplete or damaged, delete or "
            f"move it and run again to extract {archive}."
        )
    try:
        dest.mkdir(parents=True, exist_ok=True)
        remove_stale(dest, ".extract-*")
        tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest))
    except OSError as e:
        raise write_error(e, "creating a folder in", dest) from None
    try:
        try:
            limits = (max_members, max_member_bytes, max_total_bytes)
            records = _unpack(archive, tmp, limits)
        except DatasetError:
            raise
        except (tarfile.TarError, EOFError, OSError, zlib.error) as e:
            raise CorruptDatasetError(
                f"{archive} could not be read as a tar.gz archive ({type(e).__name__}: {e}); "
                "it is truncated or corrupt. Delete it and download a fresh copy."
            ) from None
        extracted = tmp / CIFAR10_FOLDER
        if not extracted.is_dir():
            raise CorruptDatasetError(
                f"{archive} has no {CIFAR10_FOLDER}/ folder inside; it is not the CIFAR-10 "
                "python-version archive. Delete it and download a fresh copy."
            )
        manifest = {"format": 1, "archive": archive.name, "files": records}
        try:
            (extracted / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True))
            if os.path.lexists(final):  # ours (checked above): replace it
                shutil.rmtree(final)
            os.replace(extracted, final)
        except OSError as e:
            raise write_error(e, "writing", final) from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def read_manifest(folder: Path) -> dict[str, str] | None:
    """File name -> MD5 as recorded when the loader extracted ``folder``; None if it did not."""
    path = folder / MANIFEST
    if not os.path.lexists(path):
        return None
    try:
        with open(path, "rb") as f:
            d = json.loads(f.read(1 << 20))
        files = d["files"]
        out = {str(k): str(v["md5"]) for k, v in files.items()}
    except Exception as e:  # unreadable, not JSON, or not the layout written above
        raise CorruptDatasetError(
            f"{path} (written when this folder was extracted) is damaged ({type(e).__name__}: "
            f"{e}), so the folder cannot be checked. Delete the folder {folder} and run again "
            "to extract a fresh copy."
        ) from None
    return out
