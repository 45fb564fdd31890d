"""Faults a probe found in the layers ("Nothing lost, nothing silently wrong"), each with
the answer a trustworthy framework gives, on every backend:

* MaxPool2d and Conv2d on images with H = 0 or W = 0 (padded or not): one clear error
  before any kernel runs (the Numba kernel read and wrote out of bounds);
* Flatten(start_dim) outside [-ndim, ndim): an IndexError, as in PyTorch;
* an empty batch (N = 0): empty outputs, zero parameter gradients, and BatchNorm's
  running statistics untouched, as in PyTorch (which counts the batch, though);
* float16 works in every layer (computed in float32 inside where a kernel has no
  float16), and longdouble and the like are refused up front;
* load_state_dict with a value that is no array names the key and what it expects.
"""

from __future__ import annotations

import numpy as np
import pytest
from strategies import normal

import minitorch_alexnet as mt
from minitorch_alexnet import nn
from minitorch_alexnet.models import AlexNetCIFAR


def _host(a):
    return None if a is None else mt.to_numpy(a)


# ----------------------------------------------------------------- empty images
@pytest.mark.parametrize("shape", [(1, 1, 0, 5), (2, 1, 5, 0), (1, 1, 0, 0), (1, 0, 4, 4)])
@pytest.mark.parametrize(
    "make",
    [lambda c: nn.MaxPool2d(2, 2, 1), lambda c: nn.Conv2d(max(c, 1), 2, 1, padding=1)],
    ids=["MaxPool2d", "Conv2d"],
)
def test_an_image_without_pixels_is_refused_on_every_backend(any_backend, make, shape):
    with mt.use_backend(any_backend):
        layer = make(shape[1])
        x = mt.asarray(np.ones(shape, "float32"))
        if shape[1] == 0 and isinstance(layer, nn.Conv2d):  # its channel check comes first
            with pytest.raises(ValueError, match="expected 1 channels"):
                layer(x)
            return
        empty = " and ".join(f"{d} = 0" for d, n in zip("CHW", shape[1:]) if n == 0)
        with pytest.raises(ValueError, match=rf"{empty}; only the batch dimension N may be 0"):
            layer(x)


def test_pytorch_refuses_the_same_images():
    torch = pytest.importorskip("torch")
    for shape in [(1, 1, 0, 5), (1, 1, 4, 0)]:
        with pytest.raises(RuntimeError):
            torch.nn.functional.max_pool2d(torch.ones(shape), 2, 2, 1)
        with pytest.raises(RuntimeError):
            torch.nn.functional.conv2d(torch.ones(shape), torch.ones(1, 1, 1, 1), padding=1)


def test_the_numba_pooling_kernel_itself_refuses_an_image_without_pixels():
    from minitorch_alexnet.backend.numba.pooling import maxpool2d_forward

    with pytest.raises(ValueError, match="no pixel"):
        maxpool2d_forward(np.ones((1, 1, 4, 0), "float32"), (2, 2), (2, 2), (1, 1))


# ----------------------------------------------------------------- Flatten's start_dim
@pytest.mark.parametrize("start_dim", range(-5, 5))
def test_flatten_start_dim_outside_the_input_is_an_index_error(any_backend, start_dim):
    with mt.use_backend(any_backend):
        x = mt.asarray(normal(0, (2, 3, 4), "float32"))
        flatten = nn.Flatten(start_dim)
        if -3 <= start_dim < 3:
            y = flatten(x)
            assert y.shape == flatten.output_shape(x.shape)
            assert flatten.backward(mt.asarray(np.ones(y.shape, "float32"))).shape == (2, 3, 4)
            return
        message = rf"start_dim {start_dim} is out of range.*3-D.*\[-3, 2\]"
        with pytest.raises(IndexError, match=message):
            flatten(x)
        with pytest.raises(IndexError, match=message):
            flatten.output_shape((2, 3, 4))


