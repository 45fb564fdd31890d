"""The Numba backend's matrix products, C = A B in float32, from a chosen BLAS.

Every product of ``conv.py`` and ``patches.py`` calls :func:`matmul`, which hands it
to one *provider*: ``"openblas"``, NumPy's ``matmul`` (always there); ``"mkl"``, Intel
MKL's ``cblas_sgemm`` (``pip install mkl``); ``"onednn"``, oneDNN's ``dnnl_sgemm``
(``pip install onednn-cpu-gomp``). Which one: :func:`set_provider`, else the variable
``MINITORCH_ALEXNET_SGEMM`` (read at the first product, or again after
``set_provider(None)``), else the first of ``AUTO`` installed. :func:`provider` names
the one in use, :func:`describe` says more. The ``numpy`` backend and the layers'
reference code never come here; products that are not 2-D float32 run NumPy's.

The providers add in another order, so their results differ from NumPy's in the last
bits (float32 rounding; with ``"openblas"`` they are NumPy's exactly), so the overrides
that call :func:`matmul` promise the reference's numbers to rounding (``PRODUCTS`` in
``__init__.py``).

Threads: MKL and oneDNN run single-threaded, and :func:`matmul` cuts C into one block of
rows (or columns) per thread of ``threads.py`` (Numba's thread count), as the kernels
are. Their own OpenMP threads would spin after each product on the cores the kernels
need next (as OpenBLAS's would, ``blas.py``), and OpenMP's setting against that
(``OMP_WAIT_POLICY``) is read once per process, shared with PyTorch's.
"""

from __future__ import annotations

import ctypes
import os
import site
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numba import get_num_threads

from .threads import parallel_for

PROVIDERS = ("openblas", "mkl", "onednn")
AUTO = ("onednn", "openblas")  # the faster first; measured: the end of docs/performance.md
ENV = "MINITORCH_ALEXNET_SGEMM"
INSTALL = {"mkl": "pip install mkl", "onednn": "pip install 'minitorch-alexnet[onednn]'"}
SONAMES = {"mkl": ("libmkl_rt.so.2", "libmkl_rt.so.3"), "onednn": ("libdnnl.so.3",)}
F32 = np.dtype(np.float32)
GRAIN = 32  # the fewest rows (or columns) of C worth a thread


class ProviderError(RuntimeError):
    """The provider asked for is not installed here (or does not load)."""


# sgemm(trans_a, trans_b, M, N, K, A, lda, B, ldb, C, ldc), row-major: C = op(A) op(B)
Sgemm = Callable[[bool, bool, int, int, int, int, int, int, int, int, int], None]


@dataclass
class _Library:
    """A loaded provider: its product, and what makes it run in the calling thread only."""

    sgemm: Sgemm
    one_thread: Callable[[], int]  # returns what to give ``restore`` after the product
    restore: Callable[[int], object]
    version: str


def _find(name: str) -> ctypes.CDLL:
    """Load the shared library of provider ``name``: from this environment's ``lib``
    folder (where pip puts it), else wherever the dynamic loader finds it."""
    prefixes = [sys.prefix, site.getuserbase(), sys.base_prefix]
    for soname in SONAMES[name]:
        for path in dict.fromkeys([*(os.path.join(p, "lib", soname) for p in prefixes), soname]):
            if os.sep in path and not os.path.exists(path):
                continue
            try:
                return ctypes.CDLL(path)
            except OSError:
                continue
    raise ProviderError(
        f"SGEMM provider {name!r} is not installed here (no {' or '.join(SONAMES[name])} "
        f"in {sys.prefix}/lib or the loader's path). Install it with `{INSTALL[name]}`, "
        f"or choose another: set_provider('openblas') or {ENV}=openblas."
    )


