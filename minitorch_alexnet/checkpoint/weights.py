"""Weights to and from PyTorch: safetensors files, and PyTorch's own ``.pt``/``.pth`` files.

Our ``state_dict()`` keys are PyTorch's (``features.0.weight``, ``conv1.2.running_mean``,
...), so a state dict moves between the two as it is::

    from minitorch_alexnet import models
    from minitorch_alexnet.checkpoint import load_weights, save_weights

    model = models.alexnet()                         # torchvision's AlexNet
    load_weights(model, "alexnet.safetensors")       # or a file torch.save wrote
    save_weights(model, "mine.pt")                   # torch.load(..., weights_only=True)

Two formats, both read without running any code from the file:

* **safetensors** (``.safetensors``): a JSON header and raw little-endian arrays. Read
  and written by the ``safetensors`` library through NumPy; PyTorch is not needed.
* **PyTorch** (``.pt``, ``.pth``, ``.bin``): what ``torch.save(model.state_dict(), f)``
  writes. Read with ``torch.load(f, weights_only=True)``, PyTorch's restricted
  unpickler, which builds tensors, dicts and numbers and refuses everything else; this
  needs PyTorch installed. A file whose name says neither is recognised by its first
  bytes (a PyTorch file is a zip archive).

BF16 arrays, which NumPy has no type for, are widened to float32 (exactly) in both
formats. This package's own training checkpoints (``.npz``, also zip archives) are
not weights files: they are refused with a pointer to :func:`~.core.load_checkpoint`.

Writing is atomic (:func:`~.files.atomic_write`) and never replaces an existing file
unless ``overwrite=True``.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..backend import host_xp, to_numpy
from .files import atomic_write

__all__ = [
    "WeightsError",
    "load_weights",
    "read_weights",
    "save_safetensors",
    "save_torch",
    "save_weights",
]

SAFETENSORS_SUFFIXES = (".safetensors",)
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
CHECKPOINT_SUFFIXES = (".npz",)
#: Keys under which training scripts often nest the state dict in a PyTorch file.
NESTED_KEYS = ("state_dict", "model_state_dict", "model")


class WeightsError(RuntimeError):
    """A weights file that cannot be read, or whose arrays do not fit the model."""


def _needs(package: str, why: str) -> ImportError:
    extra = "pip install safetensors" if package == "safetensors" else "pip install torch"
    return ImportError(f"{why} needs the {package} package: {extra}")


def _checkpoint_error(path: Path) -> WeightsError:
    return WeightsError(
        f"{path} is a minitorch_alexnet training checkpoint (an .npz archive written by "
        "save_checkpoint), not a safetensors or PyTorch weights file; load it with "
        "minitorch_alexnet.checkpoint.load_checkpoint(path, model), or read its arrays "
        "with read_checkpoint(path)"
    )


def _is_npz(path: Path) -> bool:
    """Whether a zip archive is NumPy's ``.npz`` (``.npy`` members), not ``torch.save``'s."""
    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return bool(names) and all(name.endswith(".npy") for name in names)


def _format(path: Path) -> str:
    """``"safetensors"`` or ``"torch"``, by the file's suffix, else by its first bytes.

    Raises:
        WeightsError: an ``.npz`` training checkpoint (a zip archive too), or a file
            that is neither format.
    """
    suffix = path.suffix.lower()
    if suffix in CHECKPOINT_SUFFIXES:
        raise _checkpoint_error(path)
    if suffix in SAFETENSORS_SUFFIXES:
        return "safetensors"
    if suffix in TORCH_SUFFIXES:
        return "torch"
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:4] == b"PK\x03\x04":  # torch.save writes a zip archive; so does numpy.savez
        if _is_npz(path):
            raise _checkpoint_error(path)
        return "torch"
    if len(head) == 9 and head[8:9] == b"{":  # 8 bytes of header length, then JSON
        return "safetensors"
    raise WeightsError(
        f"{path}: not a safetensors or PyTorch file that can be recognised; name it "
        f"*.safetensors or *.pt if it is one"
    )


#: NumPy's type for each safetensors dtype (little-endian, as the format stores them).
SAFETENSORS_DTYPES = {
    "F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "U64": "<u8", "I32": "<i4",
    "U32": "<u4", "I16": "<i2", "U16": "<u2", "I8": "i1", "U8": "u1", "BOOL": "?",
}  # fmt: skip


def _bf16_to_float32(blob: bytes, shape: list[int]) -> Any:
    """Little-endian bfloat16 bytes as float32, exactly: bfloat16 is the top 16 bits of a
    float32, so each value's bits are shifted into the top half of a uint32."""
    np = host_xp()
    bits = np.frombuffer(blob, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def _read_safetensors(path: Path) -> dict[str, Any]:
    try:
        from safetensors import SafetensorError, deserialize
    except ImportError:
        raise _needs("safetensors", f"reading {path}") from None
    try:
        views = deserialize(path.read_bytes())  # checks the header and every offset
    except SafetensorError as e:
        raise WeightsError(f"{path} is not a valid safetensors file ({e})") from None
    np = host_xp()
    out: dict[str, Any] = {}
    for key, view in views:
        dtype, shape, blob = view["dtype"], view["shape"], view["data"]
        if dtype == "BF16":  # NumPy has no bfloat16: widen, exactly
            out[key] = _bf16_to_float32(blob, shape)
        elif dtype in SAFETENSORS_DTYPES:
            out[key] = np.frombuffer(blob, dtype=SAFETENSORS_DTYPES[dtype]).reshape(shape).copy()
        else:
            raise WeightsError(
                f"{path}: entry {key!r} holds {dtype} values, which NumPy has no type for; "
                "convert them to float32 where PyTorch is installed: save_file({k: v.float() "
                "for k, v in load_file(path).items()}, path) with safetensors.torch"
            )
    return out


def _tensor_to_numpy(key: str, value: Any, path: Path) -> Any:
    import torch

    if not isinstance(value, torch.Tensor):
        raise WeightsError(
            f"{path}: entry {key!r} is a {type(value).__name__}, not a tensor; the file is not "
            "a state dict (save model.state_dict(), not the model or a training checkpoint)"
        )
    t = value.detach().cpu()
    if t.dtype == torch.bfloat16:  # NumPy has no bfloat16: widen, exactly
        t = t.float()
    return t.numpy().copy()


def _read_torch(path: Path) -> dict[str, Any]:
    try:
        import torch
    except ImportError:
        raise _needs(
            "torch",
            f"reading the PyTorch file {path} (or convert it to safetensors where PyTorch is "
            "installed, and read that)",
        ) from None
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # weights_only refuses pickled code; a damaged zip; not a torch file
        raise WeightsError(
            f"{path} could not be read as a PyTorch state dict with "
            f"torch.load(weights_only=True): {type(e).__name__}: {e}"
        ) from None
    if isinstance(obj, Mapping) and not any(isinstance(v, torch.Tensor) for v in obj.values()):
        # a training checkpoint, {"state_dict": {...}, "epoch": ...}: the state dict inside
        nested = [obj[k] for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)]
        obj = nested[0] if nested else obj
    if not isinstance(obj, Mapping):
        raise WeightsError(
            f"{path} holds a {type(obj).__name__}, not a state dict (a dict of tensors); "
            "save it with torch.save(model.state_dict(), path)"
        )
    return {str(k): _tensor_to_numpy(str(k), v, path) for k, v in obj.items()}


