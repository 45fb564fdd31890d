"""summary(): torchsummary's table, character for character, and a model left untouched.

The expected texts below were produced by running torchsummary 1.5.1 (installed
locally only; it is not a dependency) on the PyTorch twins of our models from
``minitorch_alexnet.models.torch_reference.build_torch_model`` (and on the small
torch.nn.Sequential written out in ``test_small_sequential_matches_torchsummary``),
with ``device="cpu"``, capturing what it printed.
"""

from __future__ import annotations

import argparse
import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import cli_summary, nn, shapes
from minitorch_alexnet.models import build_model
from minitorch_alexnet.summary import collect_layers, summary

# fmt: off
ALEXNET = """\
----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
            Conv2d-1           [-1, 96, 55, 55]          34,944
              ReLU-2           [-1, 96, 55, 55]               0
       BatchNorm2d-3           [-1, 96, 55, 55]             192
         MaxPool2d-4           [-1, 96, 27, 27]               0
           Dropout-5           [-1, 96, 27, 27]               0
            Conv2d-6          [-1, 256, 27, 27]         614,656
              ReLU-7          [-1, 256, 27, 27]               0
       BatchNorm2d-8          [-1, 256, 27, 27]             512
         MaxPool2d-9          [-1, 256, 13, 13]               0
          Dropout-10          [-1, 256, 13, 13]               0
           Conv2d-11          [-1, 384, 13, 13]         885,120
             ReLU-12          [-1, 384, 13, 13]               0
      BatchNorm2d-13          [-1, 384, 13, 13]             768
           Conv2d-14          [-1, 384, 13, 13]       1,327,488
             ReLU-15          [-1, 384, 13, 13]               0
      BatchNorm2d-16          [-1, 384, 13, 13]             768
           Conv2d-17          [-1, 256, 13, 13]         884,992
             ReLU-18          [-1, 256, 13, 13]               0
      BatchNorm2d-19          [-1, 256, 13, 13]             512
        MaxPool2d-20            [-1, 256, 6, 6]               0
          Dropout-21            [-1, 256, 6, 6]               0
           Linear-22                 [-1, 4096]      37,752,832
             ReLU-23                 [-1, 4096]               0
      BatchNorm1d-24                 [-1, 4096]           8,192
          Dropout-25                 [-1, 4096]               0
           Linear-26                 [-1, 4096]      16,781,312
             ReLU-27                 [-1, 4096]               0
      BatchNorm1d-28                 [-1, 4096]           8,192
          Dropout-29                 [-1, 4096]               0
           Linear-30                 [-1, 1000]       4,097,000
================================================================
Total params: 62,397,480
Trainable params: 62,397,480
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 0.59
Forward/backward pass size (MB): 17.01
Params size (MB): 238.03
Estimated Total Size (MB): 255.62
----------------------------------------------------------------
"""


ALEXNET_CIFAR = """\
----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
            Conv2d-1           [-1, 64, 32, 32]           4,864
              ReLU-2           [-1, 64, 32, 32]               0
       BatchNorm2d-3           [-1, 64, 32, 32]             128
         MaxPool2d-4           [-1, 64, 15, 15]               0
            Conv2d-5          [-1, 192, 15, 15]         307,392
              ReLU-6          [-1, 192, 15, 15]               0
       BatchNorm2d-7          [-1, 192, 15, 15]             384
         MaxPool2d-8            [-1, 192, 7, 7]               0
            Conv2d-9            [-1, 384, 7, 7]         663,936
             ReLU-10            [-1, 384, 7, 7]               0
      BatchNorm2d-11            [-1, 384, 7, 7]             768
           Conv2d-12            [-1, 256, 7, 7]         884,992
             ReLU-13            [-1, 256, 7, 7]               0
      BatchNorm2d-14            [-1, 256, 7, 7]             512
           Conv2d-15            [-1, 256, 7, 7]         590,080
             ReLU-16            [-1, 256, 7, 7]               0
      BatchNorm2d-17            [-1, 256, 7, 7]             512
        MaxPool2d-18            [-1, 256, 3, 3]               0
           Linear-19                 [-1, 1024]       2,360,320
             ReLU-20                 [-1, 1024]               0
      BatchNorm1d-21                 [-1, 1024]           2,048
          Dropout-22                 [-1, 1024]               0
           Linear-23                 [-1, 1024]       1,049,600
             ReLU-24                 [-1, 1024]               0
      BatchNorm1d-25                 [-1, 1024]           2,048
          Dropout-26                 [-1, 1024]               0
           Linear-27                   [-1, 10]          10,250
================================================================
Total params: 5,877,834
Trainable params: 5,877,834
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 0.01
Forward/backward pass size (MB): 3.76
Params size (MB): 22.42
Estimated Total Size (MB): 26.19
----------------------------------------------------------------
"""


