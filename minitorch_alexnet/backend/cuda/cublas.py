"""Matrix products on the GPU through cuBLAS, called directly (Conv2d and Linear on the GPU).

Why not CuPy's ``a @ b``: CuPy refuses to call cuBLAS while a stream is being
recorded into a CUDA graph (it raises ``NotImplementedError``), although cuBLAS
itself supports it. So the GPU backend owns a cuBLAS handle and calls ``sgemm`` /
``dgemm`` through ``ctypes``, on the current stream, with a workspace of its own
(what cuBLAS asks for under graph capture). The numbers are cuBLAS's, as with ``@``.

Row-major arrays in a column-major library: a C-contiguous (m, k) matrix is, read
column-major, its transpose (k, m). So C = A @ B is computed as C^T = B^T A^T, which
column-major cuBLAS sees as a product of exactly the buffers we hold; a transposed
view (F-contiguous) just flips that operand's "transpose" flag: no copy either way.
"""

from __future__ import annotations

import ctypes
import os
from typing import Any

import cupy as cp

_OP_N, _OP_T = 0, 1  # cublasOperation_t
_TF32_TENSOR_OP_MATH = 3  # cublasMath_t: what CUPY_TF32=1 asks of CuPy's own products
_WORKSPACE_BYTES = 32 * 2**20


def _find_library() -> ctypes.CDLL:
    """The libcublas CuPy has loaded (the same copy, so one cuBLAS runs in the process)."""
    import cupy_backends.cuda.libs.cublas  # noqa: F401  loads libcublas

    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "/libcublas.so" in line}
    for path in sorted(paths):
        return ctypes.CDLL(path)
    for name in ("libcublas.so.13", "libcublas.so.12", "libcublas.so"):
        try:
            return ctypes.CDLL(name)
        except OSError:
            continue
    raise RuntimeError(
        "the cupy backend could not find the cuBLAS library CuPy uses (libcublas.so)"
    )


class _Cublas:
    def __init__(self) -> None:
        lib = _find_library()
        self.lib = lib
        self.handle = ctypes.c_void_p()
        self._check(lib.cublasCreate_v2(ctypes.byref(self.handle)), "cublasCreate")
        self.workspace = cp.empty(_WORKSPACE_BYTES, dtype=cp.uint8)  # kept alive with us
        self._check(
            lib.cublasSetWorkspace_v2(
                self.handle,
                ctypes.c_void_p(self.workspace.data.ptr),
                ctypes.c_size_t(_WORKSPACE_BYTES),
            ),
            "cublasSetWorkspace",
        )
        if os.environ.get("CUPY_TF32", "0") == "1":
            self._check(
                lib.cublasSetMathMode(self.handle, _TF32_TENSOR_OP_MATH), "cublasSetMathMode"
            )
        self.gemm = {
            cp.dtype("float32"): (
                lib.cublasSgemm_v2,
                lib.cublasSgemmStridedBatched,
                ctypes.c_float,
            ),
            cp.dtype("float64"): (
                lib.cublasDgemm_v2,
                lib.cublasDgemmStridedBatched,
                ctypes.c_double,
            ),
        }

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise RuntimeError(f"{what} failed with cuBLAS status {status}")


_lib: _Cublas | None = None


def _layout(a: Any) -> tuple[int, int] | None:
    """(transpose flag, leading dimension) of 2-D ``a`` read column-major as ``a^T``
    (row-major buffer) or ``a`` (column-major buffer); None if neither."""
    rows, cols = a.shape
    item = a.itemsize
    s0, s1 = a.strides
    if (s1 == item or cols == 1) and s0 % item == 0 and s0 // item >= max(cols, 1):
        return _OP_N, s0 // item
    if (s0 == item or rows == 1) and s1 % item == 0 and s1 // item >= max(rows, 1):
        return _OP_T, s1 // item
    return None


