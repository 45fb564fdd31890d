"""``check SRC``: the teacher's self-check of an assignment folder.

It passes when

1. the reference solution scores full marks, with no forbidden use;
2. the released handout (:func:`~minitorch_alexnet.assignment.release`) scores 0, and
   holds no solution line and no hidden test;
3. every planted bug of the manifest loses points on at least one test;
4. the solution equals the library where the manifest's ``[private] reference`` says
   it must (:mod:`.equivalence`).

The gradings run in parallel, one pytest subprocess each.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from . import manifest as _manifest
from .grading import Grade, grade
from .handout import hidden_test_files, leaked_lines, release

__all__ = ["CheckReport", "apply_bug", "check"]


@dataclass
class CheckReport:
    """What ``check`` found: ``ok`` and one line per finding."""

    title: str
    lines: list[str] = field(default_factory=list)
    failures: int = 0

    @property
    def ok(self) -> bool:
        return self.failures == 0

    def add(self, ok: bool, text: str) -> None:
        self.lines.append(("ok   " if ok else "FAIL ") + text)
        self.failures += not ok

    def text(self) -> str:
        verdict = "passes" if self.ok else f"FAILS ({self.failures} problem(s))"
        return "\n".join([f"check {self.title}: {verdict}", *self.lines])


def apply_bug(m: _manifest.Manifest, bug: _manifest.Bug, into: Path) -> Path:
    """Copy the solution modules into ``into`` and plant ``bug`` there."""
    into.mkdir(parents=True, exist_ok=True)
    for mod in m.modules:
        shutil.copy2(m.root / f"{mod}.py", into / f"{mod}.py")
    if bug.patch:
        out = subprocess.run(["patch", "-p1", "-d", str(into), "-i", str(m.root / bug.patch)],
                             capture_output=True, text=True)  # fmt: skip
        if out.returncode != 0:
            raise ValueError(
                f"bug {bug.name!r}: the patch does not apply: {out.stdout}{out.stderr}"
            )
        return into
    target = into / bug.file
    text = target.read_text(encoding="utf-8")
    for old, new in bug.edits:
        count = text.count(old)
        if count != 1:
            raise ValueError(f"bug {bug.name!r}: {old!r} occurs {count} times in {bug.file}, "
                             "not once")  # fmt: skip
        text = text.replace(old, new)
    target.write_text(text, encoding="utf-8")
    return into


def _lost(reference: Grade, buggy: Grade) -> list[str]:
    full = {t.nodeid: t.score for t in reference.tests}
    return [t.name.split(":")[0] for t in buggy.tests if t.score < full.get(t.nodeid, 0) - 1e-9]


def check(src: str | Path, *, jobs: int | None = None, library: bool = True) -> CheckReport:
    """Self-check the assignment folder ``src`` (see the module's text)."""
    m = _manifest.load(src)
    report = CheckReport(m.title)
    jobs = jobs or max(1, min(4, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="assignment-check-") as tmp:
        handout = release(m.root, Path(tmp) / "handout")
        leaks = leaked_lines(m.root, handout)
        report.add(not leaks, "the handout holds no solution line" if not leaks else
                   "solution lines in the handout: " + "; ".join(leaks))  # fmt: skip
        every = [p.name for p in hidden_test_files(m)]
        hidden = [
            p.name for p in hidden_test_files(m) if (handout / p.relative_to(m.root)).exists()
        ]
        if hidden:
            report.add(False, f"the handout holds hidden tests: {', '.join(hidden)}")
        else:
            report.add(
                True, f"the handout leaves out the hidden tests ({', '.join(every) or 'none'})"
            )
        runs: dict[str, Path] = {"reference": m.root, "handout": handout}
        for i, bug in enumerate(m.bugs):
            try:
                runs[f"bug {i + 1}"] = apply_bug(m, bug, Path(tmp) / f"bug{i + 1}")
            except ValueError as e:
                report.add(False, str(e))
        names = list(runs)
        with ThreadPoolExecutor(jobs) as pool:
            grades = dict(zip(names, pool.map(lambda k: grade(m.root, runs[k]), names)))
        ref = grades["reference"]
        full = ref.score >= ref.max_score > 0 and not ref.violations
        report.add(full, f"the solution scores {ref.score:g} / {ref.max_score:g}")
        if not full:
            report.lines += ["     " + line for line in _failures(ref)]
        for p in ref.pasted:
            report.lines.append(f"note the solution is flagged: {p.message()}")
        stub = grades["handout"]
        report.add(stub.score == 0, f"the handout scores {stub.score:g} / {stub.max_score:g}")
        if stub.score:
            report.lines += ["     passes " + t.name for t in stub.tests if t.score]
        for i, bug in enumerate(m.bugs):
            g = grades.get(f"bug {i + 1}")
            if g is None:
                continue
            lost = _lost(ref, g)
            report.add(bool(lost), f"bug {bug.name!r} scores {g.score:g} / {g.max_score:g}"
                       + (f", losing points on {', '.join(lost)}" if lost else
                          ": no test catches it"))  # fmt: skip
    if library and m.reference:
        from .equivalence import compare_with_library

        for line in compare_with_library(m):
            report.lines.append(line)
            report.failures += line.startswith("FAIL")
    return report


def _failures(g: Grade) -> list[str]:
    out = []
    for t in g.tests:
        if t.score < t.max_score:
            first = "\n".join(t.output.strip().splitlines()[:12])
            out.append(f"{t.name}: {t.score:g} / {t.max_score:g}\n{first}")
    return out + g.notes()
