"""Conv2d's dilation and padding "same"/"valid", MaxPool2d's dilation, ceil_mode and
return_indices: PyTorch's numbers (float64, forward and backward), gradcheck, and
PyTorch's kinds of error for invalid arguments."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import rel_err
from strategies import normal, tie_free

import minitorch_alexnet as mt
from minitorch_alexnet import nn
from minitorch_alexnet.testing import assert_gradcheck

torch = pytest.importorskip("torch")
BACKENDS = ["numpy", "numba"]

CONV_CASES = [  # (C, O, kernel, stride, padding, dilation, groups, input H x W)
    (2, 3, 3, 1, 1, 2, 1, (9, 8)),
    (2, 4, (3, 2), (2, 1), (2, 1), (1, 3), 2, (10, 9)),
    (3, 2, 3, 1, "same", 1, 1, (7, 6)),
    (3, 2, 4, 1, "same", 1, 1, (7, 6)),  # even kernel: the extra padding bottom/right
    (2, 2, (2, 3), 1, "same", (3, 2), 1, (8, 7)),
    (2, 3, 5, 1, "same", 2, 1, (6, 9)),
    (2, 3, 3, (2, 1), "valid", 2, 1, (9, 8)),
]

POOL_CASES = [  # (kernel, stride, padding, dilation, ceil_mode, input H x W)
    (3, 2, 1, 2, False, (9, 10)),
    (2, 2, 0, 1, True, (7, 7)),
    (3, 2, 1, 1, True, (8, 6)),
    (2, 2, 1, 1, True, (5, 7)),  # a last window that would start in the padding: dropped
    (3, 2, 0, 2, True, (10, 9)),
    ((2, 3), (3, 2), (1, 1), (2, 1), True, (8, 11)),
    (2, 3, 1, 3, True, (11, 8)),
]


def _conv(case) -> nn.Conv2d:
    C, O, k, s, p, d, g, _ = case
    return nn.Conv2d(C, O, k, s, p, d, g)


def _torch_conv(layer: nn.Conv2d):
    t = torch.nn.Conv2d(
        layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
        layer.padding_arg, layer.dilation, layer.groups, bias=True,
    ).double()  # fmt: skip
    with torch.no_grad():
        t.weight.copy_(torch.from_numpy(mt.to_numpy(layer.weight.data)))
        t.bias.copy_(torch.from_numpy(mt.to_numpy(layer.bias.data)))
    return t


@pytest.mark.filterwarnings("ignore:Using padding='same'")  # torch's note on its own copy
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv2d_matches_torch(backend, case):
    _check_conv(backend, case)


def _check_conv(backend, case):
    mt.set_backend(backend)
    layer = _conv(case).double()
    t = _torch_conv(layer)
    x = normal(1, (2, case[0], *case[-1]), "float64")
    tx = torch.tensor(x, requires_grad=True)
    ty = t(tx)
    g = normal(2, tuple(ty.shape), "float64")
    ty.backward(torch.from_numpy(g))
    y = layer(mt.asarray(x, "float64"))
    assert tuple(y.shape) == tuple(ty.shape) == layer.output_shape(x.shape)
    dx = layer.backward(mt.asarray(g))
    assert rel_err(mt.to_numpy(y), ty.detach().numpy()) <= 1e-8
    assert rel_err(mt.to_numpy(dx), tx.grad.numpy()) <= 1e-8
    assert rel_err(mt.to_numpy(layer.weight.grad), t.weight.grad.numpy()) <= 1e-8
    assert rel_err(mt.to_numpy(layer.bias.grad), t.bias.grad.numpy()) <= 1e-8
    if case[4] == "same":
        assert tuple(y.shape[2:]) == case[-1]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_maxpool2d_matches_torch_with_indices(backend, case):
    _check_pool(backend, case)


def _check_pool(backend, case):
    mt.set_backend(backend)
    k, s, p, d, ceil_mode, hw = case
    layer = nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil_mode)
    t = torch.nn.MaxPool2d(k, s, p, d, return_indices=True, ceil_mode=ceil_mode)
    x = tie_free(3, (2, 3, *hw)).astype("float64")
    tx = torch.tensor(x, requires_grad=True)
    ty, tidx = t(tx)
    g = normal(4, tuple(ty.shape), "float64")
    ty.backward(torch.from_numpy(g))
    y, idx = layer(mt.asarray(x, "float64"))
    assert tuple(y.shape) == tuple(ty.shape) == layer.output_shape(x.shape)
    np.testing.assert_array_equal(mt.to_numpy(idx), tidx.numpy())
    dx = layer.backward(mt.asarray(g))
    assert rel_err(mt.to_numpy(y), ty.detach().numpy()) <= 1e-8
    assert rel_err(mt.to_numpy(dx), tx.grad.numpy()) <= 1e-8


pairs = st.tuples(st.integers(1, 3), st.integers(1, 3))


@st.composite
def conv_cases(draw):
    """Conv2d arguments with dilation and every padding form, and an input they fit."""
    g = draw(st.sampled_from([1, 1, 2]))
    C, O = g * draw(st.integers(1, 2)), g * draw(st.integers(1, 2))
    k, d = draw(pairs), draw(pairs)
    padding = draw(
        st.one_of(st.sampled_from(["same", "valid"]), st.tuples(*[st.integers(0, 2)] * 2))
    )
    s = (1, 1) if padding == "same" else draw(pairs)
    reach = [(ki - 1) * di + 1 for ki, di in zip(k, d)]  # the dilated window
    pad = (0, 0) if isinstance(padding, str) else padding
    hw = tuple(draw(st.integers(max(1, r - 2 * p), r + 4)) for r, p in zip(reach, pad))
    return (C, O, k, s, padding, d, g, hw)


@st.composite
def pool_cases(draw):
    """MaxPool2d arguments with dilation and ceil_mode; padding at most half the kernel."""
    k, d = draw(pairs), draw(pairs)
    reach = [(ki - 1) * di + 1 for ki, di in zip(k, d)]
    p = tuple(draw(st.integers(0, ki // 2)) for ki in k)
    hw = tuple(draw(st.integers(max(1, r - 2 * pi), r + 4)) for r, pi in zip(reach, p))
    return (k, draw(pairs), p, d, draw(st.booleans()), hw)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(case=conv_cases())
def test_conv2d_property_matches_torch(backend, case):
    _check_conv(backend, case)


@pytest.mark.parametrize("backend", BACKENDS)
@settings(max_examples=25, deadline=None)
@given(case=pool_cases())
def test_maxpool2d_property_matches_torch(backend, case):
    _check_pool(backend, case)


@settings(max_examples=10, deadline=None)
@given(conv=conv_cases(), pool=pool_cases(), seed=st.integers(0, 2**16))
def test_gradcheck_property(conv, pool, seed):
    assert_gradcheck(_conv(conv), normal(seed, (1, conv[0], *conv[-1]), "float64"))
    k, s, p, d, ceil_mode, hw = pool
    assert_gradcheck(nn.MaxPool2d(k, s, p, d, ceil_mode=ceil_mode), tie_free(seed, (1, 2, *hw)))


@pytest.mark.parametrize("backend", BACKENDS)
def test_maxpool2d_indices_without_dilation_and_under_no_grad(backend):
    mt.set_backend(backend)
    x = tie_free(5, (1, 2, 7, 8)).astype("float64")
    ty, tidx = torch.nn.MaxPool2d(3, 2, 1, return_indices=True)(torch.from_numpy(x))
    layer = nn.MaxPool2d(3, 2, 1, return_indices=True)
    with nn.no_grad():
        y, idx = layer(mt.asarray(x, "float64"))
    np.testing.assert_array_equal(mt.to_numpy(idx), tidx.numpy())
    np.testing.assert_array_equal(mt.to_numpy(y), ty.numpy())


def test_facts_and_repr():
    conv = nn.Conv2d(3, 4, 4, padding="same", dilation=2)
    assert conv.output_shape((1, 3, 9, 7)) == (1, 4, 9, 7)
    assert "padding='same'" in repr(conv) and "dilation=(2, 2)" in repr(conv)
    assert "same" in conv.shape_rule((1, 3, 9, 7), (1, 4, 9, 7))
    pool = nn.MaxPool2d(2, 2, 1, ceil_mode=True)
    assert pool.output_shape((1, 1, 5, 5)) == (1, 1, 3, 3)  # ceil(5/2)+1 = 4, less the last
    rule = pool.shape_rule((1, 1, 5, 5), (1, 1, 3, 3))
    dropped = " - 1 (the last window would start in the padding) = 3"
    assert rule == "ceil((5 - 2 + 2*1) / 2) + 1 = ceil(2.5) + 1" + dropped
    assert "dilation 2" in nn.MaxPool2d(2, dilation=2).describe()


@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Conv2d(2, 2, 3, padding=1, dilation=2),
        lambda: nn.Conv2d(2, 2, 2, padding="same", dilation=(1, 3)),
        lambda: nn.MaxPool2d(3, 2, 1, dilation=2, ceil_mode=True),
    ],
)
def test_gradcheck(make):
    assert_gradcheck(make(), tie_free(7, (2, 2, 7, 8)))


@pytest.mark.parametrize(
    ("make", "kind", "words"),
    [
        (lambda: nn.Conv2d(1, 1, 3, stride=2, padding="same"), ValueError, "strided"),
        (lambda: nn.Conv2d(1, 1, 3, padding="full"), ValueError, "padding string"),
        (lambda: nn.Conv2d(1, 1, 3, dilation=0), ValueError, "dilation"),
        (lambda: nn.Conv2d(1, 1, 3, dilation=1.5), TypeError, "dilation"),
        (lambda: nn.MaxPool2d(3, dilation=0), ValueError, "dilation"),
        (lambda: nn.MaxPool2d(2, padding=2, dilation=2), ValueError, "half"),
    ],
)
def test_invalid_arguments(make, kind, words):
    with pytest.raises(kind, match=words):
        make()


@pytest.mark.parametrize(("k", "p", "d"), [(2, 1, 2), (2, 2, 3), (3, 2, 2), (1, 1, 3), (3, 1, 3)])
def test_padding_limit_under_dilation_is_pytorchs(k, p, d):
    """Half the kernel, not half the dilated span: PyTorch refuses (2, 2, 3), whose
    windows at the edges would hold padding only."""
    try:
        torch.nn.MaxPool2d(k, padding=p, dilation=d)(torch.zeros(1, 1, 9, 9))
    except RuntimeError:
        with pytest.raises(ValueError, match="at most half the kernel size"):
            nn.MaxPool2d(k, padding=p, dilation=d)
    else:
        nn.MaxPool2d(k, padding=p, dilation=d)(np.zeros((1, 1, 9, 9)))


def test_dilated_window_larger_than_the_input():
    with pytest.raises(ValueError, match="larger than the padded input"):
        nn.Conv2d(1, 1, 3, dilation=3)(mt.asarray(np.zeros((1, 1, 6, 6)), "float32"))
