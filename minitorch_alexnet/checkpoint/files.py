"""Atomic file writes: the old version or the new one, never half of one, nothing left behind.

:func:`atomic_write` fills a temporary file next to the target, flushes it to disk
and renames it over the target. On top of that:

* the file gets the mode a plain ``open(path, "w")`` would give it: the mode of the
  file it replaces, or for a new file ``0o666`` less the user's umask (so a
  teaching assistant in the same group can read a run's files);
* a symbolic link is written through: its target is replaced (atomically), the
  link stays a link;
* temporary files of earlier saves that were killed (``.<name>.<pid>@<host>.<token>.tmp``,
  and the ``.<name>.XXXXXXXX.tmp`` of older versions) are removed on the next
  save, once they are clearly abandoned: their process is gone (same host), or
  they have not changed for :data:`STALE_SECONDS`;
* a first Ctrl-C (SIGINT) during the write is held back until the file is complete
  and in place, then raised; a second Ctrl-C stops the write at once (the old
  file stays as it was).
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import signal
import socket
import stat
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = ["STALE_SECONDS", "atomic_write", "remove_stale_temporaries", "temporary_name"]

#: A temporary file of another (or an unknown) process that has not changed for this
#: long belongs to a save that was killed: no save takes an hour.
STALE_SECONDS = 3600.0
_HOST = f"{zlib.crc32(socket.gethostname().encode('utf-8', 'replace')):08x}"


def temporary_name(name: str) -> str:
    """A fresh temporary file's name for target ``name``: ``.<name>.<pid>@<host>.<token>.tmp``."""
    return f".{name}.{os.getpid()}@{_HOST}.{secrets.token_hex(8)}.tmp"


def _pattern(name: str) -> re.Pattern[str]:
    """Our temporary files for target ``name``: today's names, and ``tempfile.mkstemp``'s
    (``.<name>.XXXXXXXX.tmp``) of earlier versions."""
    return re.compile(
        rf"\.{re.escape(name)}\."
        r"(?:(?P<pid>[0-9]{1,10})@(?P<host>[0-9a-f]{8})\.[0-9a-f]{16}|[a-z0-9_]{8})\.tmp"
    )


def _process_gone(pid: int) -> bool:
    """True only when no process ``pid`` runs on this host (POSIX; elsewhere: never sure)."""
    if os.name != "posix" or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return True
    except (OSError, OverflowError):  # PermissionError: it exists, another user's
        return False
    return False


def remove_stale_temporaries(path: str | os.PathLike, now: float | None = None) -> list[Path]:
    """Remove abandoned temporary files of earlier saves of ``path``; returns those removed.

    Only regular files named as :func:`temporary_name` (or ``mkstemp`` in earlier
    versions) names them for this very target are considered, and only those whose
    writer is gone (a process id of this host that no longer runs) or that have not
    changed for :data:`STALE_SECONDS`. Files that cannot be removed are left alone.
    """
    path = Path(path)
    now = time.time() if now is None else now
    pattern = _pattern(path.name)
    removed = []
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return removed
    for entry in entries:
        match = pattern.fullmatch(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode):
                continue
            gone = match["pid"] is not None and match["host"] == _HOST
            gone = gone and _process_gone(int(match["pid"]))
            if gone or now - st.st_mtime > STALE_SECONDS:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:  # gone meanwhile, or not ours to remove
            continue
    return removed


@contextlib.contextmanager
def _interrupts_held() -> Iterator[None]:
    """Hold back a first Ctrl-C until the block is done, then raise it; a second one
    raises at once. Only in the main thread, and only when SIGINT has Python's default
    handler (a program's own handler is left alone)."""
    if (
        threading.current_thread() is not threading.main_thread()
        or signal.getsignal(signal.SIGINT) is not signal.default_int_handler
    ):
        yield
        return
    pending: list[int] = []

    def hold(signum: int, frame: Any) -> None:
        if pending:
            raise KeyboardInterrupt
        pending.append(signum)
        print(
            "\nCtrl-C: finishing the file being written (Ctrl-C again abandons it)",
            file=sys.stderr,
            flush=True,
        )

    signal.signal(signal.SIGINT, hold)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if pending:
        raise KeyboardInterrupt


def _fsync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (not possible on every platform)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(
    path: str | os.PathLike, write: Callable[[Any], None], binary: bool = True
) -> Path:
    """Write a file so that readers see the old version or the new one, never half of one.

    ``write(f)`` fills a temporary file in the same folder; it is flushed to disk and
    renamed over ``path`` (on error it is removed and ``path`` is untouched). The file
    gets the mode ``open(path, "w")`` would give it, a symbolic link ``path`` is
    written through (its target replaced), and abandoned temporary files of earlier
    saves are removed first (see the module's docstring). A Ctrl-C during the write
    is raised once the new file is in place; a second one abandons the write.

    Returns ``path``, as given.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = Path(os.path.realpath(path))  # a link is written through, not replaced
    remove_stale_temporaries(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)  # keep the mode of the file replaced
    except OSError:
        mode = None
    tmp = target.parent / temporary_name(target.name)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    with _interrupts_held():
        fd = os.open(tmp, flags, 0o666)  # 0o666 less the umask, as open() does
        try:
            f = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        except BaseException:
            os.close(fd)
            os.unlink(tmp)
            raise
        try:
            with f:
                if mode is not None and hasattr(os, "fchmod"):
                    os.fchmod(f.fileno(), mode)
                write(f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        _fsync_folder(target.parent)
    return path
