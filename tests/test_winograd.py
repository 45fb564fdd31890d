"""Winograd F(2x2, 5x5) and F(4x4, 3x3): the transforms, and both paths held to the
im2col Conv2d.

Tolerances. The rounding error of a sum is a multiple of eps * S, where
S = sum |w| |x| over the window (+ |bias|) is the same convolution with absolute
values: im2col's float32 error measured below 3 eps * S. Winograd computes the m^2
outputs of an m x m tile together, from one 6x6 patch whose transforms (entries up to
5 in B^T, 16/24 in G, 2 in A^T for m = 2 and 8 for m = 4) make larger terms that
cancel, so its error is shared by the tile: an output whose own window lies in the
padding (S = 0) can still carry its tile-mates' rounding. So each output's error is
measured against S_tile, the largest S in its (2m - 1) x (2m - 1) neighbourhood
(which holds its tile, wherever the tile grid starts): 3x3 for F(2x2, 5x5), 7x7 for
F(4x4, 3x3). Measured |winograd - im2col| / (eps * S_tile), float32, on the model
layers: 5x5 5 to 15, 3x3 2.5 to 3.1 on 7x7 maps and 10 to 12.4 on 13x13 maps; over
1000 random small shapes (float32 and float64, padding up to the kernel size): up
to 31 for 5x5 and 34 for 3x3 (earlier draws of the 5x5 cases reached 85). The tests
allow 2^8 = 256 for both: at least 16 correct bits of float32's 24 relative to
S_tile, about 6e-14 * S_tile in float64, well inside the 1e-10 relative error that
float64 must also meet. Relative to max |y|, Winograd's float32 error measured
2e-6 to 8e-6 forward and 2e-6 to 1.4e-5 for the input gradient on the model layers
(largest for F(4x4, 3x3) on AlexNet's 13x13 maps; im2col: 2e-7 to 4e-7).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ConvCase, normal, seeds

import minitorch_alexnet as mt
from minitorch_alexnet.backend import winograd as wg

requires_gpu = pytest.mark.skipif(
    "cupy" not in mt.available_backends(), reason="needs CuPy and a CUDA GPU"
)
FACTOR = 256  # allowed error, in units of eps * S_tile (see the module docstring)


# ---------------------------------------------------------------- shapes
@st.composite
def winograd_cases(draw, max_hw: int = 9, max_channels: int = 4, k: int | None = None) -> ConvCase:
    """k x k (5 or 3, drawn unless given), stride 1, one group; tiny images, output sizes
    that the tile size m divides and does not, padding 0..k (padding > k - 1 makes the
    input gradient crop instead of pad)."""
    k = draw(st.sampled_from([3, 5])) if k is None else k
    ph = draw(st.integers(0, k))
    pw = draw(st.sampled_from([ph, draw(st.integers(0, k))]))
    H = draw(st.integers(max(1, k - 2 * ph), max(max_hw, k - 2 * ph)))
    W = draw(st.integers(max(1, k - 2 * pw), max(max_hw, k - 2 * pw)))
    return ConvCase(
        N=draw(st.integers(1, 2)),
        C=draw(st.integers(1, max_channels)),
        O=draw(st.integers(1, max_channels)),
        H=H,
        W=W,
        kh=k,
        kw=k,
        sh=1,
        sw=1,
        ph=ph,
        pw=pw,
        bias=draw(st.booleans()),
    )


# ---------------------------------------------------------------- the reference: Conv2d
def im2col_conv(case: ConvCase, x, w, b, dy):
    """Our Conv2d (im2col, NumPy backend): y, dx, and their scales S (the same
    convolution and input gradient with |x|, |w|, |b|, |dy|, in float64)."""
    with mt.use_backend("numpy"):

        def run(x, w, b, dy):
            conv = case.conv2d()
            conv.weight.data = w
            if case.bias:
                conv.bias.data = b
            y = conv(x)
            return y, conv.backward(dy)

        y, dx = run(x, w, b, dy)
        absolute = [np.abs(a).astype(np.float64) if a is not None else None for a in (x, w, b, dy)]
        y_scale, dx_scale = run(*absolute)
    return y, dx, y_scale, dx_scale


def tile_scale(S: np.ndarray, m: int) -> np.ndarray:
    """S_tile: the largest S in each output's (2m - 1) x (2m - 1) neighbourhood, which
    holds its m x m tile wherever the tile grid starts; shape (N, C, H, W)."""
    H, W = S.shape[2:]
    n = 2 * m - 1
    padded = np.pad(S, ((0, 0), (0, 0), (m - 1, m - 1), (m - 1, m - 1)))
    return np.max([padded[:, :, i : i + H, j : j + W] for i in range(n) for j in range(n)], 0)


def error_in_eps(got, want, scale, k: int) -> float:
    """max |got - want| / (eps * S_tile) (0 where S_tile = 0 and they are equal)."""
    eps = np.finfo(want.dtype).eps
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = tile_scale(scale, wg.VARIANTS[k].m)
    if np.any(err[bound == 0] > 0):
        return np.inf
    return float((err / np.where(bound > 0, bound, 1)).max()) / eps


def assert_close(got, want, scale, what: str, k: int) -> None:
    """|got - want| <= FACTOR * eps * S_tile elementwise (S_tile = 0 asks for equality)."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
    worst = error_in_eps(got, want, scale, k)
    assert worst <= FACTOR, f"{what} ({k}x{k}): error up to {worst:.1f} eps * S_tile"


