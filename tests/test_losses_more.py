"""Softmax, LogSoftmax, NLLLoss, CrossEntropyLoss's PyTorch arguments and Flatten's end_dim.

(a) PyTorch's numbers in float64, forward and backward (relative error <= 1e-8), for every
combination of class weights, ignore_index present in the targets, each reduction, label
smoothing and K-dimensional inputs, on the numpy and numba backends;
(b) finite-difference gradient checks over Hypothesis configurations;
(c) empty batches, float16/32/64 and the argument errors, as PyTorch has them.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from oracle import rel_err
from strategies import normal

import minitorch_alexnet as mt
from minitorch_alexnet import nn

ORACLE_TOL = 1e-8
BACKENDS = ["numpy", "numba"]
REDUCTIONS = ["none", "mean", "sum"]
IGNORE = 2  # an ignore_index that is also a class, so the targets can hold it


def _case(seed: int, n: int, k: int, extra: tuple[int, ...], ignore: bool):
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, k, *extra)) * 3
    t = rng.integers(0, k, (n, *extra))
    if ignore and t.size:
        t.flat[:: max(1, t.size // 2)] = IGNORE  # at least one ignored element
    w = rng.uniform(0.2, 2.0, k)
    return z, t, w


def _torch_loss(cls: str, z, t, w, ignore: bool, reduction: str, smoothing: float, g):
    """PyTorch's loss and input gradient, in float64."""
    torch = pytest.importorskip("torch")
    tz = torch.tensor(z, requires_grad=True)
    kw = {"reduction": reduction, "ignore_index": IGNORE if ignore else -100}
    kw["weight"] = None if w is None else torch.from_numpy(w)
    if cls == "CrossEntropyLoss":
        crit = torch.nn.CrossEntropyLoss(label_smoothing=smoothing, **kw)
    else:
        crit = torch.nn.NLLLoss(**kw)
    loss = crit(tz, torch.from_numpy(t))
    loss.backward(torch.from_numpy(np.asarray(g, dtype=np.float64)))
    return loss.detach().numpy(), tz.grad.numpy()


def _ours(cls: str, z, t, w, ignore: bool, reduction: str, smoothing: float, g):
    kw = {"reduction": reduction, "ignore_index": IGNORE if ignore else -100}
    kw["weight"] = None if w is None else mt.asarray(w, "float64")
    if cls == "CrossEntropyLoss":
        crit = nn.CrossEntropyLoss(label_smoothing=smoothing, **kw)
    else:
        crit = nn.NLLLoss(**kw)
    loss = crit(mt.asarray(z, "float64"), mt.asarray(t, "int64"))
    grad = crit.backward(mt.asarray(np.asarray(g, dtype=np.float64)))
    return mt.to_numpy(loss), mt.to_numpy(grad), crit


def _assert_close(ours, theirs):
    ours, theirs = np.asarray(ours), np.asarray(theirs)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))
    finite = ~np.isnan(theirs)
    assert rel_err(ours[finite], theirs[finite]) <= ORACLE_TOL


def _check_against_torch(cls, backend, seed, n, k, extra, weighted, ignore, reduction, eps):
    mt.set_backend(backend)
    z, t, w = _case(seed, n, k, extra, ignore)
    if cls == "NLLLoss":
        z = z - np.log(np.exp(z).sum(axis=1, keepdims=True))  # log-probabilities
    w = w if weighted else None
    shape = (n, *extra) if reduction == "none" else ()
    g = np.random.default_rng(seed + 1).standard_normal(shape)
    loss, grad, crit = _ours(cls, z, t, w, ignore, reduction, eps, g)
    t_loss, t_grad = _torch_loss(cls, z, t, w, ignore, reduction, eps, g)
    _assert_close(loss, t_loss)
    _assert_close(grad, t_grad)
    return crit, z, t


