"""Winograd convolutions (F(2x2, 5x5), F(3x3, 5x5), F(4x4, 5x5), F(4x4, 3x3)) and their
weight gradients (F(r x r, m x m)): the transforms, and every path held to the im2col
Conv2d.

Tolerances. The rounding error of a sum is a multiple of eps * S, where
S = sum |w| |x| over the window (+ |bias|) is the same convolution with absolute
values: im2col's float32 error measured below 3 eps * S. Winograd computes the m^2
outputs of an m x m tile together, from one alpha x alpha patch whose transforms
(entries up to 5 in the 6x6 B^T and 21/4 in the 8x8 one; 2 to 8 in A^T) make larger
terms that cancel, so its error is shared by the tile: an output whose own window
lies in the padding (S = 0) can still carry its tile-mates' rounding. So each
output's error is measured against S_tile, the largest S in its (2m - 1) x (2m - 1)
neighbourhood (which holds its tile, wherever the tile grid starts). The weight
gradient's r x r entries of one filter come from one A'^T M A' together, so there
S is the largest over the filter. Measured |winograd - im2col| / (eps * S_tile) over
600 random small shapes (float32 and float64, padding up to the kernel size), worst
of forward / dx / dW: F(2x2, 5x5) 23 / 23 / 41, F(3x3, 5x5) 30 / 34 / 38,
F(4x4, 5x5) 32 / 48 / 51, F(4x4, 3x3) 33 / 30 / 21 (earlier draws of the F(2x2, 5x5)
cases reached 85). The tests allow 2^8 = 256 for all: at least 16 correct bits of
float32's 24 relative to S_tile, about 6e-14 * S_tile in float64, well inside the
1e-10 relative error that float64 must also meet. Relative to max |y| on the model
layers at batch 128 (H200, ``benchmarks/winograd_gpu.py``, against im2col in float64):
by the variants the GPU uses, forward 6e-6 to 2.3e-5, dx 1.1e-5 to 2.4e-5, dW 5e-6 to
5.4e-5 (im2col: 2e-7 to 2e-6; cuDNN's fastest weight-gradient algorithm for the 5x5
layers: 5e-3 to 1.4e-2).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from strategies import ConvCase, normal, seeds

import minitorch_alexnet as mt
from minitorch_alexnet.backend.winograd import reference as wg
from minitorch_alexnet.nn.im2col import im2col

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


def error_in_eps(got, want, scale, m: int) -> float:
    """max |got - want| / (eps * S_tile) for m x m tiles (m = 1: per output, S itself),
    0 where S_tile = 0 and they are equal."""
    eps = np.finfo(want.dtype).eps
    err = np.abs(got.astype(np.float64) - want.astype(np.float64))
    bound = tile_scale(scale, m)
    if np.any(err[bound == 0] > 0):
        return np.inf
    return float((err / np.where(bound > 0, bound, 1)).max()) / eps


def assert_close(got, want, scale, what: str, v: wg.Variant, m: int | None = None) -> None:
    """|got - want| <= FACTOR * eps * S_tile elementwise (S_tile = 0 asks for equality),
    S_tile over v's m x m tiles, or over m x m if given (m = 1 for the weight gradient,
    whose every entry is one sum over all tiles)."""
    assert got.shape == want.shape and got.dtype == want.dtype, (got.shape, want.shape)
    worst = error_in_eps(got, want, scale, v.m if m is None else m)
    assert worst <= FACTOR, f"{what} ({v.name}): error up to {worst:.1f} eps * S_tile"


def random_conv(case: ConvCase, seed: int, dtype: str):
    Ho, Wo = case.out_hw
    k = case.kh
    x = normal(seed, case.x_shape, dtype)
    w = (normal(seed + 1, (case.O, case.C, k, k)) / np.sqrt(k * k * case.C)).astype(dtype)
    b = normal(seed + 2, (case.O,), dtype) if case.bias else None
    dy = normal(seed + 3, (case.N, case.O, Ho, Wo), dtype)
    return x, w, b, dy


# ---------------------------------------------------------------- the transform matrices
# every variant, and the weight gradient's F(r x r, m x m) of each
ALL = [wg.F2x2_5x5, wg.F4x4_3x3, wg.F3x3_5x5, wg.F4x4_5x5]
FIVE = [wg.F2x2_5x5, wg.F3x3_5x5, wg.F4x4_5x5]  # the 5x5 ones
WITH_WEIGHT_GRAD = ALL + [wg.weight_grad_variant(v) for v in ALL]


def evaluation(points, n: int) -> np.ndarray:
    """Values of a polynomial with n coefficients at the points; at infinity: the last."""
    rows = [[float(a) ** k for k in range(n)] for a in points] + [[0] * (n - 1) + [1]]
    return np.array(rows, float)


@pytest.mark.parametrize("v", WITH_WEIGHT_GRAD, ids=lambda v: v.ident)
def test_transform_matrices_come_from_the_interpolation_points(v):
    """B^T = D^-1 L^T with L the inverse of the alpha x alpha evaluation (for the six
    points, the same for both alpha = 6 variants: it depends on the points alone);
    G = D E_g; A^T = E_h^T; here by floating-point inversion, independently of the exact
    fractions of winograd_matrices (and of the 6x6 literals)."""
    P = v.points
    assert v.alpha == v.m + v.r - 1 == len(P) + 1 and len(set(P)) == len(P)
    N = [np.prod([float(a - b) for b in P if b != a]) for a in P] + [1]
    L = np.linalg.inv(evaluation(P, v.alpha))
    np.testing.assert_allclose(v.BT, np.diag(N) @ L.T, atol=1e-10)
    np.testing.assert_allclose(
        v.G, np.diag(1 / np.array(N, float)) @ evaluation(P, v.r), atol=1e-14
    )
    np.testing.assert_array_equal(v.AT, evaluation(P, v.m).T)
    assert v.BT.dtype == v.G.dtype == v.AT.dtype == np.float64


def test_six_point_literals_are_the_derived_matrices():
    """BT, G5, AT2, G3, AT4 (written out in winograd/reference.py) are what
    winograd_matrices gives."""
    for v, (m, r) in ((wg.F2x2_5x5, (2, 5)), (wg.F4x4_3x3, (4, 3))):
        bt, g, at = wg.winograd_matrices(m, r, wg.SIX_POINTS)
        np.testing.assert_array_equal(bt, wg.BT)
        np.testing.assert_array_equal(g, v.G)
        np.testing.assert_array_equal(at, v.AT)
    with pytest.raises(ValueError, match="distinct"):
        wg.winograd_matrices(4, 5, (0, 1, -1, 2, -2, 3))  # one too few
    with pytest.raises(ValueError, match="distinct"):
        wg.winograd_matrices(2, 5, (0, 1, 1, 2, -2))


@settings(max_examples=20)
@given(seed=seeds, v=st.sampled_from(WITH_WEIGHT_GRAD))
def test_one_dimensional_identity(seed, v):
    """A^T [(G g) ⊙ (B^T d)] is the correlation y[i] = sum_j d[i + j] g[j], i = 0..m-1."""
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal(v.alpha), rng.standard_normal(v.r)
    want = np.array([d[i : i + v.r] @ g for i in range(v.m)])
    np.testing.assert_allclose(v.AT @ ((v.G @ g) * (v.BT @ d)), want, rtol=1e-11, atol=1e-11)


@settings(max_examples=10)
@given(seed=seeds, v=st.sampled_from(WITH_WEIGHT_GRAD))
def test_two_dimensional_identity(seed, v):
    """A^T [(G g G^T) ⊙ (B^T d B)] A is the m x m correlation of an alpha x alpha tile
    with an r x r filter."""
    k, m = v.r, v.m
    rng = np.random.default_rng(seed)
    d, g = rng.standard_normal((v.alpha, v.alpha)), rng.standard_normal((k, k))
    want = np.array([[np.sum(d[r : r + k, s : s + k] * g) for s in range(m)] for r in range(m)])
    got = v.AT @ ((v.G @ g @ v.G.T) * (v.BT @ d @ v.BT.T)) @ v.AT.T
    np.testing.assert_allclose(got, want, rtol=1e-11, atol=1e-11)


@pytest.mark.parametrize("v", ALL, ids=lambda v: v.ident)
def test_generated_cuda_transforms_are_the_matrices(v):
    """The CUDA source's transforms (written out from the matrices), evaluated as
    arithmetic on the CPU, give B^T z, G z and A^T z: each line r[k * rs] = ... is
    row k of its matrix."""
    import re

    from minitorch_alexnet.backend.winograd.cuda_source import source

    src = source(v)
    rng = np.random.default_rng(1)
    for struct in (v, wg.weight_grad_variant(v)):
        body = src[src.index(f"struct {struct.ident} {{") :]
        body = body[: body.index("\n};")]
        for name, mat in (("bt", struct.BT), ("g", struct.G), ("at", struct.AT)):
            fn = body[body.index(f"void {name}(") :]
            fn = fn[: fn.index("\n    }")]
            z = rng.standard_normal(mat.shape[1])
            env = {f"z{j}": float(z[j]) for j in range(len(z))}
            got = {}
            for k, expr in re.findall(r"r\[([^\]]*)\] = (.*);", fn):
                row = 0 if k == "0" else 1 if k == "rs" else int(k.split()[0])
                got[row] = eval(expr.replace("(T)", ""), {}, env)  # noqa: S307 - our own source
            assert sorted(got) == list(range(mat.shape[0])), (struct.name, name)
            np.testing.assert_allclose([got[k] for k in sorted(got)], mat @ z, rtol=1e-13)


# ---------------------------------------------------------------- the NumPy reference
def weight_grad_and_scale(case: ConvCase, x, dy):
    """dL/dw by im2col (NumPy: dY X_col^T) and its scale: S = the same with |x|, |dy| (in
    float64), the largest over each filter's r x r entries, which Winograd computes
    together (A'^T M A'), so they share their rounding errors."""

    def dw(x, dy):
        cols = im2col.reference(x, case.kernel, case.stride, case.padding)
        d = dy.transpose(1, 0, 2, 3).reshape(case.O, -1)
        return (d @ cols.T).reshape(case.O, case.C, case.kh, case.kw)

    S = dw(np.abs(x).astype(np.float64), np.abs(dy).astype(np.float64))
    return dw(x, dy), np.broadcast_to(S.max(axis=(2, 3), keepdims=True), S.shape)


def variants_for(k: int) -> list:
    return FIVE if k == 5 else [wg.F4x4_3x3]


@settings(max_examples=40)
@given(
    case=winograd_cases(),
    seed=seeds,
    dtype=st.sampled_from(["float32", "float64"]),
    pick=st.integers(0, 2),
)
def test_reference_matches_im2col_conv2d(case, seed, dtype, pick):
    x, w, b, dy = random_conv(case, seed, dtype)
    v = variants_for(case.kh)[pick % len(variants_for(case.kh))]
    y, dx, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    dw, dw_scale = weight_grad_and_scale(case, x, dy)
    y2 = wg.winograd_conv2d(x, w, b, case.padding, v)
    dx2 = wg.winograd_conv2d_input_grad(dy, w, case.padding, (case.H, case.W), v)
    dw2 = wg.winograd_conv2d_weight_grad(x, dy, case.padding, case.kh, v)
    assert_close(y2, y, y_scale, "forward", v)
    assert_close(dx2, dx, dx_scale, "input gradient", v)
    assert_close(dw2, dw, dw_scale, "weight gradient", v, m=1)
    if dtype == "float64":  # and the plain relative error the float64 path promises
        for got, want in ((y2, y), (dx2, dx), (dw2, dw)):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10 * np.abs(want).max())


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
    x = np.maximum(x, 0)  # as after a ReLU
    y, dx, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    dw, dw_scale = weight_grad_and_scale(case, x, dy)
    for v in variants_for(case.kh):
        y2 = wg.winograd_conv2d(x, w, b, case.padding, v)
        assert_close(y2, y, y_scale, "forward", v)
        dx2 = wg.winograd_conv2d_input_grad(dy, w, case.padding, (case.H, case.W), v)
        assert_close(dx2, dx, dx_scale, "input gradient", v)
        dw2 = wg.winograd_conv2d_weight_grad(x, dy, case.padding, case.kh, v)
        assert_close(dw2, dw, dw_scale, "weight gradient", v, m=1)


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
    with pytest.raises(ValueError, match="does not fit"):  # a 5x5 variant for 3x3 filters
        wg.winograd_conv2d(x, np.zeros((3, 2, 3, 3)), None, 1, wg.F4x4_5x5)
    with pytest.raises(ValueError, match="does not come from"):
        wg.winograd_conv2d_weight_grad(x, np.zeros((1, 3, 3, 3)), 1, 3)
    with pytest.raises(ValueError, match="no variant"):
        wg.winograd_conv2d_weight_grad(x, np.zeros((1, 3, 4, 4)), 1, 3, wg.F4x4_5x5)


# ---------------------------------------------------------------- the CUDA path
def _cuda_against_reference(case: ConvCase, seed: int, dtype: str, v: wg.Variant) -> None:
    from minitorch_alexnet.backend.winograd import cuda as winograd_cuda

    cp = mt.get_backend("cupy").xp
    x, w, b, dy = random_conv(case, seed, dtype)
    _, _, y_scale, dx_scale = im2col_conv(case, x, w, b, dy)
    _, dw_scale = weight_grad_and_scale(case, x, dy)
    hw = (case.H, case.W)
    want_y = wg.winograd_conv2d(x, w, b, case.padding, v)
    want_dx = wg.winograd_conv2d_input_grad(dy, w, case.padding, hw, v)
    want_dw = wg.winograd_conv2d_weight_grad(x, dy, case.padding, case.kh, v)
    dx_, w_, b_, dy_ = [None if a is None else cp.asarray(a) for a in (x, w, b, dy)]
    y = winograd_cuda.winograd_conv2d(dx_, w_, b_, case.padding, v)
    dx = winograd_cuda.winograd_conv2d_input_grad(dy_, w_, case.padding, hw, v)
    dw = winograd_cuda.winograd_conv2d_weight_grad(dx_, dy_, case.padding, case.kh, v)
    # same transforms, other order of additions (kernels, cuBLAS): the same tolerance
    assert_close(cp.asnumpy(y), want_y, y_scale, "GPU forward", v)
    assert_close(cp.asnumpy(dx), want_dx, dx_scale, "GPU input gradient", v)
    assert_close(cp.asnumpy(dw), want_dw, dw_scale, "GPU weight gradient", v, m=1)


@pytest.mark.gpu
@requires_gpu
@settings(max_examples=30)
@given(
    case=winograd_cases(),
    seed=seeds,
    dtype=st.sampled_from(["float32", "float64"]),
    pick=st.integers(0, 2),
)
def test_cuda_matches_reference(case, seed, dtype, pick):
    _cuda_against_reference(
        case, seed, dtype, variants_for(case.kh)[pick % len(variants_for(case.kh))]
    )


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("layer", list(LAYERS))
def test_cuda_matches_reference_on_the_model_layers(layer, dtype):
    from minitorch_alexnet.backend.winograd import cuda as winograd_cuda

    case = LAYERS[layer]
    for v in {wg.VARIANTS[case.kh], winograd_cuda.CHOICE[case.kh]}:  # default, the GPU's
        _cuda_against_reference(case, 11, dtype, v)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("v", ALL, ids=lambda v: v.ident)
def test_cuda_filter_transform_matches_reference(v):
    """U = G g G^T of the filters, and of the input gradient's flipped, channel-swapped
    filters (read straight from w), as the reference computes them (both in float64)."""
    from minitorch_alexnet.backend.winograd import cuda as winograd_cuda

    cp = mt.get_backend("cupy").xp
    k = v.r
    w = normal(5, (7, 3, k, k))
    w_t, _, _ = wg.input_grad_as_conv(w, k // 2, (4, 4), (4, 4))
    got = winograd_cuda.filter_transform(cp.asarray(w), np.float64, variant=v)
    got_t = winograd_cuda.filter_transform(cp.asarray(w), np.float64, flip=True, variant=v)
    for u, want in (
        (got, wg.filter_transform(w, np.float64, v)),
        (got_t, wg.filter_transform(w_t, np.float64, v)),
    ):
        np.testing.assert_allclose(cp.asnumpy(u), want, rtol=1e-13, atol=1e-13 * np.abs(want).max())


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("v", ALL, ids=lambda v: v.ident)
def test_cuda_works_through_a_batch_in_chunks(monkeypatch, v):
    """With a chunk smaller than one batch's V, the images go through in several chunks
    and give what one pass gives (the weight gradient adds the chunks' sums up)."""
    from minitorch_alexnet.backend.winograd import cuda as winograd_cuda

    cp = mt.get_backend("cupy").xp
    case = _layer(5, 8, 6, 9, v.r)
    x, w, b, dy = (None if a is None else cp.asarray(a) for a in random_conv(case, 3, "float64"))

    def run():
        y = winograd_cuda.winograd_conv2d(x, w, b, case.padding, v)
        dw = winograd_cuda.winograd_conv2d_weight_grad(x, dy, case.padding, v.r, v)
        return y, dw

    whole = run()
    monkeypatch.setattr(winograd_cuda, "_CHUNK_BYTES", 1)  # one image at a time
    chunked = run()
    cp.testing.assert_allclose(chunked[0], whole[0], rtol=0, atol=0)
    cp.testing.assert_allclose(chunked[1], whole[1], rtol=1e-12, atol=1e-12)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("v", ALL, ids=lambda v: v.ident)
def test_cuda_weight_grad_of_no_images_is_zero(v):
    """An empty batch has no tiles to sum: dW is zero, as in the reference (not whatever
    an unwritten buffer held)."""
    from minitorch_alexnet.backend.winograd import cuda as winograd_cuda

    cp = mt.get_backend("cupy").xp
    case = _layer(1, 8, 6, 9, v.r)
    x, _, _, dy = random_conv(case, 4, "float32")
    want = wg.winograd_conv2d_weight_grad(x[:0], dy[:0], case.padding, v.r, v)
    got = winograd_cuda.winograd_conv2d_weight_grad(
        cp.asarray(x[:0]), cp.asarray(dy[:0]), case.padding, v.r, v
    )
    assert got.shape == want.shape == (6, 8, v.r, v.r)
    assert not cp.asnumpy(got).any() and not want.any()


# ---------------------------------------------------------------- Conv2d on the GPU
@pytest.mark.gpu
@requires_gpu
def test_by_winograd_takes_5x5_and_3x3_stride_1_layers_of_one_group_and_16_channels():
    """The GPU backend's gate (``backend/cuda/conv.py``; it imports CuPy, so GPU only)."""
    from minitorch_alexnet.backend.cuda.conv import by_winograd

    def decide(C: int, k: tuple[int, int], stride=(1, 1), groups: int = 1) -> bool:
        return by_winograd((2, C, 9, 9), (8, C // groups, *k), stride, groups)

    for k in ((5, 5), (3, 3)):
        assert decide(16, k) and decide(384, k)
        assert not decide(15, k) and not decide(3, k)  # too few input channels
        assert not decide(16, k, stride=(2, 2)) and not decide(16, k, stride=(1, 2))
        assert not decide(32, k, groups=2)
    for k in ((1, 1), (7, 7), (11, 11), (5, 3), (3, 5)):  # no variant for these
        assert not decide(64, k)


@pytest.mark.gpu
@requires_gpu
@pytest.mark.parametrize("k", [5, 3])
@pytest.mark.parametrize("in_channels,used", [(16, True), (3, False)])
def test_conv2d_uses_winograd_where_the_backend_offers_it(monkeypatch, k, in_channels, used):
    """On the GPU, Conv2d runs a 5x5 or 3x3 stride-1 layer with >= 16 input channels by
    Winograd (forward, dx and dW), and then gives im2col's y, dx, dW and db; with fewer
    channels, or where ``by_winograd`` says no, it runs im2col, with the same numbers."""
    from minitorch_alexnet import nn
    from minitorch_alexnet.backend.cuda import conv as cuda_conv

    def run(backend: str) -> list[np.ndarray]:
        with mt.use_backend(backend):
            mt.manual_seed(0)
            conv = nn.Conv2d(in_channels, 4, k, padding=k // 2).double()
            x = mt.asarray(normal(1, (2, in_channels, 7, 6)))
            dy = mt.asarray(normal(2, (2, 4, 7, 6)))
            y = conv(x)
            dx = conv.backward(dy)
            return [mt.to_numpy(a) for a in (y, dx, conv.weight.grad, conv.bias.grad)]

    reference = run("numpy")  # im2col, every step from nn/conv.py
    paths = ("winograd_conv2d", "winograd_conv2d_input_grad", "winograd_conv2d_weight_grad")
    calls = dict.fromkeys((*paths, "im2col"), 0)
    for name in calls:  # count the calls of each, as backend/cuda/conv.py imported it
        real = getattr(cuda_conv, name)

        def counted(*args, _real=real, _name=name, **kwargs):
            calls[_name] += 1
            return _real(*args, **kwargs)

        monkeypatch.setattr(cuda_conv, name, counted)

    def check(winograd: bool) -> None:
        for name in calls:
            calls[name] = 0
        result = run("cupy")
        assert calls == {**dict.fromkeys(paths, int(winograd)), "im2col": 0 if winograd else 2}
        for got, want in zip(result, reference):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)

    assert cuda_conv.by_winograd((2, in_channels, 7, 6), (4, in_channels, k, k), (1, 1), 1) == used
    check(winograd=used)
    monkeypatch.setattr(cuda_conv, "by_winograd", lambda *args: False)  # im2col only
    check(winograd=False)