ALEXNET2012 = """\
----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
            Conv2d-1           [-1, 96, 55, 55]          34,944
              ReLU-2           [-1, 96, 55, 55]               0
 LocalResponseNorm-3           [-1, 96, 55, 55]               0
         MaxPool2d-4           [-1, 96, 27, 27]               0
            Conv2d-5          [-1, 256, 27, 27]         307,456
              ReLU-6          [-1, 256, 27, 27]               0
 LocalResponseNorm-7          [-1, 256, 27, 27]               0
         MaxPool2d-8          [-1, 256, 13, 13]               0
            Conv2d-9          [-1, 384, 13, 13]         885,120
             ReLU-10          [-1, 384, 13, 13]               0
           Conv2d-11          [-1, 384, 13, 13]         663,936
             ReLU-12          [-1, 384, 13, 13]               0
           Conv2d-13          [-1, 256, 13, 13]         442,624
             ReLU-14          [-1, 256, 13, 13]               0
        MaxPool2d-15            [-1, 256, 6, 6]               0
          Dropout-16                 [-1, 9216]               0
           Linear-17                 [-1, 4096]      37,752,832
             ReLU-18                 [-1, 4096]               0
          Dropout-19                 [-1, 4096]               0
           Linear-20                 [-1, 4096]      16,781,312
             ReLU-21                 [-1, 4096]               0
           Linear-22                 [-1, 1000]       4,097,000
================================================================
Total params: 60,965,224
Trainable params: 60,965,224
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 0.59
Forward/backward pass size (MB): 14.73
Params size (MB): 232.56
Estimated Total Size (MB): 247.88
----------------------------------------------------------------
"""


ALEXNET_BATCH16_TAIL = """\
Total params: 62,397,480
Trainable params: 62,397,480
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 9.44
Forward/backward pass size (MB): 272.09
Params size (MB): 238.03
Estimated Total Size (MB): 519.55
----------------------------------------------------------------
"""


ALEXNET_CIFAR_BATCH128_TAIL = """\
Total params: 5,877,834
Trainable params: 5,877,834
Non-trainable params: 0
----------------------------------------------------------------
Input size (MB): 1.50
Forward/backward pass size (MB): 480.70
Params size (MB): 22.42
Estimated Total Size (MB): 504.62
----------------------------------------------------------------
"""


SMALL_SEQUENTIAL_BATCH4 = """\
----------------------------------------------------------------
        Layer (type)               Output Shape         Param #
================================================================
            Conv2d-1               [4, 4, 8, 8]             112
       BatchNorm2d-2               [4, 4, 8, 8]               8
              ReLU-3               [4, 4, 8, 8]               0
         MaxPool2d-4               [4, 4, 4, 4]               0
           Flatten-5                    [4, 64]               0
            Linear-6                     [4, 5]             325
================================================================
Total params: 445
Trainable params: 333
Non-trainable params: 112
----------------------------------------------------------------
Input size (MB): 0.00
Forward/backward pass size (MB): 0.03
Params size (MB): 0.00
Estimated Total Size (MB): 0.03
----------------------------------------------------------------
"""
# fmt: on