def test_flatten_start_dim_follows_pytorch():
    torch = pytest.importorskip("torch")
    x = normal(0, (2, 3, 4), "float32")
    for d in range(-5, 5):
        try:
            want = tuple(torch.nn.Flatten(d)(torch.from_numpy(x)).shape)
        except IndexError:
            with pytest.raises(IndexError):
                nn.Flatten(d)(x)
        else:
            assert nn.Flatten(d)(x).shape == want


def test_flatten_start_dim_must_be_an_int():
    for bad in (1.0, "1", True, None):
        with pytest.raises(TypeError, match="start_dim must be an int"):
            nn.Flatten(bad)


# ----------------------------------------------------------------- empty batches
def _layers_for_an_empty_batch():
    """(layer, input shape with N = 0)."""
    return [
        (nn.Conv2d(4, 6, 3, padding=1, groups=2), (0, 4, 5, 5)),
        (nn.Conv2d(3, 2, 3, bias=False), (0, 3, 5, 5)),
        (nn.BatchNorm2d(4), (0, 4, 3, 3)),
        (nn.BatchNorm2d(4, affine=False, track_running_stats=False), (0, 4, 3, 3)),
        (nn.BatchNorm1d(4), (0, 4)),
        (nn.BatchNorm1d(4), (0, 4, 5)),
        (nn.LocalResponseNorm(3), (0, 4, 3, 3)),
        (nn.Flatten(), (0, 4, 3, 3)),
        (nn.MaxPool2d(3, 2, 1), (0, 4, 5, 5)),
        (nn.MaxPool2d(2), (0, 4, 5, 5)),
        (nn.ReLU(), (0, 4)),
        (nn.Linear(4, 3), (0, 4)),
        (nn.Dropout(0.5), (0, 4)),
    ]


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("case", range(len(_layers_for_an_empty_batch())))
def test_an_empty_batch_gives_empty_outputs_and_zero_gradients(any_backend, case, train):
    with mt.use_backend(any_backend):
        layer, shape = _layers_for_an_empty_batch()[case]
        layer.train(train)
        before = {k: _host(b).copy() for k, b in layer.named_buffers()}
        x = mt.asarray(np.ones(shape, "float32"))
        y = layer(x)
        assert y.shape == layer.output_shape(shape) and y.dtype == np.float32
        dx = layer.backward(mt.asarray(np.ones(y.shape, "float32")))
        assert dx.shape == shape and dx.dtype == np.float32
        for name, p in layer.named_parameters():
            assert p.grad.shape == p.shape, name
            np.testing.assert_array_equal(_host(p.grad), 0, err_msg=name)
        for name, b in layer.named_buffers():
            if name == "num_batches_tracked":  # PyTorch counts an empty batch too
                assert int(b) == before[name] + (1 if train else 0)
            else:  # nothing to learn from: the running statistics stay
                np.testing.assert_array_equal(_host(b), before[name], err_msg=name)


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_batchnorm_on_an_empty_batch_matches_pytorch(train):
    torch = pytest.importorskip("torch")
    bn, tbn = nn.BatchNorm2d(3).train(train), torch.nn.BatchNorm2d(3).train(train)
    x = torch.zeros(0, 3, 4, 4, requires_grad=True)
    ty = tbn(x)
    ty.sum().backward()
    y = bn(np.zeros((0, 3, 4, 4), "float32"))
    bn.backward(np.ones(y.shape, "float32"))
    assert y.shape == tuple(ty.shape)
    np.testing.assert_array_equal(bn.weight.grad, tbn.weight.grad.numpy())
    np.testing.assert_array_equal(bn.bias.grad, tbn.bias.grad.numpy())
    for name, b in tbn.named_buffers():
        np.testing.assert_array_equal(getattr(bn, name), b.numpy(), err_msg=name)


def test_batchnorm_still_refuses_one_value_per_channel_in_training():
    with pytest.raises(ValueError, match="more than one value per channel"):
        nn.BatchNorm2d(3)(np.zeros((1, 3, 1, 1), "float32"))


