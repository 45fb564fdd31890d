"""Winograd F(2x2, 5x5): the transforms, and both paths held to the im2col Conv2d.

Tolerances. The rounding error of a sum is a multiple of eps * S, where
S = sum |w| |x| over the window (+ |bias|) is the same convolution with absolute
values: im2col's float32 error measured below 3 eps * S. Winograd computes the 4
outputs of a 2x2 tile together, from one 6x6 patch whose transforms (entries up to
5 in B^T, 16/24 in G, 2 in A^T) make larger terms that cancel, so its error is
shared by the tile: an output whose own window lies in the padding (S = 0) can
still carry its tile-mates' rounding. So each output's error is measured against
S_tile, the largest S in its 3x3 neighbourhood (which holds its tile, wherever the
tile grid starts). Measured |winograd - im2col| / (eps * S_tile): 6 to 17 on the
model layers (float32), up to 85 over 1000 random small shapes (float32 and
float64, padding up to 5). The tests allow 2^8 = 256: at least 16 correct bits of
float32's 24 relative to S_tile, about 6e-14 * S_tile in float64, well inside the
1e-10 relative error that float64 must also meet. Relative to max |y|, Winograd's
float32 forward error measured 2e-6 to 4e-6 on the model layers, the input
gradient 3e-6 to 8e-6 (im2col: 2e-7 to 4e-7).
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
def winograd_cases(draw, max_hw: int = 9, max_channels: int = 4) -> ConvCase:
    """5x5, stride 1, one group; tiny images, odd and even output sizes, padding 0..5
    (padding > 4 makes the input gradient crop instead of pad)."""
    ph = draw(st.integers(0, 5))
    pw = draw(st.sampled_from([ph, draw(st.integers(0, 5))]))
    H = draw(st.integers(max(1, 5 - 2 * ph), max(max_hw, 5 - 2 * ph)))
    W = draw(st.integers(max(1, 5 - 2 * pw), max(max_hw, 5 - 2 * pw)))
    return ConvCase(
        N=draw(st.integers(1, 2)),
        C=draw(st.integers(1, max_channels)),
        O=draw(st.integers(1, max_channels)),
        H=H,
        W=W,
        kh=5,
        kw=5,
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


def tile_scale(S: np.ndarray) -> np.ndarray:
    """S_tile: the largest S in each output's 3x3 neighbourhood, shape (N, C, H, W)."""
    H, W = S.shape[2:]
    padded = np.pad(S, ((0, 0), (0, 0), (1, 1), (1, 1)))
    return np.max([padded[:, :, i : i + H, j : j + W] for i in range(3) for j in range(3)], 0)


