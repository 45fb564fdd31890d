"""``python -m minitorch_alexnet gradcheck``: reports, exit statuses, imported layers."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from minitorch_alexnet import testing
from minitorch_alexnet.__main__ import main

ROOT = Path(__file__).resolve().parent.parent

LAYERS = """
import sys

from minitorch_alexnet import get_backend
from minitorch_alexnet.nn import Module, Linear


class LeakyReLU(Module):
    def __init__(self, slope=0.1, broken=False):
        super().__init__()
        self.slope, self.broken = slope, broken

    def forward(self, x):
        self._save_for_backward(x=x)
        return get_backend().xp.where(x > 0, x, self.slope * x)

    def backward(self, grad_out):
        x = self._saved()["x"]
        if self.broken:  # forgets the slope on the negative side
            return grad_out * (x > 0)
        return grad_out * get_backend().xp.where(x > 0, 1.0, self.slope)


def broken_leaky():
    return LeakyReLU(broken=True)


class NeedsArguments(Module):
    def __init__(self, size):
        super().__init__()


class OnlyBigInputs(LeakyReLU):
    def forward(self, x):
        if x.shape[-1] < 100:
            raise ValueError("too small")
        return super().forward(x)


class Explodes(LeakyReLU):
    def backward(self, grad_out):
        raise RuntimeError("boom")


def linear():
    return Linear(3, 2)


class ExitsInForward(LeakyReLU):
    def forward(self, x):
        sys.exit(3)


class ExitsInBackward(LeakyReLU):
    def backward(self, grad_out):
        sys.exit("done")


class ExitsWhenBuilt(LeakyReLU):
    def __init__(self):
        super().__init__()
        sys.exit(4)


