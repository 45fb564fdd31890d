"""Conv2d on the CPU: im2col, col2im and the layer's forward and backward, compiled.

The same steps as ``nn/conv.py``: im2col, one BLAS product per group, the bias; in
backward the bias gradient, the weight gradient from redone columns and the input
gradient. The loops around the products are compiled (``layout.py``, ``patches.py``),
and the columns live in memory kept from one step to the next (``memory.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import get_num_threads, njit

from .. import dispatch
from ..geometry import conv_geometry
from ..half import via_float32
from . import JIT, gemm
from .layout import cnhw_to_nchw, nchw_to_cnhw
from .memory import columns
from .patches import patches_input_grad, patches_weight_grad
from .threads import parallel_for

Pair = tuple[int, int]

# Keep im2col's columns from forward for backward (True), or redo them from x (False)?
# Measured on 2 cores, AlexNetCIFAR at batch 128: keeping saves 2% of a training step
# (1747 against 1785 ms) and costs the columns' memory, 392 MiB: redone.
KEEP_COLUMNS = False


@njit(**JIT)
def _pad(lo, hi, x, ph, pw, x_pad):  # pragma: no cover - compiled
    """x_pad (N, C, H + 2*ph, W + 2*pw): x with a border of zeros."""
    N, C, H, W = x.shape
    Hp, Wp = x_pad.shape[2], x_pad.shape[3]
    for nc in range(lo, hi):
        n = nc // C
        c = nc % C
        for h in range(Hp):
            inside = ph <= h < ph + H
            for w in range(Wp):
                x_pad[n, c, h, w] = x[n, c, h - ph, w - pw] if inside and pw <= w < pw + W else 0


@njit(**JIT)
def _im2col(lo, hi, x_pad, kh, kw, start, cols):  # pragma: no cover - compiled
    # x_pad: the padded input (N, C, Hp, Wp), so that every window lies inside it.
    # start[k]: where output position k = ho*Wo + wo has its window's first pixel,
    # (ho*sh)*Wp + wo*sw, in a padded plane. Pixel (i, j) of that window is then at
    # start[k] + i*Wp + j, so each row of cols is one long gather without a test:
    # 1.6x faster than looping over ho and wo (7 to 32 long) with bounds tests.
    N, C, Hp, Wp = x_pad.shape
    flat = x_pad.reshape(-1)
    L = start.size  # Ho*Wo
    for r in range(lo, hi):  # one row of cols per (c, i, j)
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        row = cols[r]
        for n in range(N):
            src = (n * C + c) * Hp * Wp + i * Wp + j  # pixel (i, j) of plane (n, c)
            dst = n * L
            for k in range(L):
                row[dst + k] = flat[src + start[k]]


@via_float32()
def im2col(
    x: np.ndarray, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair = (1, 1)
) -> np.ndarray:
    """See ``nn/im2col.py``: (N, C, H, W) -> (C*KH*KW, N*Ho*Wo), in kept memory."""
    if tuple(dilation) != (1, 1):
        # a local decision: dilated windows are rare; the reference serves them
        return dispatch.reference("im2col")(x, kernel_size, stride, padding, dilation)
    N, C, H, W = x.shape
    kh, kw, sh, sw, ph, pw, Ho, Wo = conv_geometry(x.shape, kernel_size, stride, padding)
    x = np.ascontiguousarray(x)
    if ph or pw:  # a padded copy, about SH*SW/(KH*KW) of the columns' size
        x_pad = np.empty((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
        parallel_for(_pad, N * C, x, ph, pw, x_pad)
    else:
        x_pad = x
    Wp = x_pad.shape[3]
    start = (np.arange(Ho)[:, None] * (sh * Wp) + np.arange(Wo) * sw).ravel()
    cols = columns.take((C * kh * kw, N * Ho * Wo), x.dtype)  # memory kept between steps
    parallel_for(_im2col, C * kh * kw, x_pad, kh, kw, start, cols)
    return cols


@njit(**JIT)
def _col2im(
    lo, hi, cols, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, blocks, dx
):  # pragma: no cover
    L = Ho * Wo
    per = (N + blocks - 1) // blocks  # images per task
    # one task per (channel, block of images): each image plane is written by one
    # thread only, and a task reads its KH*KW rows of cols front to back (n ascending)
    for task in range(lo, hi):
        c = task // blocks
        first = (task % blocks) * per
        for n in range(first, min(N, first + per)):
            for i in range(kh):  # same (i, j) order as the NumPy reference: same rounding
                for j in range(kw):
                    row = cols[(c * kh + i) * kw + j]  # row (c, i, j) of cols
                    # the output columns wo whose pixel w = wo*sw + j - pw is inside 0 <= w < W
                    lo = min(Wo, max(0, (pw - j + sw - 1) // sw))
                    hi = max(lo, min(Wo, (W - 1 + pw - j) // sw + 1))
                    for ho in range(Ho):
                        h = ho * sh + i - ph
                        if h < 0 or h >= H:
                            continue
                        src = n * L + ho * Wo
                        dst = dx[n, c, h]  # one row of the image: a view
                        for wo in range(lo, hi):  # no test per pixel: the loop vectorizes
                            dst[wo * sw + j - pw] += row[src + wo]


@via_float32()
def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, ...],
    kernel_size: Pair,
    stride: Pair,
    padding: Pair,
    dilation: Pair = (1, 1),
) -> np.ndarray:
    """See ``nn/im2col.py``: (C*KH*KW, N*Ho*Wo) -> (N, C, H, W)."""
    if tuple(dilation) != (1, 1):
        # a local decision: dilated windows are rare; the reference serves them
        return dispatch.reference("col2im")(cols, x_shape, kernel_size, stride, padding, dilation)
    N, C, H, W = x_shape
    kh, kw, sh, sw, ph, pw, Ho, Wo = conv_geometry(x_shape, kernel_size, stride, padding)
    dx = np.zeros((N, C, H, W), dtype=cols.dtype)
    # enough tasks to keep every thread busy when there are few channels (conv1 has 3)
    blocks = -(-4 * get_num_threads() // C)  # ceil(4 * threads / C)
    args = (np.ascontiguousarray(cols), N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, blocks, dx)
    parallel_for(_col2im, C * blocks, *args)
    return dx


def _stack_groups(parts: list[np.ndarray]) -> np.ndarray:
    """Per-group products one above the other (no copy for a single group)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


