"""Numba kernels for the CPU backend ``"numba"``.

Each function here has the signature of its twin in ``kernels_numpy.py`` and its
results (exactly for the copies and gathers; to rounding for the sums of BatchNorm
and of ``nchw_to_cnhw``, which accumulate in float64), but runs as compiled,
parallel loops instead of NumPy slicing: one pass over memory, no temporary
arrays. The tests compare them.

* Compiled code is cached on disk (``cache=True``), so only the first run of a
  new installation pays the compile time.
* ``prange`` loops run on Numba's threads; BLAS runs the matrix products on its
  own threads, never at the same time. OpenBLAS's workers, though, spin for about
  0.1 s after each product, on the cores these loops then need; setting
  ``OPENBLAS_THREAD_TIMEOUT=4`` before NumPy is imported stops that.
* Debugging: set ``NUMBA_DISABLE_JIT=1`` and these functions run as plain Python,
  so a debugger can step through them.
"""

from __future__ import annotations

import sys

import numpy as np
from numba import get_num_threads, njit, prange

from . import kernels_numpy as _reference

# small updates: the NumPy versions serve this backend as they are
from .kernels_numpy import batchnorm_update_running as batchnorm_update_running
from .kernels_numpy import inv_std as inv_std
from .kernels_numpy import matmul as matmul
from .kernels_numpy import out_size
from .kernels_numpy import winograd_conv2d as winograd_conv2d
from .kernels_numpy import winograd_conv2d_input_grad as winograd_conv2d_input_grad
from .kernels_numpy import winograd_conv2d_weight_grad as winograd_conv2d_weight_grad

_jit = dict(cache=True, nogil=True)


