"""The backend switch and the Module API (PyTorch's names and semantics)."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import nn


def test_backend_switching_and_context_manager():
    assert mt.get_backend().name == "numba"
    B = mt.set_backend("numpy")
    assert B.name == "numpy" and B.xp is np and mt.get_backend() is B
    with mt.use_backend("numba") as inner:
        assert mt.get_backend().name == "numba" and inner.name == "numba"
    assert mt.get_backend().name == "numpy"
    with pytest.raises(ZeroDivisionError), mt.use_backend("numba"):
        raise ZeroDivisionError
    assert mt.get_backend().name == "numpy"  # restored after an exception too
    assert {"numpy", "numba"} <= set(mt.available_backends())


def test_asarray_and_to_numpy():
    a = mt.asarray([[1, 2], [3, 4]], dtype="float32")
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    np.testing.assert_array_equal(mt.to_numpy(a), [[1, 2], [3, 4]])


def test_manual_seed_makes_initialisation_and_dropout_repeatable():
    def run():
        mt.manual_seed(7)
        conv = nn.Conv2d(2, 3, 3)
        return conv.weight.data.copy(), nn.Dropout(0.5)(np.ones((4, 4), "float32"))

    (w1, d1), (w2, d2) = run(), run()
    np.testing.assert_array_equal(w1, w2)
    np.testing.assert_array_equal(d1, d2)
    mt.manual_seed(8)
    assert not np.array_equal(nn.Conv2d(2, 3, 3).weight.data, w1)


def test_default_initialisation_follows_pytorch_bounds():
    conv = nn.Conv2d(4, 8, 3)  # fan_in = 4*3*3 = 36 -> U(-1/6, 1/6)
    assert conv.weight.dtype == np.float32
    assert np.abs(conv.weight.data).max() <= 1 / 6 and np.abs(conv.weight.data).max() > 0.15
    lin = nn.Linear(100, 10)
    assert np.abs(lin.bias.data).max() <= 0.1
    bn = nn.BatchNorm2d(3)
    np.testing.assert_array_equal(bn.weight.data, 1)
    np.testing.assert_array_equal(bn.bias.data, 0)
    np.testing.assert_array_equal(bn.running_var, 1)


def _model():
    return nn.Sequential(
        nn.Conv2d(1, 2, 3),
        nn.BatchNorm2d(2),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(8, 3),
        nn.Dropout(0.2),
    )


def test_module_traversal_and_state_dict_names_match_pytorch():
    m = _model()
    names = [n for n, _ in m.named_parameters()]
    assert names == ["0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias"]
    assert list(m.state_dict()) == [
        "0.weight",
        "0.bias",
        "1.weight",
        "1.bias",
        "1.running_mean",
        "1.running_var",
        "1.num_batches_tracked",
        "4.weight",
        "4.bias",
    ]
    assert len(list(m.children())) == 6 and len(list(m.modules())) == 7
    assert isinstance(m[4], nn.Linear) and len(m) == 6
    torch = pytest.importorskip("torch")
    t = torch.nn.Sequential(
        torch.nn.Conv2d(1, 2, 3),
        torch.nn.BatchNorm2d(2),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8, 3),
        torch.nn.Dropout(0.2),
    )
    assert list(t.state_dict()) == list(m.state_dict())
    # and a PyTorch state dict loads into ours
    m.load_state_dict({k: v.numpy() for k, v in t.state_dict().items()})
    np.testing.assert_array_equal(m[0].weight.data, t[0].weight.detach().numpy())


def test_train_eval_propagate():
    m = _model()
    assert m.training and m[1].training
    m.eval()
    assert not m.training and not any(x.training for x in m.modules())
    m.train()
    assert all(x.training for x in m.modules())


def test_gradients_accumulate_until_zero_grad():
    lin = nn.Linear(3, 2)
    x, g = np.ones((4, 3), "float32"), np.ones((4, 2), "float32")
    lin(x)
    lin.backward(g)
    first = lin.weight.grad.copy()
    lin(x)
    lin.backward(g)
    np.testing.assert_allclose(lin.weight.grad, 2 * first)
    lin.zero_grad()
    assert lin.weight.grad is None
    lin(x)
    lin.backward(g)
    lin.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(lin.weight.grad, 0)


def test_double_and_float_cast_parameters_and_buffers_but_not_counters():
    m = _model().double()
    assert all(p.dtype == np.float64 for p in m.parameters())
    assert m[1].running_mean.dtype == np.float64
    assert m[1].num_batches_tracked.dtype == np.int64
    y = m(np.zeros((2, 1, 4, 4)))
    assert y.dtype == np.float64
    m.float()
    assert all(p.dtype == np.float32 for p in m.parameters())


def test_state_dict_round_trip_restores_outputs():
    m1, m2 = _model().eval(), _model().eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype("float32")
    m1[1].running_mean[...] = [0.5, -0.5]
    assert not np.allclose(m1(x), m2(x))
    m2.load_state_dict(m1.state_dict())
    np.testing.assert_array_equal(m1(x), m2(x))


def test_to_moves_between_cpu_backends_and_keeps_values():
    m = _model()
    w = m[0].weight.data.copy()
    m.to("numpy")
    np.testing.assert_array_equal(m[0].weight.data, w)
    with mt.use_backend("numpy"):
        y1 = m.eval()(np.ones((1, 1, 4, 4), "float32"))
    y2 = m(np.ones((1, 1, 4, 4), "float32"))  # numba shares NumPy arrays
    np.testing.assert_array_equal(y1, y2)


def test_repr_reads_like_pytorch():
    text = repr(_model())
    assert "(0): Conv2d(1, 2, kernel_size=(3, 3), stride=(1, 1))" in text
    assert "(5): Dropout(p=0.2)" in text


@pytest.mark.gpu
@pytest.mark.skipif("cupy" not in mt.available_backends(), reason="needs CuPy and a CUDA GPU")
def test_model_moves_to_the_gpu_and_back_with_the_same_numbers():
    m = _model().eval()
    x = np.random.default_rng(0).standard_normal((2, 1, 4, 4)).astype("float32")
    y_cpu = m(x)
    m.to("cupy")
    with mt.use_backend("cupy"):
        y_gpu = m(mt.asarray(x))
        assert type(y_gpu).__module__.startswith("cupy")
        with pytest.raises(TypeError, match="active backend is 'cupy'"):
            m(x)  # a host array on the GPU backend: clear error, no implicit copy
    with pytest.raises(RuntimeError, match=r"model.to\('numba'\)"):
        m(x)  # parameters on the GPU, backend on the CPU
    np.testing.assert_allclose(mt.to_numpy(y_gpu), y_cpu, rtol=1e-5, atol=1e-6)
    m.to("numba")
    np.testing.assert_array_equal(m(x), y_cpu)


def test_sequential_slices_are_sequentials_and_load_state_dict_reports_keys():
    m = _model()
    head = m[:2]
    assert isinstance(head, nn.Sequential) and len(head) == 2 and head[0] is m[0]
    result = nn.Linear(3, 2).load_state_dict(nn.Linear(3, 2).state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    partial = {"weight": np.zeros((2, 3), "float32")}
    result = nn.Linear(3, 2).load_state_dict(partial, strict=False)
    assert result.missing_keys == ["bias"]
