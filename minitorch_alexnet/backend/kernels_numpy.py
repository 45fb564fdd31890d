"""Reference kernels in plain NumPy, written to be read.

Every faster backend (Numba, CuPy) must return the same numbers as these
functions; ``tests/test_kernels.py`` holds them to it.

Conventions shared by all backends
-----------------------------------
* Images are NCHW: ``x.shape == (N, C, H, W)``.
* ``im2col`` lays the patches out as one matrix of shape
  ``(C*KH*KW, N*Ho*Wo)``: row ``(c, i, j)`` holds pixel ``x[n, c, ho*SH + i - PH,
  wo*SW + j - PW]`` of every output position ``(n, ho, wo)``. Rows are grouped
  by channel, so the rows of channel group ``g`` are one contiguous block and a
  grouped convolution is one matrix product per group.
* Max-pooling returns, beside its output, the *flat index* ``h*W + w`` of each
  window's maximum inside its input plane (PyTorch's ``return_indices`` format);
  the backward pass scatters the gradient to those positions.
"""

from __future__ import annotations

import numpy as np

# 5x5 and 3x3 stride-1 convolutions by Winograd, the readable reference (winograd.py
# derives it); the GPU runs them, the CPU backends keep im2col (measured faster there)
from .winograd import winograd_conv2d as winograd_conv2d
from .winograd import winograd_conv2d_input_grad as winograd_conv2d_input_grad
from .winograd import winograd_conv2d_weight_grad as winograd_conv2d_weight_grad


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window: floor((W - K + 2P) / S) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


