"""Reading CIFAR-10 batch files without trusting them.

A batch is a pickle, and a pickle is a program: loaded naively it can run any code,
and a single flipped byte can make it ask for gigabytes. So a batch is read in
three steps, none of which can be made to do more than a genuine file needs:

1. the file's size is checked against :data:`~.files.MAX_BATCH_FILE_BYTES` before
   it is read, and it is read into memory whole (every later read is then bounded
   by what is really there);
2. its opcodes are walked once with :mod:`pickletools` (nothing is built): every
   length must fit in the file, the memo indices and the number of opcodes must be
   small, and nothing may follow the end of the pickle;
3. it is unpickled with a ``find_class`` that knows only NumPy's array, dtype and
   scalar rebuilders and the ``_codecs.encode`` with which Python 3 writes
   ``bytes`` into protocol-2 pickles, each mapped to an inert stand-in that only
   records its arguments. NumPy never runs during unpickling; the recorded array
   is checked (dtype, shape, byte count) and only then viewed as an array.

Anything wrong raises :class:`CorruptDatasetError` naming the file and what to do.
"""

from __future__ import annotations

import io
import os
import pickle
import pickletools
import stat
from pathlib import Path
from typing import Any

from .dataset import CorruptDatasetError, DatasetIOError, host_numpy
from .files import (
    CIFAR10_CLASSES,
    MAX_BATCH_FILE_BYTES,
    MAX_PICKLE_OPS,
    ROW_BYTES,
    ROWS_PER_BATCH,
)

__all__ = ["parse_batch", "parse_classes", "read_batch", "read_blob"]

_MEMO_OPS = {"PUT", "BINPUT", "LONG_BINPUT", "GET", "BINGET", "LONG_BINGET"}
# persistent ids, the copyreg extension registry and out-of-band buffers: never in a batch
_REFUSED_OPS = {"PERSID", "BINPERSID", "EXT1", "EXT2", "EXT4", "NEXT_BUFFER", "READONLY_BUFFER"}
_DTYPES = {"u1", "i1", "u2", "i2", "u4", "i4", "u8", "i8", "b1", "f4", "f8"}


class _Bad(Exception):
    """What is wrong with a batch; becomes a CorruptDatasetError that names the file."""


def _advice(path: Path) -> str:
    return (
        f"Delete the folder {path.parent} (and the archive next to it, if any) and run again "
        "to download and extract a fresh copy."
    )


def _corrupt(path: Path, why: str) -> CorruptDatasetError:
    return CorruptDatasetError(f"{path}: {why}. {_advice(path)}")


# ---------------------------------------------------------------- the bytes
def read_blob(path: str | os.PathLike, limit: int = MAX_BATCH_FILE_BYTES) -> bytes:
    """The bytes of a dataset file, refusing folders, special files and anything over ``limit``."""
    path = Path(path)
    try:
        st = os.stat(path)
        if stat.S_ISDIR(st.st_mode):
            raise _corrupt(path, "is a folder, not a batch file; the dataset folder is damaged")
        if not stat.S_ISREG(st.st_mode):
            raise _corrupt(path, "is not a regular file (a device, FIFO or socket)")
        if st.st_size > limit:
            raise _corrupt(
                path, f"is {st.st_size} bytes, more than any CIFAR-10 batch file ({limit})"
            )
        with open(path, "rb") as f:
            blob = f.read(st.st_size + 1)  # a read of n bytes reserves n bytes: ask no more
    except FileNotFoundError:
        raise _corrupt(path, "file is missing; the dataset folder is incomplete") from None
    except (IsADirectoryError, NotADirectoryError) as e:
        raise _corrupt(path, f"cannot be read as a file ({e.strerror})") from None
    except OSError as e:
        err = DatasetIOError(
            f"{path} cannot be read ({type(e).__name__}: {e.strerror or e}). Check that the "
            "file and its folder are readable, and run again."
        )
        err.errno, err.filename = e.errno, str(path)
        raise err from None
    if len(blob) > limit:
        raise _corrupt(path, f"is more than {limit} bytes, more than any CIFAR-10 batch file")
    return blob


