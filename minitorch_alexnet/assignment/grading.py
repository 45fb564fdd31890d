"""``grade SRC SUBMISSION``: run an assignment's tests against a submitted file.

The tests (hidden ones included) are copied into a fresh folder without the
solution, and pytest runs there in a subprocess with the plugin
(:mod:`.plugin`), which imports the submitted file under the module name the
tests import. The submission's source is scanned for forbidden uses and pasted
copies first (:mod:`.forbidden`, :mod:`.pasted`); the plugin adds the uses it sees
after import and while the tests run. A task with a forbidden use scores 0 on
every test.

The result is Gradescope's ``results.json``: per test ``name``, ``score``,
``max_score``, ``status``, ``visibility``, ``output`` and ``tags`` (the task), and the
total ``score``; plus a readable summary (:meth:`Grade.summary`).
"""

from __future__ import annotations

import json
import os
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
from .handout import SKIP_DIRS, strip_solutions

__all__ = ["Grade", "TestScore", "grade", "stage_tests"]

MAX_OUTPUT = 6000  # characters of output per test
HANDOUT = ".handout"  # the autograder's copy of the handout's solution modules


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
    """Copy the folder's tests and helpers, without the solution modules, into ``where``."""
    solutions = {f"{mod}.py" for mod in m.modules}
    for p in sorted(m.root.rglob("*")):
        rel = p.relative_to(m.root)
        if not p.is_file() or any(part in SKIP_DIRS or part.startswith(".") for part in rel.parts):
            continue
        if rel.as_posix() in solutions or p.suffix == ".pyc":
            continue
        target = where / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(p, target)
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
        limit = 120 + m.timeout * 50
        try:
            run = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True,
                                 timeout=limit)  # fmt: skip
            stdout = run.stdout + run.stderr
        except subprocess.TimeoutExpired as e:
            stdout = str(e.stdout or "")
            g.problems.append(f"The test run was stopped after {limit:g} s")
        if echo:
            print(stdout)
        records = [json.loads(line) for line in report.read_text().splitlines()] if (
            report.is_file()) else []  # fmt: skip
    _score(g, m, records, forbidden, stdout)
    g.seconds = time.perf_counter() - started
    if results is not None:
        Path(results).parent.mkdir(parents=True, exist_ok=True)
        Path(results).write_text(json.dumps(g.results_json(), indent=2) + "\n", encoding="utf-8")
    return g


def _score(g: Grade, m: _manifest.Manifest, records: list[dict[str, Any]],
           forbidden: _forbidden.Forbidden, stdout: str) -> None:  # fmt: skip
    collected = next((r["tests"] for r in records if r["event"] == "collected"), None)
    results = {r["nodeid"]: r for r in records if r["event"] == "result"}
    for r in records:
        if r["event"] == "violation":
            v = _forbidden.Violation(r["name"], r["how"], r["where"], r["tasks"])
            if all((v.name, v.where) != (o.name, o.where) for o in g.violations):
                g.violations.append(v)
        elif r["event"] == "import_error":
            g.problems.append(r["message"])
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
        else:
            status, score, output = r["outcome"], pts * r["fraction"], r["output"]
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
