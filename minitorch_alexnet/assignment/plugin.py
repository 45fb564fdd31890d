"""The pytest plugin of an assignment folder: markers, the "grading" profile, and grading.

An assignment's ``conftest.py`` loads it
(``pytest_plugins = ["minitorch_alexnet.assignment.plugin"]``), so students running
``pytest`` in their handout get what the grader uses:

* markers: ``@pytest.mark.points(2)`` (default 1), ``@pytest.mark.visibility("hidden")``
  (``visible``, ``hidden``, ``after_due_date``, ``after_published``; default visible),
  and one marker per task of the manifest (``@pytest.mark.task1``; ``pytest -m task1``);
* the Hypothesis profile "grading": derandomized (every submission meets the same
  cases), few examples (the manifest's ``examples``), no deadline, and no "explain"
  phase, whose report would list the library's lines;
* the ``parts`` fixture, for partial credit within a test::

      def test_backward(parts):
          with parts("training mode", weight=2):
              check_training()
          with parts("evaluation mode"):
              check_eval()

  A failed part fails the test; the test scores its points times the passed parts'
  share of the weight.

``grade`` runs pytest with ``--submission NAME=PATH`` (the file is imported under the
module name the tests import, before any test: neither the solution nor the library
can stand in for it), ``--assignment-report PATH`` (one JSON line per test) and the
per-test time limit (``--assignment-timeout``: a SIGALRM timer that raises
:class:`TestTimeout`; pytest-timeout's ``--timeout`` with its thread method is the
backstop for code that never returns to the interpreter).

The submission runs in this process, so the plugin guards what it can: it takes the
report's signing key (``grade`` passes it through a pipe) out of ``os.environ`` before
the import, numbers and signs every report line, and holds the modules the tests rely
on to a snapshot taken before the import (:mod:`.tamper`). ``docs/assignment.md`` says
what this cannot stop.
"""

from __future__ import annotations

import contextlib
import importlib.util
import itertools
import json
import os
import signal
import sys
import traceback
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from . import forbidden as _forbidden
from . import manifest as _manifest
from . import tamper as _tamper
from .grading import REPORT_KEY, REPORT_KEY_FD, sign

VISIBILITIES = _manifest.VISIBILITIES
_STATE: dict[str, Any] = {}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("assignment", "minitorch_alexnet assignments")
    group.addoption("--submission", action="append", default=[], metavar="NAME=PATH",
                    help="grade this file, imported as module NAME")  # fmt: skip
    group.addoption("--assignment-report", default=None, metavar="PATH",
                    help="write one JSON line per test here")  # fmt: skip
    group.addoption("--assignment-timeout", type=float, default=None, metavar="SECONDS",
                    help="per-test time limit (SIGALRM)")  # fmt: skip


def _find_manifest(config: pytest.Config) -> _manifest.Manifest | None:
    starts = [Path(a.split("::")[0]) for a in config.args] + [Path.cwd()]
    for start in starts:
        path = _manifest.find_manifest(start if start.exists() else Path.cwd())
        if path is not None:
            try:
                return _manifest.load(path, solutions=False)
            except _manifest.ManifestError:
                return None
    return None


def grading_settings(examples: int = 10) -> dict[str, Any]:
    """The settings of the Hypothesis profile "grading" (``check`` uses them too)."""
    from hypothesis import HealthCheck, Phase

    return dict(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        print_blob=False,
        phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )


def grading_profile(examples: int = 10) -> None:
    """Register and load the Hypothesis profile "grading"."""
    try:
        from hypothesis import settings
    except ImportError:  # pragma: no cover - hypothesis is in the test extra
        return
    settings.register_profile("grading", **grading_settings(examples))
    settings.load_profile("grading")


def pytest_configure(config: pytest.Config) -> None:
    m = _find_manifest(config)
    _STATE.clear()
    _STATE.update(manifest=m, records={}, guard=None, violations=[], import_errors={})
    config.addinivalue_line("markers", "points(n): the test's points (default 1)")
    config.addinivalue_line(
        "markers", "visibility(v): visible, hidden, after_due_date or after_published"
    )
    for t in m.tasks if m else []:
        config.addinivalue_line("markers", f"{t.name}: {t.title or 'a task of the assignment'}")
    grading_profile(m.examples if m else 10)
    report = config.getoption("--assignment-report")
    key = _take_key()  # before the submission is imported: it never sees the key
    _STATE["report"] = _writer(report, key) if report else None
    subs = config.getoption("--submission")
    if subs:
        _load_submissions(subs, m)


# ---------------------------------------------------------------- the submission
class _Missing:
    """Stands for a name the submission lacks: using it fails the test that does."""

    def __init__(self, module: str, name: str, why: str):
        self._why = f"{module}.{name}: {why}"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(self._why)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise NotImplementedError(self._why)

    def __repr__(self) -> str:
        return f"<missing: {self._why}>"


def _fallback(module: str, why: str) -> Any:
    def __getattr__(name: str) -> Any:  # PEP 562: names the submission does not define
        if name.startswith("__"):
            raise AttributeError(name)
        return _Missing(module, name, why)

    return __getattr__


