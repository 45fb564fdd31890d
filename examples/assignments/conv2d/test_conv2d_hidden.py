"""Conv2d: hidden tests, run by the grader only."""

from __future__ import annotations

import pytest
from conv2d import Conv2d

from minitorch_alexnet import nn
from minitorch_alexnet.testing import assert_matches_reference, normal

pytestmark = pytest.mark.visibility("hidden")


@pytest.mark.task1
def test_alexnet_like_first_layer():
    """An 11x11 kernel with stride 4 and padding 2 on a 3-channel image."""
    x = normal(1, (2, 3, 23, 23))
    stu, ref = Conv2d(3, 4, 11, stride=4, padding=2), nn.Conv2d(3, 4, 11, stride=4, padding=2)
    assert_matches_reference(stu, ref, x, check_backward=False)


@pytest.mark.task2
@pytest.mark.points(2)
def test_grouped_backward():
    """AlexNet's two groups, backward."""
    x = normal(2, (2, 4, 6, 6))
    stu, ref = Conv2d(4, 6, 3, padding=1, groups=2), nn.Conv2d(4, 6, 3, padding=1, groups=2)
    assert_matches_reference(stu, ref, x)
