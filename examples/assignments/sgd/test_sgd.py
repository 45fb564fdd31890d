"""SGD: the tests you are given (the grader runs a few more). They compare your
steps with the library's SGD, whose formulas are PyTorch's, and with hand-computed
numbers."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sgd import SGD

from minitorch_alexnet import optim
from minitorch_alexnet.nn import Parameter


def run(make, seed: int, steps: int = 4, **kw):
    """``steps`` steps of an optimizer on two parameters with random gradients."""
    rng = np.random.default_rng(seed)
    params = [Parameter(rng.standard_normal((3, 2))), Parameter(rng.standard_normal(4))]
    opt = make(params, **kw)
    for _ in range(steps):
        for p in params:
            p.grad = rng.standard_normal(p.data.shape)
        opt.step()
    return [p.data for p in params]


def same_as_library(seed, **kw):
    for mine, want in zip(run(SGD, seed, **kw), run(optim.SGD, seed, **kw)):
        np.testing.assert_allclose(mine, want, rtol=1e-10, atol=1e-12, err_msg=repr(kw))


lrs = st.sampled_from([0.01, 0.1, 0.5])
seeds = st.integers(0, 1000)


@pytest.mark.task1
def test_one_plain_step_by_hand():
    p = Parameter(np.array([1.0, -2.0]))
    p.grad = np.array([0.5, 0.5])
    SGD([p], lr=0.1).step()
    np.testing.assert_allclose(p.data, [0.95, -2.05], err_msg="p - lr * g")


@pytest.mark.task1
@pytest.mark.points(2)
@given(lr=lrs, decay=st.sampled_from([0.0, 1e-3, 0.1]), seed=seeds)
def test_plain_steps_with_weight_decay(lr, decay, seed):
    same_as_library(seed, lr=lr, weight_decay=decay)


@pytest.mark.task1
def test_parameters_without_a_gradient_stay():
    p, q = Parameter(np.ones(2)), Parameter(np.ones(2))
    p.grad = np.ones(2)
    SGD([p, q], lr=0.5).step()
    np.testing.assert_allclose(q.data, [1.0, 1.0], err_msg="q has no gradient")


@pytest.mark.task2
def test_momentum_by_hand():
    """Two steps of momentum 0.9 with the gradient 1: buf = 1, then 0.9 * 1 + 1 = 1.9."""
    p = Parameter(np.array([0.0]))
    opt = SGD([p], lr=1.0, momentum=0.9)
    for _ in range(2):
        p.grad = np.array([1.0])
        opt.step()
    np.testing.assert_allclose(p.data, [-(1.0 + 1.9)], err_msg="p after two steps")


@pytest.mark.task2
@pytest.mark.points(2)
@given(lr=lrs, momentum=st.sampled_from([0.5, 0.9]), damp=st.sampled_from([0.0, 0.3]),
       decay=st.sampled_from([0.0, 0.01]), seed=seeds)  # fmt: skip
def test_momentum_matches_the_library(lr, momentum, damp, decay, seed):
    same_as_library(seed, lr=lr, momentum=momentum, dampening=damp, weight_decay=decay)


@pytest.mark.task3
@pytest.mark.points(2)
@given(lr=lrs, momentum=st.sampled_from([0.5, 0.9]), decay=st.sampled_from([0.0, 0.01]),
       seed=seeds)  # fmt: skip
def test_nesterov_matches_the_library(lr, momentum, decay, seed):
    same_as_library(seed, lr=lr, momentum=momentum, nesterov=True, weight_decay=decay)