def _take_key() -> bytes | None:
    """The key ``grade`` signs the report with, removed from ``os.environ`` (its pipe
    read and closed): the submission, imported later, finds neither."""
    fd, key = os.environ.pop(REPORT_KEY_FD, None), os.environ.pop(REPORT_KEY, None)
    if fd is not None:
        chunks = []
        with contextlib.suppress(OSError, ValueError):
            while chunk := os.read(int(fd), 4096):
                chunks.append(chunk)
            os.close(int(fd))
        return b"".join(chunks) or None
    return key.encode() if key else None


class _writer:  # noqa: N801 - used like a function
    """Writes the report: one JSON line per record, numbered (``seq``) and, with a key,
    signed (a tab and :func:`~.grading.sign`'s HMAC), which ``grade`` checks."""

    def __init__(self, path: str, key: bytes | None):
        self._out = open(path, "w", encoding="utf-8")  # noqa: SIM115 - closed at the end
        self._seq = itertools.count()
        self._sign = (lambda payload: "\t" + sign(key, payload)) if key else (lambda _: "")

    def __call__(self, record: dict[str, Any]) -> None:
        payload = json.dumps({**record, "seq": next(self._seq)})
        self._out.write(payload + self._sign(payload) + "\n")
        self._out.flush()

    def close(self) -> None:
        self._out.close()


def _write(record: dict[str, Any]) -> None:
    out = _STATE.get("report")
    if out is not None:
        out(record)


def _tampering(where: str) -> None:
    """Report each change to the watched modules (:mod:`.tamper`) once: it costs every task."""
    seen = _STATE.setdefault("tampered", set())
    for name, how in _tamper.changes(_STATE["snapshot"]):
        if name not in seen:
            seen.add(name)
            v = _forbidden.Violation(name, how, where, [], _tamper.HINT)
            _STATE["violations"].append(v)
            _write({"event": "violation", **v.to_json()})


def _load_submissions(specs: list[str], m: _manifest.Manifest | None) -> None:
    files = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        files[name] = str(Path(path).resolve())
    by_task = m.forbidden_by_task() if m else {}
    f = _forbidden.resolve(by_task)
    guard = _forbidden.CallGuard(f, files.values())
    _STATE.update(guard=guard, forbidden=f, files=files)
    sys.dont_write_bytecode = True
    tests = m.root if m else Path.cwd()  # the modules the tests import: loaded, then watched
    _STATE["snapshot"] = _tamper.snapshot(_tamper.imported_names(tests))
    for name, path in files.items():
        sys.modules.pop(name, None)
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        guard.enter()
        try:
            spec.loader.exec_module(module)
        except BaseException as e:  # noqa: BLE001 - whatever the submission raises at import
            text = "".join(traceback.format_exception_only(type(e), e)).strip()
            why = f"{Path(path).name} could not be imported: {text}"
            module = types.ModuleType(name)
            module.__file__ = path
            module.__getattr__ = _fallback(name, why)  # type: ignore[attr-defined]
            sys.modules[name] = module
            _STATE["import_errors"][name] = why
            _write({"event": "import_error", "module": name, "message": why})
            continue
        finally:
            guard.exit()
        for v in _forbidden.scan_module(module, f):
            _STATE["violations"].append(v)
            _write({"event": "violation", **v.to_json()})
        guard.wrap_module(module)
        if "__getattr__" not in vars(module):
            why = f"{Path(path).name} defines no such name"
            module.__getattr__ = _fallback(name, why)  # type: ignore[attr-defined]
    _tampering("while it was imported")


# ---------------------------------------------------------------- markers and parts
def _marker_arg(item: pytest.Item, name: str, default: Any) -> Any:
    mark = item.get_closest_marker(name)
    return mark.args[0] if mark is not None and mark.args else default


def describe(item: pytest.Item) -> dict[str, Any]:
    m = _STATE.get("manifest")
    tasks = [t.name for t in m.tasks] if m else []
    task = next((t for t in tasks if item.get_closest_marker(t) is not None), None)
    doc = (getattr(getattr(item, "function", None), "__doc__", None) or "").strip()
    visibility = _marker_arg(item, "visibility", "visible")
    if visibility not in VISIBILITIES:
        raise pytest.UsageError(f"{item.nodeid}: visibility {visibility!r}; use one of "
                                f"{', '.join(VISIBILITIES)}")  # fmt: skip
    return dict(nodeid=item.nodeid, name=item.name, points=float(_marker_arg(item, "points", 1)),
                visibility=visibility, task=task,
                doc=doc.splitlines()[0] if doc else "")  # fmt: skip


