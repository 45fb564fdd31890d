"""SGD: hidden tests, run by the grader only."""

from __future__ import annotations

import numpy as np
import pytest
from sgd import SGD

from minitorch_alexnet.nn import Parameter

pytestmark = pytest.mark.visibility("hidden")


@pytest.mark.task3
def test_nesterov_by_hand():
    """Momentum 0.5, gradient 1 twice: d = 1 + 0.5 * 1, then 1 + 0.5 * 1.5."""
    p = Parameter(np.array([0.0]))
    opt = SGD([p], lr=1.0, momentum=0.5, nesterov=True)
    for _ in range(2):
        p.grad = np.array([1.0])
        opt.step()
    np.testing.assert_allclose(p.data, [-(1.5 + 1.75)], err_msg="p after two steps")


@pytest.mark.task2
def test_two_groups_keep_their_own_momentum():
    a, b = Parameter(np.array([0.0])), Parameter(np.array([0.0]))
    opt = SGD([{"params": [a]}, {"params": [b], "momentum": 0.0}], lr=1.0, momentum=0.9)
    for _ in range(2):
        a.grad, b.grad = np.array([1.0]), np.array([1.0])
        opt.step()
    np.testing.assert_allclose([a.data[0], b.data[0]], [-2.9, -2.0])
