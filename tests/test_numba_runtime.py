"""How the Numba backend runs its kernels: the thread split, the compile message, and
OpenBLAS's idle workers quieted whatever the import order."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("numba")

from minitorch_alexnet.backend.numba import compiling, threads  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def _run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **env}
    full_env.pop("OPENBLAS_THREAD_TIMEOUT", None)
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.parametrize("n", [0, 1, 2, 3, 7, 100])
@pytest.mark.parametrize("grain", [1, 10])
def test_parallel_for_covers_every_index_once(n, grain, monkeypatch):
    monkeypatch.setattr(threads, "get_num_threads", lambda: 3)
    seen = np.zeros(n, dtype=int)
    slices = []

    def kernel(lo, hi, out):
        slices.append((lo, hi))
        out[lo:hi] += 1

    threads.parallel_for(kernel, n, seen, grain=grain)
    assert (seen == 1).all()
    expected = max(1, min(3, n // grain))
    assert len(slices) == expected
    assert sorted(slices)[0][0] == 0 and sorted(slices)[-1][1] == n


def test_parallel_for_waits_for_every_slice_and_raises():
    def kernel(lo, hi):
        if lo == 0:
            raise ValueError("first slice")

    with pytest.raises(ValueError, match="first slice"):
        threads.parallel_for(kernel, 10)


def test_no_kernel_uses_numbas_parallel_compiler():
    """parallel=True compiles ~5x slower; the thread split is threads.py's job."""
    import importlib

    from minitorch_alexnet.backend.numba import OVERRIDES

    found = 0
    for module in {m for m, _ in OVERRIDES.values()}:
        mod = importlib.import_module(f"minitorch_alexnet.backend.numba.{module}")
        for name, obj in vars(mod).items():
            options = getattr(obj, "targetoptions", None)
            if options is not None:
                found += 1
                assert not options.get("parallel"), f"{module}.{name} has parallel=True"
                assert options.get("nogil"), f"{module}.{name} holds the GIL"
                assert type(obj._cache).__name__ != "NullCache", f"{module}.{name}: no cache"
    assert found >= 15


def test_a_first_run_says_it_compiles_and_a_cached_one_does_not(tmp_path):
    code = (
        "import numpy as np, minitorch_alexnet as mt\n"
        "from minitorch_alexnet.backend.numba import compiling\n"
        "mt.set_backend('numba')\n"
        "mt.nn.ReLU()(mt.asarray(np.ones((2, 3)), 'float32'))\n"
        "print(compiling.seconds())\n"
        "print(compiling.report_once())\n"
        "print(compiling.report_once())\n"
    )
    first = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert first.returncode == 0, first.stderr
    secs, report, again_report = first.stdout.splitlines()
    assert compiling.MESSAGE in first.stderr and float(secs) > 0
    assert report.startswith("compiled the kernels in ") and again_report == "None"
    again = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert again.returncode == 0, again.stderr
    assert compiling.MESSAGE not in again.stderr
    assert again.stdout.splitlines() == ["0.0", "None", "None"]


QUERY = (
    "{first}import minitorch_alexnet as mt\n"
    "from threadpoolctl import ThreadpoolController\n"
    "mt.set_backend('numba')\n"
    "libs = ThreadpoolController().select(internal_api='openblas').lib_controllers\n"
    "print([lib.dynlib.openblas_thread_timeout() for lib in libs])\n"
)


@pytest.mark.parametrize("first", ["", "import numpy\n"], ids=["package-first", "numpy-first"])
def test_openblas_spins_briefly_whatever_the_import_order(first):
    pytest.importorskip("threadpoolctl")
    out = _run(QUERY.format(first=first))
    assert out.returncode == 0, out.stderr
    timeouts = eval(out.stdout)  # a list of ints printed by the child
    if not timeouts:
        pytest.skip("NumPy here does not use OpenBLAS")
    assert timeouts == [4] * len(timeouts)


def test_an_explicit_openblas_setting_is_kept():
    pytest.importorskip("threadpoolctl")
    out = _run(QUERY.format(first="import numpy\n"), OPENBLAS_THREAD_TIMEOUT="8")
    assert out.returncode == 0, out.stderr
    assert set(eval(out.stdout)) <= {8}


def test_a_larger_pool_ends_the_smaller_ones_threads(monkeypatch):
    monkeypatch.setattr(threads, "_pool", None)
    monkeypatch.setattr(threads, "_pool_key", (0, 0))  # both put back afterwards
    small = threads._workers(1)
    larger = threads._workers(3)
    assert larger is not small and small._shutdown and threads._workers(2) is larger
    larger.shutdown(wait=False)