class Parts:
    """Partial credit: ``with parts("name", weight=1): ...`` records a pass or a failure."""

    def __init__(self) -> None:
        self.results: list[tuple[str, float, bool, str]] = []

    @contextlib.contextmanager
    def __call__(self, name: str, weight: float = 1.0) -> Iterator[None]:
        try:
            yield
        except Exception as e:  # noqa: BLE001 - a failed part; timeouts are BaseExceptions
            text = "".join(traceback.format_exception_only(type(e), e)).strip()
            self.results.append((name, float(weight), False, text))
        else:
            self.results.append((name, float(weight), True, ""))

    def fraction(self) -> float:
        total = sum(w for _, w, _, _ in self.results)
        return sum(w for _, w, ok, _ in self.results if ok) / total if total else 1.0


@pytest.fixture
def parts(request: pytest.FixtureRequest) -> Parts:
    """Partial credit within a test (see the module's text)."""
    p = Parts()
    request.node._assignment_parts = p
    return p


def pytest_collection_finish(session: pytest.Session) -> None:
    tests = [describe(item) for item in session.items]
    _write({"event": "collected", "tests": tests})


# ---------------------------------------------------------------- running and recording
class TestTimeout(BaseException):
    """A test ran past its time limit. A BaseException, so that Hypothesis does not take
    it for a failing example and replay it (a replay would hang again, with no timer)."""


def _alarm(seconds: float) -> Any:
    def stop(signum: int, frame: Any) -> None:
        raise TestTimeout(f"Timeout: the test ran past its limit of {seconds:g} s")

    return signal.signal(signal.SIGALRM, stop)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    seconds = item.config.getoption("--assignment-timeout")
    use_alarm = bool(seconds) and hasattr(signal, "SIGALRM")
    guard = _STATE.get("guard")
    if guard is not None:
        guard.found = []
    if use_alarm:
        previous = _alarm(seconds)
        signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        if use_alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)


def _submission_lines(excinfo: Any) -> list[str]:
    files = set((_STATE.get("files") or {}).values())
    lines = []
    for entry in excinfo.traceback if excinfo is not None else []:
        path = str(entry.path)
        if path in files:
            try:
                code = str(entry.statement).strip()
            except Exception:  # noqa: BLE001
                code = ""
            lines.append(f"  {Path(path).name}, line {entry.lineno + 1}, in {entry.name}: {code}")
    return lines


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    rec = _STATE["records"].setdefault(item.nodeid, {"outcome": "passed", "fraction": 1.0,
                                                      "output": [], "duration": 0.0})  # fmt: skip
    rec["duration"] += call.duration
    explained = False
    if call.when == "call":
        parts: Parts | None = getattr(item, "_assignment_parts", None)
        if parts is not None and parts.results:
            rec["fraction"] = parts.fraction()
            rec["parts"] = [dict(name=n, weight=w, ok=ok) for n, w, ok, _ in parts.results]
            failed = [(n, t) for n, _, ok, t in parts.results if not ok]
            for n, w, ok, _ in parts.results:
                rec["output"].append(f"{'ok  ' if ok else 'FAIL'} part {n!r} (weight {w:g})")
            rec["output"] += [f"part {n!r} failed: {t}" for n, t in failed]
            if failed and report.passed:
                report.outcome = "failed"
                report.longrepr = "\n\n".join(f"part {n!r} failed:\n{t}" for n, t in failed)
                explained = True
        guard = _STATE.get("guard")
        found = list(guard.found) if guard is not None else []
        if found:
            for v in found:
                _STATE["violations"].append(v)
                _write({"event": "violation", **v.to_json()})
            report.outcome = "failed"
            report.longrepr = "\n".join(v.message() for v in found)
            rec["output"] += [v.message() for v in found]
            rec["fraction"], explained = 0.0, True
    if report.failed:
        if rec["outcome"] == "passed":
            rec["outcome"] = "failed" if call.when == "call" else "error"
        if not rec.get("parts"):
            rec["fraction"] = 0.0
        if call.excinfo is not None and not explained:
            text = call.excinfo.exconly()
            notes = getattr(call.excinfo.value, "__notes__", None) or []
            rec["output"].append(text + ("\n" + "\n".join(notes) if notes else ""))
            where = _submission_lines(call.excinfo)
            if where:
                rec["output"].append("where, in your file:\n" + "\n".join(where))
    elif report.skipped and rec["outcome"] == "passed":
        why = report.longrepr[-1] if isinstance(report.longrepr, tuple) else report.longrepr
        rec["outcome"], rec["fraction"] = "skipped", 0.0
        rec["output"].append(f"skipped (no points): {why}")
    if call.when == "teardown":
        _write({"event": "result", "nodeid": item.nodeid, "outcome": rec["outcome"],
                "fraction": rec["fraction"], "parts": rec.get("parts"),
                "output": "\n".join(rec["output"]), "duration": rec["duration"]})  # fmt: skip


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    files = _STATE.get("files") or {}
    for name, path in files.items():
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None) != path:
            _write({"event": "violation", "name": name, "how": "was replaced during the run",
                    "where": path, "tasks": []})  # fmt: skip
    if "snapshot" in _STATE:
        _tampering("while the tests ran")
    _write({"event": "finished", "exitstatus": int(exitstatus)})
    out = _STATE.get("report")
    if out is not None:
        out.close()
        _STATE["report"] = None
