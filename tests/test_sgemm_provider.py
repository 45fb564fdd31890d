"""The Numba backend's SGEMM providers (``backend/numba/gemm.py``): each one installed
gives NumPy's products to float32 rounding, in every layout the overrides use; the
environment variable and ``set_provider`` choose; a missing or unknown one says how to
fix it. Tests of a provider that is not installed here skip, saying so."""

from __future__ import annotations

import re

import numpy as np
import pytest

pytest.importorskip("numba")

import numba  # noqa: E402

import minitorch_alexnet as mt  # noqa: E402
from minitorch_alexnet.backend import dispatch  # noqa: E402
from minitorch_alexnet.backend.numba import gemm  # noqa: E402

INSTALLED = gemm.available()
EPS = float(np.finfo(np.float32).eps)


def _needs(name: str) -> None:
    if name not in INSTALLED:
        pytest.skip(f"SGEMM provider {name!r} is not installed here ({gemm.INSTALL[name]})")


@pytest.fixture(autouse=True)
def _restore_provider(monkeypatch):
    """Each test starts from the automatic choice and leaves it as it found it."""
    monkeypatch.delenv(gemm.ENV, raising=False)
    before = gemm._active
    gemm.set_provider(None)
    yield
    gemm._active = before


# AlexNetCIFAR's convolutions: (name, O, C*KH*KW, Ho*Wo); the columns of a batch of N
# are N*Ho*Wo wide. Each keeps its input's size; max pooling follows conv1, conv2, conv5.
CONVS = [
    ("conv1", 64, 3 * 25, 32 * 32),
    ("conv2", 192, 64 * 25, 15 * 15),
    ("conv3", 384, 192 * 9, 7 * 7),
    ("conv4", 256, 384 * 9, 7 * 7),
    ("conv5", 256, 256 * 9, 7 * 7),
]
LINEARS = [("fc1", 1024, 2304), ("fc2", 1024, 1024), ("fc3", 10, 1024)]  # (out, in)


def _layouts(rng: np.random.Generator) -> list[tuple[str, np.ndarray, np.ndarray, bool]]:
    """(what, a, b, with out=) for each product the overrides make, at batch 2, plus
    Linear's three products (x W^T, dY^T x, dY W) and the layouts BLAS cannot read."""

    def r(*shape):
        return rng.standard_normal(shape, dtype=np.float32)

    cases = []
    for name, O, K, L in CONVS:
        L *= 2  # batch 2
        cases.append((f"{name} Y = W X", r(O, K), r(K, L), False))
        cases.append((f"{name} dW = dY X^T (rows)", r(O, L), r(L, K), False))
        cases.append((f"{name} dW = dY X^T (kept columns)", r(O, L), r(K, L).T, False))
        cases.append((f"{name} dX^T = dY^T W, out=", r(O, L).T, r(O, K), True))
    for name, out_f, in_f in LINEARS:
        cases.append((f"{name} y = x W^T", r(2, in_f), r(out_f, in_f).T, False))
        cases.append((f"{name} dW = dY^T x", r(2, out_f).T, r(2, in_f), True))
        cases.append((f"{name} dx = dY W", r(2, out_f), r(out_f, in_f), False))
    a = r(40, 90)
    cases.append(("column slices", a[:, 10:70], r(60, 80)[:, :70], True))
    cases.append(("every other row (copied)", a[::2], r(90, 7), False))
    cases.append(("reversed columns (copied)", a[:, ::-1], r(90, 5), True))
    cases.append(("one row, one column", r(1, 90), r(90, 1), True))
    return cases


def _close_to_float32_rounding(got: np.ndarray, a: np.ndarray, b: np.ndarray, what: str):
    """|got - A B| <= K eps (|A| |B|) elementwise, A B in float64: the bound on any
    order of K float32 additions (a wrong layout or operand misses it by far)."""
    exact = a.astype(np.float64) @ b.astype(np.float64)
    bound = a.shape[1] * EPS * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64))
    worst = float(np.max(np.abs(got - exact) - bound, initial=-1.0))
    assert got.shape == exact.shape and got.dtype == np.float32, what
    assert worst <= 0, f"{what}: off by {worst:.3g} beyond float32 rounding"


