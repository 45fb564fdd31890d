"""Downloading a dataset file: bounded in time, resumable, never half-finished.

:func:`download_file` fetches one file (CIFAR-10's archive, each of MNIST's four
files); :func:`download_cifar10` is it with CIFAR-10's name, address and checksum.
The bytes go to ``<name>.part`` (``cifar-10-python.tar.gz.part``) next to the file, and a small
``.part.json`` beside it records the address and the server's validator (ETag or
Last-Modified) and size. The ``.part`` file is renamed to the archive only once
complete and verified (MD5); both temporary files are removed on success.

* A transfer that breaks off (connection reset, a chunked body cut mid-chunk, a
  body shorter than its Content-Length, a read that waits more than ``timeout``)
  is resumed at once from where it stopped, with an HTTP ``Range`` request, up
  to ``retries`` times; if it still fails the ``.part`` file is kept and the next
  run resumes it.
* The whole download has a deadline (``deadline`` seconds, all attempts
  together), so a server that trickles a byte at a time cannot hold it forever.
* A server that ignores ``Range``, or whose file changed (``If-Range``), sends the
  whole file again and the ``.part`` file is started afresh.
* ``.part`` files of a killed older version (random names) are removed once stale.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .dataset import CorruptDatasetError, DownloadError
from .files import (
    CIFAR10_ARCHIVE,
    CIFAR10_MD5,
    CIFAR10_URL,
    URL_ENV_VAR,
    data_root,
    how_to_get,
    md5sum,
    remove_stale,
    write_error,
)

try:  # an advisory lock, so that two downloads never write one .part file
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["download_cifar10", "download_file"]

_BLOCK = 1 << 16


class _BrokeOff(Exception):
    """The transfer stopped early; the .part file keeps what arrived."""


class _Deadline(Exception):
    """The overall deadline passed."""


def _remove_part(part: Path, info: Path) -> None:
    for p in (part, info):
        try:
            p.unlink()
        except FileNotFoundError:
            pass


def _resumable(out: Any, info: Path, url: str) -> tuple[int, dict]:
    """Bytes of the (locked) .part file to resume from, and what was recorded about them."""
    have = os.fstat(out.fileno()).st_size
    if have:
        try:
            meta = json.loads(info.read_text())
            if meta.get("url") == url and isinstance(meta.get("total"), (int, type(None))):
                return have, meta
        except (OSError, ValueError, AttributeError):
            pass
        out.truncate(0)  # bytes of unknown origin: start afresh
    return 0, {}


def _open(url: str, have: int, meta: dict, timeout: float) -> Any:
    headers = {"User-Agent": "minitorch_alexnet"}
    if have:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("etag") or meta.get("last_modified")
        if validator:
            headers["If-Range"] = validator
    return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)


def _start_and_total(response: Any, have: int) -> tuple[int, int | None] | None:
    """Where the body starts in the file (``have`` for a 206 that honours the range, else 0)
    and the file's full size if the server says; None for a part that is not the one asked."""
    length = response.headers.get("Content-Length")
    size = int(length) if length and length.isdigit() else None
    if getattr(response, "status", None) != 206:
        return 0, size  # the whole file (also what file: addresses give)
    m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("Content-Range", ""))
    if not have or not m or int(m.group(1)) != have:
        return None
    if m.group(3) != "*":
        return have, int(m.group(3))
    return have, None if size is None else have + size


def _lock(out: Any, part: Path) -> None:
    if fcntl is None:  # pragma: no cover - Windows
        return
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        raise DownloadError(
            f"another process is downloading into {part}; wait for it to finish, then run again"
        ) from None