# ------------------------------------------------------------------ matrix product
def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The matrix product ``a @ b``: (M, K) x (K, N) -> (M, N).

    Conv2d and Linear take their products from here, so a backend decides how they
    run (the GPU backend calls cuBLAS itself, in a way a CUDA graph can record).
    """
    return a @ b


# ------------------------------------------------------------------ im2col / col2im
def im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> np.ndarray:
    """Unfold sliding windows into columns.

    Args:
        x: images, shape (N, C, H, W).
        kh, kw: kernel size; sh, sw: stride; ph, pw: zero padding.
    Returns:
        cols, shape (C*KH*KW, N*Ho*Wo).
    """
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    cols = np.empty((C, kh, kw, N, Ho, Wo), dtype=x.dtype)
    for i in range(kh):  # one strided slice per kernel offset (i, j):
        for j in range(kw):  # it holds that offset's pixel for every output position
            window = xp[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw]  # (N, C, Ho, Wo)
            cols[:, i, j] = window.transpose(1, 0, 2, 3)
    return cols.reshape(C * kh * kw, N * Ho * Wo)


def col2im(
    cols: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> np.ndarray:
    """The adjoint of :func:`im2col`: add every column entry back onto its pixel.

    Args:
        cols: shape (C*KH*KW, N*Ho*Wo).
        x_shape: (N, C, H, W) of the images ``im2col`` was given.
    Returns:
        dx, shape (N, C, H, W). Pixels that sit in several windows receive the sum.
    """
    N, C, H, W = x_shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    cols = cols.reshape(C, kh, kw, N, Ho, Wo)
    dxp = np.zeros((N, C, H + 2 * ph, W + 2 * pw), dtype=cols.dtype)
    for i in range(kh):
        for j in range(kw):
            dxp[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw] += cols[:, i, j].transpose(
                1, 0, 2, 3
            )
    return dxp[:, :, ph : ph + H, pw : pw + W]


def _stack_groups(parts: list[np.ndarray]) -> np.ndarray:
    """Per-group products one above the other (no copy for a single group)."""
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def conv2d_weight_grad(
    dy: np.ndarray,
    x: np.ndarray,
    cols: np.ndarray | None,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> np.ndarray:
    """A convolution's weight gradient by im2col: dW_g = dY_g X_g^T for each group g.

    Args:
        dy: dL/dy as (G, O/G, N*Ho*Wo): row o of group g holds output channel
            g*O/G + o for every output position (n, ho, wo).
        x: the input (N, C, H, W); kh, ..., pw: the window, as for im2col.
        cols: X_col = im2col(x) (C*KH*KW, N*Ho*Wo) if the caller kept it from
            forward; None to have it redone here from x.
    Returns:
        dW, shape (O, C/G*KH*KW): the weight's gradient, rows by output channel.
    """
    if cols is None:
        cols = im2col(x, kh, kw, sh, sw, ph, pw)
    cols_g = cols.reshape(dy.shape[0], -1, cols.shape[1])  # X_g: (G, C/G*KH*KW, N*Ho*Wo)
    return _stack_groups([matmul(dy[g], cols_g[g].T) for g in range(dy.shape[0])])  # dW_g


def conv2d_input_grad(
    dy: np.ndarray,
    w: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> np.ndarray:
    """A convolution's input gradient by im2col: dX_g = W_g^T dY_g for each group g,
    stacked into dX_col, then ``col2im(dX_col)``.

    Args:
        dy: dL/dy as (G, O/G, N*Ho*Wo): row o of group g holds output channel
            g*O/G + o for every output position (n, ho, wo).
        w: the weight as (G, O/G, C/G*KH*KW).
        x_shape: (N, C, H, W) of the input; kh, ..., pw: the window, as for im2col.
    Returns:
        dx, shape (N, C, H, W).
    """
    dcols = _stack_groups([matmul(w[g].T, dy[g]) for g in range(w.shape[0])])  # dX_col
    return col2im(dcols, x_shape, kh, kw, sh, sw, ph, pw)


# ------------------------------------------------------------------ max pooling
def maxpool2d_forward(
    x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, indices: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """Max over each window (padding counts as -inf).

    Returns:
        out: shape (N, C, Ho, Wo).
        indices: int64, shape (N, C, Ho, Wo); flat index h*W + w of each maximum.
            The first maximum in row-major window order wins a tie. None when
            ``indices=False`` (no backward will run: evaluation, ``no_grad``).
    """
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)), constant_values=-np.inf)
    windows = np.empty((kh * kw, N, C, Ho, Wo), dtype=x.dtype)
    inside = np.empty((kh * kw, 1, 1, Ho, Wo), dtype=bool)  # not a padding position
    for i in range(kh):
        for j in range(kw):
            windows[i * kw + j] = xp[:, :, i : i + sh * Ho : sh, j : j + sw * Wo : sw]
            rows_in = (0 <= np.arange(Ho) * sh + i - ph) & (np.arange(Ho) * sh + i - ph < H)
            cols_in = (0 <= np.arange(Wo) * sw + j - pw) & (np.arange(Wo) * sw + j - pw < W)
            inside[i * kw + j] = rows_in[:, None] & cols_in[None, :]
    out = windows.max(axis=0)  # a NaN in the window makes the output NaN
    if not indices:
        return out, None
    # the winner: the first in-window position holding the maximum (or the first NaN);
    # "in-window" matters when every real pixel is -inf and would tie with the padding
    wins = inside & ((windows == out) | np.isnan(windows))
    best = wins.argmax(axis=0)  # offset of the max inside its window, 0 .. KH*KW-1
    # window offset -> row/column in the unpadded input -> flat index
    rows = np.arange(Ho)[:, None] * sh + best // kw - ph
    cols = np.arange(Wo)[None, :] * sw + best % kw - pw
    return out, (rows * W + cols).astype(np.int64)


def maxpool2d_backward(
    grad_out: np.ndarray,
    indices: np.ndarray,
    x_shape: tuple[int, int, int, int],
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> np.ndarray:
    """Route each output gradient to the input pixel that won its window.

    Args:
        grad_out: shape (N, C, Ho, Wo).
        indices: from :func:`maxpool2d_forward`.
        kh, kw, sh, sw, ph, pw: the forward's window (unused here: the indices say
            everything; the GPU kernel uses it to bound its search).
    Returns:
        dx, shape (N, C, H, W); a pixel that won several overlapping windows
        receives the sum of their gradients.
    """
    N, C, H, W = x_shape
    dx = np.zeros((N * C, H * W), dtype=grad_out.dtype)
    plane = np.arange(N * C)[:, None]
    np.add.at(dx, (plane, indices.reshape(N * C, -1)), grad_out.reshape(N * C, -1))
    return dx.reshape(N, C, H, W)


# ------------------------------------------------------------------ layout
def cnhw_to_nchw(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """(C, N, H, W) -> contiguous (N, C, H, W), adding ``bias[c]`` on the way when given.

    The matrix product of a convolution yields channels first; the network wants
    images first. ``bias`` has shape (C,).
    """
    if bias is not None:
        y = y + bias[:, None, None, None]
    return np.ascontiguousarray(y.transpose(1, 0, 2, 3))


def nchw_to_cnhw(x: np.ndarray, sums: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(N, C, H, W) -> contiguous (C, N, H, W): the layout change of ``cnhw_to_nchw``
    undone (a convolution's dy laid out like its product Y).

    With ``sums``, also each channel's sum over n, h, w, shape (C,) (a convolution's
    bias gradient, the row sums of dY); else None.
    """
    out = np.ascontiguousarray(x.transpose(1, 0, 2, 3))
    return out, (out.reshape(out.shape[0], -1).sum(axis=1) if sums else None)


