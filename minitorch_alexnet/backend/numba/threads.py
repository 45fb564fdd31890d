"""Parallel loops for the compiled kernels, without Numba's parallel compiler.

Every kernel of this package is a plain compiled loop over a slice ``lo..hi-1`` of its
outer loop (``@njit(nogil=True)``: it runs without holding Python's lock), and
:func:`parallel_for` cuts that loop into one slice per thread and runs the slices on a
small pool of threads, the calling thread taking the first.

Why not ``@njit(parallel=True)`` and ``prange``? The same loops compile about 5x
slower that way (Numba's parallel passes), and a new installation compiles every
kernel once: measured on 2 cores, a first training step took 22 s in compiling with
``parallel=True`` and takes a few seconds now (``benchmarks/NOTES.md``). The slices
are the same static split ``prange`` makes, so the loops run as fast.

The number of threads is Numba's (``NUMBA_NUM_THREADS``, ``numba.set_num_threads``);
with ``NUMBA_DISABLE_JIT=1`` the loop runs whole in the calling thread.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from numba import config, get_num_threads

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_key: tuple[int, int] = (0, 0)  # (process id, workers): a forked child makes its own


def _workers(n: int) -> ThreadPoolExecutor:
    """The pool, with at least ``n`` threads, made in this process."""
    global _pool, _pool_key
    with _lock:
        if _pool is None or _pool_key[0] != os.getpid() or _pool_key[1] < n:
            if _pool is not None and _pool_key[0] == os.getpid():
                _pool.shutdown(wait=False)  # too few threads: its idle ones end
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="minitorch-numba")
            _pool_key = (os.getpid(), n)
        return _pool


def parallel_for(kernel: Callable[..., Any], n: int, *args: Any, grain: int = 1) -> None:
    """Run ``kernel(lo, hi, *args)`` over ``0..n-1`` cut into one slice per thread.

    ``grain``: the fewest iterations worth a thread of their own (small loops run in
    the calling thread alone). Slices never overlap, so a kernel whose iterations write
    to disjoint memory needs no locks; each returns before this does.
    """
    threads = min(get_num_threads(), n // max(1, grain))
    if threads <= 1 or config.DISABLE_JIT:  # plain Python: one thread, for a debugger
        kernel(0, n, *args)
        return
    cuts = [n * t // threads for t in range(threads + 1)]
    pool = _workers(threads - 1)
    futures: list[Future] = [
        pool.submit(kernel, cuts[t], cuts[t + 1], *args) for t in range(1, threads)
    ]
    try:
        kernel(cuts[0], cuts[1], *args)
    finally:
        for f in futures:
            f.result()
