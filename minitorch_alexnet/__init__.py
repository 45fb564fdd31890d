"""minitorch_alexnet: a from-scratch deep-learning framework, written to be read.

Every layer has a hand-written forward and backward pass (no autograd); the same
layer code runs on NumPy, Numba or CuPy through a swappable backend::

    import minitorch_alexnet as mt
    mt.set_backend("numba")          # or "numpy", "cupy"
    conv = mt.nn.Conv2d(3, 8, 3, padding=1)
    y = conv(mt.asarray(x))
    dx = conv.backward(dy)
"""

from . import data, models, nn, optim
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