def _batched_layout(a: Any) -> tuple[int, int, int] | None:
    """(transpose flag, leading dimension, batch stride) of 3-D ``a`` whose matrices
    each have a layout :func:`_layout` reads; None otherwise."""
    lay = _layout(a[0]) if a.shape[0] else None
    if lay is None or a.strides[0] % a.itemsize:
        return None
    return (*lay, a.strides[0] // a.itemsize)


def matmul(a: Any, b: Any, out: Any = None, accumulate: bool = False) -> Any:
    """``a @ b`` by cuBLAS, for float32/float64 CuPy arrays of one dtype.

    2-D: (m, k) x (k, n) -> (m, n), operands C- or F-ordered (transposed views).
    3-D: (batch, m, k) x (batch, k, n) -> (batch, m, n), one strided-batched product;
    each operand's matrices C- or F-ordered (``v.transpose(0, 2, 1)`` of a C-ordered v
    is read in place).
    ``out``: a C-contiguous array of the result's shape and dtype to write into;
    ``accumulate=True`` adds the product to it (out += a @ b) instead.
    Anything else (without ``out``) goes to CuPy's own ``@``.
    """
    global _lib
    if (
        a.ndim != b.ndim
        or a.ndim not in (2, 3)
        or a.shape[-1] != b.shape[-2]
        or a.shape[:-2] != b.shape[:-2]
        or a.dtype != b.dtype
        or a.dtype not in (cp.dtype("float32"), cp.dtype("float64"))
    ):
        if out is not None:
            raise ValueError("matmul with out=: float32/float64 2-D or 3-D operands of one dtype")
        return a @ b
    batch = a.shape[0] if a.ndim == 3 else 1
    m, k = a.shape[-2:]
    n = b.shape[-1]
    shape = (*a.shape[:-2], m, n)
    if out is None:
        if accumulate:
            raise ValueError("matmul: accumulate=True needs out=")
        out = cp.empty(shape, dtype=a.dtype)
    elif out.shape != shape or out.dtype != a.dtype or not out.flags.c_contiguous:
        raise ValueError(f"matmul: out must be C-contiguous {shape} {a.dtype}")
    if out.size == 0:
        return out
    if k == 0:
        if not accumulate:
            out.fill(0)
        return out
    if a.ndim == 3:  # batches: each operand's matrices one after another
        la, lb = _batched_layout(a), _batched_layout(b)
        if la is None:
            a, la = cp.ascontiguousarray(a), (_OP_N, k, m * k)
        if lb is None:
            b, lb = cp.ascontiguousarray(b), (_OP_N, n, k * n)
    else:
        la, lb = _layout(a), _layout(b)
        if la is None:
            a, la = cp.ascontiguousarray(a), (_OP_N, k)
        if lb is None:
            b, lb = cp.ascontiguousarray(b), (_OP_N, n)
    if _lib is None:
        _lib = _Cublas()
    fn, batched, scalar = _lib.gemm[a.dtype]
    one, beta = scalar(1.0), scalar(1.0 if accumulate else 0.0)
    stream = cp.cuda.get_current_stream().ptr
    _lib._check(
        _lib.lib.cublasSetStream_v2(_lib.handle, ctypes.c_void_p(stream)), "cublasSetStream"
    )
    # column-major: out^T (n, m) = b^T (n, k) @ a^T (k, m)
    B_, A_, C_ = (ctypes.c_void_p(v.data.ptr) for v in (b, a, out))
    if a.ndim == 2:
        args = (lb[0], la[0], n, m, k, ctypes.byref(one), B_, lb[1], A_, la[1])
        status = fn(_lib.handle, *args, ctypes.byref(beta), C_, n)
    else:
        stride = ctypes.c_longlong
        args = (lb[0], la[0], n, m, k, ctypes.byref(one), B_, lb[1], stride(lb[2]))
        args += (A_, la[1], stride(la[2]), ctypes.byref(beta), C_, n, stride(m * n), batch)
        status = batched(_lib.handle, *args)
    _lib._check(status, "cublas gemm")
    return out