@pytest.mark.parametrize("name", gemm.PROVIDERS)
def test_each_provider_gives_numpys_products_to_float32_rounding(name):
    _needs(name)
    gemm.set_provider(name)
    for what, a, b, with_out in _layouts(np.random.default_rng(0)):
        want = np.matmul(a, b)
        _close_to_float32_rounding(want, a, b, f"NumPy, {what}")
        if with_out:
            out = np.full(want.shape, np.nan, np.float32)
            got = gemm.matmul(a, b, out=out)
            assert got is out, what
        else:
            got = gemm.matmul(a, b)
        _close_to_float32_rounding(got, a, b, f"{name}, {what}")
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("name", gemm.PROVIDERS)
def test_each_provider_writes_a_strided_or_overlapping_out_like_numpy(name):
    _needs(name)
    gemm.set_provider(name)
    rng = np.random.default_rng(1)
    a = rng.standard_normal((30, 20), dtype=np.float32)
    b = rng.standard_normal((20, 30), dtype=np.float32)
    out_t = np.zeros((30, 30), np.float32).T  # a transposed out: BLAS cannot write it
    assert gemm.matmul(a, b, out=out_t) is out_t
    _close_to_float32_rounding(out_t, a, b, f"{name}, transposed out")
    square = rng.standard_normal((600, 600), dtype=np.float32)
    want = square @ square
    assert gemm.matmul(square, square, out=square) is square  # out is an operand
    np.testing.assert_allclose(square, want, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", gemm.PROVIDERS)
def test_other_dtypes_and_empty_products_are_numpys_exactly(name):
    _needs(name)
    gemm.set_provider(name)
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((7, 5)), rng.standard_normal((5, 3))
    np.testing.assert_array_equal(gemm.matmul(a, b), np.matmul(a, b))  # float64
    batch = rng.standard_normal((2, 7, 5)).astype(np.float32)
    np.testing.assert_array_equal(gemm.matmul(batch, b.astype(np.float32)), batch @ b.astype("f4"))
    empty = gemm.matmul(np.ones((4, 0), np.float32), np.ones((0, 3), np.float32))
    assert empty.shape == (4, 3) and not empty.any()
    with pytest.raises(ValueError):  # NumPy's own error for mismatched shapes
        gemm.matmul(np.ones((4, 5), np.float32), np.ones((6, 3), np.float32))


@pytest.mark.parametrize("name", gemm.PROVIDERS)
def test_the_environment_variable_and_the_call_pick_the_provider(name, monkeypatch):
    _needs(name)
    calls = []
    if name != "openblas":  # the provider's own sgemm must run
        lib = gemm._library(name)
        monkeypatch.setattr(lib, "sgemm", lambda *args, f=lib.sgemm: calls.append(1) or f(*args))
    monkeypatch.setenv(gemm.ENV, name.upper())
    assert gemm.set_provider(None) == name == gemm.provider()
    assert gemm.describe().startswith(name)
    a = np.ones((3, 4), np.float32)
    np.testing.assert_array_equal(gemm.matmul(a, a.T), np.full((3, 3), 4, np.float32))
    assert calls == ([] if name == "openblas" else [1])
    other = next(p for p in INSTALLED if p != name) if len(INSTALLED) > 1 else None
    if other is not None:  # the call wins over the environment variable
        assert gemm.set_provider(other) == other == gemm.provider()
        gemm.matmul(a, a.T)
        assert calls == ([] if name == "openblas" else [1])


def test_the_automatic_choice_is_the_first_of_auto_installed(monkeypatch):
    tried = []

    def installed(*names):
        return lambda name: tried.append(name) or name in names

    monkeypatch.setattr(gemm, "AUTO", ("onednn", "mkl", "openblas"))
    monkeypatch.setattr(gemm, "_loads", installed("openblas", "mkl"))
    assert gemm.set_provider(None) == "mkl" and tried == ["onednn", "mkl"]
    monkeypatch.setattr(gemm, "_loads", installed("openblas"))
    assert gemm.set_provider(None) == "openblas"
    monkeypatch.setattr(gemm, "AUTO", ())  # nothing preferred: NumPy's
    monkeypatch.setattr(gemm, "_loads", installed("openblas", "mkl", "onednn"))
    assert gemm.set_provider(None) == "openblas"


def test_the_shipped_automatic_choice_loads_no_library_it_does_not_use(monkeypatch):
    monkeypatch.setattr(gemm, "_libraries", {})
    name = gemm.set_provider(None)
    assert name == next((p for p in gemm.AUTO if p in INSTALLED), "openblas")
    assert set(gemm._libraries) <= {name}


def test_an_unknown_provider_names_the_choices(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown SGEMM provider 'cublas'.*'openblas'"):
        gemm.set_provider("cublas")
    monkeypatch.setenv(gemm.ENV, "acml")
    gemm._active = None
    with pytest.raises(ValueError, match=f"unknown SGEMM provider 'acml'.*{gemm.ENV}"):
        gemm.matmul(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))


@pytest.mark.parametrize("name", ["mkl", "onednn"])
def test_a_missing_provider_says_how_to_install_it(name, monkeypatch):
    """Simulated (its library renamed away), so that it runs where it is installed too."""
    monkeypatch.setattr(gemm, "SONAMES", {**gemm.SONAMES, name: ("libnothing-here.so.9",)})
    monkeypatch.setattr(gemm, "_libraries", {})
    monkeypatch.setattr(gemm, "_active", None)  # chosen again, without the missing one
    monkeypatch.delenv(gemm.ENV, raising=False)
    with pytest.raises(gemm.ProviderError, match=r"not installed.*pip install"):
        gemm.set_provider(name)
    assert gemm.provider() != name and name not in gemm.available()
    monkeypatch.setenv(gemm.ENV, name)
    gemm._active = None
    with pytest.raises(
        gemm.ProviderError, match=re.escape(f"Install it with `{gemm.INSTALL[name]}`")
    ):
        gemm.provider()


@pytest.mark.parametrize("name", ["mkl", "onednn"])
def test_a_provider_that_is_really_missing_raises(name):
    if name in INSTALLED:
        pytest.skip(f"SGEMM provider {name!r} is installed here: nothing missing to check")
    with pytest.raises(gemm.ProviderError, match=re.escape(gemm.INSTALL[name])):
        gemm.set_provider(name)


@pytest.mark.parametrize("name", ["mkl", "onednn"])
def test_a_provider_runs_on_the_kernels_threads_one_block_each(name, monkeypatch):
    _needs(name)
    gemm.set_provider(name)
    lib, blocks = gemm._library(name), []
    sgemm = lib.sgemm
    monkeypatch.setattr(lib, "sgemm", lambda *args: blocks.append(args[2:4]) or sgemm(*args))
    before = numba.get_num_threads()
    rng = np.random.default_rng(4)
    try:
        for threads in sorted({1, before}):
            numba.set_num_threads(threads)
            for M, N in [(300, 40), (40, 300), (10, 10)]:  # by rows, by columns, one block
                a = rng.standard_normal((M, 50), dtype=np.float32)
                b = rng.standard_normal((N, 50), dtype=np.float32).T
                blocks.clear()
                _close_to_float32_rounding(gemm.matmul(a, b), a, b, f"{M}x{N}, {threads} threads")
                want = 1 if M * N == 100 else threads
                assert len(blocks) == want, (M, N, threads, blocks)
                assert sum(m if M >= N else n for m, n in blocks) == max(M, N)
    finally:
        numba.set_num_threads(before)


def test_onednn_leaves_the_callers_openmp_thread_count_as_it_was():
    """PyTorch may share oneDNN's OpenMP library: a product sets one thread for itself,
    then gives the calling thread its count back. (MKL runs sequential: no threads.)"""
    _needs("onednn")
    gemm.set_provider("onednn")
    omp = gemm._find("onednn")
    before = omp.omp_get_max_threads()
    try:
        omp.omp_set_num_threads(3)
        gemm.matmul(np.ones((200, 64), np.float32), np.ones((64, 200), np.float32))
        assert omp.omp_get_max_threads() == 3
    finally:
        omp.omp_set_num_threads(before)


def test_the_shapes_above_are_alexnet_cifars():
    from minitorch_alexnet import nn
    from minitorch_alexnet.models import build_model

    model = build_model("alexnet_cifar", 10)
    convs = [m.weight.shape for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m.weight.shape for m in model.modules() if isinstance(m, nn.Linear)]
    assert [(O, int(np.prod(rest))) for O, *rest in convs] == [(O, K) for _, O, K, _ in CONVS]
    assert linears == [(o, i) for _, o, i in LINEARS]


def test_the_numba_convolution_runs_its_products_here_and_numpy_does_not(monkeypatch):
    from minitorch_alexnet.nn.conv import conv2d_backward, conv2d_forward

    calls = []
    wrapped = gemm.matmul
    monkeypatch.setattr(gemm, "matmul", lambda *a, **k: calls.append(1) or wrapped(*a, **k))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 8, 8), dtype=np.float32)
    w = rng.standard_normal((4, 3, 3, 3), dtype=np.float32)
    args = (w, None, (1, 1), (1, 1), 1)
    with mt.use_backend("numpy"):  # the reference: NumPy's products, never this module
        y_ref, ctx = conv2d_forward(x, *args)
        conv2d_backward(np.ones_like(y_ref), ctx)
    assert calls == []
    with mt.use_backend("numba"):
        y, ctx = conv2d_forward(x, *args)
        assert len(calls) == 1  # Y = W X
        conv2d_backward(np.ones_like(y), ctx)
        assert len(calls) == 3  # and dW, dX
    cols = dispatch.reference("im2col")(x, (3, 3), (1, 1), (1, 1))
    got = y.transpose(1, 0, 2, 3).reshape(4, -1)  # (O, N*Ho*Wo), as W X
    _close_to_float32_rounding(got, w.reshape(4, -1), cols, "conv2d_forward under numba")