def _load_mkl() -> _Library:
    lib = _find("mkl")
    lib.MKL_Set_Threading_Layer(1)  # MKL_THREADING_SEQUENTIAL: no threads of its own
    i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
    fn = lib.cblas_sgemm_64  # the 64-bit integer interface, whatever MKL_INTERFACE_LAYER is
    fn.argtypes = [ctypes.c_int] * 3 + [i64] * 3 + [f32, ptr, i64, ptr, i64, f32, ptr, i64]
    fn.restype = None

    def sgemm(ta, tb, M, N, K, a, lda, b, ldb, c, ldc):  # 101: row-major; 111/112: N/T
        fn(101, 112 if ta else 111, 112 if tb else 111, M, N, K, 1.0, a, lda, b, ldb, 0.0, c, ldc)

    buf = ctypes.create_string_buffer(256)
    lib.MKL_Get_Version_String(buf, len(buf))
    version = buf.value.decode(errors="replace").split(" for ")[0]
    # and one thread in the calling thread only, where MKL was loaded threaded before
    local = lib.MKL_Set_Num_Threads_Local  # returns the thread's setting before
    return _Library(sgemm, lambda: local(1), local, version)


def _load_onednn() -> _Library:
    lib = _find("onednn")
    i64, f32, ptr, ch = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p, ctypes.c_char
    fn = lib.dnnl_sgemm  # row-major, like cblas_sgemm with CblasRowMajor
    fn.argtypes = [ch, ch, i64, i64, i64, f32, ptr, i64, ptr, i64, f32, ptr, i64]
    fn.restype = ctypes.c_int

    def sgemm(ta, tb, M, N, K, a, lda, b, ldb, c, ldc):
        trans = (b"T" if ta else b"N", b"T" if tb else b"N")
        status = fn(*trans, M, N, K, 1.0, a, lda, b, ldb, 0.0, c, ldc)
        if status != 0:  # dnnl_success
            raise RuntimeError(f"dnnl_sgemm failed with status {status}")

    # oneDNN runs on the calling thread's OpenMP team: one thread (no team) for the
    # product, then the thread's count as it was: PyTorch may share this OpenMP library
    omp_get, omp_set = lib.omp_get_max_threads, lib.omp_set_num_threads  # via libgomp
    one_thread = lambda: (omp_get(), omp_set(1))[0]

    lib.dnnl_version.restype = ctypes.POINTER(ctypes.c_int * 3)  # major, minor, patch first
    version = "oneDNN " + ".".join(map(str, lib.dnnl_version().contents))
    return _Library(sgemm, one_thread, omp_set, version)


_LOADERS = {"mkl": _load_mkl, "onednn": _load_onednn}
_libraries: dict[str, _Library] = {}
_active: str | None = None  # None: not chosen yet (the environment, else AUTO, decides)


def _library(name: str) -> _Library | None:
    """The loaded provider ``name`` (None for ``"openblas"``, which is NumPy's matmul);
    raises ValueError for an unknown name and ProviderError for a missing one."""
    if name not in PROVIDERS:
        raise ValueError(
            f"unknown SGEMM provider {name!r}; choose one of {', '.join(map(repr, PROVIDERS))} "
            f"(with set_provider(name) or {ENV}=name)."
        )
    if name == "openblas":
        return None
    if name not in _libraries:
        try:
            _libraries[name] = _LOADERS[name]()
        except AttributeError as e:  # an old build: a function missing
            raise ProviderError(f"{name}: {e}; install a newer one: `{INSTALL[name]}`") from None
    return _libraries[name]


def _loads(name: str) -> bool:
    try:
        _library(name)
    except ProviderError:
        return False
    return True


def available() -> tuple[str, ...]:
    """The providers installed here (each is loaded to see), in the order of ``PROVIDERS``."""
    return tuple(p for p in PROVIDERS if _loads(p))


def set_provider(name: str | None) -> str:
    """Use provider ``name`` for every later product, and return it; ``None`` goes back
    to the environment variable (read again) or the automatic choice."""
    global _active
    if name is None:
        _active = None
        return provider()
    _library(name)  # raises here, not at the next product, if it cannot run
    _active = name
    return name


