"""Say so while the Numba kernels compile: a first run waits for it, and should know why.

A new installation compiles each kernel the first time it runs, then keeps it on disk
(``cache=True``), so later runs start at once. :func:`install` (called when the numba
backend is made) prints one line when the first of this package's kernels starts
compiling, and :func:`seconds` tells how long compiling took so far, for the
training loop to report after its first step.
"""

from __future__ import annotations

import sys
import time
from typing import Any

PACKAGE = __name__.rsplit(".", 1)[0]  # minitorch_alexnet.backend.numba
MESSAGE = "compiling the Numba kernels (first run only: they are cached on disk)..."
_state = {
    "installed": False,
    "announced": False,  # the "compiling..." line printed
    "reported": False,  # the "compiled in" line handed out
    "seconds": 0.0,  # compiling so far
    "depth": 0,  # compiles nest (a kernel's helpers): only the outermost is timed
    "t0": 0.0,
}


def seconds() -> float:
    """Seconds spent compiling this package's kernels in this process so far."""
    return _state["seconds"]


def report_once() -> str | None:
    """ "compiled the kernels in X s", the first time it is asked after some compiling in
    this process; None before any and ever after (the training loop asks each step 1)."""
    if _state["seconds"] == 0 or _state["reported"]:
        return None
    _state["reported"] = True
    return f"compiled the kernels in {_state['seconds']:.1f} s (cached from now on)"


def _ours(ev: Any) -> bool:
    dispatcher = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
    func = getattr(dispatcher, "py_func", None)
    return getattr(func, "__module__", "").startswith(PACKAGE)


def _say(text: str) -> None:
    try:
        from tqdm import tqdm

        tqdm.write(text, file=sys.stderr)  # above a progress bar, if one is drawn
    except ImportError:  # pragma: no cover - tqdm is a dependency
        print(text, file=sys.stderr, flush=True)


def install() -> None:
    """Listen to Numba's compile events (once per process)."""
    if _state["installed"]:
        return
    _state["installed"] = True
    from numba.core import event

    class Listener(event.Listener):
        def on_start(self, ev: Any) -> None:
            if not _ours(ev):
                return
            if not _state["announced"]:
                _state["announced"] = True
                _say(MESSAGE)
            if _state["depth"] == 0:
                _state["t0"] = time.perf_counter()
            _state["depth"] += 1

        def on_end(self, ev: Any) -> None:
            if not _ours(ev) or _state["depth"] == 0:
                return
            _state["depth"] -= 1
            if _state["depth"] == 0:
                _state["seconds"] += time.perf_counter() - _state["t0"]

    event.register("numba:compile", Listener())
