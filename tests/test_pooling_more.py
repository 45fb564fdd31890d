"""AvgPool2d, AdaptiveAvgPool2d and AdaptiveMaxPool2d:

(a) gradcheck over Hypothesis configurations (float64 finite differences);
(b) properties: average pooling is linear (backward is its adjoint), adaptive pooling
    to the input's size is the identity, to a divisor of it is AvgPool2d, and to 1x1
    is the global mean or maximum;
(c) forward and backward equal PyTorch's in float64 on every backend;
(d) PyTorch's errors, empty batches, float16/32/64 and the shape facts.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import rel_err
from strategies import normal, pool_cases, seeds, tie_free

import minitorch_alexnet as mt
from minitorch_alexnet import nn
from minitorch_alexnet.testing import assert_gradcheck

ORACLE_TOL = 1e-8  # float64 agreement with PyTorch

avg_options = st.tuples(st.booleans(), st.booleans(), st.sampled_from([None, 1, 3, -2]))
shapes = st.tuples(st.integers(1, 3), st.integers(1, 3), st.integers(1, 11), st.integers(1, 11))
side = st.one_of(st.none(), st.integers(1, 7))
output_sizes = st.one_of(st.integers(1, 7), st.tuples(side, side))


def _avg(case, options) -> nn.AvgPool2d:
    return nn.AvgPool2d(case.kernel, case.stride, case.padding, *options)


def _twin(layer):
    """The torch.nn layer with the same arguments."""
    from torch import nn as tnn

    if isinstance(layer, nn.AvgPool2d):
        return tnn.AvgPool2d(
            layer.kernel_size, layer.stride, layer.padding, layer.ceil_mode,
            layer.count_include_pad, layer.divisor_override,
        )  # fmt: skip
    if isinstance(layer, nn.AdaptiveAvgPool2d):
        return tnn.AdaptiveAvgPool2d(layer.output_size)
    return tnn.AdaptiveMaxPool2d(layer.output_size, return_indices=True)


def _assert_torch(layer, x, backend):
    torch = pytest.importorskip("torch")
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = _twin(layer)(tx)
    ty, t_indices = ty if isinstance(ty, tuple) else (ty, None)
    g = np.random.default_rng(99).standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(g))
    with mt.use_backend(backend):
        y = layer(mt.asarray(x, "float64"))
        y, indices = y if isinstance(y, tuple) else (y, None)
        dx = layer.backward(mt.asarray(g))
    assert tuple(y.shape) == tuple(ty.shape)
    errs = {"output": rel_err(mt.to_numpy(y), ty.detach().numpy())}
    errs["input grad"] = rel_err(mt.to_numpy(dx), tx.grad.numpy())
    assert all(e <= ORACLE_TOL for e in errs.values()), f"differs from PyTorch: {errs}"
    if indices is not None:
        np.testing.assert_array_equal(mt.to_numpy(indices), t_indices.numpy())


# ----------------------------------------------------------------- PyTorch's numbers
@given(case=pool_cases(), options=avg_options, seed=seeds)
def test_avgpool_matches_torch(any_backend, case, options, seed):
    _assert_torch(_avg(case, options), normal(seed, case.x_shape), any_backend)


@given(shape=shapes, size=output_sizes, seed=seeds)
def test_adaptive_avgpool_matches_torch(any_backend, shape, size, seed):
    _assert_torch(nn.AdaptiveAvgPool2d(size), normal(seed, shape), any_backend)


@given(shape=shapes, size=output_sizes, seed=seeds)
def test_adaptive_maxpool_matches_torch(any_backend, shape, size, seed):
    layer = nn.AdaptiveMaxPool2d(size, return_indices=True)
    _assert_torch(layer, tie_free(seed, shape), any_backend)


@pytest.mark.parametrize(
    "layer",
    [
        nn.AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False),
        nn.AvgPool2d((3, 2), (2, 3), (1, 1), ceil_mode=True, divisor_override=5),
        nn.AvgPool2d(2, ceil_mode=True),  # the last window hangs over the input's edge
        nn.AdaptiveAvgPool2d((6, 6)),  # torchvision's AlexNet, from 13x13
        nn.AdaptiveAvgPool2d((5, None)),
        nn.AdaptiveMaxPool2d((None, 4)),
    ],
    ids=repr,
)
def test_named_cases_match_torch(any_backend, layer):
    _assert_torch(layer, tie_free(3, (2, 3, 13, 11)), any_backend)


# ----------------------------------------------------------------- gradcheck
@settings(max_examples=15)
@given(case=pool_cases(max_hw=6), options=avg_options, seed=seeds)
def test_avgpool_gradcheck(case, options, seed):
    assert_gradcheck(_avg(case, options), normal(seed, case.x_shape))


@settings(max_examples=15)
@given(shape=shapes, size=output_sizes, seed=seeds)
def test_adaptive_avgpool_gradcheck(shape, size, seed):
    assert_gradcheck(nn.AdaptiveAvgPool2d(size), normal(seed, shape))


@settings(max_examples=15)
@given(shape=shapes, size=output_sizes, seed=seeds)
def test_adaptive_maxpool_gradcheck(shape, size, seed):
    assert_gradcheck(nn.AdaptiveMaxPool2d(size), tie_free(seed, shape))


# ----------------------------------------------------------------- properties
def _dot(a, b) -> float:
    return float((mt.to_numpy(a) * mt.to_numpy(b)).sum())


@given(case=pool_cases(), options=avg_options, seed=seeds)
def test_avgpool_backward_is_the_adjoint(case, options, seed):
    pool = _avg(case, options)
    x = normal(seed, case.x_shape)
    y = pool(x)
    g = normal(seed + 1, y.shape)
    assert np.isclose(_dot(y, g), _dot(x, pool.backward(g)), rtol=1e-10, atol=1e-10)


@given(shape=shapes, seed=seeds)
def test_adaptive_to_the_input_size_is_the_identity(shape, seed):
    x = tie_free(seed, shape)
    for pool in (nn.AdaptiveAvgPool2d(None), nn.AdaptiveMaxPool2d(shape[2:])):
        np.testing.assert_allclose(pool(x), x, rtol=1e-15)
        np.testing.assert_allclose(pool.backward(x), x, rtol=1e-15)


@given(shape=shapes, k=st.tuples(st.integers(1, 3), st.integers(1, 3)), seed=seeds)
def test_adaptive_to_a_divisor_is_avgpool(shape, k, seed):
    N, C, H, W = shape[:2] + (shape[2] * k[0], shape[3] * k[1])
    x = normal(seed, (N, C, H, W))
    np.testing.assert_allclose(
        nn.AdaptiveAvgPool2d(shape[2:])(x), nn.AvgPool2d(k)(x), rtol=1e-12, atol=1e-14
    )


@given(shape=shapes, seed=seeds)
def test_adaptive_to_one_pixel_is_global(shape, seed):
    x = normal(seed, shape)
    np.testing.assert_allclose(nn.AdaptiveAvgPool2d(1)(x)[..., 0, 0], x.mean(axis=(2, 3)))
    np.testing.assert_array_equal(nn.AdaptiveMaxPool2d(1)(x)[..., 0, 0], x.max(axis=(2, 3)))


# ----------------------------------------------------------------- dtypes, empty batches
LAYERS = [
    lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True),
    lambda: nn.AdaptiveAvgPool2d((3, None)),
    lambda: nn.AdaptiveMaxPool2d(3),
]


@pytest.mark.parametrize("make", LAYERS)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dtypes_are_kept(any_backend, make, dtype):
    with mt.use_backend(any_backend):
        layer = make()
        x = mt.asarray(normal(0, (2, 3, 7, 8)), dtype)
        y = layer(x)
        dx = layer.backward(mt.asarray(np.ones(y.shape), dtype))
        assert y.dtype == dx.dtype == x.dtype and dx.shape == x.shape
        exact = make()(mt.asarray(x, "float64"))
        tol = {"float16": 2e-3, "float32": 1e-6, "float64": 1e-15}[dtype]
        np.testing.assert_allclose(mt.to_numpy(y), mt.to_numpy(exact), rtol=tol, atol=tol)


@pytest.mark.parametrize("make", LAYERS)
def test_an_empty_batch_gives_an_empty_output(make):
    layer = make()
    x = np.zeros((0, 3, 7, 8))
    y = layer(x)
    assert y.shape == layer.output_shape(x.shape) and y.shape[0] == 0
    assert layer.backward(np.zeros(y.shape)).shape == x.shape


@pytest.mark.parametrize("cls", [nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d])
@pytest.mark.parametrize("size", [0, (0, 3), (2, 0), (None, 0)])
def test_an_output_size_of_zero_gives_an_empty_output_as_in_torch(any_backend, cls, size):
    torch = pytest.importorskip("torch")
    x = normal(3, (2, 3, 5, 4))
    want = getattr(torch.nn, cls.__name__)(size)(torch.from_numpy(x)).shape
    with mt.use_backend(any_backend):
        layer = cls(size)
        y = layer(mt.asarray(x))
        assert y.shape == tuple(want) == layer.output_shape(x.shape)
        dx = mt.to_numpy(layer.backward(mt.asarray(np.ones(y.shape))))
    assert dx.shape == x.shape and not dx.any()  # no window: no gradient anywhere


def test_return_indices_no_grad_and_input_grad():
    pool = nn.AdaptiveMaxPool2d((2, 3), return_indices=True)
    x = tie_free(1, (1, 2, 5, 7))
    y, indices = pool(x)
    assert indices.dtype == np.int64 and indices.shape == y.shape
    picked = np.take_along_axis(x.reshape(1, 2, -1), indices.reshape(1, 2, -1), axis=2)
    np.testing.assert_array_equal(picked, y.reshape(1, 2, -1))
    with pytest.raises(ValueError, match="grad_out has shape"):
        pool.backward(np.ones((1, 2, 3, 3)))
    assert pool.backward(np.ones(y.shape), input_grad=False) is None
    avg = nn.AvgPool2d(2)
    with nn.no_grad():
        y = avg(x)
    with pytest.raises(RuntimeError, match="before forward"):
        avg.backward(np.ones(y.shape))


# ----------------------------------------------------------------- errors and facts
@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: nn.AvgPool2d(3, padding=2), ValueError, "at most half"),
        (lambda: nn.AvgPool2d(0), ValueError, "kernel_size must be >= 1"),
        (lambda: nn.AvgPool2d(2, stride=0), ValueError, "stride must be >= 1"),
        (lambda: nn.AvgPool2d(2, divisor_override=0), ValueError, "must not be zero"),
        (lambda: nn.AvgPool2d(2, divisor_override=1.5), TypeError, "must be an int"),
        (lambda: nn.AdaptiveAvgPool2d((2, 3, 4)), TypeError, "output_size must be"),
        (lambda: nn.AdaptiveMaxPool2d(2.0), TypeError, "output_size must be"),
        (lambda: nn.AdaptiveAvgPool2d(-1), ValueError, ">= 0"),
    ],
)
def test_bad_arguments_are_refused(make, error, match):
    with pytest.raises(error, match=match):
        make()


@pytest.mark.parametrize("make", LAYERS)
def test_bad_inputs_are_refused(make):
    with pytest.raises(ValueError, match="4-D"):
        make()(np.zeros((3, 7, 7)))
    with pytest.raises(ValueError, match="C = 0"):
        make()(np.zeros((1, 0, 7, 7)))
    with pytest.raises(TypeError, match="dtype"):
        make()(np.zeros((1, 1, 7, 7), dtype=np.int64))


def test_a_window_larger_than_the_input_is_refused():
    with pytest.raises(ValueError, match="larger than the padded input"):
        nn.AvgPool2d(5)(np.zeros((1, 1, 3, 3)))


def test_shape_facts():
    avg = nn.AvgPool2d(3, 2, ceil_mode=True)
    assert avg.output_shape((1, 4, 8, 8)) == (1, 4, 4, 4) == avg(np.zeros((1, 4, 8, 8))).shape
    assert avg.flops((1, 4, 8, 8)) == 9 * 4 * 4 * 4
    assert avg.describe() == "AvgPool2d(kernel 3, stride 2)"
    assert avg.shape_rule((1, 4, 8, 8), (1, 4, 4, 4)) == "ceil((8 + 2*0 - 3) / 2) + 1 = 4"
    ada = nn.AdaptiveAvgPool2d((6, None))
    assert ada.output_shape((2, 256, 13, 9)) == (2, 256, 6, 9)
    assert ada.describe() == "AdaptiveAvgPool2d(6x*)"
    assert nn.AdaptiveMaxPool2d(1).flops((1, 3, 4, 5)) == 3 * 4 * 5
    assert "13x9 -> 6x9" in ada.shape_rule((2, 256, 13, 9), (2, 256, 6, 9))
    assert repr(nn.AdaptiveMaxPool2d(6, True)) == (
        "AdaptiveMaxPool2d(output_size=6, return_indices=True)"
    )
