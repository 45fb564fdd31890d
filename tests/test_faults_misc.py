"""Faults that gave a wrong answer without a word, or lost the reason for an error.

* fractional class labels (3.7, 2.5): refused with the reason, never truncated;
* the Numba convolution's column memory, shared by threads: each gets its own buffer;
* an out-of-range class label on the GPU: a NaN loss and ``crit.check()``, not a
  quietly wrong loss (CuPy's indexing wraps around). The device path is also run
  here on the CPU, with NumPy standing in for CuPy.
"""

from __future__ import annotations

import copy
import importlib
import sys
import threading
import time

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import nn
from minitorch_alexnet.backend.numba import memory
from minitorch_alexnet.nn import loss as loss_module


def _logits(n: int = 3, k: int = 4, seed: int = 0):
    return mt.asarray(np.random.default_rng(seed).normal(size=(n, k)), "float32")


# ------------------------------------------------------------------ fractional labels
@pytest.mark.parametrize(
    "labels", [np.array([3.7, 2.5, 1.0]), [3.7, 2.5, 1.0], np.array([0.0, np.nan, 1.0])]
)
def test_fractional_labels_are_refused_not_truncated(labels):
    with pytest.raises(TypeError) as info:
        nn.CrossEntropyLoss()(_logits(), labels)
    message = str(info.value)
    assert "not whole numbers" in message and "would silently truncate" in message
    assert "3.7, 2.5" in message or "nan" in message
    assert "fix the labels where they are made" in message


def test_whole_float_labels_get_the_conversion_and_it_is_exact():
    crit = nn.CrossEntropyLoss()
    with pytest.raises(TypeError, match=r"values are whole numbers: convert them with asarray"):
        crit(_logits(), np.array([3.0, 2.0, 1.0]))
    assert np.isfinite(float(crit(_logits(), mt.asarray(np.array([3.0, 2.0, 1.0]), "int64"))))


# ------------------------------------------------------------------ column memory and threads
class _YieldingSys:
    """``sys`` for the pool's module whose getrefcount lets other threads run first:
    the moment between judging a buffer free and taking it, or between reading the
    list of buffers and indexing it, is when another thread gets in."""

    def getrefcount(self, obj: object) -> int:
        time.sleep(0)  # gives up the GIL
        return sys.getrefcount(obj)  # one more reference (this frame's), as in __init__


def test_column_memory_gives_each_thread_its_own_buffer(monkeypatch):
    """Before: the pool's list was rebound under other threads (IndexError), and two
    threads could take the same buffer and write into each other's columns."""
    monkeypatch.setattr(memory, "sys", _YieldingSys())
    pool = memory.ColumnMemory()  # counts its references through the same getrefcount
    errors: list[str] = []

    def work(k: int) -> None:
        rng = np.random.default_rng(k)
        try:
            for _ in range(300):
                a = pool.take((int(rng.integers(1, 2000)),), np.float32)
                a[...] = k
                b = pool.take((int(rng.integers(1, 200)),), np.float64)
                b[...] = -k
                if not ((a == k).all() and (b == -k).all()):
                    errors.append(f"thread {k}: another thread wrote into its buffer")
                    return
                del a, b
        except Exception as e:  # the failure being tested for
            errors.append(f"thread {k}: {e!r}")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    a, b = pool.take((10,), np.float32), pool.take((10,), np.float32)
    assert not np.shares_memory(a, b)
    del a, b
    assert len(pool._buffers) <= 8  # one or two buffers per thread, not one per request


def _conv_step(conv, x):
    conv.zero_grad()
    y = conv(x)
    g = mt.asarray(np.cos(np.arange(y.size, dtype=np.float32)).reshape(y.shape))
    dx = conv.backward(g)
    return [mt.to_numpy(a).copy() for a in (y, dx, conv.weight.grad, conv.bias.grad)]


