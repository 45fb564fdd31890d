"""MaxPool2d: hidden tests, run by the grader only."""

from __future__ import annotations

import pytest
from maxpool2d import MaxPool2d

from minitorch_alexnet import nn
from minitorch_alexnet.testing import assert_matches_reference, tie_free

pytestmark = pytest.mark.visibility("hidden")


@pytest.mark.task2
@pytest.mark.points(2)
def test_alexnet_pooling():
    """AlexNet's 3x3 windows with stride 2, forward and backward."""
    x = tie_free(3, (2, 3, 13, 13))
    assert_matches_reference(MaxPool2d(3, 2), nn.MaxPool2d(3, 2), x)


@pytest.mark.task1
def test_non_square_windows_and_padding():
    x = tie_free(4, (1, 2, 7, 6))
    ref = nn.MaxPool2d((3, 2), (2, 1), (1, 1))
    assert_matches_reference(MaxPool2d((3, 2), (2, 1), (1, 1)), ref, x, check_backward=False)