pytestmark = pytest.mark.usefixtures("numpy_backend")


def run_summary(*args, **kwargs) -> str:
    return summary(*args, print_fn=None, **kwargs) + "\n"


@pytest.mark.parametrize(
    "name, size, expected",
    [
        ("alexnet", (3, 227, 227), ALEXNET),
        ("alexnet_cifar", (3, 32, 32), ALEXNET_CIFAR),
        ("alexnet2012", (3, 227, 227), ALEXNET2012),
    ],
)
def test_matches_torchsummary(default_models, name, size, expected):
    assert run_summary(default_models[name], size) == expected


def test_alexnet_totals(default_models):
    text = run_summary(default_models["alexnet"], (3, 227, 227))
    assert "Total params: 62,397,480" in text
    assert "            Conv2d-1           [-1, 96, 55, 55]          34,944" in text


def test_batch_size_is_shown_and_scales_memory(default_models):
    text = run_summary(default_models["alexnet"], (3, 227, 227), batch_size=16)
    assert text.endswith(ALEXNET_BATCH16_TAIL)
    assert "              ReLU-2           [16, 96, 55, 55]               0" in text
    text = run_summary(default_models["alexnet_cifar"], (3, 32, 32), batch_size=128)
    assert text.endswith(ALEXNET_CIFAR_BATCH128_TAIL)


def test_small_sequential_matches_torchsummary():
    """Flatten as a module gets a row; a frozen weight makes its row non-trainable.

    The torch side: nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4),
    nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(64, 5)) with
    ``[0].weight.requires_grad_(False)``, summary(m, (3, 8, 8), batch_size=4).
    """
    m = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(64, 5),
    )  # fmt: skip
    m[0].weight.requires_grad = False
    assert run_summary(m, (3, 8, 8), batch_size=4) == SMALL_SEQUENTIAL_BATCH4


def test_prints_and_returns(default_models, capsys):
    text = summary(default_models["alexnet_cifar"], (3, 32, 32))
    assert capsys.readouterr().out == text + "\n" == ALEXNET_CIFAR
    summary(default_models["alexnet_cifar"], (3, 32, 32), print_fn=None)
    assert capsys.readouterr().out == ""


def test_live_against_torchsummary(default_models):
    """When torchsummary happens to be installed, compare with it directly."""
    pytest.importorskip("torch")
    torchsummary = pytest.importorskip("torchsummary")
    from minitorch_alexnet.models.torch_reference import build_torch_model

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        torchsummary.summary(build_torch_model("alexnet2012"), (3, 227, 227), device="cpu")
    assert run_summary(default_models["alexnet2012"], (3, 227, 227)) == buf.getvalue()


# ------------------------------------------------------------------ the model is left alone
def _snapshot(model):
    return {
        "flags": [m.training for m in model.modules()],
        "caches": [m.__dict__.get("_cache") for m in model.modules()],
        "buffers": {k: np.array(mt.to_numpy(v)) for k, v in model.named_buffers()},
        "buffer_ids": {k: id(v) for k, v in model.named_buffers()},
        "forwards": ["forward" in m.__dict__ for m in model.modules()],
    }


