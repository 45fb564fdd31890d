"""Checkpoints: a model, its optimiser and scheduler, the epoch and the RNG in one ``.npz`` file.

The file is a plain NumPy ``.npz`` archive that is read with ``allow_pickle=False``,
so loading a checkpoint can never run code. It holds:

* ``model/<name>`` -- every parameter and buffer of ``model.state_dict()``, on the host;
* ``optimizer/...`` and ``scheduler/...`` -- the array parts of their state dicts;
* ``__meta__`` -- a ``uint8`` array of UTF-8 JSON with everything else: the format
  version, epoch, the host RNG state, the non-array parts of the optimiser and
  scheduler states (with references to their arrays), the backend it was saved
  from, and the caller's ``extra`` (any JSON-serialisable value).

Writing is atomic: the archive goes to a temporary file in the same folder, is
flushed to disk (``fsync``) and then renamed over the target with ``os.replace``,
so a crash mid-save leaves the previous checkpoint intact.

Arrays are stored as host NumPy arrays and copied into the library and dtype of
the receiving model when loaded, so a checkpoint saved on one backend (say CuPy)
loads on any other (NumPy, Numba).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import backend as _backend

__all__ = ["CheckpointError", "load_checkpoint", "read_checkpoint", "save_checkpoint"]

FORMAT = "minitorch_alexnet-checkpoint"
VERSION = 1
META_KEY = "__meta__"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model/optimiser given."""


# ---------------------------------------------------------------- packing nested state
def _is_array(obj: Any) -> bool:
    return (
        hasattr(obj, "shape")
        and hasattr(obj, "dtype")
        and not isinstance(obj, _backend.host_xp().generic)
    )


def _pack(obj: Any, key: str, arrays: dict[str, Any]) -> Any:
    """A JSON-able copy of ``obj`` whose arrays are moved into ``arrays`` (referenced by key)."""
    np = _backend.host_xp()
    if _is_array(obj):
        arrays[key] = np.array(_backend.to_numpy(obj), copy=True)
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(v, f"{key}/{k}", arrays) for k, v in obj.items()}
        return {"__items__": [[k, _pack(v, f"{key}/{k}", arrays)] for k, v in obj.items()]}
    if isinstance(obj, list | tuple):
        return [_pack(v, f"{key}/{i}", arrays) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (at {key!r})")


def _unpack(obj: Any, arrays: Any) -> Any:
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays[obj["__array__"]]
        if set(obj) == {"__items__"}:
            return {k: _unpack(v, arrays) for k, v in obj["__items__"]}
        return {k: _unpack(v, arrays) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_unpack(v, arrays) for v in obj]
    return obj


# ---------------------------------------------------------------- saving
def save_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    epoch: int | None = None,
    extra: Any = None,
) -> Path:
    """Write ``model`` (and optimiser, scheduler, epoch, ``extra``) to ``path`` atomically.

    Args:
        path: the ``.npz`` file to write (its folder is created if needed).
        model: a :class:`~minitorch_alexnet.nn.module.Module`.
        optimizer: an optimiser with ``state_dict()`` (optional).
        scheduler: a learning-rate scheduler with ``state_dict()`` (optional).
        epoch: the number of completed epochs (optional).
        extra: any JSON-serialisable value (metrics, command-line arguments, ...).

    Returns:
        The path written.
    """
    np = _backend.host_xp()
    path = Path(path)
    arrays: dict[str, Any] = {}
    model_keys = []
    for name, value in model.state_dict().items():
        arrays[f"model/{name}"] = np.array(_backend.to_numpy(value), copy=True)
        model_keys.append(name)
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "epoch": epoch,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "backend": _backend.get_backend().name,
        "model_class": type(model).__name__,
        "model_keys": model_keys,
        "rng_state": _backend.get_rng_state(),
        "optimizer_class": type(optimizer).__name__ if optimizer is not None else None,
        "optimizer": _pack(optimizer.state_dict(), "optimizer", arrays)
        if optimizer is not None
        else None,
        "scheduler_class": type(scheduler).__name__ if scheduler is not None else None,
        "scheduler": _pack(scheduler.state_dict(), "scheduler", arrays)
        if scheduler is not None
        else None,
        "extra": _pack(extra, "extra", arrays),
    }
    text = json.dumps(meta, allow_nan=True)
    arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)

    return atomic_write(path, lambda f: np.savez(f, **arrays))


