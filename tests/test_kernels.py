"""(b) What the compiled backends promise beyond matching each reference on random cases.

``test_overrides.py`` holds every override of every backend to its reference's numbers
on Hypothesis cases. This file checks the promises that need special inputs or look
inside a backend:

* the reference im2col and col2im on a hand-worked example;
* the Numba convolution gradients (``backend/numba/patches.py``: the columns channels
  last) against the reference's products: exactly equal for integer values, whatever
  the order of additions, and within a rounding bound otherwise; the whole Numba
  convolution exact for integer values, with the columns kept or redone;
* whole layers giving the same numbers on every backend;
* max pooling: windows of nothing but -inf pick a real pixel, a NaN wins as argmax
  does, and Numba's 3x3 fast path with ties, NaNs and infinities, its flat indices
  h*W + w against the reference's window positions i*KW + j;
* the layout kernels on an empty batch; BatchNorm statistics when the mean dwarfs
  the spread;
* Numba's column memory: buffers reused only when free, never one in use.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import ConvCase, conv_cases, normal, seeds

import minitorch_alexnet as mt
from minitorch_alexnet.backend.numba import conv as nb_conv
from minitorch_alexnet.backend.numba import patches as nb_patches
from minitorch_alexnet.backend.numba import pooling as nb_pooling
from minitorch_alexnet.backend.numba.memory import ColumnMemory
from minitorch_alexnet.nn.batchnorm import batchnorm_forward
from minitorch_alexnet.nn.conv import conv2d_backward, conv2d_forward
from minitorch_alexnet.nn.im2col import col2im, im2col
from minitorch_alexnet.nn.pooling import maxpool2d_backward, maxpool2d_forward

dtypes = st.sampled_from(["float32", "float64"])


def _reference(fn, *args):
    """``fn`` on the numpy backend: its reference, every step from the layer files."""
    with mt.use_backend("numpy"):
        return fn(*args)


# ---------------------------------------------------------------- im2col
def test_im2col_matches_a_hand_worked_example():
    # one 3x3 image, 2x2 kernel, stride 1: four windows, each a column
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    window = ((2, 2), (1, 1), (0, 0))
    cols = im2col.reference(x, *window)
    expected = np.array(
        [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]], dtype=float
    )  # row (i, j) = the pixel at offset (i, j) of each window
    np.testing.assert_array_equal(cols, expected)
    # col2im of all-ones counts how many windows cover each pixel
    counts = col2im.reference(np.ones_like(cols), x.shape, *window)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


# ---------------------------------------------------------------- Numba conv gradients
def _grouped(case: ConvCase, seed: int, dtype: str, columns: int) -> np.ndarray:
    """An array laid out as the products' operands, (G, O/G, columns)."""
    return normal(seed, (case.groups, case.O // case.groups, columns), dtype)


@given(case=conv_cases(), seed=seeds, dtype=dtypes, integers=st.booleans())
def test_numba_input_grad_matches_the_reference_product(case, seed, dtype, integers):
    # dx = col2im(W_g^T dY_g per group); the Numba kernel takes the transposed product
    # and adds its rows back channels last, so its dot products may round differently
    # from the reference's: equal to rounding. With integer values every product and
    # sum is exact in any order, so then the two must agree exactly: any pixel added
    # to the wrong place, or twice, or missed, shows.
    G, (Ho, Wo) = case.groups, case.out_hw
    dy = _grouped(case, seed, dtype, case.N * Ho * Wo)
    w = _grouped(case, seed + 1, dtype, case.C // G * case.kh * case.kw)
    if integers:
        dy, w = np.round(4 * dy), np.round(4 * w)
    dcols = (w.transpose(0, 2, 1) @ dy).reshape(-1, dy.shape[2])  # dX_g = W_g^T dY_g
    expected = col2im.reference(dcols, case.x_shape, case.kernel, case.stride, case.padding)
    got = nb_patches.patches_input_grad(dy, w, case.x_shape, *case.window)
    assert got.shape == expected.shape == case.x_shape and got.dtype == expected.dtype
    if integers:
        np.testing.assert_array_equal(got, expected)
    else:  # each pixel: at most KH*KW*O/G products, each below |dy|max * |w|max
        eps = np.finfo(dtype).eps
        bound = case.kh * case.kw * dy.shape[1] * np.abs(dy).max() * np.abs(w).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=8 * eps * bound)


@given(case=conv_cases(max_channels=5), seed=seeds, dtype=dtypes, integers=st.booleans())
@example(  # always one case with 8 channels per group, two groups, padding and strides
    case=ConvCase(N=2, C=16, O=4, H=6, W=7, kh=3, kw=2, sh=2, sw=1, ph=1, pw=0, groups=2),
    seed=0,
    dtype="float32",
    integers=False,
)
def test_numba_weight_grad_matches_the_reference_product(case, seed, dtype, integers):
    # dW_g = dY_g X_g^T; the Numba kernel redoes the columns channels last and reorders
    # the product's columns: equal to rounding, exactly equal for integer values
    G, (Ho, Wo) = case.groups, case.out_hw
    K = case.C // G * case.kh * case.kw
    dy = _grouped(case, seed, dtype, case.N * Ho * Wo)
    x = normal(seed + 1, case.x_shape, dtype)
    if integers:
        dy, x = np.round(4 * dy), np.round(4 * x)
    cols = im2col.reference(x, case.kernel, case.stride, case.padding).reshape(G, K, -1)
    expected = (dy @ cols.transpose(0, 2, 1)).reshape(case.O, K)  # dW_g = dY_g X_g^T
    got = nb_patches.patches_weight_grad(dy, x, *case.window)
    assert got.shape == expected.shape and got.dtype == expected.dtype
    if integers:
        np.testing.assert_array_equal(got, expected)
    else:  # each entry: a sum of N*Ho*Wo products, each below |dy|max * |x|max
        eps = np.finfo(dtype).eps
        bound = dy.shape[2] * np.abs(dy).max() * np.abs(x).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=8 * eps * bound)


@given(case=conv_cases(max_channels=5), seed=seeds, dtype=dtypes, kept=st.booleans())
def test_numba_conv2d_is_exact_for_integer_values_with_kept_or_redone_columns(
    monkeypatch, case, seed, dtype, kept
):
    # the whole Numba convolution (products, layout passes, bias sums), with im2col's
    # columns kept from forward (one BLAS product per group for dW) or redone channels
    # last in backward: integer values leave no rounding, so every output is exact
    monkeypatch.setattr(nb_conv, "KEEP_COLUMNS", kept)
    G, (Ho, Wo) = case.groups, case.out_hw
    x = np.round(4 * normal(seed, case.x_shape, dtype))
    w = np.round(4 * normal(seed + 1, (case.O, case.C // G, case.kh, case.kw), dtype))
    b = np.round(4 * normal(seed + 2, (case.O,), dtype)) if case.bias else None
    dy = np.round(4 * normal(seed + 3, (case.N, case.O, Ho, Wo), dtype))
    args = (x, w, b, case.stride, case.padding, G)
    y, ctx = _reference(conv2d_forward, *args)
    want = [y, *_reference(conv2d_backward, dy, ctx)]
    y, ctx = nb_conv.conv2d_forward(*args)
    assert (ctx["cols"] is not None) == kept
    got = [y, *nb_conv.conv2d_backward(dy, ctx)]
    for name, g, e in zip(("y", "dx", "dW", "db"), got, want):
        if e is None:
            assert g is None and not case.bias, name
        else:
            assert g.shape == e.shape and g.dtype == e.dtype, name
            np.testing.assert_array_equal(g, e, err_msg=name)


# ---------------------------------------------------------------- layers on every backend
@pytest.mark.parametrize(
    "make, shape",
    [
        (lambda: mt.nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2), (3, 4, 9, 8)),
        (lambda: mt.nn.MaxPool2d(3, 2), (2, 3, 9, 9)),
        (lambda: mt.nn.BatchNorm2d(3), (4, 3, 5, 5)),
        (lambda: mt.nn.BatchNorm1d(7), (5, 7)),
        (lambda: mt.nn.ReLU(), (4, 5)),
        (lambda: mt.nn.Dropout(0.5), (6, 10)),
        (lambda: mt.nn.Linear(7, 3), (4, 7)),
        (lambda: mt.nn.LocalResponseNorm(5, 1e-2, 0.75, 2.0), (2, 7, 3, 3)),
    ],
)
def test_layers_give_the_same_numbers_on_every_backend(fast_backend, make, shape):
    """The acceptance promise: swap the backend, get the same numbers."""
    results = {}
    for name in ("numpy", fast_backend):
        with mt.use_backend(name):
            mt.manual_seed(3)
            layer = make()
            x = mt.asarray(normal(1, shape, "float32"))
            y = layer(x)
            g = mt.asarray(normal(2, y.shape, "float32"))
            dx = layer.backward(g)
            grads = [mt.to_numpy(p.grad) for p in layer.parameters()]
            results[name] = [mt.to_numpy(y), mt.to_numpy(dx), *grads]
    if fast_backend == "cupy" and make().__class__ is mt.nn.Dropout:
        # CuPy draws its masks on the device, from its own generator: the mask differs,
        # but the layer must still scale kept values by 1/(1-p) and reuse the mask in backward
        x, g = normal(1, shape, "float32"), normal(2, shape, "float32")
        y, dx = results["cupy"][:2]
        kept = y != 0
        np.testing.assert_allclose(y[kept], x[kept] / 0.5, rtol=1e-6)
        np.testing.assert_allclose(dx, np.where(kept, g / 0.5, 0), rtol=1e-6)
        return
    for a, b in zip(results["numpy"], results[fast_backend]):
        np.testing.assert_allclose(b, a, rtol=2e-5, atol=2e-6)


# ---------------------------------------------------------------- max pooling
def _flat(argmax: np.ndarray, x_shape, kernel_size, stride, padding) -> np.ndarray:
    """The reference's window positions i*KW + j as flat positions h*W + w in the input
    plane (the Numba and CUDA indices); each must be a pixel of the input, not padding."""
    kw, (sh, sw), (ph, pw) = kernel_size[1], stride, padding
    H, W = x_shape[2:]
    Ho, Wo = argmax.shape[2:]
    h = np.arange(Ho)[:, None] * sh + argmax // kw - ph
    w = np.arange(Wo) * sw + argmax % kw - pw
    assert ((h >= 0) & (h < H) & (w >= 0) & (w < W)).all(), "a winner in the padding"
    return h * W + w


def _flat_indices(backend: str, ctx: dict, x_shape, *window) -> np.ndarray:
    """The winners of a max-pool context as flat positions h*W + w, whichever backend."""
    if backend == "numpy":
        return _flat(ctx["argmax"], x_shape, *window)
    return mt.to_numpy(ctx["indices"])


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_maxpool_picks_a_real_pixel_when_the_window_is_all_minus_infinity(backend):
    # the padded border is -inf too: the winner must still be a pixel of the input
    x = np.zeros((1, 1, 4, 4), dtype="float32")
    x[0, 0, :2, :2] = -np.inf
    window = ((3, 3), (2, 2), (1, 1))
    with mt.use_backend(backend):
        out, ctx = maxpool2d_forward(x, *window)
        dx = maxpool2d_backward(np.ones_like(out), ctx)
    idx = _flat_indices(backend, ctx, x.shape, *window)
    assert out[0, 0, 0, 0] == -np.inf
    assert idx[0, 0, 0, 0] == 0  # the first real pixel of the window, (0, 0)
    assert (idx >= 0).all() and (idx < 16).all()
    # and backward hands that window's gradient to the pixel: none lost in the padding
    assert dx[0, 0, 0, 0] == 1 and dx.sum() == out.size


def test_maxpool_nan_wins_like_argmax():
    x = np.array([[[[1.0, np.nan], [3.0, np.nan]]]])
    window = ((2, 2), (2, 2), (0, 0))
    for backend in ("numpy", "numba"):
        with mt.use_backend(backend):
            out, ctx = maxpool2d_forward(x, *window)
        assert np.isnan(out[0, 0, 0, 0]), backend
        assert _flat_indices(backend, ctx, x.shape, *window)[0, 0, 0, 0] == 1, backend


@pytest.mark.parametrize(
    "window",  # (kh, kw, sh, sw, ph, pw): the Numba kernel's 3x3 fast path and others
    [(3, 3, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 3, 1, 1, 1, 1), (2, 2, 2, 2, 0, 0),
     (2, 2, 1, 1, 1, 1), (4, 3, 3, 1, 2, 1), (1, 1, 2, 2, 0, 0)],
)  # fmt: skip
def test_numba_maxpool_matches_reference_with_ties_nans_and_infinities(window):
    kh, kw, sh, sw, ph, pw = window
    pairs = ((kh, kw), (sh, sw), (ph, pw))
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 3, size=(2, 3, 11, 10)).astype("float32")  # many ties
    x[x == -3] = -np.inf
    x[0, 1, rng.integers(0, 11, 6), rng.integers(0, 10, 6)] = np.nan
    for save in (True, False):
        want, want_ctx = _reference(maxpool2d_forward, x, *pairs, save)
        got, got_ctx = nb_pooling.maxpool2d_forward(x, *pairs, save)
        assert got.dtype == want.dtype
        np.testing.assert_array_equal(got, want)  # NaNs in the same places
        if not save:
            assert got_ctx is None and want_ctx is None
            continue
        # the same winners: Numba's flat indices are the reference's window positions
        np.testing.assert_array_equal(
            got_ctx["indices"], _flat(want_ctx["argmax"], x.shape, *pairs)
        )
        g = normal(1, want.shape, "float32")
        dx = nb_pooling.maxpool2d_backward(g, got_ctx)
        np.testing.assert_array_equal(dx, _reference(maxpool2d_backward, g, want_ctx))


# ---------------------------------------------------------------- layout, BatchNorm
def _layout_kernels(backend: str):
    """The backend's (cnhw_to_nchw, nchw_to_cnhw), the layout passes around a conv's product."""
    if backend == "numba":
        from minitorch_alexnet.backend.numba import layout

        return layout.cnhw_to_nchw, layout.nchw_to_cnhw
    from minitorch_alexnet.backend.cuda import conv

    return conv.cnhw_to_nchw, conv.nchw_to_cnhw


def test_layout_kernels_take_an_empty_batch(fast_backend):
    to_nchw, to_cnhw = _layout_kernels(fast_backend)
    with mt.use_backend(fast_backend):
        y = mt.asarray(np.zeros((3, 0, 2, 2), dtype="float32"))  # (C, N, H, W) with N = 0
        out = to_nchw(y, mt.asarray(np.ones(3, dtype="float32")))
        assert out.shape == (0, 3, 2, 2) and out.dtype == np.float32
        back, sums = to_cnhw(out, True)
        assert back.shape == (3, 0, 2, 2)
        np.testing.assert_array_equal(mt.to_numpy(sums), np.zeros(3, dtype="float32"))
        assert to_cnhw(out, False)[1] is None


def test_batchnorm_stats_stay_accurate_when_the_mean_dwarfs_the_spread(fast_backend):
    x = normal(0, (8, 3, 50), "float64") + 1e4  # mean 1e4, variance 1
    m = 8 * 50

    def stats(backend):
        """The batch mean and variance (through the running statistics, momentum 1: the
        variance unbiased), and y."""
        with mt.use_backend(backend):
            mean, var = mt.asarray(np.zeros(3)), mt.asarray(np.zeros(3))
            y, _ = batchnorm_forward(mt.asarray(x), None, None, mean, var, True, 1.0, 1e-5)
            return [mt.to_numpy(a) for a in (mean, var, y)]

    mean, var, y = stats("numpy")
    np.testing.assert_allclose(mean, x.mean(axis=(0, 2)), rtol=1e-14)
    np.testing.assert_allclose(var, x.var(axis=(0, 2)) * m / (m - 1), rtol=1e-12)
    got_mean, got_var, got_y = stats(fast_backend)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(got_var, var, rtol=1e-9)
    np.testing.assert_allclose(got_y, y, rtol=0, atol=1e-8)


# ---------------------------------------------------------------- Numba's column memory
@pytest.fixture
def column_memory(monkeypatch) -> ColumnMemory:
    """A fresh pool of column buffers for the Numba kernels, instead of the shared one."""
    mem = ColumnMemory()
    monkeypatch.setattr(nb_conv, "columns", mem)
    monkeypatch.setattr(nb_patches, "columns", mem)
    return mem


def test_numba_column_memory_is_reused_only_when_nothing_refers_to_it(column_memory):
    x = normal(0, (3, 2, 5, 7), "float32")
    window = ((3, 3), (1, 1), (1, 1))
    want = im2col.reference(x, *window)
    cols = nb_conv.im2col(x, *window)
    view = cols.reshape(-1)[:5]  # a view keeps its base in use
    address = cols.ctypes.data
    del cols
    again = nb_conv.im2col(x, *window)
    assert again.ctypes.data != address  # the view still refers to the first buffer
    np.testing.assert_array_equal(again, want)
    del view  # now the first buffer is free: the next columns of that size land there
    third = nb_conv.im2col(x, *window)
    assert third.ctypes.data == address
    np.testing.assert_array_equal(third, want)
    assert len(column_memory._buffers) == 2
    # the input gradient's product has the columns' size and takes column memory too,
    # but never a buffer in use: a third one here, free again afterwards
    w = normal(1, (1, 4, again.shape[0]), "float32")
    dy = normal(2, (1, 4, again.shape[1]), "float32")
    dx = nb_patches.patches_input_grad(dy, w, x.shape, 3, 3, 1, 1, 1, 1)
    np.testing.assert_allclose(
        dx, col2im.reference(w[0].T @ dy[0], x.shape, *window), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(third, want)
    np.testing.assert_array_equal(again, want)
    assert len(column_memory._buffers) == 3
    reused = column_memory.take(again.shape, again.dtype)
    assert np.shares_memory(reused, column_memory._buffers[2])


def test_numba_conv_step_takes_one_column_buffer(column_memory, monkeypatch):
    """With the columns redone in backward, forward's columns, backward's and the input
    gradient's product each take the buffer the step before gave back: one in all."""
    monkeypatch.setattr(nb_conv, "KEEP_COLUMNS", False)
    x = normal(0, (2, 4, 9, 8), "float32")
    w = normal(1, (6, 2, 3, 3), "float32")
    y, ctx = nb_conv.conv2d_forward(x, w, None, (2, 2), (1, 1), 2)
    dx, dw, db = nb_conv.conv2d_backward(normal(2, y.shape, "float32"), ctx)
    assert dx.shape == x.shape and dw.shape == w.shape and db is None
    assert len(column_memory._buffers) == 1


def test_numba_column_memory_shares_one_buffer_between_convolutions():
    """im2col's buffers are reused by size: columns of several shapes, taken one after
    the other and dropped, all come from one buffer; one kept alive forces a second."""
    mem = ColumnMemory()
    a = mem.take((10, 100), np.float32)  # 4000 bytes
    a[:] = 1
    del a
    b = mem.take((5, 100), np.float32)  # fits in the free 4000-byte buffer
    assert len(mem._buffers) == 1 and b.shape == (5, 100) and b.dtype == np.float32
    view = b.reshape(-1)  # a view keeps the buffer busy after b itself is gone
    del b
    c = mem.take((5, 100), np.float32)
    assert len(mem._buffers) == 2  # both busy
    del view, c
    d = mem.take((20, 100), np.float32)  # larger than both free ones: they are dropped
    assert [buf.nbytes for buf in mem._buffers] == [8000]
    e = mem.take((16, 100), np.float32)  # d is still in use
    assert len(mem._buffers) == 2
    del d, e
    f = mem.take((16, 100), np.float32)  # the smallest free buffer that fits: e's
    assert len(mem._buffers) == 2 and np.shares_memory(f, mem._buffers[1])