def provider() -> str:
    """The name of the provider that runs the products now."""
    global _active
    if _active is None:
        wanted = os.environ.get(ENV, "").strip().lower()
        if wanted:
            _library(wanted)  # raises: unknown or missing
        _active = wanted or next((p for p in AUTO if _loads(p)), "openblas")
    return _active


def describe() -> str:
    """The provider in use, its version and thread count, for reports."""
    name, lib = provider(), _library(provider())
    if lib is None:
        return "openblas (NumPy's matmul)"
    return f"{name} ({lib.version}, on {get_num_threads()} threads of threads.py)"


def _rows(x: np.ndarray) -> tuple[bool, int] | None:
    """How BLAS reads the 2-D float32 array ``x`` (r, c) in place: (transposed, leading
    dimension), row-major ``(False, row stride)`` or a transposed view of a row-major
    array ``(True, column stride)``; None when it must be copied first."""
    (r, c), (s0, s1), n = x.shape, x.strides, x.itemsize
    if (c == 1 or s1 == n) and (r == 1 or (s0 % n == 0 and s0 >= n * c)):
        return False, (s0 // n if r > 1 else c)
    if (r == 1 or s0 == n) and (c == 1 or (s1 % n == 0 and s1 >= n * r)):
        return True, (s1 // n if c > 1 else r)
    return None


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """C = A B: a (M, K) @ b (K, N) -> (M, N), as ``np.matmul(a, b, out=out)``.

    ``a`` and ``b`` may be C-contiguous or transposed views of C-contiguous arrays
    (``x.T``), or row slices of either; other layouts are copied first. ``out``, if
    given, (M, N) float32, receives C and is returned. Arrays that are not 2-D float32
    (float64, batches) and empty products run NumPy's matmul.
    """
    lib = _library(provider())
    if lib is None or a.ndim != 2 or b.ndim != 2 or a.dtype != F32 or b.dtype != F32:
        return np.matmul(a, b, out=out)
    (M, K), N = a.shape, b.shape[1]
    if b.shape[0] != K or 0 in (M, N, K):  # NumPy's error, or its zeros
        return np.matmul(a, b, out=out)
    if out is not None and (out.shape != (M, N) or out.dtype != F32 or not out.flags.writeable):
        return np.matmul(a, b, out=out)  # NumPy's casting rules, or its error
    la, lb = _rows(a), _rows(b)
    if la is None:
        a, la = np.ascontiguousarray(a), (False, K)
    if lb is None:
        b, lb = np.ascontiguousarray(b), (False, N)
    c, lc = out, None if out is None else _rows(out)
    if lc is None or lc[0] or np.may_share_memory(out, a) or np.may_share_memory(out, b):
        c, lc = np.empty((M, N), F32), (False, N)  # BLAS writes only rows in place
    (ta, lda), (tb, ldb), ldc = la, lb, lc[1]
    # threads take blocks of C's rows (C_i = A_i B) or, when C is wider, of its columns
    # (C_j = A B_j); the byte steps from one row or column to the next, in A, B and C
    rows, size = M >= N, F32.itemsize
    step_a, step_b, step_c = (
        ((1 if ta else lda) * size, 0, ldc * size) if rows else (0, (ldb if tb else 1) * size, size)
    )
    pa, pb, pc = a.ctypes.data, b.ctypes.data, c.ctypes.data

    def block(lo: int, hi: int) -> None:  # C[lo:hi] = A[lo:hi] B, or C[:, lo:hi] = A B[:, lo:hi]
        mb, nb = (hi - lo, N) if rows else (M, hi - lo)
        pa_, pb_, pc_ = pa + lo * step_a, pb + lo * step_b, pc + lo * step_c
        before = lib.one_thread()
        try:
            lib.sgemm(ta, tb, mb, nb, K, pa_, lda, pb_, ldb, pc_, ldc)
        finally:
            lib.restore(before)

    parallel_for(block, M if rows else N, grain=GRAIN)
    if out is None or c is out:
        return c
    out[...] = c
    return out