def test_summary_leaves_model_unchanged():
    model = build_model(
        "alexnet_cifar", channels=(4, 6, 8, 6, 6), hidden=16, num_classes=3
    ).double()
    model.train()
    model.fc1.eval()  # mixed flags must come back mixed
    x = mt.asarray(np.random.default_rng(0).normal(size=(4, 3, 32, 32)))
    y = model(x)  # leaves caches for a backward, and moves the running statistics
    before = _snapshot(model)
    rng_before = mt.backend.get_rng_state()

    summary(model, (3, 32, 32), print_fn=None, flops=True)

    after = _snapshot(model)
    assert after["flags"] == before["flags"]
    assert all(a is b for a, b in zip(after["caches"], before["caches"]))
    assert after["buffer_ids"] == before["buffer_ids"]
    for key, value in before["buffers"].items():
        np.testing.assert_array_equal(after["buffers"][key], value, err_msg=key)
    assert not any(after["forwards"]), "the instrumented forwards must be removed"
    assert mt.backend.get_rng_state() == rng_before
    # the backward of the forward before the summary still works, with the same result
    dx = model.backward(mt.asarray(np.ones(y.shape)))
    assert dx.shape == x.shape


def test_summary_in_eval_mode_stays_in_eval(default_models):
    model = default_models["alexnet_cifar"].eval()
    running = mt.to_numpy(model.conv1[2].running_mean).copy()
    summary(model, (3, 32, 32), print_fn=None)
    assert not any(m.training for m in model.modules())
    np.testing.assert_array_equal(mt.to_numpy(model.conv1[2].running_mean), running)
    model.train()


def test_errors_leave_model_unchanged(default_models):
    model = default_models["alexnet"]
    with pytest.raises(ValueError, match="smallest input that works is 3x227x227"):
        summary(model, (3, 64, 64), print_fn=None)
    assert all(m.training for m in model.modules())
    assert not any("forward" in m.__dict__ for m in model.modules())


# ------------------------------------------------------------------ FLOPs
def test_flops_column_and_totals(default_models):
    text = run_summary(default_models["alexnet_cifar"], (3, 32, 32), flops=True)
    lines = text.splitlines()
    assert lines[0] == "-" * 80
    assert lines[1].split() == ["Layer", "(type)", "Output", "Shape", "Param", "#", "FLOPs"]
    # 2 * Cin * K * K * Cout * Ho * Wo = 2 * 3 * 25 * 64 * 32 * 32
    assert "            Conv2d-1           [-1, 64, 32, 32]           4,864       9,830,400" in text
    assert "of which Conv2d + Linear: 364,441,600 (0.364 GFLOP)" in text
    # the torchsummary part is unchanged apart from the column
    assert "Total params: 5,877,834" in text and "Estimated Total Size (MB): 26.19" in text


def test_flops_by_layer(default_models):
    rows = {r.key: r for r in collect_layers(default_models["alexnet2012"], (3, 227, 227))}
    assert rows["Conv2d-5"].flops == 2 * (96 // 2) * 5 * 5 * 256 * 27 * 27  # grouped
    assert rows["Linear-17"].flops == 2 * 9216 * 4096
    assert rows["MaxPool2d-4"].flops == 8 * 96 * 27 * 27
    assert rows["ReLU-2"].flops == 96 * 55 * 55
    assert rows["LocalResponseNorm-3"].flops == 9 * 96 * 55 * 55
    assert rows["Dropout-16"].flops == 0
    assert rows["Conv2d-5"].name == "conv2.0"


def test_flops_per_batch_line(default_models):
    text = run_summary(default_models["alexnet_cifar"], (3, 32, 32), batch_size=8, flops=True)
    per_sample = int(text.split("Forward FLOPs per sample: ")[1].split(" ")[0].replace(",", ""))
    assert f"Forward FLOPs per batch of 8: {8 * per_sample:,}" in text


# ------------------------------------------------------------------ command line
def _cli(argv):
    parser = argparse.ArgumentParser()
    cli_summary.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["summary", *argv])


def test_cli_prints_the_table(capsys):
    args = _cli(["--model", "alexnet_cifar", "--backend", "numpy"])
    assert args.func is cli_summary.run
    assert cli_summary.run(args) == 0
    assert capsys.readouterr().out == ALEXNET_CIFAR


