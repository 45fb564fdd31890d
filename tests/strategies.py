"""The Hypothesis strategies of this test suite.

They are the library's own (``minitorch_alexnet.testing``), the same ones that
teachers' grading tests use, under the short names the tests here use.
"""

from __future__ import annotations

from minitorch_alexnet.testing import ConvConfig as ConvCase
from minitorch_alexnet.testing import away_from_zero, batch_shapes, normal, tie_free
from minitorch_alexnet.testing import conv_configs as conv_cases
from minitorch_alexnet.testing import pool_configs as pool_cases
from minitorch_alexnet.testing import seeds as _seeds

seeds = _seeds()  # any 32-bit seed for the array helpers

__all__ = [
    "ConvCase",
    "away_from_zero",
    "batch_shapes",
    "conv_cases",
    "normal",
    "pool_cases",
    "seeds",
    "tie_free",
]
