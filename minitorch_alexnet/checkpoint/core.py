"""Saving and loading checkpoints: all-or-nothing loads, truthful saves.

:func:`load_checkpoint` first checks everything -- the file, its metadata, every
array's declared shape and dtype against the model, the optimiser's and
scheduler's states (their own ``check_state_dict``), the random generator's
state -- and reads the data; only then does it change the caller's objects, and
if even that fails (out of memory, Ctrl-C) it puts them back as they were.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import backend as _backend
from .archive import FORMAT, MAX_DEPTH, META_KEY, VERSION, Archive, CheckpointError, Declared
from .archive import array_refs as _array_refs
from .files import atomic_write

np = _backend.host_xp()

__all__ = ["SaveInterrupted", "load_checkpoint", "read_checkpoint", "save_checkpoint"]

_ADVICE = "Delete it to start afresh, or use an older copy."
_NUMERIC = "biuf"  # dtype kinds a weight or an optimiser buffer may be stored as


class SaveInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`save_checkpoint`, saying what the file holds now.

    Attributes:
        path: the checkpoint's path.
        epoch: the epoch this save was writing.
        saved: True if this save completed (the file holds ``epoch``) before the
            interrupt was raised, False if it was abandoned.
        held_epoch: the epoch the file at ``path`` holds now (None: no checkpoint
            there, or one without an epoch or that cannot be read).
    """

    def __init__(self, path: Path, epoch: int | None, saved: bool, held_epoch: int | None):
        self.path, self.epoch, self.saved, self.held_epoch = path, epoch, saved, held_epoch
        if saved:
            state = f"the save completed, so {path} holds epoch {epoch}"
        elif path.exists() and held_epoch is None:
            state = f"the save was abandoned; {path} is as it was before it"
        elif path.exists():
            state = f"the save was abandoned; {path} still holds epoch {held_epoch}"
        else:
            state = f"the save was abandoned; there is no checkpoint at {path}"
        super().__init__(f"interrupted while saving epoch {epoch}: {state}")


# ---------------------------------------------------------------- packing nested state
def _is_array(obj: Any) -> bool:
    return hasattr(obj, "shape") and hasattr(obj, "dtype") and not isinstance(obj, np.generic)


def _pack(obj: Any, key: str, arrays: dict[str, Any], depth: int = 0) -> Any:
    """A JSON-able copy of ``obj`` whose arrays are moved into ``arrays`` (referenced by key)."""
    if depth > MAX_DEPTH:
        raise ValueError(f"cannot store data nested more than {MAX_DEPTH} levels (at {key!r})")
    if _is_array(obj):
        host = np.array(_backend.to_numpy(obj), copy=True)
        if host.dtype.hasobject:
            raise TypeError(f"cannot store an array of Python objects in a checkpoint ({key!r})")
        arrays[key] = host
        return {"__array__": key}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        bad = [k for k in obj if not (k is None or isinstance(k, bool | int | float | str))]
        if bad:
            raise TypeError(f"cannot store a dict key {bad[0]!r} in a checkpoint (at {key!r})")
        if all(isinstance(k, str) and not k.startswith("__") for k in obj):
            return {k: _pack(v, f"{key}/{k}", arrays, depth + 1) for k, v in obj.items()}
        return {
            "__items__": [[k, _pack(v, f"{key}/{k}", arrays, depth + 1)] for k, v in obj.items()]
        }
    if isinstance(obj, list | tuple):
        return [_pack(v, f"{key}/{i}", arrays, depth + 1) for i, v in enumerate(obj)]
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    raise TypeError(f"cannot store a {type(obj).__name__} in a checkpoint (at {key!r})")


