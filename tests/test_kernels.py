"""(b) The compiled kernels (Numba, CuPy) give the numbers of the NumPy reference."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from strategies import ConvCase, conv_cases, normal, pool_cases, seeds, tie_free

import minitorch_alexnet as mt
from minitorch_alexnet.backend import kernels_numpy as ref


def _run(backend: str, name: str, *args):
    """Call kernel ``name`` of ``backend`` on host arrays; return host arrays."""
    with mt.use_backend(backend) as B:
        dev = [mt.asarray(a) if isinstance(a, np.ndarray) else a for a in args]
        out = getattr(B.kernels, name)(*dev)
        if isinstance(out, tuple):
            return tuple(None if o is None else mt.to_numpy(o) for o in out)
        return mt.to_numpy(out)


def _same(a: np.ndarray, b: np.ndarray, backend: str) -> None:
    assert a.shape == b.shape and a.dtype == b.dtype
    if backend == "numba":  # same operations in the same order: identical numbers
        np.testing.assert_array_equal(a, b)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


dtypes = st.sampled_from(["float32", "float64"])


@given(case=conv_cases(), seed=seeds, dtype=dtypes)
def test_im2col_and_col2im_match_reference(fast_backend, case, seed, dtype):
    x = normal(seed, case.x_shape, dtype)
    cols = ref.im2col(x, *case.window)
    _same(_run(fast_backend, "im2col", x, *case.window), cols, fast_backend)
    g = normal(seed + 1, cols.shape, dtype)
    expected = ref.col2im(g, case.x_shape, *case.window)
    _same(_run(fast_backend, "col2im", g, case.x_shape, *case.window), expected, fast_backend)


@given(case=conv_cases(), seed=seeds, dtype=dtypes, integers=st.booleans())
def test_conv2d_input_grad_matches_reference(fast_backend, case, seed, dtype, integers):
    # dx = col2im(W_g^T dY_g per group); the Numba kernel takes the transposed product
    # and adds its rows back channels last, so its dot products may round differently
    # from the reference's: equal to rounding. With integer values every product and
    # sum is exact in any order, so then the two must agree exactly: any pixel added
    # to the wrong place, or twice, or missed, shows.
    G, (Ho, Wo) = case.groups, case.out_hw
    dy = normal(seed, (G, case.O // G, case.N * Ho * Wo), dtype)
    w = normal(seed + 1, (G, case.O // G, case.C // G * case.kh * case.kw), dtype)
    if integers:
        dy, w = np.round(4 * dy), np.round(4 * w)
    args = (dy, w, case.x_shape, *case.window)
    expected = ref.conv2d_input_grad(*args)
    got = _run(fast_backend, "conv2d_input_grad", *args)
    assert got.shape == expected.shape == case.x_shape and got.dtype == expected.dtype
    if integers:
        np.testing.assert_array_equal(got, expected)
    else:  # each pixel: at most KH*KW*O/G products, each below |dy|max * |w|max
        eps = np.finfo(dtype).eps
        bound = case.kh * case.kw * dy.shape[1] * np.abs(dy).max() * np.abs(w).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=8 * eps * bound)


@given(
    case=conv_cases(max_channels=5),
    seed=seeds,
    dtype=dtypes,
    integers=st.booleans(),
    kept=st.booleans(),
)
@example(  # always one case with 8 channels per group, two groups, padding and strides
    case=ConvCase(N=2, C=16, O=4, H=6, W=7, kh=3, kw=2, sh=2, sw=1, ph=1, pw=0, groups=2),
    seed=0,
    dtype="float32",
    integers=False,
    kept=False,
)
def test_conv2d_weight_grad_matches_reference(fast_backend, case, seed, dtype, integers, kept):
    # dW_g = dY_g X_g^T, with the columns kept from forward or redone by the kernel (the
    # Numba kernel redoes them channels last); equal to rounding, exactly equal for
    # integer values
    G, (Ho, Wo) = case.groups, case.out_hw
    dy = normal(seed, (G, case.O // G, case.N * Ho * Wo), dtype)
    x = normal(seed + 1, case.x_shape, dtype)
    if integers:
        dy, x = np.round(4 * dy), np.round(4 * x)
    cols = ref.im2col(x, *case.window) if kept else None
    expected = ref.conv2d_weight_grad(dy, x, cols, *case.window)
    got = _run(fast_backend, "conv2d_weight_grad", dy, x, cols, *case.window)
    assert got.shape == expected.shape == (case.O, case.C // G * case.kh * case.kw)
    assert got.dtype == expected.dtype
    if integers:
        np.testing.assert_array_equal(got, expected)
    else:  # each entry: a sum of N*Ho*Wo products, each below |dy|max * |x|max
        eps = np.finfo(dtype).eps
        bound = dy.shape[2] * np.abs(dy).max() * np.abs(x).max()
        np.testing.assert_allclose(got, expected, rtol=0, atol=8 * eps * bound)


@given(case=pool_cases(), seed=seeds, dtype=dtypes, ties=st.booleans())
def test_maxpool_kernels_match_reference(fast_backend, case, seed, dtype, ties):
    # with ties too: every backend must pick the first maximum in window order
    x = np.round(normal(seed, case.x_shape, dtype)) if ties else tie_free(seed, case.x_shape)
    x = x.astype(dtype)
    if ties:  # -inf pixels too, so that some windows hold nothing but -inf and padding
        x[x < -0.5] = -np.inf
    out, idx = ref.maxpool2d_forward(x, *case.window)
    out2, idx2 = _run(fast_backend, "maxpool2d_forward", x, *case.window)
    _same(out2, out, fast_backend)
    np.testing.assert_array_equal(idx2, idx)
    out3, none = _run(fast_backend, "maxpool2d_forward", x, *case.window, False)  # no indices
    _same(out3, out, fast_backend)
    assert none is None
    g = normal(seed + 1, out.shape, dtype)
    dx = ref.maxpool2d_backward(g, idx, case.x_shape, *case.window)
    dx2 = _run(fast_backend, "maxpool2d_backward", g, idx, case.x_shape, *case.window)
    _same(dx2, dx, fast_backend)


@given(seed=seeds, dtype=dtypes, bias=st.booleans(), shape=st.tuples(*[st.integers(1, 5)] * 4))
def test_layout_kernel_matches_reference(fast_backend, seed, dtype, bias, shape):
    y = normal(seed, shape, dtype)
    b = normal(seed + 1, (shape[0],), dtype) if bias else None
    expected = ref.cnhw_to_nchw(y, b)
    got = _run(fast_backend, "cnhw_to_nchw", y, b)
    _same(got, expected, fast_backend)
    # and back, with the channel sums (equal to rounding: Numba adds in float64)
    back, sums = ref.nchw_to_cnhw(expected, sums=True)
    np.testing.assert_array_equal(back, y + (0 if b is None else b[:, None, None, None]))
    got_back, got_sums = _run(fast_backend, "nchw_to_cnhw", expected, True)
    _same(got_back, back, fast_backend)
    tol = 1e-5 if dtype == "float32" else 1e-12
    scale = np.abs(back).reshape(shape[0], -1).sum(axis=1)  # per channel: sum of |terms|
    np.testing.assert_allclose(got_sums, sums, rtol=tol, atol=tol * scale.max())
    assert _run(fast_backend, "nchw_to_cnhw", expected, False)[1] is None


@given(
    shape=st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 30)),
    seed=seeds,
    dtype=dtypes,
    affine=st.booleans(),
    batch_stats=st.booleans(),
)
def test_batchnorm_kernels_match_reference(fast_backend, shape, seed, dtype, affine, batch_stats):
    # the fast kernels accumulate sums in float64 and in another order: equal to rounding
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    C = shape[1]
    x = normal(seed, shape, dtype) * 3 + 1
    mean, var = ref.batchnorm_stats(x)
    for got, want in zip(_run(fast_backend, "batchnorm_stats", x), (mean, var)):
        np.testing.assert_allclose(got, want, **tol)
    inv_std = (1 / np.sqrt(var + 1e-5)).astype(dtype)
    gamma = normal(seed + 1, (C,), dtype) if affine else None
    beta = normal(seed + 2, (C,), dtype) if affine else None
    want = ref.batchnorm_normalize(x, mean, inv_std, gamma, beta)
    got = _run(fast_backend, "batchnorm_normalize", x, mean, inv_std, gamma, beta)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **tol)
    y, none = _run(fast_backend, "batchnorm_normalize", x, mean, inv_std, gamma, beta, False)
    np.testing.assert_allclose(y, want[0], **tol)  # the same y without keeping xhat
    assert none is None
    running = [normal(seed + 4, (C,), dtype), np.abs(normal(seed + 5, (C,), dtype))]
    ref.batchnorm_update_running(*running, mean, var, 0.1, x.shape[0] * x.shape[2] + 1)
    with mt.use_backend(fast_backend) as B:
        dev = [
            mt.asarray(normal(seed + 4, (C,), dtype)),
            mt.asarray(np.abs(normal(seed + 5, (C,), dtype))),
        ]
        B.kernels.batchnorm_update_running(
            *dev, mt.asarray(mean), mt.asarray(var), 0.1, x.shape[0] * x.shape[2] + 1
        )
    for a, b in zip(dev, running):
        np.testing.assert_allclose(mt.to_numpy(a), b, **tol)
    xhat, dy = want[1], normal(seed + 3, shape, dtype)
    want = ref.batchnorm_backward(dy, xhat, inv_std, batch_stats)
    got = _run(fast_backend, "batchnorm_backward", dy, xhat, inv_std, batch_stats)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, **tol)


def test_im2col_matches_a_hand_worked_example():
    # one 3x3 image, 2x2 kernel, stride 1: four windows, each a column
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    cols = ref.im2col(x, 2, 2, 1, 1, 0, 0)
    expected = np.array(
        [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]], dtype=float
    )  # row (i, j) = the pixel at offset (i, j) of each window
    np.testing.assert_array_equal(cols, expected)
    # col2im of all-ones counts how many windows cover each pixel
    counts = ref.col2im(np.ones_like(cols), x.shape, 2, 2, 1, 1, 0, 0)
    np.testing.assert_array_equal(counts[0, 0], [[1, 2, 1], [2, 4, 2], [1, 2, 1]])


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


@given(
    seed=seeds,
    dtype=dtypes,
    momentum=st.sampled_from([0.0, 0.9]),
    nesterov=st.booleans(),
    weight_decay=st.sampled_from([0.0, 5e-4]),
)
def test_sgd_update_matches_reference(fast_backend, seed, dtype, momentum, nesterov, weight_decay):
    nesterov = nesterov and momentum > 0
    p0, g = normal(seed, (7, 5), dtype), normal(seed + 1, (7, 5), dtype)
    buf0 = normal(seed + 2, (7, 5), dtype) if momentum else None
    tol = dict(rtol=1e-6, atol=1e-7) if dtype == "float32" else dict(rtol=1e-13, atol=1e-15)
    for first in (True, False):
        p, buf = p0.copy(), None if buf0 is None else buf0.copy()
        ref.sgd_update(p, g, buf, first, 0.1, momentum, 0.0, nesterov, weight_decay)
        with mt.use_backend(fast_backend) as B:
            dp, dbuf = mt.asarray(p0.copy()), None if buf0 is None else mt.asarray(buf0.copy())
            B.kernels.sgd_update(
                dp, mt.asarray(g), dbuf, first, 0.1, momentum, 0.0, nesterov, weight_decay
            )
        np.testing.assert_allclose(mt.to_numpy(dp), p, **tol)
        if buf is not None:
            np.testing.assert_allclose(mt.to_numpy(dbuf), buf, **tol)


@given(shape=st.tuples(st.integers(1, 4), st.integers(1, 6)), seed=seeds, dtype=dtypes)
def test_small_elementwise_kernels_match_reference(fast_backend, shape, seed, dtype):
    g, x = normal(seed, shape, dtype), normal(seed + 1, shape, dtype)
    x[0, 0] = np.nan  # max(NaN, 0) is NaN, and NaN > 0 is False
    y, positive = ref.relu_forward(x)
    got_y, got_positive = _run(fast_backend, "relu_forward", x)
    _same(got_y, y, fast_backend)
    assert got_positive.dtype == np.bool_
    np.testing.assert_array_equal(got_positive, positive)
    with mt.use_backend(fast_backend) as B:  # no mask asked for: none made
        assert B.kernels.relu_forward(mt.asarray(x), False)[1] is None
    positive[0, -1] = True  # the mask alone decides, whatever x was
    _same(
        _run(fast_backend, "relu_backward", g, positive),
        ref.relu_backward(g, positive),
        fast_backend,
    )
    var = np.abs(normal(seed + 2, shape[1:], dtype))
    got, want = _run(fast_backend, "inv_std", var, 1e-5), ref.inv_std(var, 1e-5)
    np.testing.assert_allclose(got, want, rtol=1e-6 if dtype == "float32" else 1e-14)


@pytest.mark.parametrize("backend", ["numpy", "numba"])
def test_maxpool_picks_a_real_pixel_when_the_window_is_all_minus_infinity(backend):
    # the padded border is -inf too: the winner must still be a pixel of the input
    x = np.zeros((1, 1, 4, 4), dtype="float32")
    x[0, 0, :2, :2] = -np.inf
    with mt.use_backend(backend) as B:
        out, idx = B.kernels.maxpool2d_forward(x, 3, 3, 2, 2, 1, 1)
    assert out[0, 0, 0, 0] == -np.inf
    assert idx[0, 0, 0, 0] == 0  # the first real pixel of the window, (0, 0)
    assert (idx >= 0).all() and (idx < 16).all()


def test_layout_kernels_take_an_empty_batch(fast_backend):
    y = np.zeros((3, 0, 2, 2), dtype="float32")  # (C, N, H, W) with N = 0
    out = _run(fast_backend, "cnhw_to_nchw", y, np.ones(3, dtype="float32"))
    assert out.shape == (0, 3, 2, 2)
    back, sums = _run(fast_backend, "nchw_to_cnhw", out, True)
    assert back.shape == (3, 0, 2, 2)
    np.testing.assert_array_equal(sums, np.zeros(3, dtype="float32"))


@pytest.mark.parametrize(
    "window",  # (kh, kw, sh, sw, ph, pw): the Numba kernel's 3x3 fast path and others
    [(3, 3, 2, 2, 0, 0), (3, 3, 2, 2, 1, 1), (3, 3, 1, 1, 1, 1), (2, 2, 2, 2, 0, 0),
     (2, 2, 1, 1, 1, 1), (4, 3, 3, 1, 2, 1), (1, 1, 2, 2, 0, 0)],
)  # fmt: skip
def test_numba_maxpool_matches_reference_with_ties_nans_and_infinities(window):
    rng = np.random.default_rng(7)
    x = rng.integers(-3, 3, size=(2, 3, 11, 10)).astype("float32")  # many ties
    x[x == -3] = -np.inf
    x[0, 1, rng.integers(0, 11, 6), rng.integers(0, 10, 6)] = np.nan
    for indices in (True, False):
        want = ref.maxpool2d_forward(x, *window, indices)
        got = _run("numba", "maxpool2d_forward", x, *window, indices)
        np.testing.assert_array_equal(got[0], want[0])  # NaNs in the same places
        if indices:
            np.testing.assert_array_equal(got[1], want[1])
        else:
            assert got[1] is None and want[1] is None


def test_maxpool_nan_wins_like_argmax():
    x = np.array([[[[1.0, np.nan], [3.0, np.nan]]]])
    for backend in ("numpy", "numba"):
        with mt.use_backend(backend) as B:
            out, idx = B.kernels.maxpool2d_forward(x, 2, 2, 2, 2, 0, 0)
        assert np.isnan(out[0, 0, 0, 0]) and idx[0, 0, 0, 0] == 1


def test_batchnorm_stats_stay_accurate_when_the_mean_dwarfs_the_spread(fast_backend):
    x = normal(0, (8, 3, 50), "float64") + 1e4  # mean 1e4, variance 1
    mean, var = ref.batchnorm_stats(x)
    got_mean, got_var = _run(fast_backend, "batchnorm_stats", x)
    np.testing.assert_allclose(got_mean, mean, rtol=1e-12)
    np.testing.assert_allclose(got_var, var, rtol=1e-9)


def test_numba_column_memory_is_reused_only_when_nothing_refers_to_it():
    from minitorch_alexnet.backend import kernels_numba as nb

    x = normal(0, (3, 2, 5, 7), "float32")  # a shape no other test uses
    cols = nb.im2col(x, 3, 3, 1, 1, 1, 1)
    view = cols.reshape(-1)[:5]  # a view keeps its base in use
    address = cols.ctypes.data
    del cols
    again = nb.im2col(x, 3, 3, 1, 1, 1, 1)
    assert again.ctypes.data != address  # the view still refers to the first buffer
    np.testing.assert_array_equal(again, ref.im2col(x, 3, 3, 1, 1, 1, 1))
    del view  # now the first buffer is free: the next columns of that size land there
    third = nb.im2col(x, 3, 3, 1, 1, 1, 1)
    assert third.ctypes.data == address
    np.testing.assert_array_equal(third, again)
    # the input gradient's product takes column memory too, but never a buffer in use
    w = normal(1, (1, 4, again.shape[0]), "float32")
    dy = normal(2, (1, 4, again.shape[1]), "float32")
    dx = nb.conv2d_input_grad(dy, w, x.shape, 3, 3, 1, 1, 1, 1)
    np.testing.assert_allclose(
        dx, ref.conv2d_input_grad(dy, w, x.shape, 3, 3, 1, 1, 1, 1), rtol=1e-5, atol=1e-5
    )
    np.testing.assert_array_equal(third, again)
    np.testing.assert_array_equal(again, ref.im2col(x, 3, 3, 1, 1, 1, 1))


def test_numba_column_memory_shares_one_buffer_between_convolutions():
    """im2col's buffers are reused by size: columns of several shapes, taken one after
    the other and dropped, all come from one buffer; one kept alive forces a second."""
    pytest.importorskip("numba")
    from minitorch_alexnet.backend.kernels_numba import _ColumnMemory

    mem = _ColumnMemory()
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