def random_conv(case: ConvCase, seed: int, dtype: str):
    Ho, Wo = case.out_hw
    k = case.kh
    x = normal(seed, case.x_shape, dtype)
    w = (normal(seed + 1, (case.O, case.C, k, k)) / np.sqrt(k * k * case.C)).astype(dtype)
    b = normal(seed + 2, (case.O,), dtype) if case.bias else None
    dy = normal(seed + 3, (case.N, case.O, Ho, Wo), dtype)
    return x, w, b, dy


# ---------------------------------------------------------------- the transform matrices
POINTS = [0, 1, -1, 2, -2]  # and infinity


def evaluation(n: int) -> np.ndarray:
    """Values of a polynomial with n coefficients at the points; at infinity: the last."""
    return np.array([[a**k for k in range(n)] for a in POINTS] + [[0] * (n - 1) + [1]], float)


@pytest.mark.parametrize("k", [5, 3])
def test_transform_matrices_come_from_the_interpolation_points(k):
    v = wg.VARIANTS[k]
    assert (v.r, v.m + v.r - 1) == (k, wg.ALPHA)
    # B^T = D^-1 L^T with L the inverse of the 6x6 evaluation (the same for both
    # variants: it depends on the points alone); G = D E_g; A^T = E_h^T
    N = [np.prod([a - b for b in POINTS if b != a]) for a in POINTS] + [1]
    np.testing.assert_allclose(wg.BT, np.diag(N) @ np.linalg.inv(evaluation(6)).T, atol=1e-12)
    np.testing.assert_allclose(v.G, np.diag(1 / np.array(N, float)) @ evaluation(k), atol=1e-15)
    np.testing.assert_array_equal(v.AT, evaluation(v.m).T)
    assert wg.BT.dtype == v.G.dtype == v.AT.dtype == np.float64


@settings(max_examples=20)
@given(seed=seeds, k=st.sampled_from([5, 3]))
def test_one_dimensional_identity(seed, k):
    """A^T [(G g) ⊙ (B^T d)] is the correlation y[i] = sum_j d[i + j] g[j], i = 0..m-1."""
    v = wg.VARIANTS[k]
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal(6), rng.standard_normal(k)
    want = np.array([d[i : i + k] @ g for i in range(v.m)])
    np.testing.assert_allclose(v.AT @ ((v.G @ g) * (wg.BT @ d)), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=10)