def test_cli_flops_and_batch(capsys):
    args = _cli(["--model", "alexnet_cifar", "--flops", "--batch-size", "8", "--backend", "numpy"])
    assert cli_summary.run(args) == 0
    out = capsys.readouterr().out
    assert "[8, 64, 32, 32]" in out and "Forward FLOPs per batch of 8" in out


def test_cli_bad_input_is_a_clean_error(capsys):
    args = _cli(["--model", "alexnet_cifar", "--input", "3,12,12", "--backend", "numpy"])
    assert cli_summary.run(args) == 2
    err = capsys.readouterr().err
    assert "too small" in err and "3x31x31" in err


def test_cli_rejects_malformed_input():
    with pytest.raises(SystemExit):
        _cli(["--input", "3,227"])


# ------------------------------------------------------------------ a student's own layer
# The example of docs/shapes.md ("A layer of your own"), run from the page's own text
def _docs_example_layer() -> type:
    page = (Path(__file__).resolve().parent.parent / "docs" / "shapes.md").read_text("utf-8")
    section = page.split("## A layer of your own", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(code, namespace)
    return namespace["SumPool2d"]


SumPool2d = _docs_example_layer()


def _student_net() -> nn.Sequential:
    # 3x8x8 -> conv 4x8x8 -> SumPool2d(4) 4x2x2 -> flatten 16 -> 5
    return nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), SumPool2d(4), nn.Flatten(), nn.Linear(16, 5)
    )


def test_a_students_layer_gets_shape_checks():
    net = _student_net()
    steps = shapes.trace_shapes(net, (1, 3, 8, 8))
    assert [(s.name, s.output_shape) for s in steps][2:4] == [("2", (1, 4, 2, 2)), ("3", (1, 16))]
    assert shapes.arithmetic(steps[2].layer, steps[2].input_shape, steps[2].output_shape) == (
        "floor(8 / 4) = 2"
    )
    # too small: the walk names the student's layer, shows its arithmetic, says what works
    with pytest.raises(shapes.InputShapeError) as info:
        shapes.check_input(net, (1, 3, 3, 3))
    assert str(info.value) == (
        "Sequential: input 3x3x3 is too small: 2 (SumPool2d(k=4)) would produce an empty "
        "4x0x0 output from 4x3x3 (floor(3 / 4) = 0). The smallest input that works is "
        "3x8x8 (square inputs from 8x8 to 11x11 work)."
    )
    assert shapes.smallest_input_size(net) == 8
    # its output reaches the Linear layer: a size that pools to 3x3 gives 36 features, not 16
    with pytest.raises(ValueError, match=r"4 \(Linear\(16, 5\)\) expects 16 .* with 4x3x3 = 36"):
        shapes.check_input(net, (1, 3, 12, 12))
    # its own refusal, as a layer and inside a walk
    with pytest.raises(ValueError, match=r"SumPool2d\(k=2\) cannot take shape \(2, 8\): it needs"):
        shapes.layer_output_shape(SumPool2d(2), (2, 8))
    with pytest.raises(shapes.InputShapeError, match=r"pool \(SumPool2d\(k=2\)\) needs a"):
        shapes.check_input([("pool", SumPool2d(2))], (2, 8))


def test_a_students_layer_gets_a_summary_row_and_flops():
    net = _student_net()
    rows = {r.key: r for r in collect_layers(net, (3, 8, 8))}
    assert rows["SumPool2d-3"].output_shape == (2, 4, 2, 2)
    assert rows["SumPool2d-3"].flops == 15 * 4 * 2 * 2
    assert rows["SumPool2d-3"].name == "2"
    text = run_summary(net, (3, 8, 8), flops=True)
    assert "         SumPool2d-3              [-1, 4, 2, 2]               0             240" in text
    conv, relu, linear = 2 * 3 * 9 * 4 * 8 * 8, 4 * 8 * 8, 2 * 16 * 5
    assert f"Forward FLOPs per sample: {conv + relu + 240 + linear:,}" in text
    assert "without a FLOP rule" not in text