not_a_layer = 42
"""


@pytest.fixture
def layers(tmp_path, monkeypatch):
    (tmp_path / "my_layers.py").write_text(textwrap.dedent(LAYERS))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("my_layers", None)
    yield
    sys.modules.pop("my_layers", None)


def run(capsys, *argv):
    status = main(["gradcheck", *argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.mark.parametrize("name", testing.BUILTIN_LAYERS)
def test_every_builtin_layer_passes_with_a_per_tensor_table(capsys, name):
    status, out, err = run(capsys, name, "--examples", "3", "--backend", "numpy")
    assert status == 0, out + err
    assert f"gradcheck {name} on the 'numpy' backend" in out
    assert "tensor       cases  max abs err  max rel err  worst case" in out
    assert "\n  input " in out
    assert "PASSED" in out and "FAIL" not in out


def test_builtin_names_are_case_insensitive(capsys):
    status, out, _ = run(capsys, "relu", "--examples", "2")
    assert status == 0 and "gradcheck ReLU" in out


def test_a_correct_imported_layer_passes(capsys, layers):
    status, out, _ = run(capsys, "my_layers:LeakyReLU", "--examples", "5")
    assert status == 0
    assert "inputs (N, C, H, W) generated" in out and "PASSED" in out


def test_a_broken_layer_fails_with_the_shrunk_case_and_report(capsys, layers):
    status, out, err = run(capsys, "my_layers:broken_leaky", "--examples", "10")
    assert status == 1
    assert "Traceback" not in out + err
    assert "FAILED. The smallest failing case Hypothesis found:" in out
    assert "inputs: (2, 1, 1, 1)" in out  # shrunk to the smallest generated shape
    assert "FAIL input" in out and "numeric" in out and "analytic" in out
    assert "hint:" in out


def test_input_shape_fixes_the_shape_and_in_features_is_used(capsys, layers):
    status, out, _ = run(
        capsys, "my_layers:LeakyReLU", "--input-shape", "3,2,4", "--examples", "2", "-v"
    )
    assert status == 0
    assert "inputs of shape (3, 2, 4)" in out and "on (3, 2, 4)" in out
    assert out.count("gradcheck PASSED") == 2  # --verbose: every case's report
    status, out, _ = run(capsys, "my_layers:linear", "--examples", "2")
    assert status == 0 and "inputs (N, 3) generated" in out


def test_an_exception_in_backward_is_a_failure_not_a_traceback(capsys, layers):
    status, out, err = run(capsys, "my_layers:Explodes", "--examples", "3")
    assert status == 1
    assert "forward or backward raised RuntimeError: boom" in out
    assert "Traceback" not in out + err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["Conv3d"], "unknown layer 'Conv3d'"),
        (["no_such_module:X"], "cannot import 'no_such_module'"),
        (["my_layers:Missing"], "has no attribute 'Missing'"),
        (["my_layers:NeedsArguments"], "cannot build my_layers:NeedsArguments with no arguments"),
        (["my_layers:not_a_layer"], "not a layer, class or function"),
        (["my_layers:OnlyBigInputs", "--examples", "3"], "rejected every generated input"),
        (["Conv2d", "--input-shape", "1,2,3,3"], "--input-shape is for imported layers"),
    ],
)
def test_bad_usage_exits_2_with_one_line(capsys, layers, argv, message):
    status, out, err = run(capsys, *argv)
    assert status == 2
    assert message in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("argv", [["ReLU", "--examples", "0"], ["ReLU", "--input-shape", "2,x"]])
def test_bad_option_values_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(["gradcheck", *argv])
    assert info.value.code == 2


# ------------------------------------------------------------------ numbers and sys.exit
@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--eps", "0", "> 0"),  # divides by zero: a correct layer "failed"
        ("--eps", "-1e-6", "> 0"),
        ("--eps", "nan", "> 0"),  # every comparison false: a correct layer "failed"
        ("--eps", "inf", "> 0"),
        ("--atol", "-1", ">= 0"),  # nothing can be within -1: a correct layer "failed"
        ("--atol", "inf", ">= 0"),  # anything is within inf: a wrong layer "passed"
        ("--atol", "nan", ">= 0"),
        ("--rtol", "-0.5", ">= 0"),
        ("--rtol", "inf", ">= 0"),
        ("--rtol", "1e", ">= 0"),
    ],
)
def test_step_and_tolerances_must_be_usable_numbers(capsys, option, value, expected):
    with pytest.raises(SystemExit) as info:
        main(["gradcheck", "ReLU", f"{option}={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {option}: expected a finite number {expected}" in err
    assert f"got {value!r}" in err and "Traceback" not in err


@pytest.mark.parametrize("option", ["--atol", "--rtol"])
def test_a_zero_tolerance_is_allowed(capsys, option):
    status, out, _ = run(capsys, "ReLU", option, "0", "--examples", "2")
    assert status == 0, out


@pytest.mark.parametrize(
    "name, said",
    [
        ("my_layers:ExitsInForward", "ExitsInForward() called sys.exit(3)"),
        ("my_layers:ExitsInBackward", "ExitsInBackward() called sys.exit('done')"),
    ],
)
def test_a_layer_calling_sys_exit_is_a_reported_failure(capsys, layers, name, said):
    status, out, err = run(capsys, name, "--examples", "3")
    assert status == 1
    assert f"forward or backward raised SystemExit: {said}" in out
    assert "FAILED" in out and "Traceback" not in out + err


def test_sys_exit_while_building_or_importing_is_a_usage_error(capsys, layers, tmp_path):
    status, _, err = run(capsys, "my_layers:ExitsWhenBuilt")
    assert status == 2
    assert "cannot build my_layers:ExitsWhenBuilt" in err and "called sys.exit(4)" in err
    (tmp_path / "exits_on_import.py").write_text("import sys\nsys.exit(5)\n")
    status, _, err = run(capsys, "exits_on_import:X")
    assert status == 2
    assert "cannot import 'exits_on_import': importing it called sys.exit(5)" in err
    sys.modules.pop("exits_on_import", None)


def test_the_seed_option_still_passes(capsys):
    status, out, _ = run(capsys, "Linear", "--examples", "3", "--seed", "7")
    assert status == 0


def test_registered_in_the_package_command(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run(
        [sys.executable, "-m", "minitorch_alexnet", "gradcheck", "Flatten", "--examples", "2"],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    assert out.returncode == 0, out.stderr
    assert "PASSED" in out.stdout
