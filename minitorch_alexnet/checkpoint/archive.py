"""Reading a checkpoint file: only the members asked for, each checked before its data is read.

A checkpoint is a zip archive of ``.npy`` members (what ``numpy.savez`` writes). This
module reads it without ``numpy.load``, so that a damaged or hostile file can cost
neither memory nor a traceback:

* only members that are asked for are opened (a checkpoint never decompresses an
  array it does not use);
* a member's ``.npy`` header (shape, dtype) is read first and checked: no Python
  objects (nothing is ever unpickled), its size must agree with the zip's record,
  and the caller may hold it against the shape the model expects before any data
  is read; arrays nobody can check share a budget tied to the file's size;
* the JSON metadata is checked field by field (:func:`check_meta`);
* whatever goes wrong -- a bad zip record, a failed CRC, a short member, bad JSON --
  is a :class:`CheckpointError` naming the file and what to do.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import backend as _backend

np = _backend.host_xp()

__all__ = ["Archive", "CheckpointError", "Declared", "array_refs", "check_meta"]

FORMAT = "minitorch_alexnet-checkpoint"
VERSION = 1
META_KEY = "__meta__"
META_LIMIT = 64 * 2**20  # bytes of JSON metadata: far more than any run's history needs
HEADER_LIMIT = 10_000  # bytes of a .npy header (NumPy's own default limit)
#: arrays that no model or optimiser can vouch for (``extra``, or any array read
#: without a model) may declare at most this many times the file's size, plus SLACK
INFLATE_FACTOR = 64
SLACK = 16 * 2**20
MAX_DEPTH = 64  # nesting of the metadata's lists and dicts
_CHUNK = 16 * 2**20
_REQUIRED = (
    "format version epoch model_keys rng_state optimizer_class optimizer scheduler_class "
    "scheduler extra"
).split()
_TEXT = ("saved_at", "backend", "model_class", "save_id")  # optional; text when present
_ADVICE = "Delete it to start afresh, or use an older copy."


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, or does not fit the model/optimiser given."""


@dataclass(frozen=True)
class Declared:
    """What a member's ``.npy`` header declares: enough to judge it before reading its data
    (it has an array's ``shape``, ``dtype`` and ``ndim``, but no data)."""

    key: str
    shape: tuple[int, ...]
    dtype: Any
    fortran: bool
    start: int  # bytes of .npy header before the data

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * self.dtype.itemsize


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_scalar(v: Any) -> bool:
    return v is None or isinstance(v, bool | int | float | str)


