"""Checkpoints: a model, its optimiser and scheduler, the epoch and the RNG in one ``.npz`` file.

The file is a plain NumPy ``.npz`` archive that is never unpickled, so loading a
checkpoint can never run code. It holds:

* ``model/<name>`` -- every parameter and buffer of ``model.state_dict()``, on the host;
* ``optimizer/...`` and ``scheduler/...`` -- the array parts of their state dicts;
* ``__meta__`` -- a ``uint8`` array of UTF-8 JSON with everything else: the format
  version, epoch, the host RNG state, the non-array parts of the optimiser and
  scheduler states (with references to their arrays), the backend it was saved
  from, and the caller's ``extra`` (any JSON-serialisable value).

Writing is atomic (:mod:`.files`): the archive goes to a temporary file in the same
folder, is flushed to disk (``fsync``) and then renamed over the target with
``os.replace``, so a crash mid-save leaves the previous checkpoint intact. The file
gets the mode a plain ``open()`` would give it, a symbolic link is written through,
temporary files of killed saves are cleaned up, and a Ctrl-C during a save either
lets it finish or raises :class:`SaveInterrupted` saying what the file holds.

Reading (:mod:`.archive`) opens only the members it needs, checks each one's
declared shape and dtype before reading its data, and turns every kind of damage
into a :class:`CheckpointError`. Loading (:mod:`.core`) is all or nothing.

Arrays are stored as host NumPy arrays and copied into the library and dtype of
the receiving model when loaded, so a checkpoint saved on one backend (say CuPy)
loads on any other (NumPy, Numba).

Weights alone, to and from PyTorch (safetensors files, and PyTorch's ``.pt`` files
through ``torch.load(weights_only=True)``), are in :mod:`.weights`.
"""

from .archive import FORMAT, META_KEY, VERSION, CheckpointError
from .core import SaveInterrupted, load_checkpoint, read_checkpoint, save_checkpoint
from .files import atomic_write
from .weights import (
    WeightsError,
    load_weights,
    read_weights,
    save_safetensors,
    save_torch,
    save_weights,
)

__all__ = [
    "FORMAT",
    "META_KEY",
    "VERSION",
    "CheckpointError",
    "SaveInterrupted",
    "WeightsError",
    "atomic_write",
    "load_checkpoint",
    "load_weights",
    "read_checkpoint",
    "read_weights",
    "save_checkpoint",
    "save_safetensors",
    "save_torch",
    "save_weights",
]