# ---------------------------------------------------------------- step 2: the opcodes
def _scan(blob: bytes) -> None:
    """Walk the opcodes without building anything; raise _Bad for anything a batch never has."""
    end = -1
    stored: set[int] = set()  # memo slots filled so far
    try:
        for count, (op, arg, pos) in enumerate(pickletools.genops(blob)):
            if count >= MAX_PICKLE_OPS:
                raise _Bad(f"more than {MAX_PICKLE_OPS} pickle opcodes")
            if op.name in _REFUSED_OPS:
                raise _Bad(f"pickle opcode {op.name} at byte {pos} is never used by a batch")
            # a pickler numbers its memo slots 0, 1, 2, ...: a slot beyond the opcodes so far
            # would only make the unpickler reserve memory for it
            if op.name in _MEMO_OPS and not (
                (op.name.endswith("PUT") and isinstance(arg, int) and 0 <= arg <= count)
                or arg in stored
            ):
                raise _Bad(f"pickle memo index {arg!r} at byte {pos} is out of range")
            if op.name.endswith("PUT"):
                stored.add(arg)
            elif op.name == "MEMOIZE":  # the next free slot
                stored.add(len(stored))
            if op.name == "FRAME" and arg > len(blob):
                raise _Bad(f"pickle frame at byte {pos} is longer than the file")
            if op.name == "STOP":
                end = pos + 1
    except _Bad:
        raise
    except Exception as e:  # pickletools reports a malformed stream in several ways
        raise _Bad(f"not a well-formed pickle ({type(e).__name__}: {e})") from None
    if end < 0:
        raise _Bad("the pickle has no end (the file is truncated)")
    if end != len(blob):
        raise _Bad(f"{len(blob) - end} stray bytes after the end of the pickle")


# ---------------------------------------------------------------- step 3: inert stand-ins
class _Array:
    """Stands for ``numpy.ndarray`` and records what it is rebuilt from."""

    def __init__(self, *args: Any) -> None:
        self.args, self.state = args, None

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _Dtype(_Array):
    """Stands for ``numpy.dtype(spec, align, copy)``."""


class _Scalar(_Array):
    """Stands for ``numpy.core.multiarray.scalar(dtype, bytes)``."""


def _reconstruct(subtype: Any, shape: Any, dtype: Any) -> _Array:
    if subtype is not _Array:
        raise pickle.UnpicklingError("_reconstruct of something other than an ndarray")
    return _Array()


def _frombuffer(buf: Any, dtype: Any, shape: Any, order: Any) -> _Array:
    """How protocol 5 rebuilds an array: its bytes in-band, then dtype, shape and order."""
    a = _Array()
    a.state = (shape, dtype, order == "F", buf)
    return a


