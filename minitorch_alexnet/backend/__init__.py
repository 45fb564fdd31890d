"""Swappable array backends.

A *backend* is a small bundle: an array module ``xp`` (NumPy or CuPy, both speak
the NumPy API) plus a namespace of hot *kernels* (im2col, col2im, max-pooling,
...). Layer code never imports numpy or cupy; it asks the active backend::

    B = get_backend()
    xp, K = B.xp, B.kernels
    cols = K.im2col(x, kh, kw, stride, padding)

Three backends exist:

``"numpy"``
    Plain NumPy reference kernels, written to be read (``kernels_numpy.py``).
``"numba"``
    The CPU default: the same NumPy arrays, with the hot kernels compiled by Numba
    and cached on disk (``kernels_numba.py``). Gives the same numbers as ``numpy``.
``"cupy"``
    The GPU: CuPy arrays and CUDA kernels (``kernels_cupy.py``).

Random numbers: :func:`manual_seed` seeds one host generator (NumPy's PCG64) that
parameter initialisation, data shuffling and, on the CPU backends, dropout masks
draw from, so ``numpy`` and ``numba`` give identical runs; CuPy draws dropout
masks from its own counter-based device generator, seeded from the same seed.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import types
from collections.abc import Iterator
from typing import Any

import numpy as _np

__all__ = [
    "Backend",
    "BackendError",
    "available_backends",
    "get_backend",
    "set_backend",
    "use_backend",
    "asarray",
    "to_numpy",
    "manual_seed",
    "seed_device_generator",
    "host_rng",
    "array_backend_name",
    "array_module",
    "host_xp",
]

BACKEND_NAMES = ("numpy", "numba", "cupy")


class BackendError(RuntimeError):
    """A backend was asked for that cannot run here (unknown name, CuPy or GPU missing)."""


class Backend:
    """One array library plus its kernels.

    Attributes:
        name: ``"numpy"``, ``"numba"`` or ``"cupy"``.
        xp: the array module (``numpy`` or ``cupy``).
        kernels: a module with the hot kernels (``im2col``, ``col2im``,
            ``maxpool2d_forward``, ``maxpool2d_backward``, ...).
        device: ``"cpu"`` or ``"cuda"``; arrays of two backends with the same
            device are interchangeable (``numpy`` and ``numba`` share arrays).
        recompute_columns: whether Conv2d redoes im2col in backward (True) or keeps
            the columns from forward (False): a trade of time for memory.
        winograd_5x5, winograd_3x3: whether Conv2d runs its 5x5 / 3x3 stride-1 layers
            (one group, >= 16 input channels) by Winograd, forward and dx (the GPU).
        winograd_weight_grad: whether those layers take dW by Winograd too (the GPU).
    """

    def __init__(self, name: str, xp: types.ModuleType, kernels: types.ModuleType, device: str):
        self.name = name
        self.xp = xp
        self.kernels = kernels
        self.device = device
        # Conv2d's backward needs im2col's columns again: redo im2col from x, or keep
        # the columns from forward? They are K*K/S^2 times the input (392 MiB for
        # AlexNetCIFAR at batch 128, more than all its activations), so by default
        # backward redoes them, as cuDNN and oneDNN never store them at all. On the GPU
        # that is nearly free; on the CPU it costs about 2% of a training step, which
        # ``recompute_columns = False`` buys back for the memory.
        self.recompute_columns = True
        # Conv2d's 5x5 layers by Winograd (see winograd.py; the GPU runs F(4x4, 5x5)):
        # measured 3.2-4.6x faster than im2col on the GPU; the CPU keeps im2col
        self.winograd_5x5 = device == "cuda"
        # and its 3x3 layers by F(4x4, 3x3): measured 1.3-3.0x faster than im2col on the
        # GPU, also on 7x7 maps, where the 4x4 tiles compute 8x8 outputs
        self.winograd_3x3 = device == "cuda"
        # and, for the layers above, the weight gradient by Winograd F(r x r, m x m) too
        # (no im2col columns in backward): 1.8-4.6x faster on the GPU; needs the
        # backend's kernels to offer winograd_conv2d_weight_grad
        self.winograd_weight_grad = device == "cuda"

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"

    def owns(self, a: Any) -> bool:
        """True when ``a`` is an array this backend computes on."""
        return isinstance(a, self.xp.ndarray)

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""
        if self.device == "cuda":
            self.xp.cuda.get_current_stream().synchronize()


_cache: dict[str, Backend] = {}
_active: Backend | None = None


def _make_backend(name: str) -> Backend:
    if name == "numpy":
        from . import kernels_numpy

        return Backend("numpy", _np, kernels_numpy, "cpu")
    if name == "numba":
        try:
            importlib.import_module("numba")
        except ImportError as e:  # pragma: no cover - numba is a runtime dependency
            raise BackendError(
                "backend 'numba' needs the numba package, which is not importable "
                f"({e}). Install it with `pip install numba`, or use set_backend('numpy')."
            ) from None
        from . import kernels_numba

        return Backend("numba", _np, kernels_numba, "cpu")
    if name == "cupy":
        try:
            cp = importlib.import_module("cupy")
        except ImportError as e:
            raise BackendError(
                "backend 'cupy' needs CuPy, which is not importable here "
                f"({type(e).__name__}: {e}). Install the GPU extra: "
                "`pip install 'minitorch-alexnet[gpu]'` (CUDA 12; for CUDA 13 install "
                "`cupy-cuda13x` instead), or use set_backend('numba') on the CPU."
            ) from None
        try:
            n = cp.cuda.runtime.getDeviceCount()
        except Exception as e:  # CUDA driver missing or broken
            raise BackendError(
                f"backend 'cupy': CuPy is installed but no usable CUDA GPU was found ({e}). "
                "Use set_backend('numba') to run on the CPU."
            ) from None
        if n < 1:
            raise BackendError(
                "backend 'cupy': CuPy is installed but no CUDA GPU is visible. "
                "Use set_backend('numba') to run on the CPU."
            )
        from . import kernels_cupy

        kernels_cupy.generator.manual_seed(_seed)
        return Backend("cupy", cp, kernels_cupy, "cuda")
    raise BackendError(
        f"unknown backend {name!r}; choose one of {', '.join(map(repr, BACKEND_NAMES))}."
    )


def _get(name: str) -> Backend:
    if not isinstance(name, str):
        raise TypeError(f"backend name must be a string such as 'numba', got {type(name).__name__}")
    key = name.lower()
    if key not in _cache:
        _cache[key] = _make_backend(key)
    return _cache[key]


def available_backends() -> list[str]:
    """Names of the backends that can run on this machine."""
    ok = []
    for name in BACKEND_NAMES:
        try:
            _get(name)
        except BackendError:
            continue
        ok.append(name)
    return ok


def get_backend(name: str | None = None) -> Backend:
    """The active backend, or the backend called ``name``."""
    global _active
    if name is not None:
        return _get(name)
    if _active is None:
        _active = _get(os.environ.get("MINITORCH_ALEXNET_BACKEND", "numba"))
    return _active


def set_backend(name: str) -> Backend:
    """Make ``name`` (``"numpy"``, ``"numba"`` or ``"cupy"``) the active backend and return it."""
    global _active
    _active = _get(name)
    return _active


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Context manager: run a block on another backend, then switch back."""
    global _active
    previous = get_backend()
    _active = _get(name)
    try:
        yield _active
    finally:
        _active = previous


