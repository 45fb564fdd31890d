"""Helpers the CUDA kernels share: C type names, and elementwise kernels with 32-bit indices."""

from __future__ import annotations

import re

import cupy as cp

CTYPE = {cp.dtype("float32"): "float", cp.dtype("float64"): "double"}


class IndexedKernel:
    """An ElementwiseKernel compiled twice: with 32-bit index arithmetic (integer
    division is much faster on the GPU) and with 64-bit for arrays too large for it.

    In ``params`` and ``operation``, ``I`` is the index type; ``i`` is the number of
    the output element this thread computes.
    """

    def __init__(self, params: str, outputs: str, operation: str, name: str):
        self._kernels = {
            bits: cp.ElementwiseKernel(
                re.sub(r"\bI\b", f"int{bits}", params),
                outputs,
                operation,
                f"{name}_{bits}",
                preamble=f"typedef {'int' if bits == 32 else 'long long'} I;",
            )
            for bits in (32, 64)
        }

    def __call__(self, *args, largest: int):
        bits = 32 if largest < 2**31 - 1 else 64
        kind = cp.int32 if bits == 32 else cp.int64
        args = [kind(a) if isinstance(a, int) and not isinstance(a, bool) else a for a in args]
        return self._kernels[bits](*args)
