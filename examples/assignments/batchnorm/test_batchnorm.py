"""The BatchNorm2d tests you are given (the grader runs a few more).

Every test compares your layer with the library's ``nn.BatchNorm2d`` (same
parameters and buffers, copied in) or with finite differences, over shapes and
values Hypothesis generates. When one fails, the message names the tensor, the
index and both values, and Hypothesis prints the smallest failing case it found.
"""

from __future__ import annotations

import numpy as np
import pytest
from batchnorm import BatchNorm2d
from hypothesis import given
from hypothesis import strategies as st

from minitorch_alexnet import nn
from minitorch_alexnet.testing import (
    assert_gradcheck,
    assert_matches_reference,
    batch_shapes,
    normal,
    seeds,
)

shapes = batch_shapes(4, min_batch=2, max_elements=120)  # (N, C, H, W), two images or more


def pair(C: int, seed: int, train: bool = True):
    """Your layer and the reference, with random gamma, beta and running statistics."""
    rng = np.random.default_rng(seed)
    ref = nn.BatchNorm2d(C).train(train)
    ref.weight.data = rng.uniform(0.5, 1.5, C).astype("float32")
    ref.bias.data = rng.standard_normal(C).astype("float32")
    ref.running_mean[...] = rng.standard_normal(C)
    ref.running_var[...] = rng.uniform(0.5, 2.0, C)
    return BatchNorm2d(C), ref


@pytest.mark.task1
def test_a_small_example_by_hand():
    """Two one-pixel images of one channel: the mean is 2, the variance 1."""
    bn = BatchNorm2d(1).double()
    y = bn(np.array([1.0, 3.0]).reshape(2, 1, 1, 1))
    np.testing.assert_allclose(y.reshape(-1), [-1.0, 1.0], atol=1e-4, err_msg="y = xhat")
    np.testing.assert_allclose(bn.running_mean, [0.2], err_msg="0.9 * 0 + 0.1 * 2")
    np.testing.assert_allclose(bn.running_var, [1.1], err_msg="0.9 * 1 + 0.1 * 1 * 2/1")


@pytest.mark.task1
@pytest.mark.points(2)
@given(shape=shapes, seed=seeds())
def test_forward_in_training_mode(shape, seed):
    """The output with the batch's statistics."""
    stu, ref = pair(shape[1], seed)
    x = normal(seed, shape) * 2 + 1
    assert_matches_reference(stu, ref, x, check_backward=False, check_buffers=False, config=shape)


@pytest.mark.task1
@given(shape=shapes, seed=seeds())
def test_running_statistics(shape, seed):
    """running_mean and running_var after a training batch (momentum, unbiased variance)."""
    stu, ref = pair(shape[1], seed)
    assert_matches_reference(stu, ref, normal(seed, shape) * 3, check_backward=False, config=shape)


@pytest.mark.task1
@given(shape=shapes, seed=seeds())
def test_forward_in_evaluation_mode(shape, seed):
    """The output with the running statistics, after .eval()."""
    stu, ref = pair(shape[1], seed, train=False)
    assert_matches_reference(stu, ref, normal(seed, shape) - 1, check_backward=False, config=shape)


@pytest.mark.task2
@pytest.mark.points(2)
@given(shape=shapes, seed=seeds(), train=st.booleans())
def test_backward_against_finite_differences(shape, seed, train):
    """gradcheck of the input, weight and bias gradients, in both modes."""
    stu, ref = pair(shape[1], seed, train)
    stu.load_state_dict(ref.state_dict())
    stu.train(train)
    assert_gradcheck(stu, normal(seed, shape), config=dict(shape=shape, train=train))


@pytest.mark.task2
@pytest.mark.points(2)
def test_backward_matches_reference(parts):
    """The reference's gradients: half the points for each mode."""

    @given(shape=shapes, seed=seeds())
    def check(shape, seed, train):
        stu, ref = pair(shape[1], seed, train)
        assert_matches_reference(stu, ref, normal(seed, shape), config=dict(shape=shape))

    with parts("training mode"):
        check(train=True)
    with parts("evaluation mode"):
        check(train=False)


@pytest.mark.task2
def test_gradients_accumulate():
    """Two backward passes add up in .grad (as in PyTorch); they do not overwrite it."""
    x, g = normal(0, (3, 2, 2, 2)), normal(1, (3, 2, 2, 2))
    bn = BatchNorm2d(2).double()
    bn(x)
    bn.backward(g)
    once = bn.weight.grad.copy()
    bn(x)
    bn.backward(g)
    np.testing.assert_allclose(bn.weight.grad, 2 * once, err_msg="weight.grad after two passes")