def array_backend_name(a: Any) -> str:
    """``"cpu"`` for NumPy arrays, ``"cuda"`` for CuPy arrays."""
    if isinstance(a, _np.ndarray):
        return "cpu"
    if type(a).__module__.startswith("cupy"):
        return "cuda"
    raise TypeError(f"expected a NumPy or CuPy array, got {type(a).__name__}")


def host_xp() -> types.ModuleType:
    """NumPy, for host-side work (files, checkpoints, test data): code outside this
    package reaches it through here instead of importing it."""
    return _np


def array_module(a: Any) -> types.ModuleType:
    """The array module (``numpy`` or ``cupy``) that ``a`` belongs to."""
    return _np if array_backend_name(a) == "cpu" else _get("cupy").xp


def to_numpy(a: Any) -> _np.ndarray:
    """Any array (NumPy, CuPy, or something array-like) as a NumPy array on the host."""
    if isinstance(a, _np.ndarray):
        return a
    if hasattr(a, "get") and type(a).__module__.startswith("cupy"):
        return a.get()
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, from a test oracle
        return a.detach().cpu().numpy()
    return _np.asarray(a)


def asarray(a: Any, dtype: Any = None) -> Any:
    """Any array (NumPy, CuPy, list, torch tensor) as an array of the active backend.

    ``dtype`` may be a NumPy dtype or its name (``"float32"``).
    """
    B = get_backend()
    if B.device == "cpu":
        return _np.asarray(to_numpy(a), dtype=dtype)
    if isinstance(a, B.xp.ndarray):
        return a if dtype is None else a.astype(dtype, copy=False)
    return B.xp.asarray(to_numpy(a), dtype=dtype)


def array_like(value: Any, reference: Any) -> Any:
    """A fresh copy of ``value`` in the array library and dtype of ``reference``."""
    host = to_numpy(value)
    if array_backend_name(reference) == "cpu":
        return host.astype(reference.dtype, copy=True)
    return _get("cupy").xp.asarray(host, dtype=reference.dtype)


# ---------------------------------------------------------------- random numbers
_host_rng = _np.random.default_rng(0)
_seed = 0


def manual_seed(seed: int) -> None:
    """Seed every random number generator the project uses (host and device)."""
    global _host_rng, _seed
    _seed = int(seed)
    _host_rng = _np.random.default_rng(_seed)
    seed_device_generator(_seed)


def seed_device_generator(seed: int) -> None:
    """Seed only the GPU's generator (dropout masks under CuPy); nothing to do on the CPU.

    The generator's state lives in device memory and is reseeded in place, so a
    training step captured in a CUDA graph keeps drawing from it.
    """
    for B in _cache.values():
        if B.device == "cuda":
            B.kernels.generator.manual_seed(int(seed))


def host_rng() -> _np.random.Generator:
    """The host generator (initialisation, shuffling, CPU dropout masks)."""
    return _host_rng


def get_rng_state() -> dict:
    """The host generator's state, as a JSON-serialisable dict (for checkpoints)."""
    return _host_rng.bit_generator.state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    _host_rng.bit_generator.state = state


def uniform(shape: tuple[int, ...], dtype: Any) -> Any:
    """Uniform [0, 1) samples of ``shape`` on the active backend.

    CPU backends draw from the host generator (same numbers for numpy and numba);
    CuPy draws on the device from a counter-based generator whose state is in device
    memory, so no host-to-device copy happens per call and a CUDA graph can replay it.
    """
    B = get_backend()
    if B.device == "cpu":
        return _host_rng.random(shape, dtype=_np.dtype(dtype))
    return B.kernels.generator.random(shape, dtype)
