"""With the numpy backend, each layer's math runs from its own file.

``set_backend("numpy")`` must run exactly the code a student reads in the layer file:
every function called during a forward and backward pass (or an optimiser step) is
watched with ``sys.setprofile``, and any frame under ``backend/`` other than
``backend/__init__.py`` (the array module, the active backend) and
``backend/dispatch.py`` (the name lookup) fails the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from strategies import normal

import minitorch_alexnet as mt
from minitorch_alexnet import nn, optim

PACKAGE = Path(mt.__file__).resolve().parent
BACKEND = PACKAGE / "backend"
ALLOWED = {BACKEND / "__init__.py", BACKEND / "dispatch.py"}

CASES = {
    "Conv2d": (lambda: nn.Conv2d(3, 4, 3, padding=1), (2, 3, 6, 6), "nn/conv.py"),
    "Conv2d groups": (
        lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),
        (2, 4, 7, 7),
        "nn/conv.py",
    ),
    "Conv2d 5x5, 16 channels": (
        lambda: nn.Conv2d(16, 8, 5, padding=2),
        (2, 16, 7, 7),
        "nn/conv.py",
    ),
    "ReLU": (lambda: nn.ReLU(), (3, 5), "nn/activation.py"),
    "BatchNorm1d": (lambda: nn.BatchNorm1d(5), (4, 5), "nn/batchnorm.py"),
    "BatchNorm2d": (lambda: nn.BatchNorm2d(3), (2, 3, 4, 4), "nn/batchnorm.py"),
    "MaxPool2d": (lambda: nn.MaxPool2d(3, stride=2), (2, 3, 7, 7), "nn/pooling.py"),
    "Linear": (lambda: nn.Linear(6, 4), (3, 6), "nn/linear.py"),
    "Dropout": (lambda: nn.Dropout(0.5), (3, 8), "nn/dropout.py"),
    "LocalResponseNorm": (lambda: nn.LocalResponseNorm(3), (2, 5, 3, 3), "nn/lrn.py"),
}


def _frames(run) -> list[Path]:
    """The source files of every Python function called while ``run()`` runs."""
    seen: list[Path] = []

    def profile(frame, event, arg):
        if event == "call":
            seen.append(Path(frame.f_code.co_filename).resolve())

    sys.setprofile(profile)
    try:
        run()
    finally:
        sys.setprofile(None)
    return seen


def _assert_only_its_own_file(files: list[Path], own: str) -> None:
    outside = sorted({str(f.relative_to(PACKAGE)) for f in files
                      if f.is_relative_to(BACKEND) and f not in ALLOWED})  # fmt: skip
    assert not outside, f"the numpy backend ran math outside the layer file: {outside}"
    assert PACKAGE / own in files, f"nothing of {own} ran"


@pytest.mark.parametrize("name", list(CASES))
def test_layer_math_runs_from_its_own_file(numpy_backend, name):
    make, shape, own = CASES[name]
    layer = make()
    x = mt.asarray(normal(0, shape, "float32"))
    g = mt.asarray(normal(1, layer(x).shape, "float32"))

    def step():
        y = layer(x)
        layer.backward(g)
        return y

    _assert_only_its_own_file(_frames(step), own)


def test_loss_math_runs_from_its_own_file(numpy_backend):
    crit = nn.CrossEntropyLoss()
    logits = mt.asarray(normal(0, (4, 5), "float32"))
    targets = mt.asarray(np.array([0, 4, 2, 1]), "int64")
    _assert_only_its_own_file(
        _frames(lambda: (crit(logits, targets), crit.backward())), "nn/loss.py"
    )


def test_sgd_step_runs_from_its_own_file(numpy_backend):
    layer = nn.Linear(3, 2)
    for p in layer.parameters():
        p.grad = mt.asarray(np.ones(p.shape, "float32"))
    opt = optim.SGD(layer.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    _assert_only_its_own_file(_frames(opt.step), "optim/sgd.py")


def test_the_watch_sees_a_backend_override():
    """The check can fail: on numba the convolution runs from backend/numba/."""
    conv = nn.Conv2d(3, 4, 3)
    x = mt.asarray(normal(0, (1, 3, 5, 5), "float32"))
    files = _frames(lambda: conv(x))
    assert BACKEND / "numba" / "conv.py" in files
    with pytest.raises(AssertionError, match="outside the layer file"):
        _assert_only_its_own_file(files, "nn/conv.py")


def test_backend_imports_no_layer():
    """Overrides are registered by name, so nothing under backend/ imports nn/ (or any
    tier above it: models, the tools)."""
    import ast

    above = ("nn", "models", "optim", "data", "summary", "shapes", "gradcheck", "testing")
    for path in sorted(BACKEND.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1]
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = package[: len(package) - node.level + 1] if node.level else ()
                module = (*base, *(node.module or "").split("."))
                names = [(*module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                names = [tuple(a.name.split(".")) for a in node.names]
            else:
                continue
            for name in names:
                if name[0] == "minitorch_alexnet" and len(name) > 1:
                    assert name[1] not in above, f"{path.relative_to(PACKAGE)} imports {name}"
