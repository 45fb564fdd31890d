"""``grade SRC SUBMISSION``: run an assignment's tests against a submitted file.

The tests (hidden ones included) are copied into a fresh folder without the
solution, and pytest runs there in a subprocess with the plugin
(:mod:`.plugin`), which imports the submitted file under the module name the
tests import. The submission's source is scanned for forbidden uses and pasted
copies first (:mod:`.forbidden`, :mod:`.pasted`); the plugin adds the uses it sees
after import and while the tests run. A task with a forbidden use scores 0 on
every test. The plugin's report is read back line by line: only lines signed with the
run's key count, in order, up to the end of the run, with one result per test.

The result is Gradescope's ``results.json``: per test ``name``, ``score``,
``max_score``, ``status``, ``visibility``, ``output`` and ``tags`` (the task), and the
total ``score``; plus a readable summary (:meth:`Grade.summary`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import forbidden as _forbidden
from . import manifest as _manifest
from . import pasted as _pasted
from .handout import graded_files, strip_solutions

__all__ = ["Grade", "TestScore", "grade", "stage_tests"]

MAX_OUTPUT = 6000  # characters of output per test
HANDOUT = ".handout"  # the autograder's copy of the handout's solution modules
#: how ``grade`` hands the plugin the key that signs the report's lines: the number of a
#: pipe to read it from (POSIX), or the key itself; the plugin removes both from
#: ``os.environ`` before it imports the submission
REPORT_KEY_FD = "MINITORCH_ALEXNET_REPORT_KEY_FD"
REPORT_KEY = "MINITORCH_ALEXNET_REPORT_KEY"


def sign(key: bytes, payload: str) -> str:
    """The report line's signature: an HMAC-SHA256 of ``payload`` with ``key``."""
    return hmac.new(key, payload.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class TestScore:
    name: str
    nodeid: str
    task: str | None
    score: float
    max_score: float
    visibility: str
    status: str  # passed, failed, error, skipped, forbidden, did not run
    output: str

    def to_json(self, number: int) -> dict[str, Any]:
        out: dict[str, Any] = dict(
            name=self.name, number=str(number), score=round(self.score, 4),
            max_score=self.max_score, status="passed" if self.score >= self.max_score else "failed",
            visibility=self.visibility, output=self.output[-MAX_OUTPUT:],
        )  # fmt: skip
        if self.task:
            out["tags"] = [self.task]
        return out


@dataclass
class Grade:
    """One graded submission."""

    title: str
    submission: str
    tests: list[TestScore] = field(default_factory=list)
    violations: list[_forbidden.Violation] = field(default_factory=list)
    pasted: list[_pasted.PastedCopy] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # import errors, crashes
    seconds: float = 0.0

    @property
    def score(self) -> float:
        return round(sum(t.score for t in self.tests), 4)

    @property
    def max_score(self) -> float:
        return sum(t.max_score for t in self.tests)

    def by_task(self) -> dict[str, tuple[float, float]]:
        out: dict[str, list[float]] = {}
        for t in self.tests:
            s = out.setdefault(t.task or "(no task)", [0.0, 0.0])
            s[0] += t.score
            s[1] += t.max_score
        return {k: (round(v[0], 4), v[1]) for k, v in out.items()}

    def notes(self) -> list[str]:
        lines = [f"Forbidden: {v.message()} [costs {', '.join(v.tasks) or 'every task'}]"
                 for v in self.violations]  # fmt: skip
        lines += [f"Flagged for the teacher: {p.message()}" for p in self.pasted]
        return lines + self.problems

    def summary(self) -> str:
        lines = [f"{self.title}: {self.score:g} / {self.max_score:g} points  ({self.submission})"]
        for task, (s, m) in self.by_task().items():
            lines.append(f"  {task:<12} {s:g} / {m:g}")
        for t in self.tests:
            mark = "ok  " if t.score >= t.max_score else ("part" if t.score > 0 else "FAIL")
            hidden = "" if t.visibility == "visible" else f"  [{t.visibility}]"
            lines.append(f"  {mark} {t.score:>5g} / {t.max_score:<3g} {t.name}{hidden}")
        lines += self.notes()
        return "\n".join(lines)

    def results_json(self) -> dict[str, Any]:
        """Gradescope's results.json."""
        return {
            "score": self.score,
            "execution_time": round(self.seconds, 2),
            "output": self.summary(),
            "visibility": "visible",
            "stdout_visibility": "hidden",
            "tests": [t.to_json(i + 1) for i, t in enumerate(self.tests)],
            "extra_data": {
                "max_score": self.max_score,
                "violations": [v.to_json() for v in self.violations],
                "pasted": [p.to_json() for p in self.pasted],
            },
        }


def stage_tests(m: _manifest.Manifest, where: Path) -> Path:
    """Copy the folder's tests and helpers into ``where``: no solution module, planted
    bug or private file, and the manifest without its ``[private]`` table (the tests run
    in the submission's process, which may read anything in this folder)."""
    for p in graded_files(m):
        target = where / p.relative_to(m.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
    (where / _manifest.MANIFEST).write_text(m.public_toml(grading=True), encoding="utf-8")
    (where / "pytest.ini").write_text("[pytest]\naddopts = -p no:cacheprovider\n", encoding="utf-8")
    return where


def _submission_files(m: _manifest.Manifest, submission: Path) -> dict[str, Path]:
    if submission.is_dir():
        files = {mod: submission / f"{mod}.py" for mod in m.modules}
        found = sorted(submission.glob("*.py"))
        if len(m.modules) == 1 and not files[m.module].is_file() and len(found) == 1:
            files = {m.module: found[0]}  # one Python file under another name: that one
    elif len(m.modules) == 1:
        files = {m.module: submission}
    else:
        raise FileNotFoundError(f"{m.title} has several modules ({', '.join(m.modules)}): "
                                "hand in the folder that holds them")  # fmt: skip
    return files


def _given(m: _manifest.Manifest, module: str) -> set[str]:
    """The handout's functions (from the solution, or the autograder's copy of the handout)."""
    solution, handout = m.root / f"{module}.py", m.root / HANDOUT / f"{module}.py"
    if solution.is_file():
        text = strip_solutions(solution.read_text(encoding="utf-8"), solution.name, m)
    elif handout.is_file():
        text = handout.read_text(encoding="utf-8")
    else:
        return set()
    return _pasted.given_functions(text)


def _has_timeout_plugin() -> bool:
    try:
        import pytest_timeout  # noqa: F401
    except ImportError:
        return False
    return True


def grade(
    src: str | Path,
    submission: str | Path,
    results: str | Path | None = None,
    *,
    tasks: list[str] | None = None,
    pytest_args: list[str] | None = None,
    echo: bool = False,
) -> Grade:
    """Grade ``submission`` (a file, or a folder holding the solution modules' files)
    against the assignment folder ``src``; write ``results`` (Gradescope's JSON) if given.

    ``tasks`` grades only those tasks (pytest ``-m``); ``pytest_args`` go to pytest;
    ``echo`` prints pytest's own output.
    """
    started = time.perf_counter()
    m = _manifest.load(src, solutions=False)
    files = _submission_files(m, Path(submission))
    g = Grade(m.title, str(submission))
    forbidden = _forbidden.resolve(m.forbidden_by_task())
    for name in forbidden.unresolved:
        g.problems.append(f"Manifest: the forbidden name {name} names nothing importable")
    for mod, path in files.items():
        if not path.is_file():
            g.problems.append(f"No {mod}.py in the submission ({path})")
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        g.violations += _forbidden.scan_source(text, forbidden, path.name)
        g.pasted += _pasted.find_pasted(text, forbidden, _given(m, mod))
    with tempfile.TemporaryDirectory(prefix="assignment-grade-") as tmp:
        work = stage_tests(m, Path(tmp) / "tests")
        report = Path(tmp) / "report.jsonl"
        cmd = [sys.executable, "-m", "pytest", str(work), "-c", str(work / "pytest.ini"),
               "--rootdir", str(work), "-p", "minitorch_alexnet.assignment.plugin",
               "--assignment-report", str(report), "-q", "--no-header", "-rN"]  # fmt: skip
        for mod, path in files.items():
            if path.is_file():
                cmd += ["--submission", f"{mod}={path.resolve()}"]
        # the limit: our SIGALRM timer (a BaseException that Hypothesis does not replay);
        # pytest-timeout's thread method as the backstop for code stuck outside Python
        cmd += [f"--assignment-timeout={m.timeout:g}"]
        if _has_timeout_plugin():
            if os.environ.get("PYTEST_DISABLE_PLUGIN_AUTOLOAD"):
                cmd += ["-p", "pytest_timeout"]
            cmd += [f"--timeout={2 * m.timeout + 10:g}", "--timeout-method=thread"]
        if tasks:
            cmd += ["-m", " or ".join(tasks)]
        cmd += list(pytest_args or [])
        env = {**os.environ, "MINITORCH_ALEXNET_BACKEND": m.backend, "PYTHONHASHSEED": "0",
               "PYTHONDONTWRITEBYTECODE": "1"}  # fmt: skip
        env.pop("HYPOTHESIS_PROFILE", None)
        key = secrets.token_hex(32)
        stdout = _run(cmd, work, env, key, 120 + m.timeout * 50, g)
        if echo:
            print(stdout)
        records, tampered = _read_report(report, key.encode(), g)
    _score(g, m, records, forbidden, stdout, tampered)
    g.seconds = time.perf_counter() - started
    if results is not None:
        Path(results).parent.mkdir(parents=True, exist_ok=True)
        Path(results).write_text(json.dumps(g.results_json(), indent=2) + "\n", encoding="utf-8")
    return g


def _run(cmd: list[str], work: Path, env: dict[str, str], key: str, limit: float,
         g: Grade) -> str:  # fmt: skip
    """Run pytest; hand it the report's key through a pipe (POSIX) or the environment."""
    fds: tuple[int, ...] = ()
    if os.name == "posix":
        read, write = os.pipe()
        os.write(write, key.encode())
        os.close(write)
        fds, env = (read,), {**env, REPORT_KEY_FD: str(read)}
    else:  # pragma: no cover - no pass_fds
        env = {**env, REPORT_KEY: key}
    try:
        run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                             timeout=limit, pass_fds=fds)  # fmt: skip
        return run.stdout + run.stderr
    except subprocess.TimeoutExpired as e:
        g.problems.append(f"The test run was stopped after {limit:g} s")
        return "".join(
            t.decode("utf-8", errors="replace") if isinstance(t, bytes) else (t or "")
            for t in (e.stdout, e.stderr)
        )
    finally:
        for fd in fds:
            os.close(fd)


def _read_report(path: Path, key: bytes | None, g: Grade) -> tuple[list[dict[str, Any]], set[str]]:
    """The report's records, in order, up to "finished": only whole lines signed with
    ``key`` and numbered one after the other. Returns them and the tests whose results
    were tampered with (a second result, or one before the tests were collected)."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines() if (
        path.is_file()) else []  # fmt: skip
    records: list[dict[str, Any]] = []
    damaged = forged = late = 0
    tampered: set[str] = set()
    seen: set[str] = set()
    for i, line in enumerate(lines):
        payload, _, mac = line.rpartition("\t") if key else (line, "", "")
        try:
            r = json.loads(payload if payload or not key else line)
        except ValueError:
            damaged += 1  # cut short (a crash while writing) or not JSON
            continue
        if key and not hmac.compare_digest(mac.encode(), sign(key, payload).encode()):
            forged += 1
            continue
        if not isinstance(r, dict) or not isinstance(r.get("event"), str):
            damaged += 1
            continue
        if key and r.get("seq") != len(records):
            g.problems.append("Report lines are missing (removed during the run): the "
                              "results cannot be trusted; every test scores 0")  # fmt: skip
            return [x for x in records if x["event"] != "result"], tampered
        records.append(r)
        if r["event"] == "finished":
            late = len(lines) - i - 1
            break
        if r["event"] == "result":
            nodeid = str(r.get("nodeid"))
            if nodeid in seen or not any(x["event"] == "collected" for x in records):
                tampered.add(nodeid)
            seen.add(nodeid)
    if damaged:
        g.problems.append(f"{damaged} line(s) of the test report could not be read "
                          "(cut short or not JSON); they were skipped")  # fmt: skip
    if forged:
        g.problems.append(f"{forged} line(s) of the test report were not signed by the "
                          "grading plugin (added by the submission?): ignored")  # fmt: skip
    if late:
        g.problems.append(f"{late} line(s) after the end of the run were ignored "
                          "(added by the submission?)")  # fmt: skip
    for nodeid in sorted(tampered):
        g.problems.append(f"The results of {nodeid} were tampered with (a second result, or "
                          "one written before the tests were collected): it scores 0")  # fmt: skip
    return records, tampered


def _fraction(value: Any) -> float:
    """A result's fraction, in [0, 1] (0 for anything that is not a number)."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        return 0.0
    return min(1.0, max(0.0, f)) if math.isfinite(f) else 0.0


def _score(g: Grade, m: _manifest.Manifest, records: list[dict[str, Any]],
           forbidden: _forbidden.Forbidden, stdout: str,
           tampered: set[str] | frozenset[str] = frozenset()) -> None:  # fmt: skip
    collected = next((r["tests"] for r in records if r["event"] == "collected"), None)
    results: dict[str, dict[str, Any]] = {}
    for r in records:
        if r["event"] == "result":
            results.setdefault(str(r.get("nodeid")), r)  # the first; a second is tampering
    for r in records:
        if r["event"] == "violation":
            v = _forbidden.Violation(str(r.get("name")), str(r.get("how")), str(r.get("where")),
                                     list(r.get("tasks") or []),
                                     str(r.get("hint") or _forbidden.HINT))  # fmt: skip
            if all((v.name, v.where) != (o.name, o.where) for o in g.violations):
                g.violations.append(v)
        elif r["event"] == "import_error":
            g.problems.append(str(r.get("message")))
    if collected is None:
        tail = "\n".join(line[:300] for line in stdout.strip().splitlines()[-30:])
        g.problems.append(f"The tests could not be collected; pytest said:\n{tail}")
        return
    every = [t.name for t in m.tasks]
    costly = {t for v in g.violations for t in (v.tasks or every)}
    if m.pasted == "zero":
        costly |= {t for p in g.pasted for t in (p.tasks or every)}
    by_task = {t: [v for v in g.violations if t in (v.tasks or every)] for t in every}
    for t in collected:
        r = results.get(t["nodeid"])
        name = f"[{t['task']}] {t['name']}" if t["task"] else t["name"]
        if t["doc"]:
            name += f": {t['doc']}"
        pts = t["points"]
        if r is None:
            status, score, output = (
                "did not run",
                0.0,
                (
                    "The test run stopped before this test finished "
                    "(a crash, an exit or a time limit)."
                ),
            )
        elif t["nodeid"] in tampered:
            status, score = "failed", 0.0
            output = "0 points: its result in the test report was tampered with"
        else:
            status, output = str(r.get("outcome")), str(r.get("output", ""))
            score = pts * _fraction(r.get("fraction"))
        if t["task"] in costly or (t["task"] is None and g.violations):
            reasons = by_task.get(t["task"], g.violations) or g.violations
            why = "\n".join(v.message() for v in reasons) or "a pasted copy of the library"
            status, score = "forbidden", 0.0
            output = f"0 points for this task: {why}\n\n{output}".strip()
        flags = [p.message() for p in g.pasted if t["task"] in p.tasks]
        if flags and m.pasted == "flag":
            output = (output + "\n\nFlagged for the teacher: " + "\n".join(flags)).strip()
        g.tests.append(TestScore(name, t["nodeid"], t["task"], score, pts, t["visibility"],
                                 status, output))  # fmt: skip
