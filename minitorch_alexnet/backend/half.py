"""float16 for the overrides whose kernels have none: compute in float32, round once.

Numba compiles no float16 arithmetic, and the CUDA kernels of ``cuda/`` are written
for float and double. An override marked ``@via_float32`` therefore takes float16
arrays as float32 copies, runs as it is, and hands the float32 arrays it returns
(its outputs, not its context) back as float16. Arguments it updates in place
(``updates``: BatchNorm's running statistics, SGD's parameter and buffer) get their
new values written back. float32 and float64 calls go straight through.

The reference (NumPy) rounds every step to float16 instead, so the two agree to a
few float16 units in the last place (``TOLERANCE``), not bit for bit.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

#: (rtol, atol) of a float16 result against the reference, as in ``dispatch.Promise``:
#: 5 units in the last place of 1 (2^-10, about 1e-3); tests/test_overrides.py's cases
#: differ by at most 1.2 on Numba
TOLERANCE = {"float16": (5e-3, 5e-3)}


def _is_half(a: Any) -> bool:
    """``a`` is a float16 array (NumPy or CuPy; ``char`` is quick, ``name`` is made
    anew on every call)."""
    return getattr(getattr(a, "dtype", None), "char", "") == "e" and hasattr(a, "astype")


def _to_half(out: Any) -> Any:
    """float32 arrays in ``out`` (an array, or a tuple of them) as float16; the rest
    (contexts, masks, indices, None) as they are."""
    if isinstance(out, tuple):
        return tuple(_to_half(o) for o in out)
    if hasattr(out, "astype") and getattr(out.dtype, "char", "") == "f":  # float32
        return out.astype("float16")
    return out


def via_float32(*, updates: tuple[str, ...] = ()) -> Callable[[Callable], Callable]:
    """Decorator: run float16 calls of the function in float32 (see the module's text).

    A float16 call is one whose first argument (``x``, ``grad_out``, ``p``) is a
    float16 array; then every float16 array argument goes in as float32. ``updates``
    names the arguments the function changes in place.
    """

    def wrap(fn: Callable) -> Callable:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> Any:
            first = args[0] if args else next(iter(kwargs.values()), None)
            if not _is_half(first):  # x, grad_out or p: float32 or float64, as written
                return fn(*args, **kwargs)
            bound = signature.bind(*args, **kwargs)
            halves = {k: v for k, v in bound.arguments.items() if _is_half(v)}
            for k, v in halves.items():
                bound.arguments[k] = v.astype("float32")
            out = fn(*bound.args, **bound.kwargs)
            for k in updates:
                if k in halves:
                    halves[k][...] = bound.arguments[k]  # rounded back to float16
            return _to_half(out)

        return run

    return wrap