def _attempt(
    url: str, part: Path, info: Path, timeout: float, ends_at: float, bar: Any, what: str, hint: str
) -> None:
    """One request: resume (or restart) the .part file and append until the body ends."""
    try:
        fd = os.open(part, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise write_error(e, "writing", part) from None
    with os.fdopen(fd, "r+b") as out:
        _lock(out, part)
        have, meta = _resumable(out, info, url)
        if have and meta.get("total") == have:
            return  # complete already: a killed run did not get to rename it
        remaining = ends_at - time.monotonic()
        if remaining <= 0:
            raise _Deadline
        try:
            response = _open(url, have, meta, min(timeout, remaining))
        except urllib.error.HTTPError as e:
            if e.code == 416 and have:  # the range is past the end: the .part is not this file
                out.truncate(0)
                raise _BrokeOff("the server refused to resume; starting again") from None
            _drop_if_empty(out, part, info)
            raise DownloadError(f"could not download {what} from {url} ({e}).") from None
        except (urllib.error.URLError, OSError, ValueError, http.client.HTTPException) as e:
            _drop_if_empty(out, part, info)
            raise DownloadError(
                f"could not download {what} from {url} ({e}). Are you offline?"
                + (f" {hint}" if hint else "")
            ) from None
        with response:
            where = _start_and_total(response, have)
            if where is None:
                out.truncate(0)
                raise _BrokeOff("the server sent another part than the one asked; starting again")
            start, total = where
            record = {
                "url": url,
                "total": total,
                "etag": response.headers.get("ETag"),
                "last_modified": response.headers.get("Last-Modified"),
            }
            try:
                info.write_text(json.dumps(record))
                out.seek(start)
                out.truncate()
            except OSError as e:
                raise write_error(e, "writing", part) from None
            bar.reset(total=total)
            bar.update(start)
            _copy(response, out, part, ends_at, bar)
        size = os.fstat(out.fileno()).st_size
        if total is not None and size != total:
            raise _BrokeOff(f"the body ended after {size} of {total} bytes")


def _drop_if_empty(out: Any, part: Path, info: Path) -> None:
    if os.fstat(out.fileno()).st_size == 0:
        _remove_part(part, info)


def _copy(response: Any, out: Any, part: Path, ends_at: float, bar: Any) -> None:
    read = getattr(response, "read1", None) or response.read
    while True:
        if time.monotonic() > ends_at:
            raise _Deadline
        try:
            block = read(_BLOCK)
        except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
            raise _BrokeOff(f"{type(e).__name__}: {e}") from None
        if not block:
            break
        try:
            out.write(block)
            out.flush()
        except OSError as e:
            raise write_error(e, "writing", part) from None
        bar.update(len(block))


def download_cifar10(
    data_dir: str | os.PathLike | None = None,
    url: str | None = None,
    md5: str | None = CIFAR10_MD5,
    progress: bool = True,
    timeout: float = 30.0,
    deadline: float = 3600.0,
    retries: int = 3,
) -> Path:
    """Download the archive into ``data_dir`` (with a progress bar) and check its MD5.

    Args:
        data_dir: the data folder (default: :func:`default_data_dir`).
        url: where from (default: ``$MINITORCH_ALEXNET_CIFAR_URL``, else the official address).
        md5: the archive's expected MD5 (``None`` skips the check).
        progress: show a progress bar.
        timeout: seconds any one connect or read may wait.
        deadline: seconds the whole download may take, resumed attempts included.
        retries: how often a transfer that broke off is resumed within this call.

    Returns:
        The path of the downloaded archive.

    Raises:
        DownloadError: the server could not be reached, the transfer broke off
            ``retries`` times, or the deadline passed (what arrived is kept in the
            ``.part`` file and the next call resumes it).
        CorruptDatasetError: the download finished but its checksum is wrong (it is deleted).
        DiskFullError: the disk filled up (the ``.part`` file is kept for resuming).
    """
    root = data_root(data_dir)
    return download_file(
        url or os.environ.get(URL_ENV_VAR) or CIFAR10_URL,
        root / CIFAR10_ARCHIVE,
        md5,
        what="CIFAR-10",
        hint=how_to_get(root),
        progress=progress,
        timeout=timeout,
        deadline=deadline,
        retries=retries,
    )


def download_file(
    url: str,
    target: Path,
    md5: str | None,
    *,
    what: str,
    hint: str = "",
    progress: bool = True,
    timeout: float = 30.0,
    deadline: float = 3600.0,
    retries: int = 3,
) -> Path:
    """Download ``url`` to the file ``target``, resumably, and check its MD5.

    ``what`` names the dataset in messages and ``hint`` says how else to get it.
    The other arguments, the return value and the errors are :func:`download_cifar10`'s.
    """
    from tqdm.auto import tqdm

    root = target.parent
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise write_error(e, "creating the folder", root) from None
    remove_stale(root, target.name + ".*.part")  # random names of older versions
    part = root / (target.name + ".part")
    info = root / (target.name + ".part.json")
    ends_at = time.monotonic() + deadline
    bar = tqdm(
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=f"downloading {target.name}",
        disable=None if progress else True,
    )
    with bar:
        for attempt in range(retries + 1):
            try:
                _attempt(url, part, info, timeout, ends_at, bar, what, hint)
                break
            except _BrokeOff as e:
                if attempt < retries and time.monotonic() < ends_at:
                    time.sleep(min(0.2 * (attempt + 1), max(ends_at - time.monotonic(), 0)))
                    continue
                raise DownloadError(
                    _kept(url, part, info, f"the download broke off ({e})")
                ) from None
            except _Deadline:
                raise DownloadError(
                    _kept(url, part, info, f"the download did not finish within {deadline:g} s")
                ) from None
    return _finish(url, part, info, target, md5)


def _kept(url: str, part: Path, info: Path, what: str) -> str:
    size = part.stat().st_size if part.exists() else 0
    if not size:
        _remove_part(part, info)
        return f"{what} from {url}; nothing arrived. Run again to retry."
    return (
        f"{what} from {url}. The {size} bytes that arrived are kept in {part}; run again "
        "to resume (or delete that file to start afresh)."
    )


def _finish(url: str, part: Path, info: Path, target: Path, md5: str | None) -> Path:
    if md5 is not None:
        got = md5sum(part)
        if got != md5:
            _remove_part(part, info)
            raise CorruptDatasetError(
                f"the file downloaded from {url} has MD5 {got}, expected {md5}; "
                "it was deleted and not used. Run again to retry the download."
            )
    try:
        os.replace(part, target)
    except OSError as e:
        raise write_error(e, "writing", target) from None
    _remove_part(part, info)
    return target
