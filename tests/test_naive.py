"""The layers' reference functions against the naive loops of minitorch_alexnet.testing.naive.

Forward and backward, under the numpy backend (so the functions in the layer files
run, not a backend's override), over Hypothesis-generated configurations: groups,
strides, padding, ties. On whole-number inputs every sum is exact in float64, so the
im2col convolution, the matrix products and the pooling scatter must equal the loops
exactly, whatever order they add in; elsewhere they must agree to rounding. The naive
backward passes are themselves held to finite differences of the naive forwards.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import minitorch_alexnet as mt
from minitorch_alexnet.nn import activation, batchnorm, conv, linear, pooling
from minitorch_alexnet.testing import (
    batch_shapes,
    conv_configs,
    integer_valued,
    normal,
    pool_configs,
    seeds,
    tie_free,
)
from minitorch_alexnet.testing.naive import (
    batchnorm_backward_naive,
    conv2d_backward_naive,
    conv2d_naive,
    linear_backward_naive,
    maxpool2d_backward_naive,
    maxpool2d_naive,
    relu_backward_naive,
)

pytestmark = pytest.mark.usefixtures("numpy_backend")


@pytest.fixture
def numpy_backend():
    with mt.use_backend("numpy"):
        yield


def _equal(got, want, name):
    assert got.shape == want.shape, f"{name}: shape {got.shape}, the loops give {want.shape}"
    np.testing.assert_array_equal(got, want, err_msg=name)


# ---------------------------------------------------------------- Conv2d
def _conv_arrays(cfg, seed, values):
    x, w = values(seed, cfg.x_shape), values(seed + 1, cfg.w_shape)
    b = values(seed + 2, (cfg.O,)) if cfg.bias else None
    return x, w, b


@given(cfg=conv_configs(max_hw=5, max_k=3, max_channels=2, groups=(1, 2, 3)), seed=seeds())
def test_conv2d_backward_equals_the_loops_on_whole_numbers(cfg, seed):
    x, w, b = _conv_arrays(cfg, seed, integer_valued)
    y, ctx = conv.conv2d_forward(x, w, b, cfg.stride, cfg.padding, cfg.groups)
    _equal(y, conv2d_naive(x, w, b, cfg.stride, cfg.padding, cfg.groups), "y")
    dy = integer_valued(seed + 3, y.shape)
    dx, dw, db = conv.conv2d_backward(dy, ctx)
    want_dx, want_dw, want_db = conv2d_backward_naive(dy, x, w, cfg.stride, cfg.padding, cfg.groups)
    _equal(dx, want_dx, "dx")
    _equal(dw, want_dw, "dw")
    if cfg.bias:
        _equal(db, want_db, "db")
    else:
        assert db is None
    no_dx, dw_only, _ = conv.conv2d_backward(dy, ctx, input_grad=False)
    assert no_dx is None
    _equal(dw_only, want_dw, "dw (input_grad=False)")


@given(cfg=conv_configs(max_hw=5, max_k=3, max_channels=2, groups=(1, 2)), seed=seeds())
def test_conv2d_backward_matches_the_loops_to_rounding(cfg, seed):
    x, w, b = _conv_arrays(cfg, seed, normal)
    y, ctx = conv.conv2d_forward(x, w, b, cfg.stride, cfg.padding, cfg.groups)
    dy = normal(seed + 3, y.shape)
    got = conv.conv2d_backward(dy, ctx)
    want = conv2d_backward_naive(dy, x, w, cfg.stride, cfg.padding, cfg.groups)
    for name, g, v in zip(("dx", "dw", "db"), got, want):
        if g is not None:
            np.testing.assert_allclose(g, v, rtol=1e-12, atol=1e-12, err_msg=name)


def test_the_loops_catch_a_flipped_kernel():
    """The classic mistake (dx with the kernel rotated, as a true convolution would)
    differs from the loops: the comparison above can fail."""
    x, w = integer_valued(0, (1, 2, 4, 4)), integer_valued(1, (3, 2, 3, 3))
    y, ctx = conv.conv2d_forward(x, w, None, (1, 1), (1, 1), 1)
    dy = integer_valued(2, y.shape)
    flipped, _, _ = conv.conv2d_backward(dy, dict(ctx, weight=w[:, :, ::-1, ::-1]))
    want, _, _ = conv2d_backward_naive(dy, x, w, (1, 1), (1, 1))
    assert not np.array_equal(flipped, want)


@settings(max_examples=10)
@given(
    cfg=conv_configs(max_hw=4, max_k=2, max_channels=2, max_batch=2, groups=(1, 2)),
    seed=seeds(),
)
def test_conv2d_backward_naive_is_the_derivative_of_conv2d_naive(cfg, seed):
    """y is linear in x, in w and in b: on whole numbers, L(v + e_i) - L(v) is dL/dv[i]
    exactly, for L = sum(dy * y)."""
    x, w, b = _conv_arrays(cfg, seed, integer_valued)
    b = integer_valued(seed + 2, (cfg.O,))
    args = [x, w, b]
    dy = integer_valued(seed + 3, conv2d_naive(x, w, b, cfg.stride, cfg.padding, cfg.groups).shape)

    def loss():
        return float((dy * conv2d_naive(*args, cfg.stride, cfg.padding, cfg.groups)).sum())

    grads = conv2d_backward_naive(dy, x, w, cfg.stride, cfg.padding, cfg.groups)
    base = loss()
    for name, v, grad in zip(("dx", "dw", "db"), args, grads):
        numeric = np.zeros_like(v)
        for i in np.ndindex(*v.shape):
            v[i] += 1
            numeric[i] = loss() - base
            v[i] -= 1
        _equal(grad, numeric, name)


# ---------------------------------------------------------------- MaxPool2d
@given(cfg=pool_configs(max_hw=6), seed=seeds(), ties=st.booleans())
def test_maxpool2d_backward_equals_the_loops(cfg, seed, ties):
    """Exactly, with or without ties (whole numbers in [-2, 2] tie often): the same
    winner (the first maximum in window order) and the same order of additions."""
    x = integer_valued(seed, cfg.x_shape, -2, 2) if ties else tie_free(seed, cfg.x_shape)
    y, ctx = pooling.maxpool2d_forward(x, cfg.kernel, cfg.stride, cfg.padding)
    _equal(y, maxpool2d_naive(x, cfg.kernel, cfg.stride, cfg.padding), "y")
    dy = normal(seed + 1, y.shape)
    dx = pooling.maxpool2d_backward(dy, ctx)
    _equal(dx, maxpool2d_backward_naive(dy, x, cfg.kernel, cfg.stride, cfg.padding), "dx")


@settings(max_examples=10)
@given(cfg=pool_configs(max_hw=4, max_k=3, max_batch=2, max_channels=2), seed=seeds())
def test_maxpool2d_backward_naive_is_the_derivative_of_maxpool2d_naive(cfg, seed):
    x, eps = tie_free(seed, cfg.x_shape), 1e-4  # no nudge changes a window's winner
    dy = normal(seed + 1, maxpool2d_naive(x, cfg.kernel, cfg.stride, cfg.padding).shape)

    def loss(v):
        return float((dy * maxpool2d_naive(v, cfg.kernel, cfg.stride, cfg.padding)).sum())

    numeric = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        numeric[i] = (loss(x + e) - loss(x - e)) / (2 * eps)
    grad = maxpool2d_backward_naive(dy, x, cfg.kernel, cfg.stride, cfg.padding)
    np.testing.assert_allclose(grad, numeric, rtol=1e-7, atol=1e-9)


# ---------------------------------------------------------------- Linear, ReLU
@given(
    n=st.integers(1, 4),
    fin=st.integers(1, 6),
    fout=st.integers(1, 5),
    bias=st.booleans(),
    seed=seeds(),
)
def test_linear_backward_equals_the_loops_on_whole_numbers(n, fin, fout, bias, seed):
    x, w = integer_valued(seed, (n, fin)), integer_valued(seed + 1, (fout, fin))
    b = integer_valued(seed + 2, (fout,)) if bias else None
    y, ctx = linear.linear_forward(x, w, b)
    dy = integer_valued(seed + 3, y.shape)
    dx, dw, db = linear.linear_backward(dy, ctx)
    want_dx, want_dw, want_db = linear_backward_naive(dy, x, w)
    _equal(dx, want_dx, "dx")
    _equal(dw, want_dw, "dw")
    if bias:
        _equal(db, want_db, "db")
    else:
        assert db is None


@given(shape=batch_shapes(4), seed=seeds())
def test_relu_backward_equals_the_loops(shape, seed):
    x = integer_valued(seed, shape, -2, 2)  # zeros included: no gradient there
    _, positive = activation.relu_forward(x)
    dy = normal(seed + 1, shape)
    _equal(activation.relu_backward(dy, positive), relu_backward_naive(dy, x), "dx")


# ---------------------------------------------------------------- BatchNorm
def _batchnorm(x, seed, train, affine):
    C = x.shape[1]
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.5, 1.5, C) if affine else None
    beta = rng.standard_normal(C) if affine else None
    running = (rng.standard_normal(C), rng.uniform(0.5, 2.0, C))
    y, ctx = batchnorm.batchnorm_forward(
        x, gamma, beta, running[0].copy(), running[1].copy(), train, 0.1, 1e-5
    )
    return gamma, running, y, ctx


@given(
    ndim=st.sampled_from([2, 3, 4]),
    data=st.data(),
    seed=seeds(),
    train=st.booleans(),
    affine=st.booleans(),
)
def test_batchnorm_backward_matches_the_loops(ndim, data, seed, train, affine):
    shape = data.draw(batch_shapes(ndim, min_batch=2, max_elements=60))
    x = normal(seed, shape) * 2 + 1
    gamma, (rmean, rvar), y, ctx = _batchnorm(x, seed, train, affine)
    dy = normal(seed + 1, shape)
    dx, dgamma, dbeta = batchnorm.batchnorm_backward(dy, ctx)
    stats = {} if train else dict(running_mean=rmean, running_var=rvar)
    want_dx, want_dgamma, want_dbeta = batchnorm_backward_naive(dy, x, gamma, 1e-5, **stats)
    np.testing.assert_allclose(dx, want_dx, rtol=1e-9, atol=1e-9, err_msg="dx")
    if affine:
        np.testing.assert_allclose(dgamma, want_dgamma, rtol=1e-9, atol=1e-9, err_msg="dgamma")
        np.testing.assert_allclose(dbeta, want_dbeta, rtol=1e-9, atol=1e-9, err_msg="dbeta")
    else:
        assert dgamma is None and dbeta is None


@settings(max_examples=10)
@given(shape=batch_shapes(3, min_batch=2, max_elements=24), seed=seeds(), train=st.booleans())
def test_batchnorm_backward_naive_is_the_derivative_of_the_definition(shape, seed, train):
    x, eps = normal(seed, shape), 1e-6
    C = shape[1]
    rng = np.random.default_rng(seed)
    gamma, beta = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    rmean, rvar = rng.standard_normal(C), rng.uniform(0.5, 2.0, C)
    dy = normal(seed + 1, shape)
    axes = (0, 2)

    def loss(v):  # the definition, with NumPy's mean and var
        mu = v.mean(axis=axes, keepdims=True) if train else rmean[:, None]
        var = v.var(axis=axes, keepdims=True) if train else rvar[:, None]
        y = gamma[:, None] * (v - mu) / np.sqrt(var + 1e-5) + beta[:, None]
        return float((dy * y).sum())

    numeric = np.zeros_like(x)
    for i in np.ndindex(*x.shape):
        e = np.zeros_like(x)
        e[i] = eps
        numeric[i] = (loss(x + e) - loss(x - e)) / (2 * eps)
    stats = {} if train else dict(running_mean=rmean, running_var=rvar)
    dx, _, _ = batchnorm_backward_naive(dy, x, gamma, 1e-5, **stats)
    np.testing.assert_allclose(dx, numeric, rtol=1e-5, atol=1e-6)