def test_conv2d_in_threads_matches_one_thread(monkeypatch):
    mt.set_backend("numba")
    # a fresh pool whose reference counts let other threads in (see _YieldingSys)
    monkeypatch.setattr(memory, "sys", _YieldingSys())
    pool = memory.ColumnMemory()
    for name in ("conv", "patches"):  # the modules that take columns from the pool
        module = importlib.import_module(f"minitorch_alexnet.backend.numba.{name}")
        monkeypatch.setattr(module, "columns", pool)
    mt.manual_seed(3)
    base = nn.Conv2d(3, 5, 3, padding=1)
    rng = np.random.default_rng(0)
    # different sizes, so the threads ask the pool for buffers of different sizes
    inputs = [mt.asarray(rng.normal(size=(k + 1, 3, 6 + 2 * k, 7)), "float32") for k in range(4)]
    convs = [copy.deepcopy(base) for _ in inputs]
    expected = [_conv_step(c, x) for c, x in zip(convs, inputs)]
    errors: list[str] = []

    def work(k: int) -> None:
        try:
            for _ in range(30):
                got = _conv_step(convs[k], inputs[k])
                for g, e in zip(got, expected[k]):
                    np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
        except Exception as e:  # an IndexError from the pool, or wrong numbers
            errors.append(f"thread {k}: {type(e).__name__}: {e}")

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(interval)
    assert errors == []


# ------------------------------------------------------------------ out-of-range labels on the GPU
@pytest.fixture
def device_path(monkeypatch):
    """Run the loss's GPU path (range checked on the device) under NumPy."""
    monkeypatch.setattr(loss_module, "_checks_range_on_host", lambda: False)
    mt.set_backend("numpy")


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_device_path_out_of_range_label_gives_nan_and_check_says_why(device_path, smoothing):
    crit = nn.CrossEntropyLoss(label_smoothing=smoothing)
    loss = crit(_logits(), np.array([0, 4, 1]))
    assert np.isnan(float(loss))
    assert np.isnan(mt.to_numpy(crit.backward())).all()
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\), got values in \[0, 4\]"):
        crit.check()
    crit(_logits(), np.array([-1, 2, 1]))
    with pytest.raises(ValueError, match=r"got values in \[-1, 2\]"):
        crit.check()


def test_device_path_check_reports_a_bad_step_even_after_good_ones(device_path):
    """The training loop notices the NaN some steps later; check() still says why."""
    crit = nn.CrossEntropyLoss()
    crit(_logits(), np.array([0, 7, 1]))
    for _ in range(3):
        assert np.isfinite(float(crit(_logits(), np.array([0, 3, 1]))))
    with pytest.raises(ValueError, match=r"an earlier forward pass .* outside \[0, 4\)"):
        crit.check()
    crit.check()  # reported once


@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_device_path_in_range_equals_the_cpu_path(device_path, smoothing, monkeypatch):
    t = np.array([0, 3, 1])
    crit = nn.CrossEntropyLoss(label_smoothing=smoothing)
    loss, grad = float(crit(_logits(), t)), mt.to_numpy(crit.backward())
    crit.check()  # nothing to report
    monkeypatch.setattr(loss_module, "_checks_range_on_host", lambda: True)
    host = nn.CrossEntropyLoss(label_smoothing=smoothing)
    assert loss == float(host(_logits(), t))
    np.testing.assert_array_equal(grad, mt.to_numpy(host.backward()))
    host.check()  # the CPU path raised at once, if at all


def test_cpu_still_raises_at_once():
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\).*labels 0 to 3"):
        nn.CrossEntropyLoss()(_logits(), np.array([0, 4, 1]))


@pytest.mark.gpu
@pytest.mark.skipif("cupy" not in mt.available_backends(), reason="needs CuPy and a CUDA GPU")
def test_gpu_out_of_range_label_is_not_a_silently_wrong_loss():
    """Before: no check on the GPU, and CuPy wrapped label 4 around to column 0."""
    mt.set_backend("cupy")
    crit = nn.CrossEntropyLoss()
    z = _logits()
    loss = crit(z, mt.asarray(np.array([0, 4, 1]), "int64"))
    assert type(loss).__module__.startswith("cupy")  # stayed on the device
    assert np.isnan(float(loss))
    assert np.isnan(mt.to_numpy(crit.backward())).all()
    with pytest.raises(ValueError, match=r"targets must lie in \[0, 4\), got values in \[0, 4\]"):
        crit.check()
    good = mt.asarray(np.array([0, 3, 1]), "int64")
    value = float(crit(z, good))
    crit.check()
    crit(z, mt.asarray(np.array([0, -1, 1]), "int64"))
    crit(z, good)
    with pytest.raises(ValueError, match="an earlier forward pass"):
        crit.check()
    mt.set_backend("numpy")
    expected = float(nn.CrossEntropyLoss()(mt.to_numpy(z), np.array([0, 3, 1])))
    assert value == pytest.approx(expected, rel=1e-6)
