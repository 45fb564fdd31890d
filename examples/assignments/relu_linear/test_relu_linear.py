"""ReLU and Linear: the tests you are given (the grader runs a few more)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from relu_linear import Linear, ReLU

from minitorch_alexnet import nn
from minitorch_alexnet.testing import (
    assert_gradcheck,
    assert_matches_reference,
    away_from_zero,
    batch_shapes,
    normal,
    seeds,
)


@pytest.mark.task1
def test_relu_by_hand():
    """max(x, 0) and its gradient on four numbers."""
    relu = ReLU()
    x = np.array([[-2.0, -0.5, 0.5, 3.0]])
    np.testing.assert_allclose(relu(x), [[0.0, 0.0, 0.5, 3.0]], err_msg="forward")
    np.testing.assert_allclose(relu.backward(np.ones((1, 4))), [[0, 0, 1, 1]], err_msg="backward")


@pytest.mark.task1
@given(shape=batch_shapes(3, max_elements=60), seed=seeds())
def test_relu_matches_the_library(shape, seed):
    """Forward and backward, against nn.ReLU."""
    assert_matches_reference(ReLU(), nn.ReLU(), away_from_zero(seed, shape), config=shape)


@pytest.mark.task1
@given(shape=batch_shapes(2, max_elements=40), seed=seeds())
def test_relu_against_finite_differences(shape, seed):
    assert_gradcheck(ReLU(), away_from_zero(seed, shape), config=shape)


linear_configs = st.tuples(st.integers(1, 4), st.integers(1, 5), st.integers(1, 4), st.booleans())


@pytest.mark.task2
@pytest.mark.points(2)
@given(cfg=linear_configs, seed=seeds())
def test_linear_forward_matches_the_library(cfg, seed):
    n, fin, fout, bias = cfg
    ref = nn.Linear(fin, fout, bias=bias)
    assert_matches_reference(Linear(fin, fout, bias=bias), ref, normal(seed, (n, fin)),
                             check_backward=False, config=cfg)  # fmt: skip


@pytest.mark.task2
@pytest.mark.points(2)
def test_linear_backward_matches_the_library(parts):
    """Input, weight and bias gradients: with a bias, and without."""

    @given(cfg=linear_configs, seed=seeds())
    def check(cfg, seed, bias):
        n, fin, fout, _ = cfg
        ref = nn.Linear(fin, fout, bias=bias)
        assert_matches_reference(Linear(fin, fout, bias=bias), ref, normal(seed, (n, fin)),
                                 config=cfg)  # fmt: skip

    with parts("with a bias"):
        check(bias=True)
    with parts("without a bias"):
        check(bias=False)


@pytest.mark.task2
def test_linear_gradients_accumulate():
    """Two backward passes add up in .grad."""
    layer = Linear(3, 2).double()
    x, g = normal(0, (4, 3)), normal(1, (4, 2))
    layer(x)
    layer.backward(g)
    once = layer.weight.grad.copy()
    layer(x)
    layer.backward(g)
    np.testing.assert_allclose(layer.weight.grad, 2 * once, err_msg="weight.grad after two passes")
