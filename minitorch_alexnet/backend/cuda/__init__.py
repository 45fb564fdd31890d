"""The CuPy backend: the layers' math as CUDA kernels and cuBLAS products on the GPU.

Each module here overrides some of the layers' reference functions (``nn/``,
``optim/sgd.py``) with the same signature and the same numbers to the rounding stated
below; ``OVERRIDES`` is the whole list, registered when the backend is first made
(nothing here imports CuPy until then). Most kernels give one GPU thread per
*output* element, which computes where its value comes from. The backward kernels
(col2im, max-pool backward) are *gathers*: each input pixel sums the entries that
refer to it, in the reference's order, so they need no atomic adds and give the
same result on every run. Per-channel sums (BatchNorm) run as a two-step reduction
in double precision, also in a fixed order. The kernels are written for float and
double: every override is marked ``@via_float32()`` (``backend/half.py``), so float16
calls run in float32.

Beside the kernels: ``cublas.py`` (products that a CUDA graph can record),
``random.py`` (dropout's generator, its state on the device), ``graph.py`` (a
training step recorded once and replayed), and ``../winograd/`` (the 5x5 and 3x3
convolutions).
"""

from __future__ import annotations

from ..dispatch import Promise

# cuBLAS and the reductions add in another order than NumPy: equal to rounding
GPU = Promise(
    {"float32": (1e-5, 1e-5), "float64": (1e-12, 1e-12)},
    "cuBLAS products and double-precision reductions: another order of additions",
)
# Winograd's transforms (the 5x5 and 3x3 stride-1 layers): tests/test_winograd.py
# bounds the error per tile; against the reference over small random cases it stays
# within this (float64 rounds 2^29 times finer)
WINOGRAD = Promise(
    {"float32": (1e-4, 1e-4), "float64": (1e-11, 1e-11)},
    "5x5 and 3x3 stride-1 layers by Winograd: the same sums through transforms",
)

# name -> (module of this package that defines a function of that name, promise)
OVERRIDES: dict[str, tuple[str, Promise]] = {
    "im2col": ("im2col", GPU),
    "col2im": ("im2col", GPU),
    "conv2d_forward": ("conv", WINOGRAD),
    "conv2d_backward": ("conv", WINOGRAD),
    "maxpool2d_forward": ("pooling", GPU),
    "maxpool2d_backward": ("pooling", GPU),
    "batchnorm_forward": ("batchnorm", GPU),
    "batchnorm_backward": ("batchnorm", GPU),
    "relu_forward": ("elementwise", GPU),
    "relu_backward": ("elementwise", GPU),
    "linear_forward": ("linear", GPU),
    "linear_backward": ("linear", GPU),
    "sgd_step": ("sgd", GPU),
}