def test_a_layer_without_the_facts_still_gets_a_row():
    class Double(nn.Module):
        def forward(self, x):
            return 2 * x

    net = nn.Sequential(nn.Conv2d(3, 4, 3), Double())
    rows = collect_layers(net, (3, 5, 5))
    assert [r.key for r in rows] == ["Conv2d-1", "Double-2"] and rows[1].flops is None
    text = run_summary(net, (3, 5, 5), flops=True)
    assert "(1 layer(s) without a FLOP rule, shown as ?, not counted)" in text
    with pytest.raises(TypeError, match=r"1 \(Double\) has no shape rule.*output_shape"):
        shapes.trace_shapes(net, (1, 3, 5, 5))


# ------------------------------------------------------------------ huge inputs: shapes, not arrays
def _rows(records):
    return [
        (r.key, r.name, r.module, r.output_shape, r.params, r.trainable, r.flops) for r in records
    ]


def _same_records(a, b):
    return _rows(a) == _rows(b)


def test_rows_from_shapes_equal_the_rows_of_a_forward_pass(default_models):
    """The table comes from the layers' shape facts; a real pass gives the same rows."""
    models = [*default_models.values(), _student_net()]
    for model in models:
        size = getattr(model, "input_size", (3, 8, 8))
        walked = collect_layers(model, size, forward=False)
        assert _same_records(walked, collect_layers(model, size, forward=True))
        assert _same_records(walked, collect_layers(model, size))


def test_a_huge_input_is_summarised_from_shapes_without_arrays(monkeypatch):
    """Before: (3, 100000, 100000) asked for a 447 GiB input array (MemoryError traceback)."""
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.MaxPool2d(2))

    def no_arrays(*args, **kwargs):
        raise AssertionError("the summary made an input array")

    monkeypatch.setattr(np, "linspace", no_arrays)
    text = run_summary(net, (3, 100_000, 100_000), flops=True)
    assert "            Conv2d-1      [-1, 4, 49999, 49999]             112" in text
    assert "Input size (MB): 114440.92" in text
    conv, relu, pool = 2 * 27 * 4 * 49999**2, 4 * 49999**2, 3 * 4 * 24999**2
    assert f"Forward FLOPs per sample: {conv + relu + pool:,}" in text


def test_cli_huge_input_is_a_clean_error_not_a_memory_error(capsys):
    for model, expected in (("alexnet", "3x227x227"), ("alexnet_cifar", "3x31x31")):
        args = _cli(["--model", model, "--input", "3,100000,100000", "--backend", "numpy"])
        assert cli_summary.run(args) == 2
        err = capsys.readouterr().err
        assert "expects" in err and f"smallest input that works is {expected}" in err
        assert "Traceback" not in err and "GiB" not in err


def test_a_forward_pass_that_would_be_huge_is_refused_with_the_reason():
    class Double(nn.Module):  # no output_shape: the table needs a real forward pass
        def forward(self, x):
            return 2 * x

    net = nn.Sequential(nn.Conv2d(3, 4, 3), Double())
    with pytest.raises(ValueError) as info:
        summary(net, (3, 100_000, 100_000), print_fn=None)
    message = str(info.value)
    assert "needs a forward pass because 1 (Double) has no shape rule" in message
    assert "224 GiB for its input alone" in message and "smaller input" in message
    with pytest.raises(ValueError, match="the shape facts cannot give Sequential's rows"):
        collect_layers(net, (3, 5, 5), forward=False)


def test_running_out_of_memory_in_the_pass_is_a_clear_error(monkeypatch):
    class Hungry(nn.Module):
        def forward(self, x):
            raise MemoryError("Unable to allocate 447. GiB")

    with pytest.raises(ValueError, match=r"that pass ran out of memory \(Unable to allocate"):
        summary(nn.Sequential(nn.ReLU(), Hungry()), (3, 4, 4), print_fn=None)