# ------------------------------------------------------------------ batch normalisation
# x3, dy3, xhat3 have shape (N, C, L): statistics are per channel C, over axes 0 and 2.
def batchnorm_stats(x3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and biased variance, each of shape (C,)."""
    mean = x3.mean(axis=(0, 2))
    xc = x3 - mean[:, None]
    var = (xc * xc).mean(axis=(0, 2))
    return mean, var


def batchnorm_update_running(
    running_mean: np.ndarray,
    running_var: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    factor: float,
    m: int,
) -> None:
    """In place: running <- (1 - factor) * running + factor * batch statistic.

    The variance enters unbiased, ``var * m / (m - 1)``, as in PyTorch (m values per channel).
    """
    running_mean *= 1.0 - factor
    running_mean += factor * mean
    running_var *= 1.0 - factor
    running_var += factor * var * (m / (m - 1))


def batchnorm_normalize(
    x3: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    keep_xhat: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """xhat = (x - mean) * inv_std and y = gamma * xhat + beta (y is xhat without gamma).

    Returns (y, xhat), both (N, C, L); xhat is None with ``keep_xhat=False`` (no
    backward will run: evaluation, ``no_grad``).
    """
    xhat = (x3 - mean[:, None]) * inv_std[:, None]
    y = xhat if gamma is None else xhat * gamma[:, None] + beta[:, None]
    return y, (xhat if keep_xhat else None)


def batchnorm_backward(
    dy3: np.ndarray, xhat3: np.ndarray, scale: np.ndarray, batch_stats: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The input gradient and the two per-channel sums that the parameter gradients need.

    With m = N*L values per channel and scale = gamma / sqrt(var + eps):
        batch statistics:  dx = scale * (dy - sum(dy)/m - xhat * sum(dy*xhat)/m)
        fixed statistics:  dx = scale * dy
    Returns (dx (N, C, L), sum(dy) (C,), sum(dy * xhat) (C,)).
    """
    sum_dy = dy3.sum(axis=(0, 2))
    sum_dy_xhat = (dy3 * xhat3).sum(axis=(0, 2))
    if batch_stats:
        m = dy3.shape[0] * dy3.shape[2]
        dx = scale[:, None] * (dy3 - (sum_dy / m)[:, None] - xhat3 * (sum_dy_xhat / m)[:, None])
    else:
        dx = dy3 * scale[:, None]
    return dx, sum_dy, sum_dy_xhat


# ------------------------------------------------------------------ optimiser update
def sgd_update(
    p: np.ndarray,
    grad: np.ndarray,
    buf: np.ndarray | None,
    first: bool,
    lr: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    weight_decay: float,
) -> None:
    """One SGD step in place on ``p`` (and the momentum buffer ``buf``), PyTorch's formulas::

        d = grad + weight_decay * p
        buf = d  (first step)   or   buf = momentum * buf + (1 - dampening) * d
        d = d + momentum * buf  (Nesterov)   or   d = buf
        p = p - lr * d

    ``buf`` is None without momentum; ``first`` says it holds nothing yet.
    """
    d = grad
    if weight_decay != 0:
        d = d + weight_decay * p
    if buf is not None:
        if first:
            buf[...] = d
        else:
            buf *= momentum
            buf += (1 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    p -= lr * d


# ------------------------------------------------------------------ small elementwise steps
def relu_forward(x: np.ndarray, mask: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """y = max(x, 0) (a NaN stays NaN), and, if ``mask``, positive = [x > 0] as bools.

    Returns:
        y: x's shape and dtype.
        positive: bool, x's shape (one byte per element, all backward needs), or None.
    """
    return np.maximum(x, 0), (x > 0 if mask else None)


def relu_backward(grad_out: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """dx = dy where ``positive`` ([x > 0], bool) is set, else 0; shapes equal."""
    return grad_out * positive


def inv_std(var: np.ndarray, eps: float) -> np.ndarray:
    """1 / sqrt(var + eps), per channel."""
    return 1.0 / np.sqrt(var + eps)