@given(seed=seeds, k=st.sampled_from([5, 3]))
def test_two_dimensional_identity(seed, k):
    """A^T [(G g G^T) ⊙ (B^T d B)] A is the m x m correlation of a 6x6 tile with a k x k
    filter."""
    v, m = wg.VARIANTS[k], wg.VARIANTS[k].m
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((k, k))
    want = np.array([[np.sum(d[r : r + k, s : s + k] * g) for s in range(m)] for r in range(m)])
    got = v.AT @ ((v.G @ g @ v.G.T) * (wg.BT @ d @ wg.BT.T)) @ v.AT.T
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the NumPy reference
@settings(max_examples=40)
@given(case=winograd_cases(), seed=seeds, dtype=st.sampled_from(["float32", "float64"]))
def test_reference_matches_im2col_conv2d(case, seed, dtype):
    x, w, b, dy = random_conv(case, seed, dtype)
    y, dx, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    y2 = wg.winograd_conv2d(x, w, b, case.padding)
    dx2 = wg.winograd_conv2d_input_grad(dy, w, case.padding, (case.H, case.W))
    assert_close(y2, y, y_scale, "forward", case.kh)
    assert_close(dx2, dx, dx_scale, "input gradient", case.kh)
    if dtype == "float64":  # and the plain relative error the float64 path promises
        np.testing.assert_allclose(y2, y, rtol=1e-10, atol=1e-10 * np.abs(y).max())
        np.testing.assert_allclose(dx2, dx, rtol=1e-10, atol=1e-10 * np.abs(dx).max())


def _layer(N: int, C: int, O: int, S: int, k: int) -> ConvCase:
    p = k // 2
    return ConvCase(N=N, C=C, O=O, H=S, W=S, kh=k, kw=k, sh=1, sw=1, ph=p, pw=p)


# the real layers, small batch: AlexNetCIFAR conv1-5, AlexNet conv2-5 (one group)
LAYERS = {
    "cifar_conv1": _layer(2, 3, 64, 32, 5),
    "cifar_conv2": _layer(2, 64, 192, 15, 5),
    "cifar_conv3": _layer(2, 192, 384, 7, 3),
    "cifar_conv4": _layer(2, 384, 256, 7, 3),
    "cifar_conv5": _layer(2, 256, 256, 7, 3),
    "alexnet_conv2": _layer(1, 96, 256, 27, 5),
    "alexnet_conv3": _layer(1, 256, 384, 13, 3),
    "alexnet_conv4": _layer(1, 384, 384, 13, 3),
    "alexnet_conv5": _layer(1, 384, 256, 13, 3),
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_reference_matches_im2col_on_the_model_layers(layer):
    case = LAYERS[layer]
    x, w, b, dy = random_conv(case, 7, "float32")
    y, dx, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    assert_close(wg.winograd_conv2d(x, w, b, case.padding), y, y_scale, "forward", case.kh)
    dx2 = wg.winograd_conv2d_input_grad(dy, w, case.padding, (case.H, case.W))
    assert_close(dx2, dx, dx_scale, "input gradient", case.kh)


def test_reference_rejects_what_it_cannot_do():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        wg.winograd_conv2d(x, np.zeros((3, 2, 5, 5)), None, 0)
    with pytest.raises(ValueError, match="expected x"):
        wg.winograd_conv2d(x, np.zeros((3, 4, 3, 3)), None, 1)  # channels differ
    with pytest.raises(ValueError, match="expected filters"):
        wg.winograd_conv2d(x, np.zeros((3, 2, 4, 4)), None, 1)  # no variant for 4x4
    with pytest.raises(ValueError, match="does not come from"):
        wg.winograd_conv2d_input_grad(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 5, 5)), 2, (5, 5))
    with pytest.raises(ValueError, match="does not come from"):
        wg.winograd_conv2d_input_grad(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 3, 3)), 0, (4, 4))


# ---------------------------------------------------------------- the CUDA path
def _cuda_against_reference(case: ConvCase, seed: int, dtype: str) -> None:
    from minitorch_alexnet.backend import winograd_cuda

    cp = mt.get_backend("cupy").xp
    x, w, b, dy = random_conv(case, seed, dtype)
    _, _, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    want_y = wg.winograd_conv2d(x, w, b, case.padding)
    want_dx = wg.winograd_conv2d_input_grad(dy, w, case.padding, (case.H, case.W))
    dev = [None if a is None else cp.asarray(a) for a in (x, w, b, dy)]
    y = winograd_cuda.winograd_conv2d(dev[0], dev[1], dev[2], case.padding)
    dx = winograd_cuda.winograd_conv2d_input_grad(dev[3], dev[1], case.padding, (case.H, case.W))
    # same transforms, other order of additions (kernels, cuBLAS): the same tolerance
    assert_close(cp.asnumpy(y), want_y, y_scale, "GPU forward", case.kh)
    assert_close(cp.asnumpy(dx), want_dx, dx_scale, "GPU input gradient", case.kh)


