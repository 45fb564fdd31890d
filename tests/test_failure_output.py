"""A failing grading test shows the student's code, not the assertion helpers' insides.

``assert_gradcheck`` and ``assert_matches_reference`` set ``__tracebackhide__``, so
pytest's report of a failure ends at the line of the student's test that called
them, followed by the message; the helpers' source and locals stay out of it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

STUDENT_TEST = '''
import numpy as np

from minitorch_alexnet import nn
from minitorch_alexnet.testing import assert_gradcheck, assert_matches_reference


class Double(nn.Module):
    """y = 2x, with the factor forgotten in backward."""

    def forward(self, x):
        return 2 * x

    def backward(self, grad_out):
        return grad_out  # the bug: dx = 2 dy


class BrokenReLU(nn.Module):
    def forward(self, x):
        return x.clip(0, None)

    def backward(self, grad_out):
        raise RuntimeError("my backward is not written yet")


def test_gradcheck_of_my_layer():
    x = np.random.default_rng(0).standard_normal((2, 3))
    assert_gradcheck(Double(), x)  # STUDENT LINE 1


def test_my_relu_against_the_library():
    x = np.random.default_rng(0).standard_normal((2, 3))
    assert_matches_reference(BrokenReLU(), nn.ReLU(), x)  # STUDENT LINE 2
'''


def test_failures_end_at_the_students_line(tmp_path):
    (tmp_path / "test_student.py").write_text(STUDENT_TEST, encoding="utf-8")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "test_student.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    out = proc.stdout
    assert proc.returncode == 1 and "2 failed" in out, out[-3000:]
    assert "STUDENT LINE 1" in out and "STUDENT LINE 2" in out
    assert "gradcheck failed for Double: wrong gradient for input" in out
    assert "student BrokenReLU.backward raised RuntimeError" in out
    assert "my backward is not written yet" in out  # the student's own frame is shown
    # the helpers' own lines are not
    assert "testing/assertions.py" not in out.replace(os.sep, "/"), out[-4000:]
    assert "raise AssertionError" not in out
