"""Stop OpenBLAS's idle workers from spinning on the cores the kernels need.

After each matrix product OpenBLAS keeps its worker threads spinning for a while
(about 0.1 s by default) in case another product follows. On a laptop's few cores
that spin takes the cores the next compiled kernel's threads need: measured on 2
cores, a training step ran at 0.42x PyTorch instead of 0.77x. OpenBLAS reads how long
to spin (``OPENBLAS_THREAD_TIMEOUT``) from the environment once, when NumPy loads
it. The package sets that variable at import, but a script that imports NumPy first
(most do) has loaded OpenBLAS by then; :func:`quiet_openblas` then sets the variable,
asks OpenBLAS to read its environment again and restarts its worker threads, which
read the new value. It finds the loaded OpenBLAS with ``threadpoolctl``.
"""

from __future__ import annotations

import ctypes
import os

TIMEOUT = "4"  # OpenBLAS's smallest: 2**4 spins of its idle loop before sleeping
_done = False


def quiet_openblas() -> str:
    """Make every loaded OpenBLAS use the short spin; returns what was done (for
    ``benchmarks/`` and the tests). Runs once; an explicit user setting is kept."""
    global _done
    if _done:
        return "done before"
    _done = True
    wanted = os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", TIMEOUT)
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return "threadpoolctl missing"
    report = []
    for lib in ThreadpoolController().select(internal_api="openblas").lib_controllers:
        report.append(_restart(lib.dynlib, int(wanted)))
    return ", ".join(report) or "no OpenBLAS loaded"


def _restart(dll: ctypes.CDLL, wanted: int) -> str:
    """Have one OpenBLAS re-read its environment and restart its workers if it runs
    with another timeout."""
    try:
        current = dll.openblas_thread_timeout
        read_env, shutdown = dll.openblas_read_env, dll.blas_thread_shutdown_
    except AttributeError:  # a build without these: leave it alone
        return "OpenBLAS without openblas_read_env: left alone"
    if current() == wanted:
        return "already short"
    read_env()  # reads OPENBLAS_THREAD_TIMEOUT (and the rest) again
    shutdown()  # the workers stop; the next product starts them with the new timeout
    return f"restarted with timeout {current()}"
