"""Per-layer properties, over Hypothesis-generated configurations:

(a) gradcheck passes (finite differences, random upstream gradient, float64);
(c) forward and backward equal PyTorch's in float64 (when torch is importable);
(d) output sizes follow out = floor((W - K + 2P) / S) + 1.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from oracle import compare_with_torch
from strategies import away_from_zero, batch_shapes, conv_cases, normal, pool_cases, seeds, tie_free

import minitorch_alexnet as mt
from minitorch_alexnet import nn

ORACLE_TOL = 1e-8  # float64 agreement with PyTorch


def _conv(case) -> nn.Conv2d:
    return nn.Conv2d(
        case.C, case.O, case.kernel, (case.sh, case.sw), (case.ph, case.pw),
        groups=case.groups, bias=case.bias,
    )  # fmt: skip


def _pool(case) -> nn.MaxPool2d:
    return nn.MaxPool2d(case.kernel, (case.sh, case.sw), (case.ph, case.pw))


def _assert_gradcheck(layer, *inputs):
    result = mt.gradcheck(layer, *inputs)
    assert result.ok, result.report()
    return result


def _assert_torch(layer, x):
    errs = compare_with_torch(layer, x)
    bad = {k: v for k, v in errs.items() if not v <= ORACLE_TOL}
    assert not bad, f"differs from PyTorch: {bad}"


# ----------------------------------------------------------------- Conv2d
@settings(max_examples=15)
@given(case=conv_cases(max_hw=6, max_k=3, max_channels=2), seed=seeds)
def test_conv2d_gradcheck(case, seed):
    _assert_gradcheck(_conv(case), normal(seed, case.x_shape))


@given(case=conv_cases(), seed=seeds)
def test_conv2d_matches_torch(case, seed):
    _assert_torch(_conv(case), normal(seed, case.x_shape))


@given(case=conv_cases(), seed=seeds)
def test_conv2d_matches_naive_loops(case, seed):
    from minitorch_alexnet.testing.naive import conv2d_naive

    conv = _conv(case).double()
    x = normal(seed, case.x_shape)
    b = None if conv.bias is None else conv.bias.data
    expected = conv2d_naive(
        x, conv.weight.data, b, (case.sh, case.sw), (case.ph, case.pw), case.groups
    )
    np.testing.assert_allclose(conv(x), expected, rtol=1e-12, atol=1e-12)


@given(case=conv_cases())
def test_conv2d_output_size(case):
    y = _conv(case)(np.zeros(case.x_shape, dtype="float32"))
    Ho = (case.H - case.kh + 2 * case.ph) // case.sh + 1
    Wo = (case.W - case.kw + 2 * case.pw) // case.sw + 1
    assert y.shape == (case.N, case.O, Ho, Wo)


# ----------------------------------------------------------------- MaxPool2d
@settings(max_examples=15)
@given(case=pool_cases(max_hw=6), seed=seeds)
def test_maxpool_gradcheck(case, seed):
    _assert_gradcheck(_pool(case), tie_free(seed, case.x_shape))


@given(case=pool_cases(), seed=seeds)
def test_maxpool_matches_torch(case, seed):
    _assert_torch(_pool(case), tie_free(seed, case.x_shape))


@given(case=pool_cases(), seed=seeds)
def test_maxpool_matches_naive_loops(case, seed):
    from minitorch_alexnet.testing.naive import maxpool2d_naive

    x = tie_free(seed, case.x_shape)
    np.testing.assert_array_equal(
        _pool(case)(x), maxpool2d_naive(x, case.kernel, (case.sh, case.sw), (case.ph, case.pw))
    )


@given(case=pool_cases())
def test_maxpool_output_size(case):
    y = _pool(case)(np.zeros(case.x_shape, dtype="float32"))
    Ho = (case.H - case.kh + 2 * case.ph) // case.sh + 1
    Wo = (case.W - case.kw + 2 * case.pw) // case.sw + 1
    assert y.shape == (case.N, case.C, Ho, Wo)


def test_overlapping_pool_routes_gradient_to_shared_winner():
    # 3x3 windows with stride 2 overlap on the middle column/row; the global max
    # sits there and wins all four windows, so it collects all four gradients.
    x = np.zeros((1, 1, 5, 5))
    x[0, 0, 2, 2] = 10.0
    pool = nn.MaxPool2d(3, 2)
    y = pool(x)
    assert y.shape == (1, 1, 2, 2) and (y == 10).all()
    dx = pool.backward(np.array([[[[1.0, 2.0], [3.0, 4.0]]]]))
    assert dx[0, 0, 2, 2] == 10.0 and dx.sum() == 10.0


# ----------------------------------------------------------------- BatchNorm
bn_cases = st.tuples(st.sampled_from([2, 3, 4]), st.booleans(), seeds, st.booleans())


@settings(max_examples=12)
@given(shape=batch_shapes(4, min_batch=2), seed=seeds, train=st.booleans())
def test_batchnorm2d_gradcheck(shape, seed, train):
    bn = nn.BatchNorm2d(shape[1]).train(train)
    _randomise(bn, seed)
    _assert_gradcheck(bn, normal(seed, shape))


@settings(max_examples=12)
@given(ndim=st.sampled_from([2, 3]), data=st.data(), seed=seeds, train=st.booleans())
def test_batchnorm1d_gradcheck(ndim, data, seed, train):
    shape = data.draw(batch_shapes(ndim, min_batch=2))
    bn = nn.BatchNorm1d(shape[1]).train(train)
    _randomise(bn, seed)
    _assert_gradcheck(bn, normal(seed, shape))


@given(shape=batch_shapes(4, min_batch=2), seed=seeds, train=st.booleans())
def test_batchnorm2d_matches_torch_including_running_stats(shape, seed, train):
    bn = nn.BatchNorm2d(shape[1]).train(train)
    _randomise(bn, seed)
    _assert_torch(bn, normal(seed, shape) * 3 + 1)


@given(ndim=st.sampled_from([2, 3]), data=st.data(), seed=seeds, train=st.booleans())
def test_batchnorm1d_matches_torch_including_running_stats(ndim, data, seed, train):
    shape = data.draw(batch_shapes(ndim, min_batch=2))
    bn = nn.BatchNorm1d(shape[1]).train(train)
    _randomise(bn, seed)
    _assert_torch(bn, normal(seed, shape) * 2 - 1)


def test_batchnorm_running_stats_follow_pytorch_over_steps():
    torch = pytest.importorskip("torch")
    bn, tbn = (
        nn.BatchNorm2d(3, momentum=0.3).double(),
        torch.nn.BatchNorm2d(3, momentum=0.3).double(),
    )
    for step in range(4):
        x = normal(step, (4, 3, 2, 2)) * (step + 1) + step
        bn(x)
        tbn(torch.from_numpy(x))
    np.testing.assert_allclose(bn.running_mean, tbn.running_mean.numpy(), rtol=1e-12)
    np.testing.assert_allclose(bn.running_var, tbn.running_var.numpy(), rtol=1e-12)
    assert int(bn.num_batches_tracked) == 4
    bn.eval(), tbn.eval()
    x = normal(9, (2, 3, 2, 2))
    np.testing.assert_allclose(bn(x), tbn(torch.from_numpy(x)).detach().numpy(), rtol=1e-10)


def _randomise(bn, seed):
    """Non-trivial gamma, beta and running statistics, so eval-mode checks mean something."""
    rng = np.random.default_rng(seed)
    C = bn.num_features
    bn.weight.data = rng.uniform(0.5, 1.5, C).astype("float32")
    bn.bias.data = rng.standard_normal(C).astype("float32")
    bn.running_mean[...] = rng.standard_normal(C)
    bn.running_var[...] = rng.uniform(0.5, 2.0, C)


# ----------------------------------------------------------------- ReLU, Linear, Flatten
@settings(max_examples=15)
@given(shape=batch_shapes(4), seed=seeds)
def test_relu_gradcheck_and_torch(shape, seed):
    x = away_from_zero(seed, shape)
    _assert_gradcheck(nn.ReLU(), x)
    _assert_torch(nn.ReLU(), x)


@settings(max_examples=15)
@given(
    n=st.integers(1, 4),
    fin=st.integers(1, 6),
    fout=st.integers(1, 5),
    bias=st.booleans(),
    seed=seeds,
)
def test_linear_gradcheck_and_torch(n, fin, fout, bias, seed):
    _assert_gradcheck(nn.Linear(fin, fout, bias=bias), normal(seed, (n, fin)))
    _assert_torch(nn.Linear(fin, fout, bias=bias), normal(seed, (n, fin)))


@given(shape=batch_shapes(4), seed=seeds)
def test_flatten_gradcheck_and_torch(shape, seed):
    _assert_gradcheck(nn.Flatten(), normal(seed, shape))
    _assert_torch(nn.Flatten(), normal(seed, shape))


# ----------------------------------------------------------------- LocalResponseNorm
@settings(max_examples=15)
@given(
    shape=batch_shapes(4),
    size=st.integers(1, 6),
    alpha=st.floats(1e-4, 1.0),
    beta=st.floats(0.1, 1.5),
    k=st.floats(0.5, 3.0),
    seed=seeds,
)
def test_lrn_gradcheck_and_torch(shape, size, alpha, beta, k, seed):
    x = normal(seed, shape) * 2
    _assert_gradcheck(nn.LocalResponseNorm(size, alpha, beta, k), x)
    _assert_torch(nn.LocalResponseNorm(size, alpha, beta, k), x)


# ----------------------------------------------------------------- Dropout
@settings(max_examples=15)
@given(shape=batch_shapes(3), p=st.floats(0.0, 0.9), seed=seeds)
def test_dropout_gradcheck_in_train_mode(shape, p, seed):
    _assert_gradcheck(nn.Dropout(p), normal(seed, shape))


def test_dropout_statistics_and_eval_identity():
    d = nn.Dropout(0.25)
    x = np.ones((200, 500), dtype="float32")
    y = d(x)
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.01  # 100 000 draws: 0.01 is ~ 9 standard deviations
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)  # inverted scaling
    np.testing.assert_array_equal(d.backward(x), y)  # the same mask scales the gradient
    d.eval()
    assert d(x) is x


# ----------------------------------------------------------------- CrossEntropyLoss
@given(n=st.integers(1, 5), k=st.integers(2, 6), seed=seeds, smoothing=st.sampled_from([0.0, 0.1]))
def test_cross_entropy_gradcheck_and_torch(n, k, seed, smoothing):
    torch = pytest.importorskip("torch")
    z = normal(seed, (n, k)) * 3
    t = np.random.default_rng(seed).integers(0, k, n)
    crit = nn.CrossEntropyLoss(label_smoothing=smoothing)
    _assert_gradcheck(crit, z, t)
    loss = crit(z, t)
    tz = torch.tensor(z, requires_grad=True)
    tl = torch.nn.functional.cross_entropy(tz, torch.from_numpy(t), label_smoothing=smoothing)
    tl.backward()
    assert abs(float(loss) - tl.item()) <= ORACLE_TOL * max(1, abs(tl.item()))
    np.testing.assert_allclose(crit.backward(), tz.grad.numpy(), rtol=ORACLE_TOL, atol=1e-15)


def test_cross_entropy_is_stable_for_huge_logits():
    z = np.array([[1000.0, 0.0], [0.0, -1000.0]])
    crit = nn.CrossEntropyLoss()
    loss = crit(z, np.array([0, 0]))
    assert np.isfinite(loss) and abs(loss) < 1e-12
    assert np.isfinite(crit.backward()).all()


# ----------------------------------------------------------------- a whole small model
def test_gradcheck_whole_small_model_in_train_mode():
    mt.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),
        nn.ReLU(),
        nn.BatchNorm2d(4),
        nn.MaxPool2d(3, 2),
        nn.LocalResponseNorm(3, 1e-2, 0.75, 2.0),
        nn.Dropout(0.3),
        nn.Flatten(),
        nn.Linear(36, 5),
        nn.BatchNorm1d(5),
        nn.ReLU(),
        nn.Linear(5, 3),
    )
    _assert_gradcheck(model, normal(0, (3, 3, 7, 7)))


def test_conv_backward_is_the_same_with_kept_or_recomputed_columns(monkeypatch):
    """The Numba backend keeps im2col's columns from forward for backward, or redoes
    them there (``backend/numba/conv.py``, ``KEEP_COLUMNS``): the same gradients."""
    from minitorch_alexnet.backend.numba import conv as numba_conv

    mt.set_backend("numba")
    redone = []  # the weight gradients taken from redone columns
    real = numba_conv.patches_weight_grad
    monkeypatch.setattr(numba_conv, "patches_weight_grad", lambda *a: redone.append(1) or real(*a))
    results = []
    for keep in (True, False):
        monkeypatch.setattr(numba_conv, "KEEP_COLUMNS", keep)
        mt.manual_seed(1)
        conv = nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2)
        x = normal(0, (2, 4, 7, 7), "float32")
        y = conv(x)
        dx = conv.backward(normal(1, y.shape, "float32"))
        results.append((dx, conv.weight.grad, conv.bias.grad))
        assert len(redone) == (0 if keep else 1)  # the flag chose the path
    # the same sums either way; the Numba backend redoes the columns in another layout
    # (channels last), whose product BLAS may round differently: equal to rounding
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5 * np.abs(b).max())


def test_lrn_is_accurate_in_float32_with_many_channels():
    torch = pytest.importorskip("torch")
    x = normal(3, (2, 256, 3, 3)) * 1000
    lrn = nn.LocalResponseNorm(5, 1e-4, 0.75, 1e-3)
    y = lrn(x.astype("float32"))
    ref = torch.nn.functional.local_response_norm(torch.from_numpy(x), 5, 1e-4, 0.75, 1e-3)
    np.testing.assert_allclose(y, ref.numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- the extension API
def _layer_cases():
    """(layer, forward inputs) for every built-in layer, small and in float64."""
    x4 = normal(1, (2, 4, 5, 5))
    return [
        (nn.Conv2d(4, 3, 3, padding=1), (x4,)),
        (nn.Linear(6, 3), (normal(2, (2, 6)),)),
        (nn.BatchNorm2d(4), (x4,)),
        (nn.BatchNorm2d(4, affine=False), (x4,)),
        (nn.BatchNorm1d(6), (normal(3, (4, 6)),)),
        (nn.ReLU(), (x4,)),
        (nn.MaxPool2d(3, stride=2), (x4,)),
        (nn.Dropout(0.5), (x4,)),
        (nn.Flatten(), (x4,)),
        (nn.LocalResponseNorm(3), (x4,)),
        (nn.CrossEntropyLoss(), (normal(4, (3, 5)), np.array([0, 4, 2]))),
        (nn.AvgPool2d(3, 2, 1, ceil_mode=True), (x4,)),
        (nn.AdaptiveAvgPool2d((2, 3)), (x4,)),
        (nn.AdaptiveMaxPool2d(2), (x4,)),
        (nn.Softmax(1), (x4,)),
        (nn.LogSoftmax(-1), (x4,)),
        (nn.NLLLoss(), (normal(5, (3, 5)), np.array([1, 0, 4]))),
        (nn.Sequential(nn.Conv2d(4, 2, 3), nn.ReLU(), nn.Flatten(), nn.Linear(18, 2)), (x4,)),
        (nn.Sequential(), (x4,)),
    ]


def test_every_layer_takes_input_grad_as_a_keyword():
    """backward(grad_out, *, input_grad=True) on the base, every layer and every model."""
    import inspect

    from minitorch_alexnet.models import AlexNet, AlexNet2012, AlexNetCIFAR

    classes = {nn.Module, AlexNet, AlexNet2012, AlexNetCIFAR}
    classes |= {type(layer) for layer, _ in _layer_cases()}
    for cls in classes:
        p = inspect.signature(cls.backward).parameters.get("input_grad")
        assert p is not None and p.kind is p.KEYWORD_ONLY and p.default is True, cls.__name__
    with pytest.raises(TypeError):
        nn.Linear(2, 2).backward(None, False)  # positional: refused


@pytest.mark.parametrize("case", range(len(_layer_cases())))
def test_input_grad_false_returns_none_and_the_same_parameter_grads(case):
    layer, inputs = _layer_cases()[case]
    layer = layer.double()
    inputs = tuple(mt.asarray(a) for a in inputs)
    grads = []
    for input_grad in (True, False):
        layer.zero_grad()
        mt.manual_seed(0)  # Dropout: the same mask both times
        y = layer(*inputs)
        g = mt.asarray(np.ones(y.shape)) if y.ndim else 1.0
        dx = layer.backward(g, input_grad=input_grad)
        assert (dx is None) == (not input_grad), type(layer).__name__
        grads.append({k: mt.to_numpy(p.grad) for k, p in layer.named_parameters()})
        if not isinstance(layer, nn.Sequential) or len(layer):  # an empty one keeps nothing
            with pytest.raises(RuntimeError, match="before forward"):
                layer.backward(g, input_grad=input_grad)  # handed over either way
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        np.testing.assert_array_equal(grads[0][k], grads[1][k], err_msg=k)


def test_save_for_backward_and_its_old_names():
    """The public names, and the underscore ones kept as aliases for a release."""

    class Square(nn.Module):
        def __init__(self, old: bool):
            super().__init__()
            self.old = old

        def forward(self, x):
            save = self._save_for_backward if self.old else self.save_for_backward
            save({"x": x}, two=2.0)  # a context dict, positional, and names
            return x * x

        def backward(self, grad_out, *, input_grad=True):
            s = self._saved(grad_out) if self.old else self.saved(grad_out)
            return grad_out * s["two"] * s["x"] if input_grad else None

    x = normal(0, (3, 4))
    for old in (False, True):
        _assert_gradcheck(Square(old), x)
    for name in ("_save_for_backward", "_saved"):
        assert "alias" in getattr(nn.Module, name).__doc__
    layer = Square(False)
    with nn.no_grad():
        layer(x)
    with pytest.raises(RuntimeError, match="no_grad"):
        layer.backward(np.ones_like(x))