COMBOS = list(itertools.product([False, True], [False, True], REDUCTIONS, [0.0, 0.2]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("extra", [(), (3,), (2, 3)], ids=["NC", "NCd", "NCdd"])
@pytest.mark.parametrize(("weighted", "ignore", "reduction", "eps"), COMBOS)
def test_cross_entropy_every_combination_matches_torch(
    backend, extra, weighted, ignore, reduction, eps
):
    crit, z, t = _check_against_torch(
        "CrossEntropyLoss", backend, 3, 4, 5, extra, weighted, ignore, reduction, eps
    )
    upstream = None if reduction != "none" else np.ones(t.shape)
    result = mt.gradcheck(crit, z, t, upstream=upstream)
    assert result.ok, result.report()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("extra", [(), (3,)], ids=["NC", "NCd"])
@pytest.mark.parametrize(("weighted", "ignore", "reduction"), list(itertools.product(
    [False, True], [False, True], REDUCTIONS)))  # fmt: skip
def test_nll_every_combination_matches_torch(backend, extra, weighted, ignore, reduction):
    crit, z, t = _check_against_torch(
        "NLLLoss", backend, 5, 4, 5, extra, weighted, ignore, reduction, 0.0
    )
    assert mt.gradcheck(crit, z, t).ok


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    seed=st.integers(0, 2**16),
    n=st.integers(0, 4),
    k=st.integers(1, 5),
    extra=st.lists(st.integers(1, 3), max_size=2).map(tuple),
    weighted=st.booleans(),
    ignore=st.booleans(),
    reduction=st.sampled_from(REDUCTIONS),
    eps=st.sampled_from([0.0, 0.1, 0.5]),
    cls=st.sampled_from(["CrossEntropyLoss", "NLLLoss"]),
)
def test_losses_match_torch_property(
    backend, seed, n, k, extra, weighted, ignore, reduction, eps, cls
):
    """Empty batches, all targets ignored (a nan mean, as in torch) and one class too."""
    ignore = ignore and k > IGNORE
    eps = eps if cls == "CrossEntropyLoss" else 0.0
    crit, z, t = _check_against_torch(
        cls, backend, seed, n, k, extra, weighted, ignore, reduction, eps
    )
    if n and np.isfinite(mt.to_numpy(crit(mt.asarray(z), mt.asarray(t)))).all():
        result = mt.gradcheck(crit, z, t)
        assert result.ok, result.report()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cls", [nn.Softmax, nn.LogSoftmax])
@given(
    seed=st.integers(0, 2**16),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4).map(tuple),
    data=st.data(),
)
def test_softmax_matches_torch_and_gradcheck(backend, cls, seed, shape, data):
    torch = pytest.importorskip("torch")
    mt.set_backend(backend)
    dim = data.draw(st.integers(-len(shape), len(shape) - 1))
    rng = np.random.default_rng(seed)
    x, g = rng.standard_normal(shape) * 5, rng.standard_normal(shape)
    layer = cls(dim)
    y = mt.to_numpy(layer(mt.asarray(x, "float64")))
    dx = mt.to_numpy(layer.backward(mt.asarray(g)))
    tx = torch.tensor(x, requires_grad=True)
    ty = getattr(torch.nn, cls.__name__)(dim)(tx)
    ty.backward(torch.from_numpy(g))
    _assert_close(y, ty.detach().numpy())
    _assert_close(dx, tx.grad.numpy())
    if x.size:
        assert mt.gradcheck(cls(dim), x).ok


def test_softmax_is_stable_and_sums_to_one():
    x = mt.asarray(np.array([[1000.0, 0.0, -1000.0]]), "float64")
    p = mt.to_numpy(nn.Softmax(1)(x))
    assert np.isfinite(p).all() and abs(p.sum() - 1) < 1e-15
    assert np.isfinite(mt.to_numpy(nn.LogSoftmax(1)(x))).all()


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_dtypes_are_kept(dtype):
    z, t, w = _case(0, 4, 5, (2,), True)
    for layer, args in [
        (nn.Softmax(1), (z,)),
        (nn.LogSoftmax(-1), (z,)),
        (nn.CrossEntropyLoss(mt.asarray(w, dtype), IGNORE, label_smoothing=0.1), (z, t)),
        (nn.NLLLoss(reduction="none"), (z, t)),
    ]:
        out = layer(mt.asarray(args[0], dtype), *args[1:])
        grad = layer.backward(mt.asarray(np.ones(out.shape), dtype))
        assert out.dtype == dtype and grad.dtype == dtype and grad.shape == z.shape
        assert np.isfinite(mt.to_numpy(grad)).all()


def test_empty_batch_gives_torchs_answers():
    z, t = mt.asarray(np.zeros((0, 3))), mt.asarray(np.zeros(0, "int64"))
    assert np.isnan(float(nn.CrossEntropyLoss()(z, t)))
    assert float(nn.CrossEntropyLoss(reduction="sum")(z, t)) == 0.0
    crit = nn.CrossEntropyLoss(reduction="none")
    assert crit(z, t).shape == (0,)
    assert crit.backward(mt.asarray(np.zeros(0))).shape == (0, 3)


