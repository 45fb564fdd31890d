"""Parameter initialisation, as PyTorch's defaults (so training recipes carry over).

Conv2d and Linear draw ``weight`` and ``bias`` from U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
which is PyTorch's ``kaiming_uniform_(a=sqrt(5))`` for the weight and its bias rule.
Values come from the host generator seeded by ``manual_seed``, then move to the
active backend, so every backend starts from the same numbers.
"""

from __future__ import annotations

import math
from typing import Any

from .. import backend as _backend

DEFAULT_DTYPE = "float32"


def uniform(shape: tuple[int, ...], bound: float, dtype: str = DEFAULT_DTYPE) -> Any:
    """U(-bound, bound) samples of ``shape`` on the active backend."""
    values = _backend.host_rng().uniform(-bound, bound, size=shape)
    return _backend.asarray(values, dtype=dtype)


def fan_in_uniform(shape: tuple[int, ...], fan_in: int, dtype: str = DEFAULT_DTYPE) -> Any:
    """PyTorch's default for Conv/Linear weights and biases: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return uniform(shape, 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0, dtype)


def constant(shape: tuple[int, ...], value: float, dtype: str = DEFAULT_DTYPE) -> Any:
    """An array of ``shape`` filled with ``value`` on the active backend."""
    xp = _backend.get_backend().xp
    return xp.full(shape, value, dtype=dtype)
