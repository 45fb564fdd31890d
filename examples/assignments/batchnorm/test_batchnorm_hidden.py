"""Hidden BatchNorm2d tests: run by the grader only (release leaves this file out)."""

from __future__ import annotations

import numpy as np
import pytest
from batchnorm import BatchNorm2d
from hypothesis import given

from minitorch_alexnet import nn
from minitorch_alexnet.testing import assert_matches_reference, batch_shapes, normal, seeds

pytestmark = pytest.mark.visibility("hidden")


@pytest.mark.task1
def test_several_training_batches_then_evaluation():
    """Three training batches, then evaluation mode: the running statistics carry over."""
    stu, ref = BatchNorm2d(3).double(), nn.BatchNorm2d(3).double()
    for seed in range(3):
        x = normal(seed, (4, 3, 2, 2)) * (seed + 1) + seed
        stu(x)
        ref(x)
    np.testing.assert_allclose(stu.running_mean, ref.running_mean, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(stu.running_var, ref.running_var, rtol=1e-6, atol=1e-8)
    assert int(stu.num_batches_tracked) == 3, "num_batches_tracked counts training batches"
    assert_matches_reference(stu.eval(), ref.eval(), normal(9, (2, 3, 2, 2)), check_backward=False)


@pytest.mark.task2
@pytest.mark.visibility("after_due_date")
@pytest.mark.points(2)
@given(shape=batch_shapes(4, min_batch=2, max_elements=200), seed=seeds())
def test_backward_with_a_large_mean(shape, seed):
    """Inputs far from 0 (mean 50): the backward pass stays accurate."""
    rng = np.random.default_rng(seed)
    ref = nn.BatchNorm2d(shape[1])
    ref.weight.data = rng.uniform(0.5, 1.5, shape[1]).astype("float32")
    x = normal(seed, shape) + 50
    assert_matches_reference(BatchNorm2d(shape[1]), ref, x, rtol=1e-5, atol=1e-6, config=shape)