def test_arguments_are_checked_as_in_torch():
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.CrossEntropyLoss(reduction="avg")
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.NLLLoss(reduction="elementwise")
    with pytest.raises(TypeError, match="ignore_index must be an int"):
        nn.NLLLoss(ignore_index=1.5)
    with pytest.raises(TypeError, match="weight must be a 1-D array"):
        nn.CrossEntropyLoss(weight=[1.0, 2.0])
    with pytest.raises(ValueError, match="label_smoothing"):
        nn.CrossEntropyLoss(label_smoothing=-0.1)
    with pytest.raises(TypeError, match="dim must be an int"):
        nn.Softmax(1.0)
    z = mt.asarray(np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"one entry per class \(3\)"):
        nn.CrossEntropyLoss(weight=mt.asarray(np.ones(4)))(z, mt.asarray(np.array([0, 1])))
    with pytest.raises(IndexError, match=r"targets must lie in \[0, 3\)"):
        nn.NLLLoss()(z, mt.asarray(np.array([0, 3])))
    with pytest.raises(ValueError, match=r"targets must have shape \(2, 4\)"):
        nn.CrossEntropyLoss()(mt.asarray(np.zeros((2, 3, 4))), mt.asarray(np.zeros(2, "int64")))
    with pytest.raises(IndexError, match="dim 2 is out of range"):
        nn.LogSoftmax(2)(z)
    with pytest.warns(UserWarning, match="pass dim explicitly"):
        assert nn.Softmax()(z).shape == (2, 3)
    crit = nn.CrossEntropyLoss(reduction="none")
    crit(z, mt.asarray(np.array([0, 1])))
    with pytest.raises(ValueError):
        crit.backward(mt.asarray(np.ones(3)))  # grad_out must have the loss's shape


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3, 1.0])
def test_one_unbatched_example_matches_torch(backend, reduction, smoothing):
    """PyTorch's unbatched form: logits (C,) and a 0-d target; the loss is 0-d."""
    torch = pytest.importorskip("torch")
    z, w = normal(7, (5,)), np.arange(1.0, 6.0)
    pairs = [
        (nn.CrossEntropyLoss, torch.nn.CrossEntropyLoss, dict(label_smoothing=smoothing), z),
        (nn.NLLLoss, torch.nn.NLLLoss, {}, z - np.log(np.exp(z).sum())),
    ]
    for ours, theirs, extra, x in pairs:
        tx = torch.tensor(x, requires_grad=True)
        tl = theirs(torch.from_numpy(w), reduction=reduction, **extra)(tx, torch.tensor(2))
        tl.backward(torch.tensor(1.5, dtype=torch.float64))
        with mt.use_backend(backend):
            crit = ours(mt.asarray(w), reduction=reduction, **extra)
            loss = crit(mt.asarray(x), mt.asarray(np.array(2)))
            dx = crit.backward(mt.asarray(np.array(1.5)) if reduction == "none" else 1.5)
        assert loss.shape == () and dx.shape == (5,)
        assert rel_err(mt.to_numpy(loss), tl.detach().numpy()) <= 1e-12
        assert rel_err(mt.to_numpy(dx), tx.grad.numpy()) <= 1e-12
    with pytest.raises(ValueError, match=r"or \(num_classes,\) with a 0-d target"):
        nn.CrossEntropyLoss()(mt.asarray(z), mt.asarray(np.array([2])))


def test_ignored_targets_may_be_out_of_range():
    z = mt.asarray(np.random.default_rng(0).standard_normal((3, 4)))
    t = mt.asarray(np.array([0, -100, 3]))
    a = float(nn.CrossEntropyLoss()(z, t))
    b = float(nn.CrossEntropyLoss()(z[[0, 2]], t[[0, 2]]))
    assert a == pytest.approx(b, rel=1e-15)


@pytest.mark.parametrize(
    ("start", "end"), [(1, -1), (0, -1), (1, 2), (-3, -2), (2, 2), (0, 0), (3, -1)]
)
def test_flatten_end_dim_matches_torch(start, end):
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5))
    layer = nn.Flatten(start, end)
    y = layer(mt.asarray(x))
    want = torch.nn.Flatten(start, end)(torch.from_numpy(x)).numpy()
    np.testing.assert_array_equal(mt.to_numpy(y), want)
    np.testing.assert_array_equal(mt.to_numpy(layer.backward(y)), x)
    assert layer.output_shape(x.shape) == want.shape
    assert mt.gradcheck(nn.Flatten(start, end), x).ok


def test_flatten_end_dim_errors():
    x = mt.asarray(np.zeros((2, 3, 4)))
    with pytest.raises(IndexError, match="end_dim 3 is out of range"):
        nn.Flatten(1, 3)(x)
    with pytest.raises(ValueError, match="start_dim cannot come after end_dim"):
        nn.Flatten(2, 1)(x)
    with pytest.raises(TypeError, match="end_dim must be an int"):
        nn.Flatten(1, "2")
    assert nn.Flatten(0, 1).shape_rule((2, 3, 4), (6, 4)) == "2*3 = 6"