def array_refs(obj: Any, prefix: str, where: str, problems: list[str], depth: int = 0) -> list[str]:
    """The array keys a packed value refers to, after checking its shape of references.

    ``{"__array__": key}`` must name a key under ``prefix``; ``{"__items__": [[k, v],
    ...]}`` must hold pairs with scalar keys; nesting stops at :data:`MAX_DEPTH`.
    Problems are appended to ``problems`` (the refs found so far are returned).
    """
    if depth > MAX_DEPTH:
        problems.append(f"{where.split('[')[0]} is nested more than {MAX_DEPTH} levels deep")
        return []
    refs: list[str] = []
    if isinstance(obj, dict):
        if set(obj) == {"__array__"}:
            key = obj["__array__"]
            if not isinstance(key, str) or not key.startswith(prefix):
                problems.append(f"{where} refers to the array {key!r}, not one under {prefix!r}")
            else:
                refs.append(key)
        elif set(obj) == {"__items__"}:
            items = obj["__items__"]
            if not isinstance(items, list):
                problems.append(f"{where} has items that are not a list")
                return refs
            for i, pair in enumerate(items):
                if not (isinstance(pair, list) and len(pair) == 2 and _is_scalar(pair[0])):
                    problems.append(f"{where} item {i} is not a [key, value] pair")
                    continue
                refs += array_refs(pair[1], prefix, f"{where}[{pair[0]!r}]", problems, depth + 1)
        else:
            for k, v in obj.items():
                refs += array_refs(v, prefix, f"{where}[{k!r}]", problems, depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            refs += array_refs(v, prefix, f"{where}[{i}]", problems, depth + 1)
    elif not _is_scalar(obj):  # cannot come from JSON; only from a hand-made dict
        problems.append(f"{where} is a {type(obj).__name__}")
    return refs


def check_meta(meta: Any) -> list[str]:
    """The problems of a checkpoint's metadata (empty if none), after the format check."""
    problems = [f"it has no {k!r}" for k in _REQUIRED if k not in meta]
    version = meta.get("version")
    if "version" in meta and not (_is_int(version) and version >= 1):
        problems.append(f"version is {version!r}, not a positive integer")
    epoch = meta.get("epoch")
    if epoch is not None and not (_is_int(epoch) and epoch >= 0):
        problems.append(f"epoch is {epoch!r}, not a number of epochs")
    keys = meta.get("model_keys", [])
    if not (isinstance(keys, list) and all(isinstance(k, str) and k for k in keys)):
        problems.append("model_keys is not a list of names")
    elif len(set(keys)) != len(keys):
        problems.append("model_keys names an array twice")
    if not isinstance(meta.get("rng_state"), dict | None):
        problems.append("rng_state is not a dict")
    for k in _TEXT:
        if k in meta and not isinstance(meta[k], str):
            problems.append(f"{k} is {meta[k]!r}, not text")
    for what in ("optimizer", "scheduler"):
        cls, state = meta.get(f"{what}_class"), meta.get(what)
        if not isinstance(cls, str | None) or not isinstance(state, dict | None):
            problems.append(f"{what}_class or {what} has the wrong type")
        elif (cls is None) != (state is None):
            problems.append(f"{what}_class and {what} disagree about whether there is one")
        array_refs(state, f"{what}/", what, problems)
    array_refs(meta.get("extra"), "extra", "extra", problems)
    return problems


class Archive:
    """A checkpoint file opened for bounded reading; ``meta`` is its checked metadata.

    Use as a context manager (the file is closed at the end). :meth:`declared` reads a
    member's header, :meth:`read` its data: with ``vouched=True`` when the caller has
    checked the declared shape against what it expects, else within the budget of
    :data:`INFLATE_FACTOR` times the file's size.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_file():
            raise CheckpointError(f"no checkpoint at {self.path}")
        self._zip: zipfile.ZipFile | None = None
        self._declared: dict[str, Declared] = {}
        with self.damaged():
            self._file = open(self.path, "rb")  # closed by close()
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        if not zipfile.is_zipfile(self._file):  # checked first: NumPy's message suggests pickles
            raise CheckpointError(
                f"{self.path} is not a readable checkpoint (not an .npz archive); it may be "
                f"truncated or corrupt, or another kind of file. {_ADVICE}"
            )
        with self.damaged():
            self.size = os.fstat(self._file.fileno()).st_size
            self._zip = zipfile.ZipFile(self._file)
            infos = self._zip.infolist()
            self._infos = {i.filename: i for i in infos}
            if len(self._infos) != len(infos):
                raise ValueError("two members have the same name")
        self.budget = INFLATE_FACTOR * self.size + SLACK
        self.meta = self._read_meta()

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        self._file.close()

    def __enter__(self) -> Archive:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def damaged(self, what: str = "") -> Iterator[None]:
        """Turn any failure of reading the file into a :class:`CheckpointError`."""
        try:
            yield
        except CheckpointError:
            raise
        except (PermissionError, IsADirectoryError) as e:
            raise CheckpointError(f"cannot read {self.path}: {e.strerror or e}") from None
        except Exception as e:  # a damaged file fails in many ways; each one is the same news
            raise CheckpointError(
                f"{self.path} is not a readable checkpoint ({what}{type(e).__name__}: {e}); "
                f"it may be truncated or corrupt. {_ADVICE}"
            ) from None

    def holds(self, key: str) -> bool:
        return f"{key}.npy" in self._infos

    def declared(self, key: str) -> Declared:
        """The shape and dtype member ``key`` declares (its header only is read)."""
        if key in self._declared:
            return self._declared[key]
        info = self._infos.get(f"{key}.npy")
        if info is None:
            raise CheckpointError(
                f"{self.path}: the checkpoint's metadata names the array {key!r}, which the "
                f"file does not hold; it is damaged. {_ADVICE}"
            )
        with self.damaged(f"array {key!r}: "):
            if info.flag_bits & 0x1:
                raise ValueError("the member is encrypted")
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise ValueError(f"unknown compression method {info.compress_type}")
            if info.compress_size > self.size or (
                info.compress_type == zipfile.ZIP_STORED and info.compress_size != info.file_size
            ):
                raise ValueError("the zip records sizes that cannot be")
            with self._zip.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    header = np.lib.format.read_array_header_1_0(f, max_header_size=HEADER_LIMIT)
                elif version == (2, 0):
                    header = np.lib.format.read_array_header_2_0(f, max_header_size=HEADER_LIMIT)
                else:
                    raise ValueError(f".npy format version {version} is not one NumPy writes here")
                d = Declared(key, tuple(header[0]), header[2], bool(header[1]), f.tell())
            if d.dtype.hasobject:
                raise CheckpointError(
                    f"{self.path}: the array {key!r} holds Python objects, which a checkpoint "
                    f"never loads (nothing is unpickled). {_ADVICE}"
                )
            if any(n < 0 for n in d.shape) or d.start + d.nbytes != info.file_size:
                raise ValueError(
                    f"its header declares shape {d.shape} of {d.dtype} ({d.nbytes} bytes) "
                    f"but the member holds {info.file_size - d.start} bytes"
                )
        self._declared[key] = d
        return d

    def read(self, key: str, vouched: bool = False) -> Any:
        """Member ``key`` as a host array: its header checked, its CRC verified.

        ``vouched``: the caller has checked :meth:`declared` against the shape it
        expects; otherwise the member is charged to the file's budget.
        """
        d = self.declared(key)
        if not vouched:
            if d.nbytes > self.budget:
                raise CheckpointError(
                    f"{self.path}: the array {key!r} declares {d.nbytes} bytes, more than a "
                    f"file of {self.size} bytes can hold; it is damaged. {_ADVICE}"
                )
            self.budget -= d.nbytes
        with self.damaged(f"array {key!r}: "), self._zip.open(f"{key}.npy") as f:
            if len(f.read(d.start)) != d.start:
                raise EOFError("the member ends inside its header")
            out = np.empty(math.prod(d.shape), dtype=d.dtype)
            view = memoryview(out.view(np.uint8).reshape(-1)) if out.nbytes else memoryview(b"")
            done = 0
            while done < d.nbytes:
                chunk = f.read(min(_CHUNK, d.nbytes - done))
                if not chunk:
                    raise EOFError(f"the member ends after {done} of {d.nbytes} bytes")
                view[done : done + len(chunk)] = chunk
                done += len(chunk)
            if f.read(1):  # also makes zipfile check the CRC of the whole member
                raise ValueError("the member is longer than its header says")
        return out.reshape(d.shape, order="F" if d.fortran else "C")

    def _read_meta(self) -> dict[str, Any]:
        if not self.holds(META_KEY):
            raise CheckpointError(
                f"{self.path} is an .npz file but not a minitorch_alexnet checkpoint"
            )
        d = self.declared(META_KEY)
        if d.dtype != np.uint8 or d.ndim != 1 or d.nbytes > META_LIMIT:
            raise CheckpointError(
                f"{self.path}: the checkpoint's metadata is damaged (a {d.dtype} array of "
                f"shape {d.shape}, not up to {META_LIMIT} bytes of text). {_ADVICE}"
            )
        raw = self.read(META_KEY, vouched=True)
        try:
            meta = json.loads(raw.tobytes().decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            msg = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            raise CheckpointError(
                f"{self.path}: the checkpoint's metadata is damaged ({msg}). {_ADVICE}"
            ) from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise CheckpointError(
                f"{self.path} is an .npz file but not a minitorch_alexnet checkpoint"
            )
        version = meta.get("version")
        if _is_int(version) and version > VERSION:
            raise CheckpointError(
                f"{self.path} was written by a newer version (format {version}); upgrade to load it"
            )
        problems = check_meta(meta)
        if problems:
            raise CheckpointError(
                f"{self.path}: the checkpoint's metadata is damaged or was edited by hand "
                f"({'; '.join(problems)}). {_ADVICE}"
            )
        return meta
