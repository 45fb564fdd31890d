"""The folder of a run: which one, a lock on it, its files; never destroying a finished run.

* Without an ``out`` folder, every run gets a new numbered folder under
  :data:`RUNS_DIR` (``runs/cifar/1``, ``runs/cifar/2``, ...), and a resume
  continues the latest of them.
* A named folder that already holds a run (:data:`RUN_FILES`) is refused unless
  the run is resumed or ``overwrite`` asks to replace it.
* While a run works in a folder it holds an exclusive lock on it (the file
  :data:`LOCK_NAME`, with the process id inside): a second run on the same folder
  is refused with the first one's pid. On POSIX the lock is ``fcntl.flock``, which
  the system lets go when a process dies; elsewhere the file is created with
  ``O_EXCL`` and a lock left behind by a dead process is removed.
* Two of its files: ``metrics.json`` (written atomically) and ``curves.png``
  (``checkpoint.npz`` is :mod:`minitorch_alexnet.checkpoint`'s).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ..checkpoint import atomic_write

try:
    import fcntl
except ImportError:  # not POSIX: the O_EXCL lock file below
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "LOCK_NAME",
    "RUNS_DIR",
    "RUN_FILES",
    "RunLock",
    "TrainingError",
    "latest_run",
    "plot_curves",
    "run_folder",
    "write_json_atomic",
]

RUNS_DIR = Path("runs") / "cifar"  # where numbered run folders go
RUN_FILES = ("checkpoint.npz", "metrics.json", "curves.png")  # what a run writes
LOCK_NAME = ".lock"
STALE_EMPTY_LOCK_S = 10.0  # an O_EXCL lock file still without a pid after this is stale


class TrainingError(Exception):
    """A problem the user can fix (bad settings, missing data, a checkpoint that does not fit)."""


# ---------------------------------------------------------------- the lock
def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` is still running (a pid we may not signal counts as running)."""
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill would end the process there
        import ctypes

        kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
        handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
        if not handle:
            return kernel32.GetLastError() == 5  # access denied: it exists
        code = ctypes.c_ulong()
        ok = kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        kernel32.CloseHandle(handle)
        return bool(ok) and code.value == 259  # STILL_ACTIVE
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_pid(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


class RunLock:
    """An exclusive lock on a run folder; :meth:`acquire` raises :class:`TrainingError` if held."""

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> RunLock:
        if fcntl is not None:
            self._flock()
        else:
            self._create_exclusive()
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def release(self) -> None:
        """Remove the lock file, then let go (a run waiting on the old file then retries)."""
        if self.fd is None:
            return
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None

    def _refuse(self, pid: int | None) -> TrainingError:
        who = f"pid {pid}" if pid is not None else "a process that has not written its pid yet"
        return TrainingError(
            f"{self.folder} is in use by another run ({who}; lock file {self.path}). Wait for "
            "it to finish or stop it, or choose another --out."
        )

    def _flock(self) -> None:
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise self._refuse(self._holder_pid()) from None
            try:  # the holder before us may have removed the file as we opened it
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(current, os.fstat(fd)):
                self.fd = fd  # a file a dead process left behind is simply taken over
                return
            os.close(fd)

    def _create_exclusive(self) -> None:
        for _ in range(100):
            try:
                self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
                return
            except FileExistsError:
                pid = _read_pid(self.path)
            if pid is not None and pid_alive(pid):
                raise self._refuse(pid)
            if pid is None and not self._old(self.path):  # being written right now
                raise self._refuse(None)
            try:  # stale: its process is gone
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        raise self._refuse(_read_pid(self.path))

    def _holder_pid(self, wait_s: float = 1.0) -> int | None:
        """The holder's pid; it writes it just after locking, so give it a moment."""
        deadline = time.monotonic() + wait_s
        while (pid := _read_pid(self.path)) is None and time.monotonic() < deadline:
            time.sleep(0.02)
        return pid

    @staticmethod
    def _old(path: Path) -> bool:
        try:
            return time.time() - path.stat().st_mtime > STALE_EMPTY_LOCK_S
        except FileNotFoundError:
            return True


# ---------------------------------------------------------------- which folder
def _numbered(root: Path) -> list[int]:
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.name.isdigit() and p.is_dir())


