"""Memory for im2col's column matrices, kept from one training step to the next."""

from __future__ import annotations

import sys
import threading

import numpy as np


class ColumnMemory:
    """A pool of large buffers for column matrices (and arrays of their size).

    A column matrix is large (176 MiB for AlexNetCIFAR's conv2 at batch 128). Arrays of
    that size come fresh from the operating system on every allocation, and the first
    write to each page of it faults; that costs about as much as writing the array.
    So im2col takes its columns from buffers kept here: a request gets the smallest
    free buffer that is large enough (viewed with the requested shape), and a new
    buffer only when none is. A buffer is free once nothing refers to it any more.

    Conv2d recomputes the columns in backward, so every convolution of a step takes
    its columns, uses them and drops them, and a single buffer, the size of the
    largest column matrix, serves them all. The input gradient's product has the
    columns' size and comes after they are dropped, so it takes the same buffer.

    Threads may share the pool (layers running in several threads at once): ``take``
    holds a lock while it looks for a free buffer and makes its view, so no two
    threads get the same buffer and none sees the list while another changes it. A
    buffer only goes from taken to free while the lock is not held (its last view is
    dropped), never back, so a buffer judged free inside the lock stays free until
    the view is made. Threads working at once each hold a buffer of their own, so the
    pool grows to one buffer per concurrent convolution, as it must.
    """

    def __init__(self) -> None:
        self._buffers: list[np.ndarray] = []  # flat blocks of bytes
        self._lock = threading.Lock()
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
        with self._lock:
            b = self._best_free(nbytes)
            if b is None:
                # free buffers too small for this request would only add to the footprint
                self._buffers = [
                    b for b in self._buffers if sys.getrefcount(b) > self._free_refs + 1
                ]
                b = np.empty(nbytes, dtype=np.uint8)
                self._buffers.append(b)
            # the view is made inside the lock: from here on it marks the buffer as taken
            return self._view(b, shape, dtype)


columns = ColumnMemory()