def read_weights(path: str | os.PathLike) -> dict[str, Any]:
    """Every array of a safetensors or PyTorch state-dict file, as host NumPy arrays.

    Returns:
        ``{key: numpy array}`` in the file's order, ready for ``model.load_state_dict``.

    Raises:
        FileNotFoundError: no file at ``path``.
        WeightsError: the file is damaged, not a state dict, or in an unknown format.
        ImportError: ``safetensors`` (or, for a PyTorch file, ``torch``) is not installed.
    """
    path = Path(path)
    if not path.is_file():
        what = "a folder" if path.is_dir() else "no file"
        raise FileNotFoundError(f"{path}: {what}, so no weights to read")
    if _format(path) == "safetensors":
        return _read_safetensors(path)
    return _read_torch(path)


def load_weights(model: Any, path: str | os.PathLike, strict: bool = True) -> Any:
    """Read a state-dict file (:func:`read_weights`) and load it into ``model``.

    Values take the dtype and backend of the arrays they replace. With ``strict`` (the
    default) every key must match: missing keys, unexpected keys and arrays of the wrong
    shape are all listed, by name, in one :class:`WeightsError`, and nothing is loaded.

    Returns:
        ``(missing_keys, unexpected_keys)``, as PyTorch's ``load_state_dict`` does.
    """
    state = read_weights(path)
    try:
        return model.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        hint = ""
        if any(k.startswith("module.") for k in state):
            hint = (
                " The keys start with 'module.': the file was saved from a DataParallel or "
                "DistributedDataParallel wrapper; save its .module.state_dict() instead."
            )
        raise WeightsError(f"{path}: {e}{hint}") from None