def _unpack(obj: Any, arrays: Callable[[str], Any]) -> Any:
    """Undo :func:`_pack`; ``arrays(key)`` gives the array (or its :class:`Declared`)."""
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            return arrays(obj["__array__"])
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
        path: the ``.npz`` file to write (its folder is created if needed; a symbolic
            link is written through).
        model: a :class:`~minitorch_alexnet.nn.module.Module`.
        optimizer: an optimiser with ``state_dict()`` (optional).
        scheduler: a learning-rate scheduler with ``state_dict()`` (optional).
        epoch: the number of completed epochs (optional).
        extra: any JSON-serialisable value (metrics, command-line arguments, ...),
            arrays included.

    Returns:
        The path written.

    Raises:
        SaveInterrupted: Ctrl-C during the save (a ``KeyboardInterrupt``); its
            ``saved`` and ``held_epoch`` say what the file holds now. A first Ctrl-C
            while the file is written lets the write finish (``saved`` is True).
        TypeError, ValueError: ``extra`` (or a state) holds something a checkpoint
            cannot store; nothing is written.
    """
    path = Path(path)
    save_id = os.urandom(8).hex()
    try:
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
            "save_id": save_id,
            "backend": _backend.get_backend().name,
            "model_class": type(model).__name__,
            "model_keys": model_keys,
            "rng_state": _backend.get_rng_state(),
        }
        for what, obj in (("optimizer", optimizer), ("scheduler", scheduler)):
            meta[f"{what}_class"] = None if obj is None else type(obj).__name__
            meta[what] = None if obj is None else _pack(obj.state_dict(), what, arrays)
        meta["extra"] = _pack(extra, "extra", arrays)
        text = json.dumps(meta, allow_nan=True)
        arrays[META_KEY] = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
        return atomic_write(path, lambda f: np.savez(f, **arrays))
    except KeyboardInterrupt as e:
        saved, held = _what_is_saved(path, save_id)
        raise SaveInterrupted(path, epoch, saved, held) from e


def _what_is_saved(path: Path, save_id: str) -> tuple[bool, int | None]:
    """(whether ``path`` holds the save ``save_id``, the epoch it holds)."""
    try:
        with Archive(path) as archive:
            return archive.meta.get("save_id") == save_id, archive.meta["epoch"]
    except (CheckpointError, OSError):
        return False, None


# ---------------------------------------------------------------- loading
def read_checkpoint(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, Any]]:
    """Read a checkpoint without applying it.

    Only the arrays its metadata names are read (the model's, and those of the
    optimiser, scheduler and ``extra``), within a budget tied to the file's size.

    Returns:
        ``(arrays, meta)``: those arrays by key (host NumPy) and the metadata dict
        (``optimizer``, ``scheduler`` and ``extra`` as stored, arrays referenced by key).

    Raises:
        CheckpointError: the file is missing, damaged, or not a checkpoint of this project.
    """
    with Archive(path) as archive:
        meta = archive.meta
        keys = [f"model/{k}" for k in meta["model_keys"]]
        for what in ("optimizer", "scheduler", "extra"):
            keys += _array_refs(meta[what], what, what, [])
        arrays = {k: archive.read(k) for k in dict.fromkeys(keys)}
    return arrays, meta


def _dtype_problem(d: Declared) -> str | None:
    if d.dtype.kind not in _NUMERIC or d.dtype.names is not None:
        return f"the weight {d.key[len('model/') :]} holds {d.dtype} values, not numbers"
    return None


def _check_model(archive: Archive, model: Any) -> list[Declared]:
    """The model's members, after checking their names, shapes and dtypes against ``model``."""
    own = model.state_dict()
    saved = archive.meta["model_keys"]
    missing = [k for k in own if k not in saved]
    unexpected = [k for k in saved if k not in own]
    problems = []
    if missing:
        problems.append("missing keys: " + ", ".join(missing))
    if unexpected:
        problems.append("unexpected keys: " + ", ".join(unexpected))
    named = {k: archive.declared(f"model/{k}") for k in saved if k in own}
    wrong = [
        f"{k}: checkpoint {d.shape} vs model {tuple(own[k].shape)}"
        for k, d in named.items()
        if d.shape != tuple(own[k].shape)
    ]
    if wrong:
        problems.append("shape mismatches: " + "; ".join(wrong))
    declared = list(named.values())
    kinds = [p for p in map(_dtype_problem, declared) if p]
    if kinds:
        raise CheckpointError(
            f"{archive.path}: {'; '.join(kinds)}; the checkpoint is damaged or was edited. "
            f"{_ADVICE}"
        )
    if problems:
        raise CheckpointError(
            f"{archive.path} does not fit this model: load_state_dict for "
            f"{type(model).__name__} failed — {' | '.join(problems)}. The state was saved "
            "from a different model or configuration; build the same model (same "
            "num_classes and layers) before loading."
        )
    return declared


