"""A convolution's weight and input gradients with the columns channels last.

im2col's rows (c, i, j) put a window pixel's channels KH*KW rows apart, so copying or
adding them back runs along rows only Wo long (15 and 7 in AlexNetCIFAR), too short
to vectorise. These kernels use X_col's transpose instead, one row per output
position with each window pixel's channels side by side, (i, j, c): the inner loops
then run along 64-384 channels. The products are the reference's, with their
columns reordered.
"""

from __future__ import annotations

import numpy as np
from numba import get_num_threads, njit

from ..geometry import out_size
from . import JIT, gemm
from .memory import columns
from .threads import parallel_for


def _tasks(N: int) -> int:
    """Tasks for a loop over N images: a few per thread, for balance."""
    return max(1, min(N, 4 * get_num_threads()))


@njit(**JIT)
def _image_to_patches(
    lo, hi, x, kh, kw, sh, sw, ph, pw, c0, Ho, Wo, image, rows
):  # pragma: no cover
    # rows (N*Ho*Wo, KH*KW*Cg): row (n, ho, wo) gets the window of output position
    # (ho, wo) in image n, channels c0..c0+Cg-1, channels last: pixel (i, j), channel c
    # at column (i*KW + j)*Cg + c. The rows of X_col^T, with columns reordered.
    # image (T, Hp, Wp, Cg): one scratch image per task (allocated by the caller, so
    # that no worker thread allocates: glibc would keep an arena's memory per thread)
    N, _, H, W = x.shape
    T, Cg = image.shape[0], image.shape[3]
    for t in range(lo, hi):
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


def patches_weight_grad(
    dy: np.ndarray,
    x: np.ndarray,
    kh: int,
    kw: int,
    sh: int,
    sw: int,
    ph: int,
    pw: int,
) -> np.ndarray:
    """dW_g = dY_g X_g^T with X_col = im2col(x) redone: dy (G, O/G, N*Ho*Wo), x (N, C, H, W)
    -> dW (O, C/G*KH*KW).

    The columns are made as rows (X_col^T, one per output position) with each window
    pixel's channels side by side, copied in runs of C/G: 2-3x faster than ``im2col``,
    whose rows are gathered one pixel at a time. Then dW_g = dY_g X_g^T comes out with its columns
    ordered (i, j, c), and a small copy puts them back in (c, i, j) order. Even with
    3 channels (a first layer) this is as fast as im2col and the reference's product.
    """
    N, C, H, W = x.shape
    G, Og = dy.shape[0], dy.shape[1]
    Cg = C // G
    Ho, Wo = out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
    x = np.ascontiguousarray(x)
    image = np.empty((_tasks(N), H + 2 * ph, W + 2 * pw, Cg), dtype=x.dtype)
    dw = np.empty((G * Og, Cg, kh * kw), dtype=np.result_type(dy, x))
    for g in range(G):
        # X_g^T, channels last: (N*Ho*Wo, KH*KW*Cg), the columns' size and memory
        rows = columns.take((N * Ho * Wo, kh * kw * Cg), x.dtype)
        geometry = (kh, kw, sh, sw, ph, pw, g * Cg, Ho, Wo)
        parallel_for(_image_to_patches, image.shape[0], x, *geometry, image, rows)
        dw_last = gemm.matmul(dy[g], rows)  # (O/G, KH*KW*Cg): columns (i, j, c)
        del rows
        dw[g * Og : (g + 1) * Og] = dw_last.reshape(Og, kh * kw, Cg).transpose(0, 2, 1)
    return dw.reshape(G * Og, Cg * kh * kw)


@njit(**JIT)
def _patches_to_image(
    lo, hi, rows, Ho, Wo, kh, kw, sh, sw, ph, pw, c0, sums, dx
):  # pragma: no cover
    # rows (N*Ho*Wo, KH*KW*Cg): row (n, ho, wo) is the gradient of that output position's
    # window, channels last: pixel (i, j), channel c at column (i*KW + j)*Cg + c.
    # Adds each row back onto its window of dx[n, c0:c0+Cg] (NCHW).
    # sums (T, H, W, Cg): one scratch image per task, allocated by the caller
    N, _, H, W = dx.shape
    T, Cg = sums.shape[0], sums.shape[3]
    for t in range(lo, hi):  # each image in one task: no two threads add to the same pixel
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


def patches_input_grad(
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
    """dx = col2im(W_g^T dY_g for each group g): dy (G, O/G, N*Ho*Wo), w (G, O/G, C/G*KH*KW)
    -> dx (N, C, H, W).

    The same sums as the reference, from the transposed product: dX_col^T = dY_g^T W_g, one row per
    output position (its window's gradient), with W_g's columns reordered to (i, j, c)
    so that a window pixel's channels sit side by side. Adding those rows back onto
    the image then runs along the channels, in vector adds, where col2im's rows of
    dX_col give runs only Wo long (15 and 7 in AlexNetCIFAR): 2x faster than col2im
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
        rows = columns.take((N * Ho * Wo, kh * kw * Cg), dtype)
        gemm.matmul(dy[g].T, w_last.reshape(Og, -1), out=rows)
        if dx is None:  # allocated after the product: a training step's peak memory is
            dx = np.empty((N, C, H, W), dtype=dtype)  # ~15 MiB lower this way (glibc)
        geometry = (Ho, Wo, kh, kw, sh, sw, ph, pw, g * Cg)
        parallel_for(_patches_to_image, sums.shape[0], rows, *geometry, sums, dx)
        del rows  # its buffer is free again for the next group
    return dx