@pytest.mark.gpu
@requires_gpu
@settings(max_examples=25)
@given(case=winograd_cases(), seed=seeds, dtype=st.sampled_from(["float32", "float64"]))
def test_cuda_matches_reference(case, seed, dtype):
    _cuda_against_reference(case, seed, dtype)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_cuda_matches_reference_on_the_model_layers(layer, dtype):
    _cuda_against_reference(LAYERS[layer], 11, dtype)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("k", [5, 3])
def test_cuda_filter_transform_matches_reference(k):
    """U = G g G^T of the filters, and of the input gradient's flipped, channel-swapped
    filters (read straight from w), as the reference computes them (both in float64)."""
    from minitorch_alexnet.backend import winograd_cuda

    cp = mt.get_backend("cupy").xp
    w = normal(5, (7, 3, k, k))
    w_t, _, _ = wg.input_grad_as_conv(w, k // 2, (4, 4), (4, 4))
    got = winograd_cuda.filter_transform(cp.asarray(w), np.float64)
    got_t = winograd_cuda.filter_transform(cp.asarray(w), np.float64, flip=True)
    for u, want in (
        (got, wg.filter_transform(w, np.float64)),
        (got_t, wg.filter_transform(w_t, np.float64)),
    ):
        np.testing.assert_allclose(cp.asnumpy(u), want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("k", [5, 3])
def test_cuda_works_through_a_batch_in_chunks(monkeypatch, k):
    """With a chunk smaller than one batch's V, the images go through in several chunks
    and give what one pass gives."""
    from minitorch_alexnet.backend import winograd_cuda

    cp = mt.get_backend("cupy").xp
    case = _layer(5, 8, 6, 9, k)
    x, w, b, dy = (None if a is None else cp.asarray(a) for a in random_conv(case, 3, "float64"))
    whole = winograd_cuda.winograd_conv2d(x, w, b, case.padding)
    monkeypatch.setattr(winograd_cuda, "_CHUNK_BYTES", 1)  # one image at a time
    chunked = winograd_cuda.winograd_conv2d(x, w, b, case.padding)
    cp.testing.assert_allclose(chunked, whole, rtol=0, atol=0)


@pytest.mark.parametrize("k", [5, 3])
@pytest.mark.parametrize("in_channels,used", [(16, True), (3, False)])
def test_conv2d_uses_winograd_where_the_backend_offers_it(monkeypatch, k, in_channels, used):
    """Conv2d switches to Winograd for 5x5 and 3x3 stride-1 layers with >= 16 input
    channels when the backend offers it for that size, and then gives im2col's y, dx,
    dW and db; a size the backend does not offer keeps im2col."""
    from minitorch_alexnet import nn

    def run():
        mt.manual_seed(0)
        conv = nn.Conv2d(in_channels, 4, k, padding=k // 2).double()
        x = normal(1, (2, in_channels, 7, 6))
        dy = normal(2, (2, 4, 7, 6))
        y = conv(x)
        dx = conv.backward(dy)
        return y, dx, conv.weight.grad, conv.bias.grad

    with mt.use_backend("numpy") as B:
        reference = run()
        calls = []
        real = B.kernels.winograd_conv2d
        monkeypatch.setattr(B.kernels, "winograd_conv2d", lambda *a: calls.append(1) or real(*a))
        for size, offered in ((5, False), (3, False)):  # nothing offered: im2col
            monkeypatch.setattr(B, f"winograd_{size}x{size}", offered)
        run()
        assert calls == []
        other = 3 if k == 5 else 5  # offered for the other size only: im2col
        monkeypatch.setattr(B, f"winograd_{other}x{other}", True)
        run()
        assert calls == []
        monkeypatch.setattr(B, f"winograd_{k}x{k}", True)
        result = run()
    assert len(calls) == (1 if used else 0)
    for got, want in zip(result, reference):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