def _check_state(archive: Archive, what: str, obj: Any) -> dict[str, Any]:
    """``obj``'s saved state, checked by ``obj.check_state_dict`` on declared shapes and
    then read (only arrays that passed are read)."""
    meta, path = archive.meta, archive.path
    if meta[what] is None:
        raise CheckpointError(f"{path} holds no {what} state")
    saved_class = meta[f"{what}_class"]
    if saved_class != type(obj).__name__:
        raise CheckpointError(
            f"{path} holds the state of a {saved_class} {what}, not of a {type(obj).__name__}"
        )
    try:
        obj.check_state_dict(_unpack(meta[what], archive.declared))
    except (ValueError, TypeError, LookupError, AttributeError, ArithmeticError) as e:
        raise CheckpointError(
            f"{path}: the saved {what} state does not fit this {type(obj).__name__}: {e}. "
            f"Load it with the {what} it was saved with; if it is damaged, delete it to "
            "start afresh or use an older copy."
        ) from None
    # the optimiser's check has held every array it accepts against its parameter's shape
    vouched = what == "optimizer"
    return _unpack(meta[what], lambda key: archive.read(key, vouched=vouched))


def _check_rng(path: Path, state: Any) -> None:
    """Try ``state`` on a scratch generator of the project's kind."""
    current = _backend.host_rng().bit_generator
    try:
        if state.get("bit_generator") != type(current).__name__:
            raise ValueError(f"it is a {state.get('bit_generator')!r} state")
        type(current)().state = state
    except Exception as e:
        raise CheckpointError(
            f"{path}: the saved random-generator state is damaged ({e}). {_ADVICE} "
            "(or load with restore_rng=False)"
        ) from None


def load_checkpoint(
    path: str | os.PathLike,
    model: Any,
    optimizer: Any = None,
    scheduler: Any = None,
    restore_rng: bool = True,
    check: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Load a checkpoint into ``model`` (and ``optimizer``, ``scheduler``), on any backend.

    All or nothing: everything is checked and read before anything is changed, and
    a load that fails leaves the model, optimiser, scheduler and generator as they were.

    Args:
        path: a file written by :func:`save_checkpoint`.
        model: a model of the same architecture (its arrays are replaced in place,
            converted to its backend and dtype).
        optimizer: restored from the checkpoint when given (it must be the same
            kind of optimiser over the same parameters).
        scheduler: restored likewise.
        restore_rng: also restore the project's host random generator.
        check: called with the metadata (``extra`` unpacked) once the file has passed
            every check and before anything is changed; whatever it raises ends the
            load with nothing changed (a resume's check of its settings, say).

    Returns:
        The metadata: ``epoch``, ``extra``, ``backend`` (saved from), ``saved_at``, ...

    Raises:
        CheckpointError: missing or damaged file, a model that does not match
            (with the missing/unexpected keys and shape mismatches listed), or an
            optimiser/scheduler/generator state that does not fit or is damaged.
    """
    with Archive(path) as archive:
        path, meta = archive.path, dict(archive.meta)
        declared = _check_model(archive, model)
        states = {
            what: _check_state(archive, what, obj)
            for what, obj in (("optimizer", optimizer), ("scheduler", scheduler))
            if obj is not None
        }
        rng = meta["rng_state"] if restore_rng else None
        if rng is not None:
            _check_rng(path, rng)
        meta["extra"] = _unpack(meta["extra"], archive.read)
        if check is not None:
            check(meta)
        state = {d.key[len("model/") :]: archive.read(d.key, vouched=True) for d in declared}
    _apply(model, optimizer, scheduler, state, states, rng)
    return meta


def _apply(model: Any, optimizer: Any, scheduler: Any, state: dict, states: dict, rng: Any):
    """Apply checked states; if that fails part way (memory, Ctrl-C), undo what was done."""
    old_model = dict(model.state_dict())  # the arrays themselves: loading replaces them
    old_groups = [dict(g) for g in optimizer.param_groups] if optimizer is not None else []
    old_opt_state = optimizer.state if optimizer is not None else None
    old_sched = dict(scheduler.__dict__) if scheduler is not None else None
    old_rng = _backend.get_rng_state()
    try:
        if optimizer is not None:
            optimizer.load_state_dict(states["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(states["scheduler"])
        model.load_state_dict(state)
        if rng is not None:
            _backend.set_rng_state(rng)
    except BaseException:
        model.load_state_dict(old_model)
        if optimizer is not None:
            for group, old in zip(optimizer.param_groups, old_groups):
                group.clear()
                group.update(old)
            optimizer.state = old_opt_state
        if scheduler is not None:
            scheduler.__dict__.clear()
            scheduler.__dict__.update(old_sched)
        _backend.set_rng_state(old_rng)
        raise