def latest_run() -> Path | None:
    """The latest numbered run folder under :data:`RUNS_DIR`, or ``RUNS_DIR`` itself if
    a run wrote there before runs were numbered; None if there is no run."""
    if _numbered(RUNS_DIR):
        return RUNS_DIR / str(_numbered(RUNS_DIR)[-1])
    return RUNS_DIR if (RUNS_DIR / "checkpoint.npz").is_file() else None


def _claim_new_numbered(root: Path) -> tuple[Path, RunLock]:
    """Make and lock the next numbered folder under ``root`` (another run may race us)."""
    number = max(_numbered(root), default=0) + 1
    while True:
        folder = root / str(number)
        number += 1
        try:
            folder.mkdir(parents=True)
        except FileExistsError:
            continue
        try:
            return folder, RunLock(folder).acquire()
        except TrainingError:  # a --resume of "the latest run" took it first
            continue


def existing_run_files(folder: Path) -> list[str]:
    """The names in :data:`RUN_FILES` present in ``folder`` (links and folders included)."""
    return [name for name in RUN_FILES if os.path.lexists(folder / name)]


def _check_folder(folder: Path, resume: bool, overwrite: bool) -> None:
    ckpt = folder / "checkpoint.npz"
    if os.path.lexists(ckpt) and not ckpt.is_file():
        kind = "a folder" if ckpt.is_dir() else "not a regular file"
        raise TrainingError(
            f"{ckpt} is {kind}, not a checkpoint; move it out of the way, or choose another --out."
        )
    found = existing_run_files(folder)
    if resume or not found:
        return
    if not overwrite:
        raise TrainingError(
            f"{folder} already holds a run ({', '.join(found)}). Continue it with --resume, "
            "replace it with --overwrite, or choose another --out (without --out each run "
            f"gets a new numbered folder under {RUNS_DIR})."
        )
    for name in found:
        if (folder / name).is_dir() and not (folder / name).is_symlink():
            raise TrainingError(f"--overwrite: {folder / name} is a folder; move it out of the way")


def clear_run(folder: Path) -> None:
    """Delete the run in ``folder`` (``overwrite``): its files, or links (never their targets)."""
    for name in existing_run_files(folder):
        (folder / name).unlink()


@contextmanager
def run_folder(
    out: str | os.PathLike | None, resume: bool = False, overwrite: bool = False
) -> Iterator[Path]:
    """The folder a run writes to, locked for as long as the ``with`` block lasts.

    ``out=None`` means a new numbered folder under :data:`RUNS_DIR`, or with
    ``resume`` the latest one. Raises :class:`TrainingError` if the folder is in
    use by another run, holds a run that is neither resumed nor ``overwrite``-n,
    or has something else where the checkpoint goes. A folder made here that is
    still empty at the end (the run failed before writing anything) is removed.
    """
    if out is None and resume:
        out = latest_run()
    if out is None:
        folder, lock = _claim_new_numbered(RUNS_DIR)
        created = True
    else:
        folder = Path(out)
        created = not folder.exists()
        folder.mkdir(parents=True, exist_ok=True)
        try:
            lock = RunLock(folder).acquire()
        except TrainingError:
            _remove_if_empty(folder, created)
            raise
    try:
        _check_folder(folder, resume, overwrite)
        yield folder
    finally:
        lock.release()
        _remove_if_empty(folder, created)


def _remove_if_empty(folder: Path, created: bool) -> None:
    if created:
        try:
            folder.rmdir()
        except OSError:  # not empty: the run wrote something
            pass


# ---------------------------------------------------------------- the files of a run
def write_json_atomic(path: Path, obj: Any) -> None:
    """``obj`` as indented JSON, written atomically (readers never see half a file)."""
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + "\n"), binary=False)


def plot_curves(path: Path, history: list[dict[str, float]], title: str) -> bool:
    """Loss and accuracy against epoch, to ``path``; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train", "train"), ("test", "test")):
        ax_loss.plot(epochs, [h[f"{key}_loss"] for h in history], marker="o", label=label)
        ax_acc.plot(epochs, [100 * h[f"{key}_acc"] for h in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss (log scale)")
    # log scale: one early spike (an untrained network's test loss can reach the
    # hundreds while BatchNorm's running statistics settle) would flatten the rest
    losses = [h[f"{k}_loss"] for h in history for k in ("train", "test")]
    if all(v > 0 for v in losses):  # NaN (a diverged run) fails this: stays linear
        ax_loss.set_yscale("log")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
