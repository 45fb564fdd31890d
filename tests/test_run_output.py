"""What a newcomer sees: the test run's summary (skips one line per reason) and the
run's loss curve on a log axis."""

from __future__ import annotations


def test_skips_are_summed_up_one_line_per_reason():
    from types import SimpleNamespace

    from conftest import skip_summary

    cupy = ("tests/test_a.py", 3, "Skipped: needs CuPy and a CUDA GPU")
    reports = [SimpleNamespace(longrepr=cupy)] * 3 + [
        SimpleNamespace(longrepr=("tests/test_b.py", 9, "Skipped: needs CuPy and a CUDA GPU")),
        SimpleNamespace(longrepr=("tests/test_b.py", 1, "could not import 'torch'")),
    ]
    assert skip_summary(reports) == [
        "SKIPPED    4: needs CuPy and a CUDA GPU (2 files)",
        "SKIPPED    1: could not import 'torch' (1 file)",
    ]


def test_the_loss_curve_is_drawn_on_a_log_axis(tmp_path, monkeypatch):
    """An early spike of the test loss (hundreds) must not flatten the rest of the
    curve; a NaN (a diverged run) keeps a linear axis."""
    import pytest

    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from minitorch_alexnet.train import rundir

    scales = []
    monkeypatch.setattr(plt, "close", lambda fig: scales.append(fig.axes[0].get_yscale()))
    history = [
        dict(epoch=1, train_loss=2.1, test_loss=354.9, train_acc=0.2, test_acc=0.1),
        dict(epoch=2, train_loss=1.5, test_loss=1.4, train_acc=0.4, test_acc=0.45),
    ]
    assert rundir.plot_curves(tmp_path / "a.png", history, "run")
    history[1]["test_loss"] = float("nan")
    assert rundir.plot_curves(tmp_path / "b.png", history, "run")
    assert scales == ["log", "linear"]
    assert (tmp_path / "a.png").stat().st_size > 0


def test_a_short_epoch_shows_its_loss_before_it_ends(monkeypatch):
    """The issue's README run has 15 steps an epoch: the bar must update within it."""
    from types import SimpleNamespace

    from minitorch_alexnet.train import loop

    assert loop.log_every(15) == 1  # the CPU: reading the loss costs nothing
    monkeypatch.setattr(loop.B, "get_backend", lambda: SimpleNamespace(device="cuda"))
    assert loop.log_every(15) == 3 and loop.log_every(1000) == loop.LOG_EVERY
    assert loop.log_every(3) == 1


def test_help_shows_defaults_that_say_something_once():
    from minitorch_alexnet.train import cli

    text = " ".join(cli.build_parser("train").format_help().split())
    assert "(default: 0)" in text  # --seed: 0 is a value, not an off switch
    assert "(default: 128)" in text and "(default: True)" not in text
    assert "(default: False)" not in text and "(default: None)" not in text
