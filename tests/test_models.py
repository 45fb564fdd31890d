"""The three AlexNets: structure, parameter counts, input checks, and whole-model
forward/backward against the same networks written in PyTorch (float64)."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import nn
from minitorch_alexnet.models import (
    PAPER_LRN,
    AlexNet,
    AlexNet2012,
    AlexNetCIFAR,
    build_model,
)
from minitorch_alexnet.shapes import InputShapeError, smallest_input_size

# Scaled-down copies (same layer types and order, fewer channels, a smaller input) so
# that the whole-model comparisons run in well under a second each.
SMALL = {
    "alexnet": dict(num_classes=7, channels=(8, 16, 24, 24, 16), hidden=32, input_size=99),
    "alexnet2012": dict(num_classes=7, channels=(8, 16, 24, 24, 16), hidden=32, input_size=99),
    "alexnet_cifar": dict(num_classes=10),  # the real one: small enough as it is
}
INPUT = {"alexnet": 99, "alexnet2012": 99, "alexnet_cifar": 32}


pytestmark = pytest.mark.usefixtures("numpy_backend")


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------ structure
@pytest.mark.parametrize(
    "name, count",
    [("alexnet", 62_397_480), ("alexnet_cifar", 5_877_834), ("alexnet2012", 60_965_224)],
)
def test_parameter_counts(default_models, name, count):
    assert n_params(default_models[name]) == count


def test_blocks_are_named_sequentials(default_models):
    for model in default_models.values():
        names = [n for n, _ in model.named_children()]
        assert names == ["conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "fc3"]
        assert all(isinstance(m, nn.Sequential) for m in model.children())


def test_alexnet_layers_are_the_blogs(default_models):
    m = default_models["alexnet"]
    kinds = {name: [type(layer).__name__ for layer in block] for name, block in m.named_children()}
    conv_pool = ["Conv2d", "ReLU", "BatchNorm2d", "MaxPool2d", "Dropout"]
    conv = ["Conv2d", "ReLU", "BatchNorm2d"]
    fc = ["Linear", "ReLU", "BatchNorm1d", "Dropout"]
    assert kinds == {
        "conv1": conv_pool, "conv2": conv_pool, "conv3": conv, "conv4": conv,
        "conv5": conv_pool, "fc1": fc, "fc2": fc, "fc3": ["Linear"],
    }  # fmt: skip
    c1 = m.conv1[0]
    assert (c1.in_channels, c1.out_channels, c1.kernel_size, c1.stride, c1.padding) == (
        3, 96, (11, 11), (4, 4), (0, 0)
    )  # fmt: skip
    assert (m.conv2[0].kernel_size, m.conv2[0].padding) == ((5, 5), (2, 2))
    assert [m.fc1[0].in_features, m.fc1[0].out_features] == [9216, 4096]
    assert all(d.p == 0.5 for d in m.modules() if isinstance(d, nn.Dropout))
    assert m.input_size == (3, 227, 227)


def test_alexnet2012_layers_are_the_papers(default_models):
    m = default_models["alexnet2012"]
    groups = [getattr(m, f"conv{i}")[0].groups for i in range(1, 6)]
    assert groups == [1, 2, 1, 2, 2]
    lrns = [(n, x) for n, x in m.named_modules() if isinstance(x, nn.LocalResponseNorm)]
    assert [n for n, _ in lrns] == ["conv1.2", "conv2.2"]
    for _, lrn in lrns:
        assert (lrn.size, lrn.beta, lrn.k) == (5, 0.75, 2.0)
        assert lrn.alpha == pytest.approx(5 * PAPER_LRN["alpha"])
    drops = [n for n, x in m.named_modules() if isinstance(x, nn.Dropout)]
    assert drops == ["fc1.0", "fc2.0"]
    assert [type(x).__name__ for x in m.fc3] == ["Linear"]


def test_alexnet2012_lrn_computes_the_papers_formula():
    """b = a / (k + alpha * sum_{window of n} a^2)^beta with the paper's alpha = 1e-4."""
    m = AlexNet2012(**SMALL["alexnet2012"])
    lrn = m.conv1[2]
    a = np.random.default_rng(1).normal(size=(2, 8, 4, 4)) * 30
    b = mt.to_numpy(lrn(mt.asarray(a)))
    n, alpha, beta, k = (PAPER_LRN[key] for key in ("size", "alpha", "beta", "k"))
    expected = np.empty_like(a)
    for c in range(a.shape[1]):
        lo, hi = max(0, c - n // 2), min(a.shape[1], c + n // 2 + 1)
        expected[:, c] = a[:, c] / (k + alpha * (a[:, lo:hi] ** 2).sum(axis=1)) ** beta
    np.testing.assert_allclose(b, expected, rtol=1e-12)


def test_num_classes_is_used_and_logits_are_not_clipped():
    for name in SMALL:
        kw = dict(SMALL[name], num_classes=5)
        m = build_model(name, **kw).double().eval()
        x = mt.asarray(np.random.default_rng(0).normal(size=(2, 3, INPUT[name], INPUT[name])))
        y = m(x)
        assert y.shape == (2, 5)  # forward returns the logits, one per class
        assert (mt.to_numpy(y) < 0).any(), "logits must be able to go negative (no final ReLU)"


def test_default_num_classes():
    assert AlexNetCIFAR().fc3[0].out_features == 10
    assert AlexNet(**{**SMALL["alexnet"], "num_classes": 1000}).fc3[0].out_features == 1000


def test_backward_before_forward_is_a_clear_error():
    m = AlexNetCIFAR(**SMALL["alexnet_cifar"])
    with pytest.raises(RuntimeError, match="before forward"):
        m.backward(mt.asarray(np.zeros((2, 10), dtype=np.float32)))


# ------------------------------------------------------------------ input checks
def test_too_small_input_names_layer_and_smallest_size(default_models):
    m = default_models["alexnet"]
    x = mt.asarray(np.zeros((1, 3, 64, 64), dtype=np.float32))
    with pytest.raises(ValueError) as info:
        m(x)
    msg = str(info.value)
    assert isinstance(info.value, InputShapeError)
    assert "conv5.3" in msg and "MaxPool2d" in msg  # 64 -> 14 -> 6 -> 6 -> 2 -> ... -> 0
    assert "3x227x227" in msg


def test_too_small_input_names_the_first_empty_layer(default_models):
    with pytest.raises(ValueError, match=r"conv1\.0 .*empty.*3x227x227"):
        default_models["alexnet"].check_input((1, 3, 8, 8))  # 8 < 11: no window position
    with pytest.raises(ValueError, match=r"conv1\.3 .*empty.*3x31x31"):
        default_models["alexnet_cifar"].check_input((1, 3, 2, 2))  # conv1 keeps 2, the pool needs 3


def test_smallest_input_sizes(default_models):
    assert smallest_input_size(default_models["alexnet"]) == 227
    assert smallest_input_size(default_models["alexnet2012"]) == 227
    assert smallest_input_size(default_models["alexnet_cifar"]) == 31
    for model in default_models.values():
        s = smallest_input_size(model)
        model.check_input((1, 3, s, s))
        with pytest.raises(ValueError):
            model.check_input((1, 3, s - 1, s - 1))


def test_wrong_input_size_for_fc1_says_what_works(default_models):
    with pytest.raises(ValueError, match=r"fc1\.0.*9216.*6400.*227x227"):
        default_models["alexnet"].check_input((1, 3, 224, 224))


def test_wrong_channel_count_names_expected(default_models):
    x = mt.asarray(np.zeros((2, 1, 32, 32), dtype=np.float32))
    with pytest.raises(ValueError, match="expects 3 input channels.*got 1"):
        default_models["alexnet_cifar"](x)


def test_missing_batch_dimension(default_models):
    with pytest.raises(ValueError, match=r"x\[None\]"):
        default_models["alexnet_cifar"].check_input((3, 32, 32))


# ------------------------------------------------------------------ against PyTorch
def _randomise_batchnorm(model: nn.Module, rng: np.random.Generator) -> None:
    """Non-trivial gamma, beta and running statistics, so eval mode tests something."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.weight.data = mt.asarray(rng.uniform(0.5, 1.5, c), m.weight.data.dtype)
            m.bias.data = mt.asarray(rng.normal(0, 0.2, c), m.bias.data.dtype)
            m.running_mean[...] = rng.normal(0, 0.2, c)
            m.running_var[...] = rng.uniform(0.5, 2.0, c)


def _rel(a, b) -> float:
    a, b = np.asarray(a), np.asarray(b)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-300))


@pytest.mark.torch
@pytest.mark.parametrize("mode", ["eval", "train"])
@pytest.mark.parametrize("name", ["alexnet_cifar", "alexnet", "alexnet2012"])
def test_forward_backward_match_torch(name, mode):
    torch = pytest.importorskip("torch")
    from minitorch_alexnet.models.torch_reference import build_torch_model, copy_weights_to_torch

    rng = np.random.default_rng(42)
    ours = build_model(name, **SMALL[name]).double()
    _randomise_batchnorm(ours, rng)
    theirs = copy_weights_to_torch(ours, build_torch_model(name, **SMALL[name]))
    assert theirs.conv1[0].weight.dtype == torch.float64
    for model in (ours, theirs):
        model.train(mode == "train")
        for m in model.modules():
            if type(m).__name__ == "Dropout":
                m.p = 0.0  # deterministic, and the same in both

    size = INPUT[name]
    x = rng.normal(size=(3, 3, size, size))
    g = rng.normal(size=(3, SMALL[name]["num_classes"]))

    y = ours(mt.asarray(x))
    dx = ours.backward(mt.asarray(g))
    xt = torch.tensor(x, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.tensor(g))

    assert _rel(mt.to_numpy(y), yt.detach().numpy()) <= 1e-8
    assert _rel(mt.to_numpy(dx), xt.grad.numpy()) <= 1e-8
    theirs_params = dict(theirs.named_parameters())
    ours_params = dict(ours.named_parameters())
    assert ours_params.keys() == theirs_params.keys()
    for key, p in ours_params.items():
        assert _rel(mt.to_numpy(p.grad), theirs_params[key].grad.numpy()) <= 1e-8, key
    # running statistics move identically in training (and stay put in evaluation)
    theirs_state = theirs.state_dict()
    for key, value in ours.state_dict().items():
        if "running" in key or "num_batches" in key:
            np.testing.assert_allclose(
                mt.to_numpy(value), theirs_state[key].numpy(), rtol=1e-10, err_msg=key
            )


@pytest.mark.torch
def test_default_models_line_up_with_torch_key_for_key(default_models):
    pytest.importorskip("torch")
    from minitorch_alexnet.models.torch_reference import build_torch_model

    for name, ours in default_models.items():
        theirs = build_torch_model(name)
        ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
        theirs_shapes = {k: tuple(v.shape) for k, v in theirs.state_dict().items()}
        assert ours_shapes == theirs_shapes, name


@pytest.mark.torch
def test_copy_weights_from_torch_round_trip():
    pytest.importorskip("torch")
    from minitorch_alexnet.models.torch_reference import (
        build_torch_model,
        copy_weights_from_torch,
    )

    theirs = build_torch_model("alexnet2012", **SMALL["alexnet2012"])
    ours = copy_weights_from_torch(theirs, AlexNet2012(**SMALL["alexnet2012"]))
    np.testing.assert_array_equal(
        mt.to_numpy(ours.conv2[0].weight.data), theirs.conv2[0].weight.detach().numpy()
    )


# ------------------------------------------------------------------ gradcheck
def test_gradcheck_tiny_alexnet_cifar():
    gc = pytest.importorskip("minitorch_alexnet.gradcheck")
    # 15x15 is the smallest input the conv blocks take (15 -> 7 -> 3 -> 1); one input
    # channel and two filters a layer keep the number of finite differences small.
    model = AlexNetCIFAR(
        num_classes=3, in_channels=1, channels=(2, 2, 2, 2, 2), hidden=3, input_size=15
    )
    model.train()  # batch statistics and dropout (gradcheck fixes the mask)
    x = np.random.default_rng(3).normal(size=(2, 1, 15, 15))
    result = gc.gradcheck(model, x, eps=1e-6, atol=1e-6, rtol=1e-4, seed=0)
    assert result.ok, result.report()


# ------------------------------------------------------------------ input_grad=False
@pytest.mark.parametrize("name", ["alexnet", "alexnet_cifar"])
def test_backward_without_input_grad_gives_the_same_parameter_grads(name):
    """``input_grad=False`` skips only dL/dx: every parameter gets the same gradient."""
    rng = np.random.default_rng(7)
    model = build_model(name, **SMALL[name]).double()
    for m in model.modules():
        if type(m).__name__ == "Dropout":
            m.p = 0.0  # the two passes must see the same network
    x = mt.asarray(rng.normal(size=(2, 3, INPUT[name], INPUT[name])))
    g = mt.asarray(rng.normal(size=(2, SMALL[name]["num_classes"])))
    grads = []
    for input_grad in (True, False):
        model.zero_grad()
        model(x)
        dx = model.backward(g, input_grad=input_grad)
        assert (dx is None) == (not input_grad)
        grads.append({k: mt.to_numpy(p.grad).copy() for k, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:
        np.testing.assert_array_equal(grads[0][k], grads[1][k], err_msg=k)


def test_sequential_input_grad_false_with_a_first_layer_that_cannot_skip():
    """A first child whose backward has no ``input_grad`` (a layer written before the
    keyword existed) still runs, and returns dx; a built-in one returns None."""

    class OldReLU(nn.ReLU):
        def backward(self, grad_out):
            return grad_out * self.saved(grad_out)["positive"]

    seq = nn.Sequential(OldReLU(), nn.Linear(3, 2)).double()
    x = mt.asarray(np.array([[1.0, -2.0, 3.0]]))
    seq(x)
    dx = seq.backward(mt.asarray(np.ones((1, 2))), input_grad=False)
    assert dx.shape == (1, 3) and dx[0, 1] == 0.0  # ReLU's gradient is 0 where x < 0
    seq1 = nn.Sequential(nn.ReLU(), nn.Linear(3, 2)).double()
    seq1(x)
    assert seq1.backward(mt.asarray(np.ones((1, 2))), input_grad=False) is None
    assert seq1[1].weight.grad is not None
    seq2 = nn.Sequential(nn.Linear(3, 2), nn.ReLU()).double()
    seq2(x)
    assert seq2.backward(mt.asarray(np.ones((1, 2))), input_grad=False) is None