@pytest.mark.parametrize("train", [True, False], ids=["train", "eval"])
def test_alexnet_cifar_takes_an_empty_batch(any_backend, train):
    with mt.use_backend(any_backend):
        model = AlexNetCIFAR().train(train)
        logits = model(mt.asarray(np.zeros((0, 3, 32, 32), "float32")))
        assert logits.shape == (0, 10)
        dx = model.backward(mt.asarray(np.zeros((0, 10), "float32")))
        assert dx.shape == (0, 3, 32, 32)
        assert all(float(abs(_host(p.grad)).max()) == 0 for p in model.parameters())


# ----------------------------------------------------------------- float16
def _layers_for_float16():
    """(layer factory, input shape); each layer small enough to compare at once."""
    return [
        (lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (2, 4, 5, 5)),
        (lambda: nn.Conv2d(16, 4, 3, padding=1), (2, 16, 6, 6)),  # Winograd-sized on a GPU
        (lambda: nn.Linear(6, 3), (4, 6)),
        (lambda: nn.BatchNorm2d(4), (3, 4, 3, 3)),
        (lambda: nn.BatchNorm2d(4).eval(), (3, 4, 3, 3)),
        (lambda: nn.BatchNorm1d(5), (6, 5)),
        (lambda: nn.ReLU(), (3, 4, 5)),
        (lambda: nn.MaxPool2d(3, 2, 1), (2, 3, 7, 7)),
        (lambda: nn.Dropout(0.5), (4, 6)),
        (lambda: nn.Flatten(), (2, 3, 4)),
        (lambda: nn.LocalResponseNorm(3, 1e-2, 0.75, 2.0), (2, 5, 3, 3)),
        (lambda: nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten()), (2, 3, 5, 5)),
    ]


def _forward_backward(layer, x):
    """Forward ``x`` (float16 numbers), backward a fixed gradient, in ``x``'s dtype."""
    mt.manual_seed(7)  # Dropout: the same mask in both dtypes (drawn in float32 for both)
    y = layer(mt.asarray(x))
    dx = layer.backward(mt.asarray(normal(2, y.shape, "float16").astype(x.dtype)))
    out = {"output": _host(y), "input grad": _host(dx)}
    out.update({f"{k} grad": _host(p.grad) for k, p in layer.named_parameters()})
    out.update({k: _host(b) for k, b in layer.named_buffers()})
    return out


@pytest.mark.parametrize("case", range(len(_layers_for_float16())))
def test_float16_forward_and_backward_match_float32(any_backend, case):
    """float16 in, float16 out, equal to the float32 results on the same float16
    numbers to float16's precision, on every backend."""
    make, shape = _layers_for_float16()[case]
    with mt.use_backend(any_backend):
        mt.manual_seed(0)
        half = make().half()
        mt.manual_seed(0)
        single = make().half().float()  # the same float16 parameters, in float32
        x = normal(1, shape, "float16")
        got = _forward_backward(half, x)
        want = _forward_backward(single, x.astype("float32"))
    assert got.keys() == want.keys()
    for k, w in want.items():
        assert got[k].dtype == (np.float16 if w.dtype == np.float32 else w.dtype), k
        # to 4 units in float16's last place (2^-10 of the scale); they differ by under 1
        scale = max(float(np.abs(w).max(initial=0)), 1.0)
        np.testing.assert_allclose(got[k], w, rtol=4e-3, atol=4e-3 * scale, err_msg=k)


