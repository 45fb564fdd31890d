"""Shared test setup: the Hypothesis profiles and backend fixtures."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, settings

import minitorch_alexnet as mt

# "ci": derandomized (the same examples every run) and no deadline (the first call of
# a Numba kernel compiles it). "dev": random examples, for hunting bugs locally.
settings.register_profile(
    "ci",
    derandomize=True,
    deadline=None,
    max_examples=25,
    # the backend fixtures only hand out a name, so sharing them across examples is safe
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
    print_blob=True,
)
settings.register_profile(
    "dev",
    deadline=None,
    max_examples=100,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def skip_summary(reports) -> list[str]:
    """One line per skip reason: how many tests, and in how many files."""
    files: dict[str, set[str]] = {}
    counts: dict[str, int] = {}
    for report in reports:
        where, reason = "", str(report.longrepr)
        if isinstance(report.longrepr, tuple) and len(report.longrepr) == 3:
            where, reason = report.longrepr[0], report.longrepr[2]
        reason = reason.removeprefix("Skipped: ")
        counts[reason] = counts.get(reason, 0) + 1
        files.setdefault(reason, set()).add(os.path.basename(where))
    return [
        f"SKIPPED {n:4d}: {reason} ({len(files[reason])} file{'s' * (len(files[reason]) != 1)})"
        for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """Skipped tests summed up, one line per reason (``-ra`` prints one line per test
    location: some 40 lines of "needs CuPy" on a laptop). ``-rs`` still lists every
    location for whoever wants them."""
    skipped = terminalreporter.stats.get("skipped", [])
    if not skipped or "s" in (config.option.reportchars or "").replace("a", ""):
        return
    terminalreporter.section("skipped, by reason", sep="-")
    for line in skip_summary(skipped):
        terminalreporter.line(line)


def cupy_usable() -> bool:
    return "cupy" in mt.available_backends()


requires_gpu = pytest.mark.skipif(not cupy_usable(), reason="needs CuPy and a CUDA GPU")


@pytest.fixture(autouse=True)
def _reset_backend():
    """Every test starts on the numba backend with a fixed seed, and leaves it so."""
    mt.set_backend("numba")
    mt.manual_seed(0)
    yield
    mt.set_backend("numba")


FAST_BACKENDS = [
    pytest.param("numba", id="numba"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu, requires_gpu]),
]
ALL_BACKENDS = [pytest.param("numpy", id="numpy"), *FAST_BACKENDS]


@pytest.fixture(params=FAST_BACKENDS)
def fast_backend(request) -> str:
    """A backend with compiled kernels, to hold against the NumPy reference."""
    return request.param


@pytest.fixture(params=ALL_BACKENDS)
def any_backend(request) -> str:
    return request.param


@pytest.fixture
def numpy_backend():
    """Run a test on the NumPy reference backend, seeded."""
    with mt.use_backend("numpy"):
        mt.manual_seed(0)
        yield


@pytest.fixture(scope="session")
def default_models():
    """The three models with their default sizes, built once per session (AlexNet alone
    has 62M parameters). Tests must leave them as they found them."""
    from minitorch_alexnet.models import build_model

    with mt.use_backend("numpy"):
        mt.manual_seed(0)
        return {name: build_model(name) for name in ("alexnet", "alexnet_cifar", "alexnet2012")}
