"""Winograd convolutions on the GPU: CUDA kernels around one batched SGEMM.

The same algorithms and the same transform matrices as ``winograd/reference.py`` (read that
file first for the math). The forward convolution, and its input gradient (a forward
convolution of dy), in four steps:

1. filter transform U = G g G^T, shape (alpha^2, O, C): one thread per filter, in
   double precision like the reference; for the input gradient the same kernel
   reads the filters flipped and channel-swapped, so w_t is never stored;
2. input transform V = B^T d B, shape (alpha^2, C, T): one thread per (channel, tile)
   reads its alpha x alpha patch from the NCHW input (zero outside the image) and
   writes the alpha^2 values, one to each of the alpha^2 (C, T) planes of V;
3. M = U @ V, shape (alpha^2, O, T): one strided-batched matrix product (cuBLAS);
4. output transform Y = A^T M A: one thread per (out channel, tile) reads its alpha^2
   values of M, adds the bias and writes its m x m outputs straight into NCHW,
   dropping those past the edge when m does not divide Ho or Wo.

The weight gradient (``winograd.winograd_conv2d_weight_grad``) reuses step 2, then

5. dy transform U' = G' e G'^T, shape (alpha^2, O, T): one thread per (out channel,
   tile) transforms its m x m block e of dy (zero past the edge);
6. M = U' @ V^T, shape (alpha^2, O, C): one strided-batched product whose inner
   dimension runs over all tiles (added up chunk by chunk for large batches);
7. dw = A'^T M A', one thread per filter (o, c), written as (O, C, r, r).

Each transform is written out as C++ from its matrix (``winograd/cuda_source.py``
turns a matrix of ``winograd/reference.py`` into straight-line code, e.g. for the first row of
the 6x6 B^T ``r[0] = (T)4 * z0 - (T)5 * z2 + z4;``), and every variant becomes a
struct of its three transforms (``bt``, ``g``, ``at``) that the kernels take as a
template argument; a variant's kernels are compiled when it is first used. Tiles are
numbered t = (n * th + ti) * tw + tj, as in the reference.

This module is imported only when the cupy backend is used.
"""

from __future__ import annotations

from typing import Any

import cupy as cp

from ..cuda.cublas import matmul
from .cuda_source import source
from .reference import (
    F4x4_3x3,
    F4x4_5x5,
    Variant,
    _check,
    _pair,
    _variant_for,
    input_grad_padding,
    tiling,
    weight_grad_variant,
)

# The variant each kernel size runs by on the GPU. F(4x4, 5x5) for 5x5: 2.25x fewer
# products than F(2x2, 5x5), at about 1.6x its float32 error (tests/test_winograd.py)
CHOICE = {5: F4x4_5x5, 3: F4x4_3x3}

_CTYPE = {cp.dtype("float32"): "float", cp.dtype("float64"): "double"}
_THREADS = 256
_ITYPE = {32: "int", 64: "long long"}
_DTYPES = ("float", "double")
_modules: dict[str, cp.RawModule] = {}


def _module(v: Variant) -> cp.RawModule:
    """The kernels of variant v, compiled the first time they are needed."""
    if v.ident not in _modules:
        w = weight_grad_variant(v).ident
        names = [f"filter_transform<{t}, {v.ident}>" for t in _DTYPES]
        names += [f"weight_output_transform<{t}, {w}>" for t in _DTYPES]
        for t in _DTYPES:
            for i in _ITYPE.values():
                names += [f"input_transform<{t}, {i}, {v.ident}>"]
                names += [f"output_transform<{t}, {i}, {v.ident}>"]
                names += [f"dy_transform<{t}, {i}, {w}>"]
        _modules[v.ident] = cp.RawModule(
            code=source(v), options=("-std=c++14",), name_expressions=names
        )
    return _modules[v.ident]


