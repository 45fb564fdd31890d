"""docs/shapes.md is generated from the code and must not drift from it; the shape
arithmetic must agree with what a real forward pass produces; docs/alexnet.md's
parameter counts must be the models' own."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import nn, shapes
from minitorch_alexnet.summary import collect_layers

DOCS = Path(__file__).resolve().parent.parent / "docs"


pytestmark = pytest.mark.usefixtures("numpy_backend")


def test_shapes_md_is_up_to_date():
    committed = (DOCS / "shapes.md").read_text(encoding="utf-8")
    state = mt.backend.get_rng_state()
    rendered = shapes.render_shapes_markdown()
    assert mt.backend.get_rng_state() == state, "rendering must not draw random numbers"
    assert rendered == committed, (
        "docs/shapes.md is stale; regenerate it with "
        "`python -m minitorch_alexnet.shapes --write docs/shapes.md`"
    )


def test_arithmetic_agrees_with_a_real_forward_pass(default_models):
    for name, model in default_models.items():
        walked = [
            s.output_shape[1:]
            for s in shapes.trace_shapes(model, (2, *model.input_size))
            if s.name != "flatten"  # a reshape in forward, not a module: no summary row
        ]
        passed = collect_layers(model, model.input_size, forward=True)  # a real pass
        ran = [r.output_shape[1:] for r in passed]
        assert walked == ran, name


def test_models_do_not_import_shapes():
    """shapes imports the models (to write docs/shapes.md); they must not import it back.
    Their input checks walk the layers' own facts with minitorch_alexnet.shape_walk."""
    code = (
        "import sys, minitorch_alexnet.models; "
        "print(sorted(m for m in sys.modules if m.startswith('minitorch_alexnet.shape')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["['minitorch_alexnet.shape_walk']"]


def test_window_formula_text():
    conv1 = nn.Conv2d(3, 8, 11, stride=4)
    assert shapes.arithmetic(conv1, (1, 3, 227, 227), (1, 8, 55, 55)) == (
        "floor((227 - 11 + 2*0) / 4) + 1 = 54 + 1 = 55"
    )
    assert shapes.arithmetic(conv1, (1, 3, 224, 224), (1, 8, 54, 54)) == (
        "floor((224 - 11 + 2*0) / 4) + 1 = floor(53.25) + 1 = 54"
    )
    rect = nn.MaxPool2d((3, 2), stride=2)
    assert shapes.arithmetic(rect, (1, 3, 7, 8), (1, 3, 3, 4)) == (
        "H: floor((7 - 3 + 2*0) / 2) + 1 = 2 + 1 = 3; W: floor((8 - 2 + 2*0) / 2) + 1 = 3 + 1 = 4"
    )


def test_layer_output_shape_rules():
    assert shapes.layer_output_shape(nn.Conv2d(3, 96, 11, stride=4), (2, 3, 227, 227)) == (
        2, 96, 55, 55
    )  # fmt: skip
    assert shapes.layer_output_shape(nn.Flatten(), (2, 256, 6, 6)) == (2, 9216)
    assert shapes.layer_output_shape(nn.Linear(9216, 10), (2, 9216)) == (2, 10)
    assert shapes.layer_output_shape(nn.ReLU(), (2, 5)) == (2, 5)
    with pytest.raises(ValueError, match="expects 9216 features, got 6400"):
        shapes.layer_output_shape(nn.Linear(9216, 10), (2, 6400))


def test_sequential_models_are_walked_too():
    seq = nn.Sequential(nn.Conv2d(1, 2, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
    steps = shapes.trace_shapes(seq, (1, 1, 12, 12))
    assert [s.name for s in steps] == ["0", "1", "2", "3"]
    assert steps[-1].output_shape == (1, 32)
    with pytest.raises(ValueError, match=r"0 \(Conv2d.*smallest input that works is 1x6x6"):
        shapes.trace_shapes(seq, (1, 1, 4, 4))


def _parameter_row(text: str) -> list[int]:
    match = re.search(r"\| parameters \|(.*)\|", text)
    assert match, "parameter row missing from docs/alexnet.md"
    return [int(c.strip().replace(",", "")) for c in match.group(1).split("|")]


def test_alexnet_md_parameter_counts(default_models):
    text = (DOCS / "alexnet.md").read_text(encoding="utf-8")
    ours = [sum(p.numel() for p in default_models[n].parameters()) for n in default_models]
    # torchvision's AlexNet, built from our layers (AdaptiveAvgPool has no parameters)
    torchvision = nn.Sequential(
        nn.Conv2d(3, 64, 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1), nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1), nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Flatten(), nn.Dropout(0.5), nn.Linear(9216, 4096), nn.ReLU(),
        nn.Dropout(0.5), nn.Linear(4096, 4096), nn.ReLU(), nn.Linear(4096, 1000),
    )  # fmt: skip
    tv = sum(p.numel() for p in torchvision.parameters())
    assert tv == 61_100_840
    assert _parameter_row(text) == [*ours, tv]