def _host_state(model_or_state: Any) -> dict[str, Any]:
    """The state dict as contiguous host NumPy arrays (from a model or a mapping)."""
    state = model_or_state
    if hasattr(model_or_state, "state_dict"):
        state = model_or_state.state_dict()
    if not isinstance(state, Mapping):
        raise TypeError(f"expected a model or a state dict, got {type(model_or_state).__name__}")
    np = host_xp()
    # asarray, not ascontiguousarray, which makes a 0-d array (a step count) 1-d
    return {str(k): np.asarray(to_numpy(v), order="C") for k, v in state.items()}


def _target(path: str | os.PathLike, overwrite: bool) -> Path:
    path = Path(path)
    if path.is_dir():  # before the overwrite check: overwrite=True cannot replace a folder
        raise IsADirectoryError(
            f"{path} is a folder, not a file; name a file inside it, such as "
            f"{path / ('model' + (path.suffix or '.safetensors'))}"
        )
    if os.path.lexists(path) and not overwrite:
        raise FileExistsError(
            f"{path} exists and was not replaced; pass overwrite=True to replace it, or "
            "choose another name"
        )
    return path


def save_safetensors(
    model_or_state: Any,
    path: str | os.PathLike,
    *,
    overwrite: bool = False,
    metadata: Mapping[str, str] | None = None,
) -> Path:
    """Write a model's state dict (or a state dict) as a safetensors file, atomically.

    PyTorch reads it with ``safetensors.torch.load_file(path)``. ``metadata`` is a
    small str -> str mapping stored in the header. Returns ``path``.
    """
    try:
        from safetensors.numpy import save
    except ImportError:
        raise _needs("safetensors", "writing a safetensors file") from None
    state = _host_state(model_or_state)
    target = _target(path, overwrite)
    blob = save(state, metadata=dict(metadata) if metadata is not None else None)
    atomic_write(target, lambda f: f.write(blob))
    return target


def save_torch(model_or_state: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write a model's state dict (or a state dict) as PyTorch does, atomically.

    PyTorch reads it with ``torch.load(path, weights_only=True)``; needs PyTorch
    installed. Returns ``path``.
    """
    try:
        import torch
    except ImportError:
        raise _needs("torch", "writing a PyTorch file (or write safetensors instead)") from None
    state = {k: torch.from_numpy(v) for k, v in _host_state(model_or_state).items()}
    target = _target(path, overwrite)
    atomic_write(target, lambda f: torch.save(state, f))
    return target


def save_weights(model_or_state: Any, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """:func:`save_safetensors` for ``*.safetensors``, :func:`save_torch` for ``*.pt``,
    ``*.pth`` and ``*.bin``; any other name is refused."""
    suffix = Path(path).suffix.lower()
    if suffix in SAFETENSORS_SUFFIXES:
        return save_safetensors(model_or_state, path, overwrite=overwrite)
    if suffix in TORCH_SUFFIXES:
        return save_torch(model_or_state, path, overwrite=overwrite)
    raise ValueError(
        f"save_weights: cannot tell the format from {str(path)!r}; name the file "
        "*.safetensors (no PyTorch needed to read it) or *.pt / *.pth (PyTorch's format)"
    )
