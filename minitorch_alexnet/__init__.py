"""minitorch_alexnet: a from-scratch deep-learning framework, written to be read.

Every layer has a hand-written forward and backward pass (no autograd); the same
layer code runs on NumPy, Numba or CuPy through a swappable backend::

    import minitorch_alexnet as mt
    mt.set_backend("numba")          # or "numpy", "cupy"
    conv = mt.nn.Conv2d(3, 8, 3, padding=1)
    y = conv(mt.asarray(x))
    dx = conv.backward(dy)
"""

import os as _os
import sys as _sys

# OpenBLAS keeps a worker thread spinning for ~0.1 s after every matrix product, on a
# core that the Numba kernels run next need (measured on 2 cores: a training step
# 2.0 -> 1.6 s without the spin). It reads this setting when NumPy loads it; if NumPy
# came first, the numba backend has OpenBLAS read it again (backend/numba/blas.py).
# An explicit setting is kept.
if "numpy" not in _sys.modules:
    _os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

from . import data, models, nn, optim  # noqa: E402
from .backend import (
    Backend,
    BackendError,
    asarray,
    available_backends,
    get_backend,
    manual_seed,
    set_backend,
    to_numpy,
    use_backend,
)
from .gradcheck import GradcheckResult, gradcheck
from .summary import summary

__version__ = "0.1.0"

__all__ = [
    "Backend",
    "BackendError",
    "asarray",
    "available_backends",
    "get_backend",
    "manual_seed",
    "set_backend",
    "to_numpy",
    "use_backend",
    "GradcheckResult",
    "gradcheck",
    "data",
    "models",
    "nn",
    "optim",
    "summary",
    "__version__",
]
