"""(e) gradcheck must *fail* on broken backward passes, and say where."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from strategies import batch_shapes, normal, seeds

import minitorch_alexnet as mt
from minitorch_alexnet import nn
from minitorch_alexnet.gradcheck import LayerBuildError
from minitorch_alexnet.nn.conv import conv2d_backward


class ConvForgetsBias(nn.Conv2d):
    """dL/db never accumulated."""

    def backward(self, grad_out):
        bias, self.bias = self.bias, None
        try:
            return super().backward(grad_out)
        finally:
            self.bias = bias


class ConvWrongFlip(nn.Conv2d):
    """dx computed with a spatially flipped kernel (a classic confusion with true convolution)."""

    def backward(self, grad_out):
        ctx = self._saved(grad_out)
        flipped = np.ascontiguousarray(ctx["weight"][:, :, ::-1, ::-1])
        dx, dw, db = conv2d_backward(grad_out, {**ctx, "weight": flipped})
        self.weight.accumulate_grad(dw)
        self.bias.accumulate_grad(db)
        return dx


class BatchNormNoMeanTerms(nn.BatchNorm2d):
    """dx = dy * gamma / std: forgets that the batch mean and variance depend on x."""

    def backward(self, grad_out):
        s = self._saved()
        scale = (self.weight.data * s["inv_std"])[None, :, None, None]
        return grad_out * scale


class BatchNormNoVarianceTerm(nn.BatchNorm2d):
    """dx = gamma / std * (dy - mean(dy)): forgets that the batch variance depends on x.

    The missing term is xhat * mean(dy * xhat), which vanishes when dy is all ones
    (mean(xhat) = 0). So a check on ``out.sum()`` passes this bug; a random
    upstream gradient catches it."""

    def backward(self, grad_out):
        s = self._saved()
        scale = (self.weight.data * s["inv_std"])[None, :, None, None]
        return scale * (grad_out - grad_out.mean(axis=(0, 2, 3), keepdims=True))


class SoftmaxLossUnscaled(nn.CrossEntropyLoss):
    """Forgets the 1/N of the mean."""

    def backward(self, grad_out=1.0):
        return super().backward(grad_out) * self._n

    def forward(self, logits, targets):
        self._n = logits.shape[0]
        return super().forward(logits, targets)


class MaxPoolEveryone(nn.MaxPool2d):
    """Spreads each gradient evenly over its window instead of routing it to the maximum."""

    def backward(self, grad_out):
        s = self._saved()
        k = self.kernel_size[0] * self.kernel_size[1]
        N, C, H, W = s["x_shape"]
        dx = np.zeros((N, C, H, W))
        for i in range(self.kernel_size[0]):
            for j in range(self.kernel_size[1]):
                dx[:, :, i : i + grad_out.shape[2] * 2 : 2, j : j + grad_out.shape[3] * 2 : 2] += (
                    grad_out / k
                )
        return dx


class ReluLeaks(nn.ReLU):
    def backward(self, grad_out):
        self._saved()
        return grad_out


class LinearTransposed(nn.Linear):
    """dW with x and dy swapped in the product, then reshaped to fit."""

    def backward(self, grad_out):
        x = self._saved()["x"]
        self.weight.accumulate_grad((x.T @ grad_out).T * 0.5)
        self.bias.accumulate_grad(grad_out.sum(axis=0))
        return grad_out @ self.weight.data


BROKEN = [
    ("bias", lambda: ConvForgetsBias(2, 3, 3, padding=1), (2, 2, 5, 5)),
    ("input", lambda: ConvWrongFlip(2, 3, 3, padding=1), (2, 2, 5, 5)),
    ("input", lambda: BatchNormNoMeanTerms(3), (4, 3, 2, 2)),
    ("input", lambda: MaxPoolEveryone(2, 2), (1, 2, 4, 4)),
    ("input", lambda: ReluLeaks(), (3, 4)),
    ("weight", lambda: LinearTransposed(4, 3), (5, 4)),
]


@pytest.mark.parametrize("tensor, make, shape", BROKEN)
def test_gradcheck_fails_on_broken_backward_and_names_the_tensor(tensor, make, shape):
    result = mt.gradcheck(make(), normal(0, shape))
    assert not result.ok
    assert not bool(result)
    failing = {t.name for t in result.tensors if not t.ok}
    assert tensor in failing
    report = result.report()
    assert "FAILED" in report and f"FAIL {tensor}" in report
    worst = next(t for t in result.tensors if t.name == tensor)
    # the report points at a concrete element and its two values
    assert worst.worst_index is not None and len(worst.worst_index) == len(worst.shape)
    assert abs(worst.numeric - worst.analytic) > 1e-5


def test_gradcheck_fails_on_unscaled_loss():
    z, t = normal(1, (4, 3)), np.array([0, 1, 2, 1])
    assert not mt.gradcheck(SoftmaxLossUnscaled(), z, t).ok
    assert mt.gradcheck(nn.CrossEntropyLoss(), z, t).ok


def test_sum_upstream_gradient_would_miss_the_batchnorm_bug():
    """Why gradcheck uses a random upstream gradient: with all ones the bug hides."""
    x = normal(2, (4, 3, 2, 2))
    ones = np.ones_like(x)
    hidden = mt.gradcheck(BatchNormNoVarianceTerm(3), x, upstream=ones, check_params=False)
    caught = mt.gradcheck(BatchNormNoVarianceTerm(3), x, check_params=False)
    assert hidden.ok and not caught.ok


@settings(max_examples=10)
@given(shape=batch_shapes(4, min_batch=2), seed=seeds)
def test_broken_batchnorm_fails_on_every_generated_shape(shape, seed):
    # with at least two values per channel and a random upstream gradient, the
    # missing mean terms are always visible
    result = mt.gradcheck(BatchNormNoMeanTerms(shape[1]), normal(seed, shape) * 2 + 1)
    assert not result.ok


def test_gradcheck_leaves_the_module_untouched():
    conv = nn.Conv2d(2, 2, 3)
    before = {k: v.copy() for k, v in conv.state_dict().items()}
    bn = nn.BatchNorm2d(2)
    mt.gradcheck(conv, normal(0, (1, 2, 4, 4)))
    mt.gradcheck(bn, normal(0, (2, 2, 3, 3)))
    for k, v in conv.state_dict().items():
        np.testing.assert_array_equal(v, before[k])
        assert v.dtype == np.float32
    assert conv.weight.grad is None
    np.testing.assert_array_equal(bn.running_mean, 0)
    assert int(bn.num_batches_tracked) == 0


def test_gradcheck_accepts_a_factory_and_reports_per_tensor():
    result = mt.gradcheck(lambda: nn.Linear(3, 2), normal(0, (2, 3)))
    assert result.ok
    assert [t.name for t in result.tensors] == ["input", "weight", "bias"]
    assert "PASSED" in str(result)


def test_gradcheck_rejects_things_without_backward():
    with pytest.raises(TypeError, match="Module"):
        mt.gradcheck(42, normal(0, (2, 3)))


class LinearReturnsNaN(nn.Linear):
    def backward(self, grad_out):
        return super().backward(grad_out) * np.nan


class LinearAssignsGrad(nn.Linear):
    """Sets .grad instead of adding to it: wrong as soon as gradients accumulate."""

    def backward(self, grad_out):
        x = self._saved()["x"]
        self.weight.grad = grad_out.T @ x
        self.bias.grad = grad_out.sum(axis=0)
        return grad_out @ self.weight.data


class LinearScalesGradOutInPlace(nn.Linear):
    def backward(self, grad_out):
        grad_out *= 2
        return super().backward(grad_out) / 2


def test_nan_gradients_fail():
    result = mt.gradcheck(LinearReturnsNaN(3, 2), normal(0, (2, 3)))
    assert not result.ok
    bad = next(t for t in result.tensors if t.name == "input")
    assert not bad.ok and bad.n_bad == 6


def test_assigning_instead_of_accumulating_fails():
    result = mt.gradcheck(LinearAssignsGrad(3, 2), normal(0, (2, 3)))
    assert not result.ok
    assert {t.name for t in result.tensors if not t.ok} == {"weight", "bias"}


def test_backward_that_modifies_grad_out_is_refused():
    with pytest.raises(ValueError, match="modified its grad_out argument in place"):
        mt.gradcheck(LinearScalesGradOutInPlace(3, 2), normal(0, (2, 3)))


def test_gradcheck_restores_the_callers_random_stream():
    mt.manual_seed(11)
    expected = mt.backend.host_rng().random(3)
    mt.manual_seed(11)
    mt.gradcheck(nn.Dropout(0.5), normal(0, (2, 3)))
    np.testing.assert_array_equal(mt.backend.host_rng().random(3), expected)


def test_gradcheck_accepts_a_layer_class():
    assert mt.gradcheck(nn.ReLU, np.array([[0.5, -1.0, 2.0]])).ok


class LinearDoublesInputGrad(nn.Linear):
    def backward(self, grad_out):
        return 2 * super().backward(grad_out)


@pytest.mark.parametrize(
    "settings_, message",
    [
        ({"eps": 0.0}, "eps must be a finite number > 0"),
        ({"eps": -1e-6}, "eps must be a finite number > 0"),
        ({"eps": float("nan")}, "eps must be a finite number > 0"),
        ({"eps": float("inf")}, "eps must be a finite number > 0"),
        ({"atol": -1.0}, "atol must be a finite number >= 0"),
        ({"atol": float("inf")}, "atol must be a finite number >= 0"),
        ({"atol": float("nan")}, "atol must be a finite number >= 0"),
        ({"rtol": -0.5}, "rtol must be a finite number >= 0"),
        ({"rtol": float("inf")}, "rtol must be a finite number >= 0"),
    ],
)
def test_unusable_step_or_tolerance_is_refused(settings_, message):
    """Before: eps=0, eps=nan or atol=-1 failed a correct layer, atol=inf passed a wrong one."""
    for layer in (nn.Linear(3, 2), LinearDoublesInputGrad(3, 2)):
        with pytest.raises(ValueError, match=message):
            mt.gradcheck(layer, normal(0, (2, 3)), **settings_)


def test_a_constructor_calling_sys_exit_is_a_build_error():
    class ExitsWhenBuilt(nn.ReLU):
        def __init__(self):
            super().__init__()
            raise SystemExit(4)

    with pytest.raises(LayerBuildError, match=r"called sys.exit\(4\)"):
        mt.gradcheck(ExitsWhenBuilt, normal(0, (2, 3)))
