"""Window arithmetic the backend packages share (``nn/im2col.py`` has the layers' own)."""

from __future__ import annotations


def out_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length of a convolution or pooling window: floor((H + 2P - K) / S) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def conv_geometry(
    x_shape: tuple[int, ...],
    kernel_size: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
) -> tuple[int, int, int, int, int, int, int, int]:
    """(kh, kw, sh, sw, ph, pw, Ho, Wo) of a window over images of ``x_shape`` (N, C, H, W)."""
    (kh, kw), (sh, sw), (ph, pw) = kernel_size, stride, padding
    H, W = x_shape[2], x_shape[3]
    return kh, kw, sh, sw, ph, pw, out_size(H, kh, sh, ph), out_size(W, kw, sw, pw)