# ------------------------------------------------------------------ reused memory
class _ColumnMemory:
    """Memory for im2col's column matrices, kept from one training step to the next.

    A column matrix is large (176 MiB for AlexNetCIFAR's conv2 at batch 128). Arrays of
    that size come fresh from the operating system on every allocation, and the first
    write to each page of it faults; that costs about as much as writing the array.
    So im2col takes its columns from buffers kept here: a request gets the smallest
    free buffer that is large enough (viewed with the requested shape), and a new
    buffer only when none is. A buffer is free once nothing refers to it any more.

    When Conv2d recomputes the columns in backward (the default), every convolution
    of a step takes its columns, uses them and drops them, so a single buffer, the
    size of the largest column matrix, serves them all. The input gradient's product
    (``conv2d_input_grad``) has the columns' size and comes after they are dropped,
    so it takes the same buffer.
    """

    def __init__(self) -> None:
        self._buffers: list[np.ndarray] = []  # flat blocks of bytes
        # what getrefcount reports for a buffer that only this list refers to
        probe = [np.empty(1)]
        self._free_refs = sys.getrefcount(probe[0])

    def _view(self, b: np.ndarray, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        n = int(np.prod(shape)) * np.dtype(dtype).itemsize
        return b[:n].view(dtype).reshape(shape)

    def _best_free(self, nbytes: int) -> np.ndarray | None:
        """The smallest free buffer of at least ``nbytes``, or None."""
        best = None
        for k in range(len(self._buffers)):
            b = self._buffers[k]
            # free: only the list and `b` refer to it (a view of the buffer, a reshape
            # or a slice, refers to it as its .base)
            if b.nbytes >= nbytes and sys.getrefcount(b) <= self._free_refs + 1:
                if best is None or b.nbytes < best.nbytes:
                    best = b
        return best

    def take(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """An array of ``shape``: a view of a free buffer, else of a new one (kept)."""
        nbytes = int(np.prod(shape)) * np.dtype(dtype).itemsize
        b = self._best_free(nbytes)
        if b is None:
            # free buffers too small for this request would only add to the footprint
            self._buffers = [b for b in self._buffers if sys.getrefcount(b) > self._free_refs + 1]
            b = np.empty(nbytes, dtype=np.uint8)
            self._buffers.append(b)
        return self._view(b, shape, dtype)


_columns = _ColumnMemory()


# ------------------------------------------------------------------ im2col / col2im
@njit(parallel=True, **_jit)
def _pad(x, ph, pw, x_pad):  # pragma: no cover - compiled
    """x_pad (N, C, H + 2*ph, W + 2*pw): x with a border of zeros."""
    N, C, H, W = x.shape
    Hp, Wp = x_pad.shape[2], x_pad.shape[3]
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        for h in range(Hp):
            inside = ph <= h < ph + H
            for w in range(Wp):
                x_pad[n, c, h, w] = x[n, c, h - ph, w - pw] if inside and pw <= w < pw + W else 0


@njit(parallel=True, **_jit)
def _im2col(x_pad, kh, kw, start, cols):  # pragma: no cover - compiled
    # x_pad: the padded input (N, C, Hp, Wp), so that every window lies inside it.
    # start[k]: where output position k = ho*Wo + wo has its window's first pixel,
    # (ho*sh)*Wp + wo*sw, in a padded plane. Pixel (i, j) of that window is then at
    # start[k] + i*Wp + j, so each row of cols is one long gather without a test:
    # 1.6x faster than looping over ho and wo (7 to 32 long) with bounds tests.
    N, C, Hp, Wp = x_pad.shape
    flat = x_pad.reshape(-1)
    L = start.size  # Ho*Wo
    for r in prange(C * kh * kw):  # one row of cols per (c, i, j)
        c = r // (kh * kw)
        i = (r // kw) % kh
        j = r % kw
        row = cols[r]
        for n in range(N):
            src = (n * C + c) * Hp * Wp + i * Wp + j  # pixel (i, j) of plane (n, c)
            dst = n * L
            for k in range(L):
                row[dst + k] = flat[src + start[k]]


def im2col(x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int) -> np.ndarray:
    """See ``kernels_numpy.im2col``: (N, C, H, W) -> (C*KH*KW, N*Ho*Wo)."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x = np.ascontiguousarray(x)
    if ph or pw:  # a padded copy, about SH*SW/(KH*KW) of the columns' size
        x_pad = np.empty((N, C, H + 2 * ph, W + 2 * pw), dtype=x.dtype)
        _pad(x, ph, pw, x_pad)
    else:
        x_pad = x
    Wp = x_pad.shape[3]
    start = (np.arange(Ho)[:, None] * (sh * Wp) + np.arange(Wo) * sw).ravel()
    cols = _columns.take((C * kh * kw, N * Ho * Wo), x.dtype)  # memory kept between steps
    _im2col(x_pad, kh, kw, start, cols)
    return cols


@njit(parallel=True, **_jit)
def _col2im(cols, N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, blocks, dx):  # pragma: no cover
    L = Ho * Wo
    per = (N + blocks - 1) // blocks  # images per task
    # one task per (channel, block of images): each image plane is written by one
    # thread only, and a task reads its KH*KW rows of cols front to back (n ascending)
    for task in prange(C * blocks):
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
    """See ``kernels_numpy.col2im``: (C*KH*KW, N*Ho*Wo) -> (N, C, H, W)."""
    N, C, H, W = x_shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    dx = np.zeros((N, C, H, W), dtype=cols.dtype)
    # enough tasks to keep every thread busy when there are few channels (conv1 has 3)
    blocks = -(-4 * get_num_threads() // C)  # ceil(4 * threads / C)
    _col2im(np.ascontiguousarray(cols), N, C, H, W, kh, kw, sh, sw, ph, pw, Ho, Wo, blocks, dx)
    return dx


def _tasks(N: int) -> int:
    """Tasks for a loop over N images: a few per thread, for balance."""
    return max(1, min(N, 4 * get_num_threads()))


@njit(parallel=True, **_jit)
def _image_to_patches(x, kh, kw, sh, sw, ph, pw, c0, Ho, Wo, image, rows):  # pragma: no cover
    # rows (N*Ho*Wo, KH*KW*Cg): row (n, ho, wo) gets the window of output position
    # (ho, wo) in image n, channels c0..c0+Cg-1, channels last: pixel (i, j), channel c
    # at column (i*KW + j)*Cg + c. The rows of X_col^T, with columns reordered.
    # image (T, Hp, Wp, Cg): one scratch image per task (allocated by the caller, so
    # that no worker thread allocates: glibc would keep an arena's memory per thread)
    N, _, H, W = x.shape
    T, Cg = image.shape[0], image.shape[3]
    for t in prange(T):
        padded = image[t]
        for n in range(t * N // T, (t + 1) * N // T):
            # image n zero-padded and channels last (Hp, Wp, Cg): a window pixel's
            # channels side by side, to be copied as one run
            padded[:] = 0
            for c in range(Cg):
                for h in range(H):
                    for w in range(W):
                        padded[ph + h, pw + w, c] = x[n, c0 + c, h, w]
            for ho in range(Ho):
                for wo in range(Wo):
                    dst = rows[(n * Ho + ho) * Wo + wo]
                    for i in range(kh):
                        for j in range(kw):
                            pixel = padded[ho * sh + i, wo * sw + j]
                            first = (i * kw + j) * Cg
                            for c in range(Cg):
                                dst[first + c] = pixel[c]


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
    """See ``kernels_numpy.conv2d_weight_grad``: (G, O/G, N*Ho*Wo) -> (O, C/G*KH*KW).

    Columns kept from forward go into the reference's product. Redone, they are made
    as rows (X_col^T, one per output position) with each window pixel's channels side
    by side, copied in runs of C/G: 2-3x faster than ``im2col``, whose rows are
    gathered one pixel at a time. Then dW_g = dY_g X_g^T comes out with its columns
    ordered (i, j, c), and a small copy puts them back in (c, i, j) order. Even with
    3 channels (a first layer) this is as fast as im2col and the reference's product.
    """
    N, C, H, W = x.shape
    G, Og = dy.shape[0], dy.shape[1]
    Cg = C // G
    if cols is not None:
        return _reference.conv2d_weight_grad(dy, x, cols, kh, kw, sh, sw, ph, pw)
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x = np.ascontiguousarray(x)
    image = np.empty((_tasks(N), H + 2 * ph, W + 2 * pw, Cg), dtype=x.dtype)
    dw = np.empty((G * Og, Cg, kh * kw), dtype=np.result_type(dy, x))
    for g in range(G):
        # X_g^T, channels last: (N*Ho*Wo, KH*KW*Cg), the columns' size and memory
        rows = _columns.take((N * Ho * Wo, kh * kw * Cg), x.dtype)
        _image_to_patches(x, kh, kw, sh, sw, ph, pw, g * Cg, Ho, Wo, image, rows)
        dw_last = dy[g] @ rows  # (O/G, KH*KW*Cg): columns (i, j, c)
        del rows
        dw[g * Og : (g + 1) * Og] = dw_last.reshape(Og, kh * kw, Cg).transpose(0, 2, 1)
    return dw.reshape(G * Og, Cg * kh * kw)


@njit(parallel=True, **_jit)
def _patches_to_image(rows, Ho, Wo, kh, kw, sh, sw, ph, pw, c0, sums, dx):  # pragma: no cover
    # rows (N*Ho*Wo, KH*KW*Cg): row (n, ho, wo) is the gradient of that output position's
    # window, channels last: pixel (i, j), channel c at column (i*KW + j)*Cg + c.
    # Adds each row back onto its window of dx[n, c0:c0+Cg] (NCHW).
    # sums (T, H, W, Cg): one scratch image per task, allocated by the caller
    N, _, H, W = dx.shape
    T, Cg = sums.shape[0], sums.shape[3]
    for t in prange(T):  # each image in one task: no two threads add to the same pixel
        acc = sums[t]
        for n in range(t * N // T, (t + 1) * N // T):
            # image n's sums, channels last (H, W, Cg): a window pixel's Cg channels are
            # contiguous in rows and here, so the innermost loop is one vector add
            acc[:] = 0
            # outputs (ho, wo) last to first: a pixel then receives its terms in the
            # order (i, j) = (0, 0), (0, 1), ..., as in the reference col2im: same rounding
            for ho in range(Ho - 1, -1, -1):
                h0 = ho * sh - ph  # the window's top row in dx; rows h0 + i inside 0..H-1:
                i_lo, i_hi = max(0, -h0), min(kh, H - h0)
                for wo in range(Wo - 1, -1, -1):
                    w0 = wo * sw - pw
                    j_lo, j_hi = max(0, -w0), min(kw, W - w0)
                    src = rows[(n * Ho + ho) * Wo + wo]
                    for i in range(i_lo, i_hi):
                        for j in range(j_lo, j_hi):
                            pixel = acc[h0 + i, w0 + j]
                            first = (i * kw + j) * Cg
                            for c in range(Cg):
                                pixel[c] += src[first + c]
            for c in range(Cg):  # channels last -> the NCHW planes of dx
                for h in range(H):
                    for w in range(W):
                        dx[n, c0 + c, h, w] = acc[h, w, c]


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
    """See ``kernels_numpy.conv2d_input_grad``: (G, O/G, N*Ho*Wo) -> (N, C, H, W).

    The same sums, from the transposed product: dX_col^T = dY_g^T W_g, one row per
    output position (its window's gradient), with W_g's columns reordered to (i, j, c)
    so that a window pixel's channels sit side by side. Adding those rows back onto
    the image then runs along the channels, in vector adds, where col2im's rows of
    dX_col give runs only Wo long (15 and 7 in AlexNetCIFAR): 2x faster than ``col2im``
    there, and as fast with as few as 3 channels.
    """
    N, C, H, W = x_shape
    G, Og = w.shape[0], w.shape[1]
    Cg = C // G
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    dtype = np.result_type(dy, w)
    sums = np.empty((_tasks(N), H, W, Cg), dtype=dtype)
    dx = None
    for g in range(G):
        # W_g (O/G, Cg*KH*KW), columns (c, i, j) -> (O/G, KH*KW*Cg), columns (i, j, c)
        w_last = np.ascontiguousarray(w[g].reshape(Og, Cg, kh * kw).transpose(0, 2, 1))
        # dX_col^T: (N*Ho*Wo, KH*KW*Cg), the columns' size, so in the columns' memory
        rows = _columns.take((N * Ho * Wo, kh * kw * Cg), dtype)
        np.matmul(dy[g].T, w_last.reshape(Og, -1), out=rows)
        if dx is None:  # allocated after the product: a training step's peak memory is
            dx = np.empty((N, C, H, W), dtype=dtype)  # ~15 MiB lower this way (glibc)
        _patches_to_image(rows, Ho, Wo, kh, kw, sh, sw, ph, pw, g * Cg, sums, dx)
        del rows  # its buffer is free again for the next group
    return dx


# ------------------------------------------------------------------ max pooling
# A NaN in a window wins (the output is NaN, as np.max gives); among equal maxima the
# first in row-major window order wins. Two short passes per window, each without a
# chain of index updates: the maximum, then the first pixel equal to it (or NaN).
@njit(inline="always", **_jit)
def _window_max(plane, h0, h1, w0, w1):  # pragma: no cover - compiled
    best = plane[h0, w0]
    for h in range(h0, h1):
        for w in range(w0, w1):
            v = plane[h, w]
            best = v if (v > best) | (v != v) else best
    return best


@njit(inline="always", **_jit)
def _window_argmax(plane, h0, h1, w0, w1, best):  # pragma: no cover - compiled
    arg = 0
    for h in range(h1 - 1, h0 - 1, -1):  # backwards: the last match seen is the first
        for w in range(w1 - 1, w0 - 1, -1):
            v = plane[h, w]
            arg = h * plane.shape[1] + w if (v == best) | (v != v) else arg
    return arg


@njit(inline="always", **_jit)
def _whole_windows(plane, out, idx, h0, lo, hi, kh, kw, sw, pw):  # pragma: no cover
    """Outputs lo..hi-1 of one output row, whose kh x kw windows lie inside the image."""
    for wo in range(lo, hi):
        w0 = wo * sw - pw
        best = _window_max(plane, h0, h0 + kh, w0, w0 + kw)
        out[wo] = best
        if idx is not None:
            idx[wo] = _window_argmax(plane, h0, h0 + kh, w0, w0 + kw, best)


@njit(parallel=True, **_jit)
def _maxpool_fwd(x, kh, kw, sh, sw, ph, pw, out, idx):  # pragma: no cover - compiled
    # idx is None when no indices are wanted: Numba compiles a version without them
    N, C, H, W = x.shape
    Ho, Wo = out.shape[2], out.shape[3]
    lo = min(Wo, (pw + sw - 1) // sw)  # the outputs wo in lo..hi-1 have their whole
    hi = max(lo, min(Wo, (W + pw - kw) // sw + 1))  # window inside the image columns
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = x[n, c]
        for ho in range(Ho):
            h0 = ho * sh - ph
            inside = h0 >= 0 and h0 + kh <= H  # the window's rows are all in the image
            for wo in range(Wo):  # windows that overhang the border: clipped to it
                if not inside or wo < lo or wo >= hi:
                    w0 = wo * sw - pw
                    hs, he, ws, we = max(0, h0), min(H, h0 + kh), max(0, w0), min(W, w0 + kw)
                    best = _window_max(plane, hs, he, ws, we)
                    out[n, c, ho, wo] = best
                    if idx is not None:
                        idx[n, c, ho, wo] = _window_argmax(plane, hs, he, ws, we, best)
            if not inside:
                continue
            o = out[n, c, ho]
            ix = None if idx is None else idx[n, c, ho]
            # whole windows. For 3x3 (AlexNet's pools) the window size is a constant
            # here, so the compiler unrolls the window loops and vectorises over wo: 2-3x
            # faster than the same loops with run-time sizes, which other sizes get (each
            # constant size more costs about a second of compiling on first use)
            if kh == 3 and kw == 3:
                _whole_windows(plane, o, ix, h0, lo, hi, 3, 3, sw, pw)
            else:
                _whole_windows(plane, o, ix, h0, lo, hi, kh, kw, sw, pw)


def maxpool2d_forward(
    x: np.ndarray, kh: int, kw: int, sh: int, sw: int, ph: int, pw: int, indices: bool = True
) -> tuple[np.ndarray, np.ndarray | None]:
    """See ``kernels_numpy.maxpool2d_forward``."""
    N, C, H, W = x.shape
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    out = np.empty((N, C, Ho, Wo), dtype=x.dtype)
    idx = np.empty((N, C, Ho, Wo), dtype=np.int64) if indices else None
    _maxpool_fwd(np.ascontiguousarray(x), kh, kw, sh, sw, ph, pw, out, idx)
    return out, idx


@njit(parallel=True, **_jit)
def _maxpool_bwd(g, idx, dx):  # pragma: no cover - compiled
    N, C, Ho, Wo = g.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        plane = dx[n, c].ravel()  # a view: writes land in dx
        for ho in range(Ho):
            for wo in range(Wo):
                plane[idx[n, c, ho, wo]] += g[n, c, ho, wo]


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
    """See ``kernels_numpy.maxpool2d_backward``."""
    dx = np.zeros(x_shape, dtype=grad_out.dtype)
    _maxpool_bwd(np.ascontiguousarray(grad_out), np.ascontiguousarray(indices), dx)
    return dx


# ------------------------------------------------------------------ layout
@njit(parallel=True, **_jit)
def _cnhw_to_nchw(y, bias, has_bias, out):  # pragma: no cover - compiled
    C, N, HW = y.shape
    for nc in prange(N * C):
        n = nc // C
        c = nc % C
        b = bias[c] if has_bias else 0
        for k in range(HW):
            out[n, c, k] = y[c, n, k] + b


def cnhw_to_nchw(y: np.ndarray, bias: np.ndarray | None) -> np.ndarray:
    """See ``kernels_numpy.cnhw_to_nchw``: (C, N, H, W) (+ bias[c]) -> (N, C, H, W)."""
    C, N, H, W = y.shape
    out = np.empty((N, C, H, W), dtype=y.dtype)
    b = bias if bias is not None else np.zeros(1, dtype=y.dtype)
    _cnhw_to_nchw(
        np.ascontiguousarray(y).reshape(C, N, H * W), b, bias is not None, out.reshape(N, C, H * W)
    )
    return out


@njit(parallel=True, fastmath={"reassoc"}, **_jit)
def _nchw_to_cnhw(x, out, sums):  # pragma: no cover - compiled
    # one task per channel: copy its N planes and add them up on the way (in float64,
    # in SIMD lanes: see the BatchNorm sums below); sums is None when not wanted
    N, C, L = x.shape
    for c in prange(C):
        s = 0.0
        for n in range(N):
            for k in range(L):
                v = x[n, c, k]
                out[c, n, k] = v
                s += v
        if sums is not None:
            sums[c] = s


def nchw_to_cnhw(x: np.ndarray, sums: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """See ``kernels_numpy.nchw_to_cnhw``: the copy and the channel sums in one pass
    (the sums equal the reference's to rounding)."""
    N, C, H, W = x.shape
    out = np.empty((C, N, H, W), dtype=x.dtype)
    s = np.empty(C, dtype=x.dtype) if sums else None
    _nchw_to_cnhw(np.ascontiguousarray(x).reshape(N, C, H * W), out.reshape(C, N, H * W), s)
    return out, s


# ------------------------------------------------------------------ batch normalisation
# Sums are accumulated in float64 whatever the data type, so float32 statistics keep
# (close to) the accuracy of NumPy's pairwise summation. ``reassoc`` lets the compiler
# split each sum into SIMD lanes added at the end (one running sum waits 4 cycles for
# every addition): the result is equal to rounding, and 3-4x faster.
_sums = dict(parallel=True, fastmath={"reassoc"}, **_jit)


@njit(**_sums)
def _bn_stats(x, mean, var):  # pragma: no cover - compiled
    N, C, L = x.shape
    m = N * L
    for c in prange(C):
        s = 0.0
        for n in range(N):
            for k in range(L):
                s += x[n, c, k]
        mu = s / m
        q = 0.0
        for n in range(N):
            for k in range(L):
                d = x[n, c, k] - mu
                q += d * d
        mean[c] = mu
        var[c] = q / m


def batchnorm_stats(x3: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """See ``kernels_numpy.batchnorm_stats``."""
    C = x3.shape[1]
    mean, var = np.empty(C, dtype=x3.dtype), np.empty(C, dtype=x3.dtype)
    _bn_stats(np.ascontiguousarray(x3), mean, var)
    return mean, var


@njit(parallel=True, **_jit)
def _bn_normalize(x, mean, inv_std, gamma, beta, y, xhat):  # pragma: no cover
    # gamma and beta are None without affine parameters, xhat is None when it is not
    # kept: Numba compiles a version of the loop for each case, with no test inside
    N, C, L = x.shape
    for n in prange(N):  # memory order: fine for L = 1 (BatchNorm1d) and for images
        for c in range(C):
            mu, s = mean[c], inv_std[c]
            for k in range(L):
                h = (x[n, c, k] - mu) * s  # xhat, rounded to x's precision
                if xhat is not None:
                    xhat[n, c, k] = h
                y[n, c, k] = h if gamma is None else h * gamma[c] + beta[c]


def batchnorm_normalize(
    x3: np.ndarray,
    mean: np.ndarray,
    inv_std: np.ndarray,
    gamma: np.ndarray | None,
    beta: np.ndarray | None,
    keep_xhat: bool = True,
) -> tuple[np.ndarray, np.ndarray | None]:
    """See ``kernels_numpy.batchnorm_normalize`` (without gamma, y is xhat itself)."""
    # a separate xhat only when it is kept and differs from y. Allocated before y: in
    # the other order glibc's heap reuses freed blocks worse, and a training step's
    # peak resident memory was 60 MiB higher (AlexNetCIFAR, batch 128)
    xhat = np.empty_like(x3) if keep_xhat and gamma is not None else None
    y = np.empty_like(x3)
    _bn_normalize(np.ascontiguousarray(x3), mean, inv_std, gamma, beta, y, xhat)
    if keep_xhat and gamma is None:
        return y, y  # without gamma and beta, y is xhat
    return y, xhat  # (None when not kept)


@njit(**_sums)
def _bn_sums(dy, xhat, sum_dy, sum_dy_xhat):  # pragma: no cover - compiled
    N, C, L = dy.shape
    for c in prange(C):
        s = 0.0
        q = 0.0
        for n in range(N):
            for k in range(L):
                s += dy[n, c, k]
                q += dy[n, c, k] * xhat[n, c, k]
        sum_dy[c] = s
        sum_dy_xhat[c] = q


@njit(parallel=True, **_jit)
def _bn_dx(dy, xhat, scale, sum_dy, sum_dy_xhat, batch_stats, dx):  # pragma: no cover
    N, C, L = dy.shape
    m = N * L
    for n in prange(N):
        for c in range(C):
            s = scale[c]
            if batch_stats:
                a = sum_dy[c] / m
                b = sum_dy_xhat[c] / m
                for k in range(L):
                    dx[n, c, k] = s * (dy[n, c, k] - a - xhat[n, c, k] * b)
            else:
                for k in range(L):
                    dx[n, c, k] = dy[n, c, k] * s


def batchnorm_backward(
    dy3: np.ndarray, xhat3: np.ndarray, scale: np.ndarray, batch_stats: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """See ``kernels_numpy.batchnorm_backward``."""
    C = dy3.shape[1]
    dy3 = np.ascontiguousarray(dy3)
    sum_dy, sum_dy_xhat = np.empty(C, dtype=dy3.dtype), np.empty(C, dtype=dy3.dtype)
    _bn_sums(dy3, xhat3, sum_dy, sum_dy_xhat)
    dx = np.empty_like(dy3)
    _bn_dx(dy3, xhat3, scale, sum_dy, sum_dy_xhat, batch_stats, dx)
    return dx, sum_dy, sum_dy_xhat


# ------------------------------------------------------------------ elementwise steps
@njit(parallel=True, **_jit)
def _relu_forward(x, y, positive, with_mask):  # pragma: no cover - compiled
    for k in prange(x.size):
        v = x[k]
        pos = v > 0
        y[k] = v if pos or v != v else 0  # max(v, 0), and a NaN stays NaN as in np.maximum
        if with_mask:
            positive[k] = pos


def relu_forward(x: np.ndarray, mask: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """See ``kernels_numpy.relu_forward``: y and the mask [x > 0] in one pass."""
    x = np.ascontiguousarray(x)
    y = np.empty(x.shape, dtype=x.dtype)
    positive = np.empty(x.shape if mask else 1, dtype=np.bool_)
    _relu_forward(x.ravel(), y.ravel(), positive.ravel(), mask)  # flat views of the same memory
    return y, (positive if mask else None)


@njit(parallel=True, **_jit)
def _relu_backward(dy, positive, dx):  # pragma: no cover - compiled
    for k in prange(dy.size):
        # dy * [x > 0] in one pass; dy * 0 (not a plain 0) keeps NumPy's NaN and -0.0
        dx[k] = dy[k] if positive[k] else dy[k] * 0


def relu_backward(grad_out: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """See ``kernels_numpy.relu_backward``: dy * [x > 0], any shape."""
    dx = np.empty(grad_out.shape, dtype=grad_out.dtype)
    dy, positive = np.ascontiguousarray(grad_out), np.ascontiguousarray(positive)
    _relu_backward(dy.ravel(), positive.ravel(), dx.ravel())  # flat views of the same memory
    return dx


@njit(parallel=True, **_jit)
def _sgd(p, g, buf, has_buf, first, lr, momentum, keep, nesterov, wd):  # pragma: no cover
    # the reference's formulas, one element at a time, each step rounded like NumPy's
    for k in prange(p.size):
        d = g[k] + wd * p[k] if wd != 0 else g[k]
        if has_buf:
            b = d if first else buf[k] * momentum + keep * d
            buf[k] = b
            d = d + momentum * b if nesterov else b
        p[k] = p[k] - lr * d


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
    """See ``kernels_numpy.sgd_update``: one pass over p, grad and buf instead of five."""
    arrays = (p, grad) if buf is None else (p, grad, buf)
    if not all(a.flags.c_contiguous for a in arrays):  # pragma: no cover - parameters are
        _reference.sgd_update(p, grad, buf, first, lr, momentum, dampening, nesterov, weight_decay)
        return
    t = p.dtype.type  # the numbers in p's precision, as NumPy rounds them
    b = buf.ravel() if buf is not None else p.ravel()[:0]
    _sgd(
        p.ravel(),
        grad.ravel(),
        b,
        buf is not None,
        bool(first),
        t(lr),
        t(momentum),
        t(1 - dampening),
        bool(nesterov),
        t(weight_decay),
    )
