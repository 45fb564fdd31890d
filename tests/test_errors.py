"""Bad input raises a clear error that names the layer, the shapes and the fix."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import nn


def x4(*shape, dtype="float32"):
    return np.zeros(shape, dtype=dtype)


def test_conv_wrong_number_of_dimensions_suggests_a_batch_dimension():
    with pytest.raises(ValueError, match=r"Conv2d\(3, 8.*4-D.*\(3, 8, 8\).*x\[None\]"):
        nn.Conv2d(3, 8, 3)(x4(3, 8, 8))


def test_conv_wrong_channels_names_the_expected_count():
    with pytest.raises(ValueError, match=r"expected 3 channels.*\(2, 4, 8, 8\) with 4"):
        nn.Conv2d(3, 8, 3)(x4(2, 4, 8, 8))


def test_kernel_larger_than_padded_input():
    with pytest.raises(ValueError, match=r"kernel 5x5 is larger than the padded input 4x4"):
        nn.Conv2d(1, 1, 5, padding=1)(x4(1, 1, 2, 2))
    with pytest.raises(ValueError, match=r"window 3x3 is larger than the padded input 2x2"):
        nn.MaxPool2d(3)(x4(1, 1, 2, 2))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: nn.Conv2d(1, 1, 3, stride=0), "stride must be >= 1"),
        (lambda: nn.MaxPool2d(3, stride=0), "stride must be >= 1"),
        (lambda: nn.Conv2d(1, 1, 3, padding=-1), "padding must be >= 0"),
        (lambda: nn.Conv2d(1, 1, 0), "kernel_size must be >= 1"),
        (lambda: nn.Conv2d(3, 4, 3, groups=2), "divisible by groups"),
        (lambda: nn.MaxPool2d(2, padding=2), "at most half the kernel"),
        (lambda: nn.Dropout(1.0), r"p must be a probability in \[0, 1\)"),
        (lambda: nn.Dropout(-0.1), r"p must be a probability in \[0, 1\)"),
        (lambda: nn.Conv2d(1, 1, "3"), "kernel_size must be an int or a pair"),
    ],
)
def test_bad_constructor_arguments(make, message):
    with pytest.raises((ValueError, TypeError), match=message):
        make()


@pytest.mark.parametrize(
    "layer, x",
    [
        (nn.Conv2d(1, 1, 3), x4(1, 1, 4, 4)),
        (nn.ReLU(), x4(2, 2)),
        (nn.MaxPool2d(2), x4(1, 1, 4, 4)),
        (nn.BatchNorm2d(1), x4(2, 1, 2, 2)),
        (nn.Linear(2, 2), x4(2, 2)),
        (nn.LocalResponseNorm(2), x4(1, 2, 2)),
        (nn.Dropout(0.5), x4(2, 2)),
        (nn.Flatten(), x4(2, 2, 2)),
    ],
)
def test_backward_before_forward(layer, x):
    with pytest.raises(RuntimeError, match=r"backward\(\) was called before forward"):
        layer.backward(x)
    y = layer(x)
    layer.backward(np.ones_like(y))
    with pytest.raises(RuntimeError, match="twice for one forward"):
        layer.backward(np.ones_like(y))


def test_backward_after_no_grad_forward_is_refused():
    conv = nn.Conv2d(1, 1, 3)
    with nn.no_grad():
        y = conv(x4(1, 1, 4, 4))
    with pytest.raises(RuntimeError, match="no_grad"):
        conv.backward(np.ones_like(y))


def test_wrong_upstream_gradient_shape():
    lin = nn.Linear(3, 2)
    lin(x4(4, 3))
    with pytest.raises(ValueError, match=r"grad_out has shape \(4, 3\).*\(4, 2\)"):
        lin.backward(x4(4, 3))


def test_mixed_dtypes_name_the_fix():
    conv = nn.Conv2d(1, 1, 3)
    with pytest.raises(TypeError, match=r"float64 does not match.*float32.*model.double\(\)"):
        conv(x4(1, 1, 4, 4, dtype="float64"))
    with pytest.raises(TypeError, match="floating-point"):
        nn.ReLU()(np.zeros((2, 2), dtype=np.int64))


def test_non_array_input_names_the_fix():
    with pytest.raises(TypeError, match=r"list.*asarray"):
        nn.Linear(2, 2)([[1.0, 2.0]])


def test_batchnorm_training_needs_two_values_per_channel():
    with pytest.raises(ValueError, match=r"more than one value per channel.*\.eval\(\)"):
        nn.BatchNorm1d(3)(x4(1, 3))
    bn = nn.BatchNorm1d(3).eval()
    assert bn(x4(1, 3)).shape == (1, 3)


def test_cross_entropy_bad_targets():
    crit = nn.CrossEntropyLoss()
    z = x4(3, 4)
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\)"):
        crit(z, np.array([0, 4, 1]))
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        crit(z, np.array([0, 1]))
    with pytest.raises(TypeError, match="integer array"):
        crit(z, np.array([0.0, 1.0, 2.0]))


def test_unknown_backend():
    with pytest.raises(mt.BackendError, match=r"unknown backend 'torch'.*'numpy', 'numba', 'cupy'"):
        mt.set_backend("torch")
    assert mt.get_backend().name == "numba"  # unchanged


def test_cupy_missing_names_the_extra(monkeypatch):
    import sys

    from minitorch_alexnet import backend

    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` now raises ImportError
    monkeypatch.delitem(backend._cache, "cupy", raising=False)
    with pytest.raises(mt.BackendError, match=r"minitorch-alexnet\[gpu\].*cupy-cuda13x"):
        mt.set_backend("cupy")


def test_load_state_dict_mismatch_lists_every_problem():
    a, b = nn.Linear(3, 2), nn.Linear(3, 4)
    with pytest.raises(
        RuntimeError, match=r"shape mismatches: weight: checkpoint \(4, 3\) vs model \(2, 3\)"
    ):
        a.load_state_dict(b.state_dict())
    state = dict(a.state_dict())
    state["extra"] = np.zeros(1)
    del state["bias"]
    with pytest.raises(RuntimeError, match=r"missing keys: bias.*unexpected keys: extra"):
        a.load_state_dict(state)


def test_backward_checks_grad_out_dtype_and_backend_and_keeps_the_cache():
    lin = nn.Linear(3, 2)
    lin(x4(4, 3))
    with pytest.raises(
        TypeError, match=r"grad_out has dtype float64 but the forward output had dtype float32"
    ):
        lin.backward(np.zeros((4, 2)))
    with pytest.raises(TypeError, match="not an array of the active backend"):
        lin.backward([[0.0, 0.0]] * 4)
    with pytest.raises(ValueError, match=r"grad_out has shape \(4, 3\)"):
        lin.backward(x4(4, 3))
    # the failed calls kept what forward saved: a correct gradient still works
    assert lin.backward(x4(4, 2)).shape == (4, 3)
    assert lin.weight.grad.dtype == np.float32