def test_float16_lrn_survives_squares_beyond_float16(any_backend):
    """300^2 overflows float16 (max 65504): squared in float16, y came out 0."""
    with mt.use_backend(any_backend):
        lrn = nn.LocalResponseNorm(3, 1e-2, 0.75, 2.0)
        x = np.full((1, 3, 2, 2), 300.0, "float16")
        y = _host(lrn(mt.asarray(x)))
        dx = _host(lrn.backward(mt.asarray(np.ones_like(x))))
        want = _host(lrn(mt.asarray(x.astype("float32"))))
        want_dx = _host(lrn.backward(mt.asarray(np.ones((1, 3, 2, 2), "float32"))))
    assert y.dtype == dx.dtype == np.float16
    np.testing.assert_allclose(y, want, rtol=2e-3)
    np.testing.assert_allclose(dx, want_dx, rtol=2e-3, atol=1e-3 * np.abs(want_dx).max())


def test_float16_relu_and_maxpool_equal_pytorch():
    torch = pytest.importorskip("torch")
    x = normal(3, (2, 3, 6, 6), "float16")
    tx = torch.from_numpy(x).requires_grad_()
    for layer, twin in [
        (nn.ReLU(), torch.nn.functional.relu),
        (nn.MaxPool2d(3, 2, 1), lambda t: torch.nn.functional.max_pool2d(t, 3, 2, 1)),
    ]:
        tx.grad = None
        ty = twin(tx)
        ty.backward(torch.ones_like(ty))
        y = layer(x)
        np.testing.assert_array_equal(y, ty.detach().numpy())
        np.testing.assert_array_equal(layer.backward(np.ones_like(y)), tx.grad.numpy())


def test_half_casts_a_model_and_a_mismatch_names_it():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(TypeError, match=r"float16 does not match.*float32.*model\.half\(\)"):
        model(np.zeros((2, 3, 5, 5), "float16"))
    model.half()
    assert {str(a.dtype) for a in model.state_dict().values()} == {"float16", "int64"}
    assert model(np.zeros((2, 3, 5, 5), "float16")).dtype == np.float16


@pytest.mark.parametrize("dtype", ["longdouble", "complex64", "int32", "bool"])
@pytest.mark.parametrize(
    "make",
    [
        lambda: nn.Conv2d(2, 2, 1),
        lambda: nn.MaxPool2d(1),
        lambda: nn.BatchNorm2d(2),
        lambda: nn.ReLU(),
        lambda: nn.Dropout(),
        lambda: nn.LocalResponseNorm(2),
        lambda: nn.Flatten(),
    ],
    ids=["Conv2d", "MaxPool2d", "BatchNorm2d", "ReLU", "Dropout", "LocalResponseNorm", "Flatten"],
)
def test_unsupported_dtypes_are_refused_up_front(any_backend, make, dtype):
    if dtype == "longdouble" and (np.dtype(dtype) == np.float64 or any_backend == "cupy"):
        pytest.skip("no longdouble arrays here (float64 on this platform, none in CuPy)")
    with mt.use_backend(any_backend):
        x = mt.asarray(np.ones((2, 2, 2, 2), dtype))
        with pytest.raises(TypeError, match=r"float16, float32, float64 only"):
            make()(x)


# ----------------------------------------------------------------- load_state_dict
@pytest.mark.parametrize(
    "value, got",
    [
        ([[1.0, 2.0], [3.0, 4.0]], "a list"),
        ("weights", "a str"),
        (None, "a NoneType"),
        (np.array(["a", "b"]), "an array of dtype <U1"),
    ],
)
def test_load_state_dict_names_the_key_of_a_value_that_is_no_array(value, got):
    lin = nn.Linear(2, 2)
    state = {"weight": value, "bias": np.zeros(2, "float32")}
    message = rf"not arrays: weight: expected an array of shape \(2, 2\) \(float32\), got {got}"
    with pytest.raises(RuntimeError, match=message):
        lin.load_state_dict(state)


def test_load_state_dict_takes_a_number_for_a_0d_buffer():
    bn = nn.BatchNorm1d(2)
    state = dict(bn.state_dict())
    state["num_batches_tracked"] = 5
    bn.load_state_dict(state)
    assert int(bn.num_batches_tracked) == 5
