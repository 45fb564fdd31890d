"""minitorch_alexnet.testing, the assignment kit: strategies, assertions and messages.
(The assignments built on it, in examples/assignments/, are tests/test_assignment*.py's.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import Phase, given, settings
from hypothesis import strategies as st

import minitorch_alexnet as mt
from minitorch_alexnet import nn
from minitorch_alexnet import testing as kit

ROOT = Path(__file__).resolve().parent.parent


# ---------------------------------------------------------------- arrays
@given(seed=kit.seeds(), shape=kit.batch_shapes(4))
def test_tie_free_values_are_distinct_and_away_from_zero(seed, shape):
    x = kit.tie_free(seed, shape)
    assert x.shape == shape and x.dtype == np.float64
    v = np.sort(x.reshape(-1))
    assert np.all(np.diff(v) >= 1e-2 - 1e-12)
    assert np.min(np.abs(v)) >= 5e-3 - 1e-12
    np.testing.assert_array_equal(x, kit.tie_free(seed, shape))  # reproducible


def test_away_from_zero_and_normal():
    x = kit.away_from_zero(3, (50, 40))
    assert np.min(np.abs(x)) >= 1e-3
    np.testing.assert_array_equal(kit.normal(1, (2, 3)), kit.normal(1, (2, 3)))


# ---------------------------------------------------------------- strategies
@given(cfg=kit.conv_configs())
def test_conv_configs_build_layers_with_the_promised_output(cfg):
    with mt.use_backend("numpy"):
        y = cfg.conv2d()(np.zeros(cfg.x_shape, dtype="float32"))
    assert y.shape == (cfg.N, cfg.O, *cfg.out_hw)
    assert cfg.C % cfg.groups == 0 and cfg.O % cfg.groups == 0


@given(cfg=kit.pool_configs())
def test_pool_configs_fit(cfg):
    assert 2 * cfg.ph <= cfg.kh and 2 * cfg.pw <= cfg.kw
    with mt.use_backend("numpy"):
        y = cfg.maxpool2d()(np.zeros(cfg.x_shape, dtype="float32"))
    assert y.shape == (cfg.N, cfg.C, *cfg.out_hw)


@given(data=st.data(), ndim=st.integers(2, 5))
def test_batch_shapes_respect_their_bounds(data, ndim):
    shape = data.draw(kit.batch_shapes(ndim, min_batch=2, channels=3, max_elements=100))
    assert len(shape) == ndim and shape[0] >= 2 and shape[1] == 3
    assert int(np.prod(shape)) <= 100 or ndim == 2


@pytest.mark.parametrize("name", kit.BUILTIN_LAYERS)
def test_layer_cases_pass_gradcheck(name):
    """Every generated built-in case is a correct check (the library's layers pass)."""

    @settings(max_examples=4)
    @given(case=kit.layer_cases(name))
    @mt.use_backend("numpy")  # tiny arrays: the reference kernels are the quickest
    def check(case):
        state = mt.backend.get_rng_state()
        case.make()
        assert mt.backend.get_rng_state() == state  # building a case leaves the RNG alone
        result = kit.assert_gradcheck(case.make, *case.inputs, config=case)
        assert result.ok
        assert repr(case).startswith("LayerCase(")

    check()


def test_unknown_layer_case_is_refused():
    with pytest.raises(ValueError, match="built-in layers"):
        kit.layer_cases("Conv3d")


def test_strategies_name_the_install_command_without_hypothesis(monkeypatch):
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match=r'pip install "minitorch-alexnet\[test\]"'):
        kit.conv_configs()