def atomic_write(
    path: str | os.PathLike, write: Callable[[Any], None], binary: bool = True
) -> Path:
    """Write a file so that readers see the old version or the new one, never half of one.

    ``write(f)`` fills a temporary file in the same folder; it is flushed to disk and
    renamed over ``path`` (on error it is removed and ``path`` is untouched).
    Returns ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:  # make the rename itself durable (not possible on every platform)
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return path
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)
    return path


# ---------------------------------------------------------------- loading
def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint without applying it.

    Returns:
        ``(arrays, meta)``: every stored array by key (host NumPy) and the metadata dict.

    Raises:
        CheckpointError: the file is missing, damaged, or not a checkpoint of this project.
    """
    np = _backend.host_xp()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    if not zipfile.is_zipfile(path):  # checked first: NumPy's own message suggests pickles
        raise CheckpointError(
            f"{path} is not a readable checkpoint (not an .npz archive); it may be truncated "
            "or corrupt, or another kind of file. Delete it to start afresh, or use an older "
            "copy."
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError, KeyError) as e:
        raise CheckpointError(
            f"{path} is not a readable checkpoint ({type(e).__name__}: {e}); it may be truncated "
            "or corrupt. Delete it to start afresh, or use an older copy."
        ) from None
    if META_KEY not in arrays:
        raise CheckpointError(f"{path} is an .npz file but not a minitorch_alexnet checkpoint")
    try:
        meta = json.loads(arrays.pop(META_KEY).tobytes().decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise CheckpointError(f"{path}: the checkpoint's metadata is damaged ({e})") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is an .npz file but not a minitorch_alexnet checkpoint")
    if not isinstance(meta.get("version", 0), int):
        raise CheckpointError(f"{path}: the checkpoint's metadata is damaged (bad version)")
    if meta.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path} was written by a newer version (format {meta['version']}); upgrade to load it"
        )
    return arrays, meta


def load_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    restore_rng: bool = True,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and ``optimizer``, ``scheduler``), on any backend.

    Args:
        path: a file written by :func:`save_checkpoint`.
        model: a model of the same architecture (its arrays are replaced in place,
            converted to its backend and dtype).
        optimizer: restored from the checkpoint when given (it must be the same
            kind of optimiser over the same parameters).
        scheduler: restored likewise.
        restore_rng: also restore the project's host random generator.

    Returns:
        The metadata: ``epoch``, ``extra``, ``backend`` (saved from), ``saved_at``, ...

    Raises:
        CheckpointError: missing or damaged file, a model that does not match
            (with the missing/unexpected keys and shape mismatches listed), or an
            optimiser/scheduler that does not fit the saved state.
    """
    arrays, meta = read_checkpoint(path)
    state = {k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")}
    # all or nothing: if the optimiser or scheduler does not fit, the model goes back
    # to what it was, so a failed load leaves the caller's objects as they were
    saved = {k: v.copy() for k, v in model.state_dict().items()}
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit this model: {e}") from None
    try:
        _load_training_state(path, meta, arrays, optimizer, scheduler)
    except CheckpointError:
        model.load_state_dict(saved)
        raise
    if restore_rng and meta.get("rng_state") is not None:
        _backend.set_rng_state(meta["rng_state"])
    meta["extra"] = _unpack(meta.get("extra"), arrays)
    return meta


def _load_training_state(
    path: Any, meta: dict, arrays: dict, optimizer: Any, scheduler: Any
) -> None:
    """Restore the optimiser and scheduler; a CheckpointError names what does not fit."""
    for what, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
        if obj is None:
            continue
        saved_class = meta.get(f"{what}_class")
        if meta.get(what) is None:
            raise CheckpointError(f"{path} holds no {what} state")
        if saved_class != type(obj).__name__:
            raise CheckpointError(
                f"{path} holds the state of a {saved_class} {what}, not of a {type(obj).__name__}"
            )
        try:
            obj.load_state_dict(_unpack(meta[what], arrays))
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{path}: the saved {what} state does not fit: {e}") from None