def _kernel(name: str, v: Variant, dtype: Any, largest: int | None = None) -> tuple[Any, Any]:
    """The compiled kernel ``name<T[, I], variant>`` of forward variant v for this dtype;
    the weight gradient's kernels take v's weight-gradient variant. With ``largest`` (the
    largest array's size) an index type I too: 32 bits when every array allows. Returns
    the kernel and the integer type for its size arguments."""
    if dtype not in _CTYPE:
        raise TypeError(f"winograd on the GPU: float32 or float64 needed, got {dtype}")
    weight_grad = name in ("dy_transform", "weight_output_transform")
    ident = weight_grad_variant(v).ident if weight_grad else v.ident
    if largest is None:
        return _module(v).get_function(f"{name}<{_CTYPE[dtype]}, {ident}>"), cp.int32
    bits = 32 if largest < 2**31 - 1 else 64
    f = _module(v).get_function(f"{name}<{_CTYPE[dtype]}, {_ITYPE[bits]}, {ident}>")
    return f, (cp.int32 if bits == 32 else cp.int64)


def _blocks(n: int) -> tuple[int]:
    return ((n + _THREADS - 1) // _THREADS,)


def _choose(w: Any, variant: Variant | None) -> Variant:
    """``variant`` (checked against w), or the GPU's choice for w's kernel size."""
    return _variant_for(w, variant if variant is not None else CHOICE.get(w.shape[-1]))


def filter_transform(
    w: cp.ndarray, dtype: Any, flip: bool = False, variant: Variant | None = None
) -> cp.ndarray:
    """See ``reference.filter_transform``: U = G g G^T in float64, (O, C, r, r) ->
    (alpha^2, O, C).

    The same arithmetic as the reference, by a kernel rather than matrix products (CuPy
    will not record its own cuBLAS calls into a CUDA graph). ``flip=True`` transforms the
    input gradient's filters instead, w_t[c, o] = w[o, c] turned by 180 degrees
    (``winograd.input_grad_as_conv``): (O, C, r, r) -> (alpha^2, C, O).
    """
    v = _choose(w, variant)
    O, C = w.shape[1::-1] if flip else w.shape[:2]  # U's (O, C)
    U = cp.empty((v.alpha**2, O, C), dtype=dtype)
    if U.size == 0:
        return U
    w = cp.ascontiguousarray(w, dtype=dtype)
    if O * C >= 2**31:
        raise ValueError(f"winograd on the GPU: {O} x {C} filters are too many")
    f, _ = _kernel("filter_transform", v, U.dtype)
    f(_blocks(O * C), (_THREADS,), (w, U, cp.int32(O), cp.int32(C), flip))
    return U


def input_transform(x: cp.ndarray, ph: int, pw: int, v: Variant) -> cp.ndarray:
    """See ``reference.input_transform``: (N, C, H, W) -> V (alpha^2, C, T), T = N * th * tw,
    tiles every v.m pixels."""
    x = cp.ascontiguousarray(x)
    N, C, H, W = x.shape
    _, _, th, tw = tiling(v, H, W, ph, pw)
    tiles = N * th * tw
    V = cp.empty((v.alpha**2, C, tiles), dtype=x.dtype)
    if V.size == 0:
        return V
    f, I = _kernel("input_transform", v, x.dtype, max(x.size, V.size))
    f(_blocks(C * tiles), (_THREADS,), (x, V, *map(I, (N, C, H, W, ph, pw, th, tw))))
    return V


def output_transform(
    M: cp.ndarray,
    bias: cp.ndarray | None,
    N: int,
    Ho: int,
    Wo: int,
    v: Variant,
    out: cp.ndarray | None = None,
) -> cp.ndarray:
    """See ``reference.output_transform``: M (alpha^2, O, T) (+ bias) -> y (N, O, Ho, Wo).

    ``out``, if given, is a C-contiguous (N, O, Ho, Wo) array to write y into.
    """
    M = cp.ascontiguousarray(M)
    O = M.shape[1]
    th, tw = -(-Ho // v.m), -(-Wo // v.m)
    y = cp.empty((N, O, Ho, Wo), dtype=M.dtype) if out is None else out
    if y.size == 0:
        return y
    has_bias = bias is not None
    b = cp.ascontiguousarray(bias, dtype=M.dtype) if has_bias else M  # M: never read
    f, I = _kernel("output_transform", v, M.dtype, max(M.size, y.size))
    args = (M, b, has_bias, y, *map(I, (N, O, Ho, Wo, th, tw)))
    f(_blocks(O * N * th * tw), (_THREADS,), args)
    return y


def dy_transform(dy: cp.ndarray, v: Variant) -> cp.ndarray:
    """See ``reference.dy_transform``: dy (N, O, Ho, Wo) -> U' (alpha^2, O, T) for the
    weight gradient of variant v's convolution."""
    dy = cp.ascontiguousarray(dy)
    N, O, Ho, Wo = dy.shape
    th, tw = -(-Ho // v.m), -(-Wo // v.m)
    tiles = N * th * tw
    U = cp.empty((v.alpha**2, O, tiles), dtype=dy.dtype)
    if U.size == 0:
        return U
    f, I = _kernel("dy_transform", v, dy.dtype, max(dy.size, U.size))
    f(_blocks(O * tiles), (_THREADS,), (dy, U, *map(I, (N, O, Ho, Wo, th, tw))))
    return U


def winograd_conv2d(
    x: cp.ndarray,
    w: cp.ndarray,
    bias: cp.ndarray | None = None,
    padding: int | tuple[int, int] = 0,
    variant: Variant | None = None,
) -> cp.ndarray:
    """See ``reference.winograd_conv2d``: 5x5 or 3x3, stride 1, on the GPU.

    Args:
        x: images, shape (N, C, H, W), float32 or float64.
        w: filters, shape (O, C, r, r), r = 5 or 3; bias: shape (O,) or None.
        padding: zero padding, an int or (ph, pw).
        variant: the algorithm (default ``CHOICE[r]``).
    Returns:
        y, shape (N, O, H + 2*ph - r + 1, W + 2*pw - r + 1), in x's dtype.
    """
    v = _check(x, w, _choose(w, variant))
    return _convolve(x, filter_transform(w, x.dtype, variant=v), v, bias, _pair(padding))


def _images_per_chunk(N: int, per_image: int) -> int:
    """How many images at a time keep a buffer of ``per_image`` bytes each under
    _CHUNK_BYTES (at least one)."""
    return max(1, min(N, _CHUNK_BYTES // max(per_image, 1)))


def _convolve(
    x: cp.ndarray, U: cp.ndarray, v: Variant, bias: cp.ndarray | None, padding: tuple[int, int]
) -> cp.ndarray:
    """Steps 2-4 for x (N, C, H, W) and transformed filters U (alpha^2, O, C): y (N, O, Ho, Wo)."""
    N, _, H, W = x.shape
    ph, pw = padding
    Ho, Wo, th, tw = tiling(v, H, W, ph, pw)
    y = cp.empty((N, U.shape[1], Ho, Wo), dtype=x.dtype)
    # V and M are alpha^2 / m^2 times larger than x and y (9x for F(2x2, 5x5), 2.25x for
    # F(4x4, 3x3), 4x for F(4x4, 5x5), more where tiles overhang the edge); for large
    # batches they are made for a chunk of images at a time, so the transient memory
    # stays under _CHUNK_BYTES
    step = _images_per_chunk(N, v.alpha**2 * max(U.shape[1:]) * th * tw * x.itemsize)
    for n0 in range(0, N, step):
        xs = x[n0 : n0 + step]
        V = input_transform(xs, ph, pw, v)  # V = B^T d B      (alpha^2, C, T)
        M = matmul(U, V)  # M[k] = U[k] @ V[k]: one strided-batched GEMM   (alpha^2, O, T)
        del V
        output_transform(M, bias, len(xs), Ho, Wo, v, out=y[n0 : n0 + step])  # A^T M A + b
    return y


_CHUNK_BYTES = 256 * 2**20  # the largest V or M made at once


def winograd_conv2d_input_grad(
    dy: cp.ndarray,
    w: cp.ndarray,
    padding: int | tuple[int, int],
    input_hw: tuple[int, int],
    variant: Variant | None = None,
) -> cp.ndarray:
    """See ``reference.winograd_conv2d_input_grad``: dL/dx (N, C, H, W) from dy (N, O, Ho, Wo),
    as the Winograd convolution of dy (padded by r - 1 - P) with the flipped, channel-swapped
    w, which the filter transform reads straight from w."""
    v = _check(dy, w.transpose(1, 0, 2, 3), _choose(w, variant))  # dy's channels: w's outputs
    q, (eh, ew) = input_grad_padding(v.r, padding, dy.shape[2:], tuple(input_hw))
    dx = _convolve(dy, filter_transform(w, dy.dtype, flip=True, variant=v), v, None, q)
    H, W = input_hw
    if eh or ew:
        dx = cp.ascontiguousarray(dx[:, :, eh : eh + H, ew : ew + W])
    return dx


def winograd_conv2d_weight_grad(
    x: cp.ndarray,
    dy: cp.ndarray,
    padding: int | tuple[int, int],
    kernel_size: int,
    variant: Variant | None = None,
) -> cp.ndarray:
    """See ``reference.winograd_conv2d_weight_grad``: dL/dw (O, C, r, r) from the forward's
    input x (N, C, H, W) and dy (N, O, Ho, Wo), by F(r x r, m x m): steps 2, 5, 6, 7 of
    the module docstring, the product summing over the tiles of a chunk of images at a
    time into one M."""
    v = variant if variant is not None else CHOICE.get(kernel_size)
    if v is None or v.r != kernel_size:
        raise ValueError(f"winograd weight gradient: no variant for {kernel_size}x{kernel_size}")
    x, dy = cp.ascontiguousarray(x), cp.ascontiguousarray(dy)
    N, C, H, W = x.shape
    O = dy.shape[1]
    ph, pw = _pair(padding)
    Ho, Wo, th, tw = tiling(v, H, W, ph, pw)
    if dy.shape != (N, O, Ho, Wo) or dy.dtype != x.dtype:
        raise ValueError(
            f"winograd weight gradient: dy {tuple(dy.shape)} ({dy.dtype}) does not come from "
            f"x {tuple(x.shape)} ({x.dtype}) with a {kernel_size}x{kernel_size} kernel and "
            f"padding ({ph}, {pw})"
        )
    if N == 0:  # no images: no tiles to sum, and the loop below would leave M unwritten
        return cp.zeros((O, C, kernel_size, kernel_size), dtype=x.dtype)
    A2 = v.alpha**2
    M = cp.empty((A2, O, C), dtype=x.dtype)
    step = _images_per_chunk(N, A2 * max(C, O) * th * tw * x.itemsize)
    for n0 in range(0, N, step):
        V = input_transform(x[n0 : n0 + step], ph, pw, v)  # B^T d B       (alpha^2, C, T)
        U = dy_transform(dy[n0 : n0 + step], v)  # G' e G'^T                (alpha^2, O, T)
        # M[k] (+)= U[k] @ V[k]^T: the sum over this chunk's tiles       (alpha^2, O, C)
        matmul(U, V.transpose(0, 2, 1), out=M, accumulate=n0 > 0)
        del U, V
    dw = cp.empty((O, C, kernel_size, kernel_size), dtype=x.dtype)
    if dw.size:
        f, _ = _kernel("weight_output_transform", v, x.dtype)
        f(_blocks(O * C), (_THREADS,), (M, dw, cp.int32(O), cp.int32(C)))
    return dw
