"""Conv2d on the GPU: im2col and cuBLAS products, or Winograd for 5x5 and 3x3 layers.

The same steps as ``nn/conv.py`` where im2col runs: the columns (``im2col.py``), one
cuBLAS product per group (``cublas.py``: a CUDA graph can record it), and a kernel
that turns the product round to NCHW and adds the bias. A 5x5 or 3x3 stride-1 layer
with one group and at least 16 input channels runs by Winograd instead, forward, dx
and dW (``../winograd/``): the same sums with several times fewer multiplications.
"""

from __future__ import annotations

import cupy as cp

from .. import dispatch
from ..geometry import conv_geometry
from ..half import via_float32
from ..winograd.cuda import (
    winograd_conv2d,
    winograd_conv2d_input_grad,
    winograd_conv2d_weight_grad,
)
from .cublas import matmul
from .im2col import col2im, im2col
from .indexed import IndexedKernel

Pair = tuple[int, int]


def by_winograd(
    x_shape: tuple[int, ...], weight_shape: tuple[int, ...], stride: Pair, groups: int
) -> bool:
    """Winograd instead of im2col for this layer?

    For 5x5 and 3x3 kernels with stride 1 and one group: measured on an H200 3.2-4.6x
    (5x5) and 1.3-3.0x (3x3, 7x7 maps too) faster than im2col for forward and dx,
    1.8-4.6x for dW (benchmarks/winograd_gpu.py, benchmarks/NOTES.md). Not with fewer
    than 16 input channels: with 3 (a first layer) the transforms cost more than the
    multiplications they save (0.17 -> 0.25 ms for AlexNetCIFAR's conv1). Nor for an
    empty batch (N = 0), which im2col's products handle as they are.
    """
    return (
        x_shape[0] > 0
        and tuple(weight_shape[2:]) in ((5, 5), (3, 3))
        and tuple(stride) == (1, 1)
        and groups == 1
        and x_shape[1] >= 16
    )


_cnhw_to_nchw = IndexedKernel(
    "raw T y, raw T bias, bool has_bias, I C, I N, I HW",
    "T out",
    """
    const I e = (I)i;
    const I k = e % HW, c = (e / HW) % C, n = e / (HW * C);
    out = y[(c * N + n) * HW + k] + (has_bias ? bias[c] : (T)0);
    """,
    "minitorch_cnhw_to_nchw",
)


def cnhw_to_nchw(y: cp.ndarray, bias: cp.ndarray | None) -> cp.ndarray:
    """(C, N, H, W) (+ bias[c] where given, bias (C,)) -> contiguous (N, C, H, W), one kernel."""
    C, N, H, W = y.shape
    out = cp.empty((N, C, H, W), dtype=y.dtype)
    b = bias if bias is not None else cp.zeros(1, dtype=y.dtype)
    _cnhw_to_nchw(cp.ascontiguousarray(y), b, bias is not None, C, N, H * W, out, largest=out.size)
    return out


def nchw_to_cnhw(x: cp.ndarray, sums: bool = False) -> tuple[cp.ndarray, cp.ndarray | None]:
    """(N, C, H, W) -> contiguous (C, N, H, W), and with ``sums`` each channel's sum (C,)."""
    out = cp.ascontiguousarray(x.transpose(1, 0, 2, 3))
    return out, (out.reshape(out.shape[0], -1).sum(axis=1) if sums else None)


def _stack_groups(parts: list[cp.ndarray]) -> cp.ndarray:
    """Per-group products one above the other (no copy for a single group)."""
    return parts[0] if len(parts) == 1 else cp.concatenate(parts)


@via_float32()
def conv2d_forward(
    x: cp.ndarray,
    weight: cp.ndarray,
    bias: cp.ndarray | None,
    stride: Pair,
    padding: Pair,
    groups: int,
    save: bool = True,
    dilation: Pair = (1, 1),
) -> tuple[cp.ndarray, dict | None]:
    """See ``nn/conv.py``: by Winograd where :func:`by_winograd` says so, else im2col,
    cuBLAS per group (2-D products: CuPy's batched product copied the transposed
    operand) and the layout kernel, which adds the bias."""
    if tuple(dilation) != (1, 1):
        # a local decision: dilated windows are rare; the reference serves them
        ref = dispatch.reference("conv2d_forward")
        out, ctx = ref(x, weight, bias, stride, padding, groups, save, dilation)
        return out, (None if ctx is None else {**ctx, "reference": True})  # backward: see there
    G = groups
    winograd = by_winograd(x.shape, weight.shape, stride, G)
    if winograd:  # y = A^T [(G w G^T) . (B^T x B)] A per tile, + b
        out = winograd_conv2d(x, weight, bias, padding)
    else:
        N, O = x.shape[0], weight.shape[0]
        kh, kw, _, _, _, _, Ho, Wo = conv_geometry(x.shape, weight.shape[2:], stride, padding)
        cols = im2col(x, (kh, kw), stride, padding)  # (C*KH*KW, N*Ho*Wo)
        w = weight.reshape(G, O // G, -1)
        cols_g = cols.reshape(G, cols.shape[0] // G, N * Ho * Wo)  # sizes, not -1: N may be 0
        y = _stack_groups([matmul(w[g], cols_g[g]) for g in range(G)])  # Y_g = W_g X_g
        out = cnhw_to_nchw(y.reshape(O, N, Ho, Wo), bias)
    if not save:
        return out, None
    # x, not the columns: backward redoes im2col (nearly free here, and GPU memory is
    # tight: the columns take ~400 MB at AlexNetCIFAR's batch 128)
    ctx = dict(x=x, weight=weight, stride=stride, padding=padding, groups=G, winograd=winograd)
    ctx["has_bias"] = bias is not None
    ctx["reference"] = False  # made here, not by the reference (dilated windows)
    return out, ctx


@via_float32()
def conv2d_backward(grad_out: cp.ndarray, ctx: dict, input_grad: bool = True) -> tuple:
    """See ``nn/conv.py``: dW, dx and db by Winograd or by im2col, as forward ran."""
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
    kh, kw = weight.shape[2:]
    if ctx["winograd"]:
        # dW[o, c] = A'^T [sum over tiles of (G' dY G'^T) . (B^T x B)] A'  (F(r x r, m x m))
        dw = winograd_conv2d_weight_grad(x, grad_out, padding, kh)
        db = grad_out.sum(axis=(0, 2, 3)) if ctx["has_bias"] else None
        if not input_grad:
            return None, dw, db
        # dx: the convolution of dy with the flipped filters
        return winograd_conv2d_input_grad(grad_out, weight, padding, x.shape[2:]), dw, db
    # dY laid out like Y: (O, N*Ho*Wo), by group; its row sums are db
    dy, db = nchw_to_cnhw(grad_out, sums=ctx["has_bias"])
    dy = dy.reshape(G, O // G, dy[0].size)  # sizes, not -1: N may be 0
    cols = im2col(x, (kh, kw), stride, padding)  # redone from x
    cols_g = cols.reshape(G, cols.shape[0] // G, cols.shape[1])
    dw = _stack_groups([matmul(dy[g], cols_g[g].T) for g in range(G)])  # dW_g = dY_g X_g^T
    del cols, cols_g  # freed before dX_col (the same size) is made
    if not input_grad:
        return None, dw.reshape(weight.shape), db
    w = weight.reshape(G, O // G, -1)
    dcols = _stack_groups([matmul(w[g].T, dy[g]) for g in range(G)])  # dX_g = W_g^T dY_g
    return col2im(dcols, x.shape, (kh, kw), stride, padding), dw.reshape(weight.shape), db
