"""ReLU and Linear: hidden tests, run by the grader only."""

from __future__ import annotations

import pytest
from relu_linear import Linear, ReLU

from minitorch_alexnet.testing import assert_gradcheck, away_from_zero, normal

pytestmark = pytest.mark.visibility("hidden")


@pytest.mark.task1
def test_relu_on_a_4d_batch():
    assert_gradcheck(ReLU(), away_from_zero(5, (2, 3, 2, 2)))


@pytest.mark.task2
def test_linear_against_finite_differences():
    assert_gradcheck(lambda: Linear(5, 3), normal(7, (4, 5)))
    assert_gradcheck(lambda: Linear(2, 4, bias=False), normal(8, (3, 2)))
