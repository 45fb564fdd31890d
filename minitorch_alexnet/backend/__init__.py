"""Swappable array backends.

A *backend* is an array module ``xp`` (NumPy or CuPy, both speak the NumPy API) plus
the *overrides* it registers: faster functions that replace some of the layers'
reference functions, by name (``dispatch.py`` explains the mechanism). Layer code is
written once, as plain array code, in ``nn/``; it runs on every backend.

Three backends exist:

``"numpy"``
    Overrides nothing: every layer runs exactly the code in its own file.
``"numba"``
    The CPU default: the same NumPy arrays, with the hot steps compiled by Numba
    and cached on disk (``backend/numba/``). Gives the numbers of ``numpy``,
    exactly or to rounding as each override promises.
``"cupy"``
    The GPU: CuPy arrays, CUDA kernels and cuBLAS (``backend/cuda/``, with the
    Winograd convolutions in ``backend/winograd/``).

:func:`which` says where the function that runs for a name is defined.

Random numbers: :func:`manual_seed` seeds one host generator (NumPy's PCG64) that
parameter initialisation, data shuffling and, on the CPU backends, dropout masks
draw from, so ``numpy`` and ``numba`` give identical runs; CuPy draws dropout
masks from its own counter-based device generator, seeded from the same seed.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import os
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple

import numpy as _np

from . import dispatch

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
    "which",
]

BACKEND_NAMES = ("numpy", "numba", "cupy")


class BackendError(RuntimeError):
    """A backend was asked for that cannot run here (unknown name, CuPy or GPU missing)."""


class Backend:
    """One array library plus the overrides it registers.

    Attributes:
        name: ``"numpy"``, ``"numba"`` or ``"cupy"``.
        xp: the array module (``numpy`` or ``cupy``).
        device: ``"cpu"`` or ``"cuda"``; arrays of two backends with the same
            device are interchangeable (``numpy`` and ``numba`` share arrays).
        generator: the device's random generator (dropout masks), or None on the CPU.
    """

    def __init__(
        self,
        name: str,
        xp: types.ModuleType,
        device: str,
        package: str | None = None,
        generator: Any = None,
    ):
        self.name = name
        self.xp = xp
        self.device = device
        self.generator = generator
        if package is not None:
            _register_package(name, package)

    @property
    def overrides(self) -> dict[str, dispatch.Override]:
        """Overridable name -> what this backend runs instead of the reference."""
        return dispatch.overrides(self.name)

    def __repr__(self) -> str:
        return f"Backend(name={self.name!r}, device={self.device!r})"

    def owns(self, a: Any) -> bool:
        """True when ``a`` is an array this backend computes on."""
        return isinstance(a, self.xp.ndarray)

    def synchronize(self) -> None:
        """Wait for queued device work (a no-op on the CPU)."""
        if self.device == "cuda":
            self.xp.cuda.get_current_stream().synchronize()


def _register_package(backend: str, package: str) -> None:
    """Register every override a backend package lists in its ``OVERRIDES`` table
    (``name -> (module, promise)``): the package's modules are imported here, once."""
    table = importlib.import_module(f"{__name__}.{package}").OVERRIDES
    for name, (module, promise) in table.items():
        fn = getattr(importlib.import_module(f"{__name__}.{package}.{module}"), name)
        dispatch.register(backend, name, fn, promise)


_cache: dict[str, Backend] = {}
_active: Backend | None = None


def _make_backend(name: str) -> Backend:
    if name == "numpy":
        return Backend("numpy", _np, "cpu")
    if name == "numba":
        try:
            importlib.import_module("numba")
        except ImportError as e:  # pragma: no cover - numba is a runtime dependency
            raise BackendError(
                "backend 'numba' needs the numba package, which is not importable "
                f"({e}). Install it with `pip install numba`, or use set_backend('numpy')."
            ) from None
        from .numba import blas, compiling

        blas.quiet_openblas()  # OpenBLAS's idle spin would take the kernels' cores
        compiling.install()  # a first run says that it is compiling the kernels
        return Backend("numba", _np, "cpu", package="numba")
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
        from .cuda.random import DeviceGenerator

        return Backend("cupy", cp, "cuda", package="cuda", generator=DeviceGenerator(_seed))
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
    if name is not None:
        return _get(name)
    if _active is None:
        _activate(_get(os.environ.get("MINITORCH_ALEXNET_BACKEND", "numba")))
    assert _active is not None
    return _active


def _activate(B: Backend) -> Backend:
    global _active
    _active = B
    dispatch.activate(B.name)
    return B


def set_backend(name: str) -> Backend:
    """Make ``name`` (``"numpy"``, ``"numba"`` or ``"cupy"``) the active backend and return it."""
    return _activate(_get(name))


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[Backend]:
    """Context manager: run a block on another backend, then switch back."""
    previous = get_backend()
    try:
        yield _activate(_get(name))
    finally:
        _activate(previous)


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
            B.generator.manual_seed(int(seed))


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
    return B.generator.random(shape, dtype)


# ---------------------------------------------------------------- what runs
class Location(NamedTuple):
    """Where a function is defined: ``path`` relative to the project root, and ``line``."""

    path: str
    line: int
    function: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}"


_ROOT = Path(__file__).resolve().parent.parent.parent


def _location(fn: Callable[..., Any]) -> Location:
    fn = inspect.unwrap(fn)
    path = Path(inspect.getsourcefile(fn) or fn.__code__.co_filename).resolve()
    try:
        shown = path.relative_to(_ROOT).as_posix()
    except ValueError:  # defined outside the project (a user's own override)
        shown = str(path)
    lines, first = inspect.getsourcelines(fn)
    decorators = next(k for k, text in enumerate(lines) if not text.lstrip().startswith("@"))
    return Location(shown, first + decorators, fn.__qualname__)  # the line of its `def`


def which(name: str, backend: str | None = None) -> Location:
    """Where the function that runs for the overridable ``name`` is defined.

    ``backend`` defaults to the active one. Under ``"numpy"`` that is always the
    reference in its layer file; elsewhere the backend's override, if it has one::

        >>> str(which("conv2d_forward", "numpy"))
        'minitorch_alexnet/nn/conv.py:...'
    """
    if name not in dispatch.references():
        known = ", ".join(sorted(dispatch.references()))
        raise KeyError(f"{name!r} is not an overridable function; the overridable ones: {known}")
    B = get_backend(backend)
    override = B.overrides.get(name)
    return _location(override.fn if override is not None else dispatch.reference(name))


dispatch.on_first_call(get_backend)