def test_the_kit_imports_without_hypothesis():
    code = (
        "import sys; sys.modules['hypothesis'] = None\n"
        "import numpy as np, minitorch_alexnet as mt\n"
        "from minitorch_alexnet import nn, testing\n"
        "testing.assert_gradcheck(nn.ReLU(), testing.away_from_zero(0, (2, 3)))\n"
        "try:\n    testing.seeds()\nexcept ImportError as e:\n    print(e)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MINITORCH_ALEXNET_BACKEND": "numpy"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert 'pip install "minitorch-alexnet[test]"' in out.stdout


# ---------------------------------------------------------------- assert_gradcheck
class LinearForgetsBias(nn.Linear):
    def backward(self, grad_out):
        x = self._saved()["x"]
        self.weight.accumulate_grad(grad_out.T @ x)
        return grad_out @ self.weight.data


class ReluTwice(nn.ReLU):
    def backward(self, grad_out):
        return 2 * super().backward(grad_out)


class NotWritten(nn.Module):
    def forward(self, x):
        raise NotImplementedError("TODO: write forward")


def test_assert_gradcheck_passes_and_returns_the_result():
    result = kit.assert_gradcheck(lambda: nn.Linear(3, 2), kit.normal(0, (4, 3)))
    assert result.ok and [t.name for t in result.tensors] == ["input", "weight", "bias"]


def test_assert_gradcheck_message_names_tensor_index_values_and_config():
    cfg = {"in": 3, "out": 2}
    with pytest.raises(AssertionError) as info:
        kit.assert_gradcheck(LinearForgetsBias(3, 2), kit.normal(0, (4, 3)), config=cfg)
    msg = str(info.value)
    assert "wrong gradient for bias" in msg
    assert "in_features=3, out_features=2" in msg  # the layer's configuration
    assert "input shapes: (4, 3)" in msg
    assert "config:       {'in': 3, 'out': 2}" in msg
    assert "bias: worst at bias[" in msg and "numeric" in msg and "analytic" in msg
    assert "FAIL bias" in msg and "ok   weight" in msg  # the full per-tensor report
    assert "backward never" in msg or "analytic gradient is 0" in msg  # the hint


def test_assert_gradcheck_hints_at_a_constant_factor():
    with pytest.raises(AssertionError, match="2 times the numeric"):
        kit.assert_gradcheck(ReluTwice(), kit.away_from_zero(0, (3, 4)))


def test_assert_gradcheck_reports_a_layer_that_raises():
    with pytest.raises(AssertionError, match="NotImplementedError: TODO: write forward"):
        kit.assert_gradcheck(NotWritten(), kit.normal(0, (2, 3)))


def test_assert_gradcheck_message_under_hypothesis_has_the_shrunk_case():
    @settings(max_examples=10, database=None, phases=[Phase.generate, Phase.shrink])
    @given(cfg=kit.conv_configs(max_hw=5, max_k=3, max_channels=2), seed=kit.seeds())
    def check(cfg, seed):
        layer = cfg.conv2d()
        if cfg.bias:  # break the bias gradient
            layer = _without_bias_grad(layer)
        kit.assert_gradcheck(layer, kit.normal(seed, cfg.x_shape), config=cfg)

    with pytest.raises(AssertionError) as info, mt.use_backend("numpy"):
        check()
    msg = str(info.value)
    assert "config:       ConvConfig(" in msg and "bias=True" in msg
    assert "wrong gradient for bias" in msg


def _without_bias_grad(conv):
    class ConvForgetsBias(nn.Conv2d):
        def backward(self, grad_out):
            bias, self.bias = self.bias, None
            try:
                return super().backward(grad_out)
            finally:
                self.bias = bias

    broken = ConvForgetsBias.__new__(ConvForgetsBias)
    broken.__dict__.update(conv.__dict__)
    return broken


# ---------------------------------------------------------------- assert_matches_reference
def test_matches_reference_passes_for_the_same_layer_and_copies_parameters():
    mt.manual_seed(1)
    student = nn.Conv2d(2, 3, 3, padding=1)
    mt.manual_seed(2)
    reference = nn.Conv2d(2, 3, 3, padding=1)  # other weights: copied into the student
    checks = kit.assert_matches_reference(student, reference, kit.normal(0, (2, 2, 4, 4)))
    assert [c.name for c in checks] == ["output", "input grad", "weight.grad", "bias.grad"]
    assert all(c.ok for c in checks)


def test_matches_reference_finds_a_wrong_running_variance():
    class BiasedRunningVar(nn.BatchNorm2d):
        """Updates the running variance with the biased batch variance (no m / (m - 1))."""

        def forward(self, x):
            before = self.running_var.copy()
            y = super().forward(x)
            var = x.var(axis=(0, 2, 3))  # biased
            self.running_var[...] = (1 - self.momentum) * before + self.momentum * var
            return y

    x = kit.normal(0, (2, 3, 2, 2))
    with pytest.raises(AssertionError) as info:
        kit.assert_matches_reference(BiasedRunningVar(3), nn.BatchNorm2d(3), x, config="bn")
    msg = str(info.value)
    assert "does not match the reference BatchNorm2d: running_var" in msg
    assert "FAIL running_var" in msg and "ok   output" in msg and "ok   input grad" in msg
    assert "input shapes: (2, 3, 2, 2)" in msg and "config:       'bn'" in msg


def test_matches_reference_reports_a_missing_parameter_gradient():
    with pytest.raises(AssertionError, match=r"bias.grad .* is None: backward never"):
        kit.assert_matches_reference(
            LinearForgetsBias(3, 2), nn.Linear(3, 2), kit.normal(0, (2, 3))
        )


def test_matches_reference_reports_mismatched_parameters_and_raising_students():
    with pytest.raises(AssertionError, match="parameters and buffers do not match"):
        kit.assert_matches_reference(nn.Linear(3, 2), nn.Linear(3, 4), kit.normal(0, (2, 3)))
    with pytest.raises(AssertionError, match=r"student NotWritten.forward raised NotImplementedE"):
        kit.assert_matches_reference(NotWritten(), nn.ReLU(), kit.normal(0, (2, 3)))


def test_matches_reference_uses_one_dropout_mask_and_the_reference_mode():
    x = kit.normal(0, (4, 6))
    kit.assert_matches_reference(nn.Dropout(0.5), nn.Dropout(0.5), x)
    student = nn.Dropout(0.5)  # in training mode; the reference in eval: identity
    kit.assert_matches_reference(student, nn.Dropout(0.5).eval(), x)


def test_matches_reference_catches_a_wrong_forward():
    class Leaky(nn.ReLU):
        def forward(self, x):
            self._save_for_backward(positive=x > 0)
            return np.where(x > 0, x, 0.01 * x)

    with pytest.raises(AssertionError, match="FAIL output"):
        kit.assert_matches_reference(Leaky(), nn.ReLU(), kit.normal(0, (3, 3)))


# ---------------------------------------------------------------- build_layer
def test_build_layer_takes_a_layer_a_class_or_a_factory():
    relu = nn.ReLU()
    assert kit.build_layer(relu) is relu
    copied = kit.build_layer(relu, copy=True)
    assert isinstance(copied, nn.ReLU) and copied is not relu
    assert isinstance(kit.build_layer(nn.ReLU), nn.ReLU)
    state = mt.backend.get_rng_state()
    a, b = kit.build_layer(lambda: nn.Linear(3, 2)), kit.build_layer(lambda: nn.Linear(3, 2))
    assert mt.backend.get_rng_state() == state  # building leaves the generator alone
    np.testing.assert_array_equal(a.weight.data, b.weight.data)  # so a factory repeats itself


def test_build_layer_says_what_is_wrong():
    with pytest.raises(kit.LayerBuildError, match="42 .a int. is not a layer, class or function"):
        kit.build_layer(42)
    with pytest.raises(TypeError, match=r"cannot build Linear with no arguments: Linear\(\) rais"):
        kit.build_layer(nn.Linear)
    with pytest.raises(kit.LayerBuildError, match=r"make\(\) gave a str, which has no forward"):
        kit.build_layer(lambda: "relu", name="make")

    class BrokenInit(nn.ReLU):
        def __init__(self):
            raise NotImplementedError("TODO: write __init__")

    with pytest.raises(AssertionError, match="assert_gradcheck: cannot build .*BrokenInit"):
        kit.assert_gradcheck(BrokenInit, kit.normal(0, (2, 3)))  # the student's fault
    with pytest.raises(TypeError, match=r"assert_matches_reference \(reference\): 42"):
        kit.assert_matches_reference(nn.ReLU(), 42, kit.normal(0, (2, 3)))  # the test's


def test_assertions_leave_the_layers_they_are_given_untouched():
    layer = nn.Linear(3, 2)
    before = layer.weight.data.copy()
    kit.assert_gradcheck(layer, kit.normal(0, (4, 3)))
    kit.assert_matches_reference(layer, nn.Linear(3, 2), kit.normal(0, (4, 3)))
    assert layer.weight.grad is None and layer.weight.data.dtype == np.float32
    np.testing.assert_array_equal(layer.weight.data, before)