def _latin1(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """``_codecs.encode`` as Python 3 uses it for ``bytes`` in protocol 2: latin-1 only."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with {encoding!r} is not a bytes object")
    return text.encode("latin1")


_NAMES: dict[tuple[str, str], Any] = {("_codecs", "encode"): _latin1, ("numpy", "ndarray"): _Array}
_NAMES[("numpy", "dtype")] = _Dtype
for _core in ("numpy.core", "numpy._core"):
    _NAMES[(f"{_core}.multiarray", "_reconstruct")] = _reconstruct
    _NAMES[(f"{_core}.multiarray", "scalar")] = _Scalar
    _NAMES[(f"{_core}.numeric", "_frombuffer")] = _frombuffer


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        try:
            return _NAMES[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"global {module}.{name} is not allowed in a CIFAR batch"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not allowed in a CIFAR batch")


def _unpickle(blob: bytes) -> Any:
    _scan(blob)
    try:
        return _Unpickler(io.BytesIO(blob), encoding="bytes").load()
    except Exception as e:  # only the stand-ins above run, so any failure means a bad file
        raise _Bad(f"not a readable CIFAR-10 batch ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------- stand-ins to arrays
def _text(v: Any) -> str | None:
    if isinstance(v, bytes):
        return v.decode("latin1")
    return v if isinstance(v, str) else None


def _dtype(d: Any) -> Any:
    np = host_numpy()
    spec = _text(d.args[0]) if isinstance(d, _Dtype) and d.args else None
    if spec not in _DTYPES:
        raise _Bad(f"array dtype {spec!r} is not a plain number type")
    dt = np.dtype(spec)
    state = d.state
    order = _text(state[1]) if isinstance(state, tuple) and len(state) > 1 else "|"
    if order not in ("<", ">", "|", "="):
        raise _Bad(f"array dtype has byte order {order!r}")
    return dt.newbyteorder(order) if order in "<>" and dt.itemsize > 1 else dt


def _array(a: Any, what: str) -> Any:
    np = host_numpy()
    state = a.state if isinstance(a, _Array) and type(a) is _Array else None
    if not isinstance(state, tuple) or len(state) not in (4, 5):
        raise _Bad(f"{what!r} is not an array")
    if len(state) == 5:
        if state[0] != 1:
            raise _Bad(f"{what!r} has array format version {state[0]!r}")
        state = state[1:]
    shape, dt, fortran, raw = state
    dt = _dtype(dt)
    if not isinstance(shape, tuple) or not all(type(s) is int and 0 <= s < 2**31 for s in shape):
        raise _Bad(f"{what!r} has a malformed shape {shape!r}"[:200])
    count = 1
    for s in shape:
        count *= s
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dt.itemsize:
        got = len(raw) if isinstance(raw, (bytes, bytearray)) else type(raw).__name__
        raise _Bad(f"{what!r} of shape {shape} and dtype {dt} holds {got} bytes")
    flat = np.frombuffer(raw, dtype=dt, count=count)
    return flat.reshape(shape, order="F" if fortran else "C")


def _label_values(labels: Any, n: int) -> Any:
    np = host_numpy()
    if isinstance(labels, _Array):
        arr = _array(labels, "labels")
        if arr.dtype.kind not in "iub" or arr.shape != (arr.size,):
            raise _Bad(f"'labels' should be integers, found {arr.dtype} {arr.shape}")
        values = arr
    elif isinstance(labels, list):
        values = labels
    else:
        raise _Bad(f"'labels' should be a list of integers, found {type(labels).__name__}")
    if len(values) != n:
        raise _Bad(f"{n} images but {len(values)} labels")
    if isinstance(values, list):
        out = []
        for v in values:
            if isinstance(v, _Scalar):
                v = _scalar_value(v)
            if type(v) is not int:
                raise _Bad(f"a label is {type(v).__name__}, not an integer")
            out.append(v)
        values = out
    try:
        return np.asarray(values, dtype=np.int64)
    except (OverflowError, ValueError, TypeError) as e:
        raise _Bad(f"'labels' are not 64-bit integers ({e})") from None


def _scalar_value(s: _Scalar) -> Any:
    np = host_numpy()
    if len(s.args) != 2 or not isinstance(s.args[1], bytes):
        raise _Bad("a malformed NumPy scalar")
    dt = _dtype(s.args[0])
    if dt.kind not in "iu" or len(s.args[1]) != dt.itemsize:
        raise _Bad(f"a NumPy scalar of {dt} is not an integer label")
    return int(np.frombuffer(s.args[1], dtype=dt)[0])


def _get(d: dict, key: str) -> Any:
    if key.encode() in d:
        return d[key.encode()]
    return d.get(key)


# ---------------------------------------------------------------- the readers
def parse_batch(blob: bytes, path: str | os.PathLike, num_classes: int = 10) -> tuple[Any, Any]:
    """``(images, labels)`` from the bytes of a batch file (see :func:`read_batch`)."""
    np = host_numpy()
    path = Path(path)
    try:
        d = _unpickle(blob)
        if not isinstance(d, dict):
            raise _Bad(f"expected a dict, found {type(d).__name__}")
        data, labels = _get(d, "data"), _get(d, "labels")
        if data is None or labels is None:
            raise _Bad("no 'data' or 'labels' entry")
        data = _array(data, "data")
        if data.dtype != np.uint8 or data.ndim != 2:
            raise _Bad(f"'data' should be a uint8 matrix, found {data.dtype} {data.shape}")
        n = data.shape[0]
        if data.shape[1] != ROW_BYTES or not 0 < n <= ROWS_PER_BATCH:
            raise _Bad(f"'data' has shape {data.shape}, expected ({ROWS_PER_BATCH}, {ROW_BYTES})")
        labels = _label_values(labels, n)
        if labels.min() < 0 or labels.max() >= num_classes:
            raise _Bad(f"labels outside [0, {num_classes}): min {labels.min()}, max {labels.max()}")
    except _Bad as e:
        raise _corrupt(path, str(e)) from None
    return data.reshape(n, 3, 32, 32).copy(), labels


def read_batch(path: str | os.PathLike, num_classes: int = 10) -> tuple[Any, Any]:
    """Read one batch file.

    Returns:
        ``(images, labels)``: ``uint8`` ``(n, 3, 32, 32)`` and ``int64`` ``(n,)``, where
        ``n`` is 10000 in the official files (smaller batches, as written by
        subset tools, are accepted).

    Raises:
        CorruptDatasetError: the file is missing, a folder, too large, truncated or
            malformed, or its pickle asks for anything but plain arrays.
        DatasetIOError: the file exists but cannot be read (permissions).
    """
    return parse_batch(read_blob(path), path, num_classes)


def parse_classes(blob: bytes, path: str | os.PathLike) -> tuple[str, ...]:
    """The ten class names of ``batches.meta``; raises CorruptDatasetError if it has none."""
    try:
        d = _unpickle(blob)
        names = _get(d, "label_names") if isinstance(d, dict) else None
        if not isinstance(names, list) or len(names) != len(CIFAR10_CLASSES):
            raise _Bad("no list of ten 'label_names'")
        texts = [_text(v) for v in names]
        if not all(isinstance(t, str) and 0 < len(t) < 100 for t in texts):
            raise _Bad("a class name is not a short text")
    except _Bad as e:
        raise _corrupt(Path(path), str(e)) from None
    return tuple(texts)  # type: ignore[arg-type]