@via_float32()
def conv2d_forward(
    x: np.ndarray,
    weight: np.ndarray,
    bias: np.ndarray | None,
    stride: Pair,
    padding: Pair,
    groups: int,
    save: bool = True,
    dilation: Pair = (1, 1),
) -> tuple[np.ndarray, dict | None]:
    """See ``nn/conv.py``: the reference's products, one 2-D product per group, and the
    layout change with the bias added in one compiled pass."""
    if tuple(dilation) != (1, 1):
        # a local decision: dilated windows are rare; the reference serves them
        ref = dispatch.reference("conv2d_forward")
        out, ctx = ref(x, weight, bias, stride, padding, groups, save, dilation)
        return out, (None if ctx is None else {**ctx, "reference": True})  # backward: see there
    N = x.shape[0]
    O, G = weight.shape[0], groups
    kh, kw, sh, sw, ph, pw, Ho, Wo = conv_geometry(x.shape, weight.shape[2:], stride, padding)
    cols = im2col(x, (kh, kw), stride, padding)  # (C*KH*KW, N*Ho*Wo)
    w = weight.reshape(G, O // G, -1)
    cols_g = cols.reshape(G, cols.shape[0] // G, N * Ho * Wo)  # sizes, not -1: N may be 0
    y = _stack_groups([gemm.matmul(w[g], cols_g[g]) for g in range(G)])  # Y_g = W_g X_g
    out = cnhw_to_nchw(y.reshape(O, N, Ho, Wo), bias)  # (N, O, Ho, Wo) + b[o], one pass
    if not save:
        return out, None
    ctx = dict(x=x, weight=weight, stride=stride, padding=padding, groups=G)
    ctx["has_bias"] = bias is not None
    ctx["cols"] = cols if KEEP_COLUMNS else None
    ctx["reference"] = False  # made here, not by the reference (dilated windows)
    return out, ctx


@via_float32()
def conv2d_backward(grad_out: np.ndarray, ctx: dict, input_grad: bool = True) -> Any:
    """See ``nn/conv.py``. dY's layout change and db in one pass; dW and dx from the
    columns channels last (``patches.py``), unless the columns were kept."""
    if ctx["reference"]:  # forward ran the reference (dilated windows): so does backward
        return dispatch.reference("conv2d_backward")(grad_out, ctx, input_grad)
    x, weight, stride, padding, G = (
        ctx["x"],
        ctx["weight"],
        ctx["stride"],
        ctx["padding"],
        ctx["groups"],
    )
    O = weight.shape[0]
    kh, kw, sh, sw, ph, pw, _, _ = conv_geometry(x.shape, weight.shape[2:], stride, padding)
    # dY laid out like Y, (O, N*Ho*Wo) by group; the same pass adds up db = sum dY
    dy, db = nchw_to_cnhw(grad_out, sums=ctx["has_bias"])
    dy = dy.reshape(G, O // G, dy[0].size)  # sizes, not -1: N may be 0
    cols = ctx["cols"]
    if cols is None:  # dW_g = dY_g X_g^T, X_col redone channels last
        dw = patches_weight_grad(dy, x, kh, kw, sh, sw, ph, pw)
    else:
        cols_g = cols.reshape(G, cols.shape[0] // G, cols.shape[1])
        dw = _stack_groups([gemm.matmul(dy[g], cols_g[g].T) for g in range(G)])
    del cols  # done with X_col here (the memory is free again unless ctx kept it)
    if not input_grad:
        return None, dw.reshape(weight.shape), db
    w = weight.reshape(G, O // G, -1)  # W_g
    dx = patches_input_grad(dy, w, x.shape, kh, kw, sh, sw, ph, pw)  # col2im(W_g^T dY_g)
    return dx, dw.reshape(weight.shape), db