def assert_close(got, want, scale, what: str) -> None:
    """|got - want| <= FACTOR * eps * S_tile elementwise (S_tile = 0 asks for equality)."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
    eps = np.finfo(want.dtype).eps
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = tile_scale(scale)
    worst = float((err / np.where(bound > 0, bound, 1)).max()) / eps
    assert np.all(err <= FACTOR * eps * bound), f"{what}: error up to {worst:.1f} eps * S_tile"


def random_conv(case: ConvCase, seed: int, dtype: str):
    Ho, Wo = case.out_hw
    x = normal(seed, case.x_shape, dtype)
    w = (normal(seed + 1, (case.O, case.C, 5, 5)) / np.sqrt(25 * case.C)).astype(dtype)
    b = normal(seed + 2, (case.O,), dtype) if case.bias else None
    dy = normal(seed + 3, (case.N, case.O, Ho, Wo), dtype)
    return x, w, b, dy


# ---------------------------------------------------------------- the transform matrices
def test_transform_matrices_come_from_the_interpolation_points():
    points = [0, 1, -1, 2, -2]  # and infinity

    def evaluation(n: int) -> np.ndarray:
        """Values of a polynomial with n coefficients at the points; at infinity: the last."""
        return np.array([[a**k for k in range(n)] for a in points] + [[0] * (n - 1) + [1]], float)

    # B^T = D^-1 L^T with L the inverse of the 6x6 evaluation; G = D E_g; A^T = E_h^T
    N = [np.prod([a - b for b in points if b != a]) for a in points] + [1]
    np.testing.assert_allclose(wg.BT, np.diag(N) @ np.linalg.inv(evaluation(6)).T, atol=1e-12)
    np.testing.assert_allclose(wg.G, np.diag(1 / np.array(N, float)) @ evaluation(5), atol=1e-15)
    np.testing.assert_array_equal(wg.AT, evaluation(2).T)
    assert wg.BT.dtype == wg.G.dtype == wg.AT.dtype == np.float64


@settings(max_examples=20)
@given(seed=seeds)
def test_one_dimensional_identity(seed):
    """A^T [(G g) ⊙ (B^T d)] is the correlation y[k] = sum_j d[k + j] g[j], k = 0, 1."""
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal(6), rng.standard_normal(5)
    want = np.array([d[k : k + 5] @ g for k in range(2)])
    np.testing.assert_allclose(wg.AT @ ((wg.G @ g) * (wg.BT @ d)), want, rtol=1e-12, atol=1e-12)


@settings(max_examples=10)
@given(seed=seeds)
def test_two_dimensional_identity(seed):
    """A^T [(G g G^T) ⊙ (B^T d B)] A is the 2x2 correlation of a 6x6 tile with a 5x5 filter."""
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal((6, 6)), rng.standard_normal((5, 5))
    want = np.array([[np.sum(d[r : r + 5, s : s + 5] * g) for s in range(2)] for r in range(2)])
    got = wg.AT @ ((wg.G @ g @ wg.G.T) * (wg.BT @ d @ wg.BT.T)) @ wg.AT.T
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------- the NumPy reference
@settings(max_examples=30)
@given(case=winograd_cases(), seed=seeds, dtype=st.sampled_from(["float32", "float64"]))
def test_reference_matches_im2col_conv2d(case, seed, dtype):
    x, w, b, dy = random_conv(case, seed, dtype)
    y, dx, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    y2 = wg.winograd_conv2d(x, w, b, case.padding)
    dx2 = wg.winograd_conv2d_input_grad(dy, w, case.padding, (case.H, case.W))
    assert_close(y2, y, y_scale, "forward")
    assert_close(dx2, dx, dx_scale, "input gradient")
    if dtype == "float64":  # and the plain relative error the float64 path promises
        np.testing.assert_allclose(y2, y, rtol=1e-10, atol=1e-10 * np.abs(y).max())
        np.testing.assert_allclose(dx2, dx, rtol=1e-10, atol=1e-10 * np.abs(dx).max())


# the real layers, small batch: AlexNetCIFAR conv1 and conv2, AlexNet conv2
LAYERS = {
    "cifar_conv1": ConvCase(N=2, C=3, O=64, H=32, W=32, kh=5, kw=5, sh=1, sw=1, ph=2, pw=2),
    "cifar_conv2": ConvCase(N=2, C=64, O=192, H=15, W=15, kh=5, kw=5, sh=1, sw=1, ph=2, pw=2),
    "alexnet_conv2": ConvCase(N=1, C=96, O=256, H=27, W=27, kh=5, kw=5, sh=1, sw=1, ph=2, pw=2),
}


@pytest.mark.parametrize("layer", list(LAYERS))
def test_reference_matches_im2col_on_the_model_layers(layer):
    case = LAYERS[layer]
    x, w, b, dy = random_conv(case, 7, "float32")
    y, dx, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    assert_close(wg.winograd_conv2d(x, w, b, 2), y, y_scale, "forward")
    dx2 = wg.winograd_conv2d_input_grad(dy, w, 2, (case.H, case.W))
    assert_close(dx2, dx, dx_scale, "input gradient")


def test_reference_rejects_what_it_cannot_do():
    x = np.zeros((1, 2, 4, 4))
    with pytest.raises(ValueError, match="smaller than the kernel"):
        wg.winograd_conv2d(x, np.zeros((3, 2, 5, 5)), None, 0)
    with pytest.raises(ValueError, match="expected x"):
        wg.winograd_conv2d(x, np.zeros((3, 2, 3, 3)), None, 1)
    with pytest.raises(ValueError, match="does not come from"):
        wg.winograd_conv2d_input_grad(np.zeros((1, 3, 4, 4)), np.zeros((3, 2, 5, 5)), 2, (5, 5))


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
    assert_close(cp.asnumpy(y), want_y, y_scale, "GPU forward")
    assert_close(cp.asnumpy(dx), want_dx, dx_scale, "GPU input gradient")


@pytest.mark.gpu
@requires_gpu
@settings(max_examples=15)
@given(case=winograd_cases(), seed=seeds, dtype=st.sampled_from(["float32", "float64"]))
def test_cuda_matches_reference(case, seed, dtype):
    _cuda_against_reference(case, seed, dtype)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_cuda_matches_reference_on_the_model_layers(layer, dtype):
    _cuda_against_reference(LAYERS[layer], 11, dtype)


@pytest.mark.parametrize("in_channels,used", [(16, True), (3, False)])
def test_conv2d_uses_winograd_where_the_backend_offers_it(monkeypatch, in_channels, used):
    """Conv2d switches to Winograd for 5x5 stride-1 layers with >= 16 input channels
    when the backend says so, and then gives im2col's y, dx, dW and db."""
    from minitorch_alexnet import nn

    def run():
        mt.manual_seed(0)
        conv = nn.Conv2d(in_channels, 4, 5, padding=2).double()
        x = normal(1, (2, in_channels, 7, 6))
        dy = normal(2, (2, 4, 7, 6))
        y = conv(x)
        dx = conv.backward(dy)
        return y, dx, conv.weight.grad, conv.bias.grad

    with mt.use_backend("numpy") as B:
        reference = run()
        calls = []
        real = B.kernels.winograd_conv2d
        monkeypatch.setattr(B, "winograd_5x5", True)
        monkeypatch.setattr(B.kernels, "winograd_conv2d", lambda *a: calls.append(1) or real(*a))
        result = run()
    assert len(calls) == (1 if used else 0)
    for got, want in zip(result, reference):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
