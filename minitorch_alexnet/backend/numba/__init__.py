"""The Numba backend: the layers' math as compiled, parallel loops on NumPy arrays.

Each module here overrides some of the layers' reference functions (``nn/``,
``optim/sgd.py``) with the same signature and the same numbers: exactly, or to the
rounding stated below. ``OVERRIDES`` is the whole list; ``backend/__init__.py``
registers it when the backend is first made, and ``backend.which(name)`` shows it.
Functions it does not name (Linear's products, Dropout, LocalResponseNorm, the loss)
run their reference, which is NumPy already.

* Compiled code is cached on disk (``cache=True``), so only the first run of a
  new installation pays the compile time.
* Each kernel is a plain compiled loop over a slice of its outer loop; ``threads.py``
  runs one slice per thread (Numba's thread count), which compiles about 5x faster
  than ``parallel=True``. BLAS runs the matrix products on its own threads, never at
  the same time. OpenBLAS's workers, though, spin for about
  0.1 s after each product, on the cores these loops then need; setting
  ``OPENBLAS_THREAD_TIMEOUT=4`` before NumPy is imported stops that.
* Debugging: set ``NUMBA_DISABLE_JIT=1`` and these functions run as plain Python,
  so a debugger can step through them.
* float16: Numba compiles no float16 arithmetic, so every override here is marked
  ``@via_float32()`` (``backend/half.py``): float16 calls run in float32.
"""

from __future__ import annotations

from ..dispatch import EXACT, Promise

# float64 accumulators, SIMD lanes (fastmath "reassoc"): another order of additions
SUMS = Promise(
    {"float32": (1e-5, 1e-6), "float64": (1e-12, 1e-13)},
    "per-channel sums in float64, split into SIMD lanes: another order of additions",
)
# products in another layout, or by another BLAS (gemm.py): the sums may add in another order
PRODUCTS = Promise(
    {"float32": (1e-5, 1e-5), "float64": (1e-12, 1e-12)},
    "matrix products by the chosen BLAS (gemm.py), some with the columns channels last: "
    "the dot products may add in another order",
)

# name -> (module of this package that defines a function of that name, promise)
OVERRIDES: dict[str, tuple[str, Promise]] = {
    "im2col": ("conv", EXACT),
    "col2im": ("conv", EXACT),
    "conv2d_forward": ("conv", PRODUCTS),  # the product's provider rounds its own way
    "conv2d_backward": ("conv", PRODUCTS),
    "maxpool2d_forward": ("pooling", EXACT),
    "maxpool2d_backward": ("pooling", EXACT),
    "batchnorm_forward": ("batchnorm", SUMS),
    "batchnorm_backward": ("batchnorm", SUMS),
    "relu_forward": ("elementwise", EXACT),
    "relu_backward": ("elementwise", EXACT),
    "sgd_step": ("sgd", EXACT),
}

JIT = dict(cache=True, nogil=True)  # every kernel: cached on disk, releases the GIL
