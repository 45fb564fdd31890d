"""Which function runs: a layer's reference, or a backend's named override of it.

A layer file defines its forward and backward as plain array code and marks each one
*overridable*; the function keeps its name and its place in the layer file::

    @overridable
    def relu_forward(x, save=True):
        ...

A backend package may then *register* a faster function under the same name, with
the same signature, and a promise: the reference's numbers exactly, or to a stated
rounding tolerance per dtype (``tests/test_overrides.py`` holds every override to its
promise). Calling ``relu_forward(x)`` looks the name up in the active backend's
overrides, one dictionary lookup, and runs the override if there is one, else the
reference. With the numpy backend nothing is overridden, so ``set_backend("numpy")``
runs exactly the code in the layer file; ``backend.which(name)`` says what runs
elsewhere.

Nothing here imports a layer or a backend package: references register themselves
when their layer module is imported, and a backend's overrides when that backend is
first made (``backend/__init__.py`` reads the package's ``OVERRIDES`` table).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EXACT",
    "Override",
    "Promise",
    "activated",
    "overridable",
    "reference",
    "register",
    "unregister",
]


@dataclass(frozen=True)
class Promise:
    """How close an override's results are to its reference's.

    ``tolerance`` maps a dtype name (``"float32"``, ``"float64"``) to ``(rtol, atol)``,
    used as ``|got - want| <= atol + rtol * |want|``; empty means bit-identical.
    ``why`` says where the difference comes from (another order of additions, float64
    accumulators, Winograd's transforms).
    """

    tolerance: dict[str, tuple[float, float]] = field(default_factory=dict)
    why: str = ""

    @property
    def exact(self) -> bool:
        return not self.tolerance


EXACT = Promise()


@dataclass(frozen=True)
class Override:
    """A backend's function for an overridable name, and what it promises."""

    name: str
    fn: Callable[..., Any]
    promise: Promise


_references: dict[str, Callable[..., Any]] = {}
_overrides: dict[str, dict[str, Override]] = {}  # backend name -> overridable name -> Override
_functions: dict[str, dict[str, Callable[..., Any]]] = {}  # the same, name -> function only
_active: dict[str, Callable[..., Any]] | None = None  # the active backend's entry of _functions
_choose_default: Callable[[], Any] | None = None  # makes the default backend active


def overridable(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Mark a reference function as overridable by its name (a decorator).

    Returns a function with the same name, signature and docstring that runs the
    active backend's override of that name if it has one, else ``fn``. The reference
    itself stays reachable as ``.reference``.
    """
    name = fn.__name__
    if name in _references:
        raise ValueError(f"an overridable function named {name!r} exists already")
    _references[name] = fn

    @functools.wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        table = _active if _active is not None else _default_table()
        return table.get(name, fn)(*args, **kwargs)

    run.reference = fn  # type: ignore[attr-defined]
    return run


def _default_table() -> dict[str, Callable[..., Any]]:
    """No backend chosen yet: let ``backend/__init__.py`` make the default one active."""
    if _choose_default is None:  # pragma: no cover - set when the backend package loads
        raise RuntimeError("no backend is active; call minitorch_alexnet.set_backend first")
    _choose_default()
    assert _active is not None
    return _active


def on_first_call(choose_default: Callable[[], Any]) -> None:
    """Called once by ``backend/__init__.py``: how to pick a backend on first use."""
    global _choose_default
    _choose_default = choose_default


def register(backend: str, name: str, fn: Callable[..., Any], promise: Promise = EXACT) -> None:
    """Make ``fn`` the ``backend``'s override of the overridable function ``name``.

    ``fn`` must take the reference's arguments (the registry test checks the
    signatures) and keep ``promise``. A forward and its backward are overridden
    together: the forward's context is whatever the override's backward needs.
    """
    if name not in _references:
        known = ", ".join(sorted(_references))
        raise KeyError(f"{name!r} is not an overridable function; the overridable ones: {known}")
    _overrides.setdefault(backend, {})[name] = Override(name, fn, promise)
    _functions.setdefault(backend, {})[name] = fn


def activate(backend: str) -> None:
    """Route every overridable call to ``backend``'s overrides from now on."""
    global _active
    _active = _functions.setdefault(backend, {})


@contextlib.contextmanager
def activated(backend: str) -> Iterator[None]:
    """Route overridable calls to ``backend``'s overrides for a block, then back to
    whatever was active before."""
    global _active
    previous = _active
    activate(backend)
    try:
        yield
    finally:
        _active = previous


def unregister(backend: str) -> None:
    """Forget every override ``backend`` registered (one made for a while, as the
    assignment kit's ``check`` does); calls it routed go back to the references."""
    global _active
    table = _functions.pop(backend, None)
    _overrides.pop(backend, None)
    if table is not None and _active is table:
        _active = None


def reference(name: str) -> Callable[..., Any]:
    """The reference function registered under ``name``."""
    return _references[name]


def references() -> dict[str, Callable[..., Any]]:
    """Every overridable name and its reference function."""
    return dict(_references)


def overrides(backend: str) -> dict[str, Override]:
    """The overrides ``backend`` has registered so far, by name."""
    return dict(_overrides.get(backend, {}))
