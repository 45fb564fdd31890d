"""Test arrays: plain functions of a seed and a shape (no Hypothesis needed).

Each returns a host NumPy array, the same one for the same arguments, and draws
from a private generator, never from the project's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import backend as _backend

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy

__all__ = ["away_from_zero", "integer_valued", "normal", "tie_free"]


def normal(seed: int, shape: Sequence[int], dtype: str = "float64") -> numpy.ndarray:
    """Standard normal samples of ``shape`` from ``seed`` (a host NumPy array)."""
    np = _backend.host_xp()
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(dtype)


def tie_free(seed: int, shape: Sequence[int], gap: float = 1e-2) -> numpy.ndarray:
    """Distinct values of ``shape``, any two at least ``gap`` apart and none closer than
    ``gap / 2`` to zero, in a random order (float64).

    With a finite-difference step far below ``gap`` (gradcheck's 1e-6 against 1e-2),
    a nudge never changes which element wins a max-pooling window, and never moves an
    input across a kink at 0 (ReLU, LeakyReLU). The values are ``(k + 1/2) * gap`` for
    the integers ``k`` in ``[-n/2, n/2)``, so they lie within ``n * gap / 2`` of zero.
    """
    np = _backend.host_xp()
    n = math.prod(shape)
    k = np.random.default_rng(seed).permutation(n) - n // 2
    return ((k + 0.5) * gap).reshape(tuple(shape)).astype("float64")


def away_from_zero(seed: int, shape: Sequence[int], margin: float = 1e-3) -> numpy.ndarray:
    """Normal samples pushed at least ``margin`` away from 0 (ReLU's kink), float64."""
    np = _backend.host_xp()
    x = normal(seed, shape)
    return np.where(x >= 0, x + margin, x - margin)


def integer_valued(seed: int, shape: Sequence[int], low: int = -4, high: int = 4) -> numpy.ndarray:
    """Whole numbers drawn uniformly from ``[low, high]``, as float64.

    Sums and products of a few of them are whole numbers far below 2**53, which
    float64 holds exactly: two computations of a linear map (a convolution, a matrix
    product, their gradients) then agree exactly, whatever order they add in.
    """
    np = _backend.host_xp()
    x = np.random.default_rng(seed).integers(low, high, tuple(shape), endpoint=True)
    return x.astype("float64")
