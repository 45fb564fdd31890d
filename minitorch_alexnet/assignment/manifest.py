"""The manifest, ``assignment.toml``: what an assignment folder holds and how it is graded.

A minimal one::

    title = "BatchNorm2d, forward and backward"
    module = "batchnorm"                  # the file students hand in: batchnorm.py

    [[tasks]]
    name = "task1"                        # also the pytest marker: pytest -m task1
    title = "forward"
    solution = ["BatchNorm2d.forward"]    # what the task's solution regions belong to
    forbidden = ["minitorch_alexnet.nn.BatchNorm2d", "minitorch_alexnet.nn.batchnorm"]

Everything else has a default (see :class:`Manifest`). The ``[private]`` table is the
teacher's: hidden test files, planted bugs, the library objects the solution must
equal; ``release`` leaves it out of the handout's manifest.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["MANIFEST", "Bug", "Manifest", "ManifestError", "Task", "find_manifest", "load"]

MANIFEST = "assignment.toml"

VISIBILITIES = ("visible", "hidden", "after_due_date", "after_published")


class ManifestError(ValueError):
    """The manifest is missing, is not TOML, or says something that cannot be right."""


@dataclass
class Task:
    """One part of an assignment, graded alone with ``pytest -m NAME``.

    Attributes:
        name: the pytest marker of its tests (``task1``); letters, digits, ``_``.
        title: what students read (``"ReLU: forward and backward"``).
        solution: qualified names in the solution module this task writes
            (``"ReLU"``, ``"ReLU.backward"``, ``"relu_forward"``): solution regions
            inside them raise ``NotImplementedError`` naming this task.
        forbidden: dotted names of library objects this task's code may not use: a
            class, a function or a whole module. A use costs this task's tests.
    """

    name: str
    title: str = ""
    solution: list[str] = field(default_factory=list)
    forbidden: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.name} ({self.title})" if self.title else self.name


@dataclass
class Bug:
    """A planted bug: the solution with some text replaced, which must lose points.

    ``edits`` are ``(old, new)`` pairs applied to ``file`` (the solution module by
    default); each ``old`` must occur exactly once. ``patch`` is a unified diff
    (a path relative to the folder) applied instead, for larger changes.
    """

    name: str
    file: str
    edits: list[tuple[str, str]] = field(default_factory=list)
    patch: str | None = None


@dataclass
class Manifest:
    """An assignment folder's ``assignment.toml``, with its defaults filled in.

    Attributes:
        root: the folder.
        title: the assignment's name.
        modules: the solution modules (file stems); students hand in ``<module>.py``.
        tasks: the parts, in order; at least one (a single ``task1`` by default).
        forbidden: dotted names forbidden to every task.
        timeout: seconds per test before it fails (``pytest-timeout``).
        examples: Hypothesis examples per test in the "grading" profile.
        backend: the array backend grading runs on (``numpy``: no compile time).
        pasted: ``"flag"`` (default): a function whose syntax tree equals a
            forbidden library function's is reported to the teacher in the results;
            ``"zero"``: its task scores 0, as for any other forbidden use.
        hidden: test files (globs) left out of the handout and run only by ``grade``.
        private_files: other files (globs) left out of the handout.
        bugs: the planted bugs ``check`` expects to lose points.
        reference: solution name -> library object it must equal numerically
            (``check``): a layer class, an optimizer class or a reference function.
    """

    root: Path
    title: str
    modules: list[str]
    tasks: list[Task]
    forbidden: list[str] = field(default_factory=list)
    timeout: float = 60.0
    examples: int = 10
    backend: str = "numpy"
    pasted: str = "flag"
    hidden: list[str] = field(default_factory=list)
    private_files: list[str] = field(default_factory=list)
    bugs: list[Bug] = field(default_factory=list)
    reference: dict[str, str] = field(default_factory=dict)

    @property
    def module(self) -> str:
        """The (first) solution module's name."""
        return self.modules[0]

    def task(self, name: str) -> Task | None:
        return next((t for t in self.tasks if t.name == name), None)

    def forbidden_by_task(self) -> dict[str, list[str]]:
        """Each task's forbidden names, the folder-wide ones included."""
        return {t.name: list(dict.fromkeys(self.forbidden + t.forbidden)) for t in self.tasks}

    def public_toml(self, *, grading: bool = False) -> str:
        """The handout's manifest: everything but ``[private]``; with ``grading``, the
        grader's copy of the tests gets ``pasted`` too."""
        lines = [
            "# The handout's copy of the assignment's manifest (its private part left out).",
            f"title = {_s(self.title)}",
        ]
        if len(self.modules) == 1:
            lines.append(f"module = {_s(self.module)}")
        else:
            lines.append(f"modules = {_list(self.modules)}")
        lines += [f"timeout = {self.timeout:g}", f"examples = {self.examples}"]
        lines += [f"backend = {_s(self.backend)}"]
        if grading:
            lines.append(f"pasted = {_s(self.pasted)}")
        if self.forbidden:
            lines.append(f"forbidden = {_list(self.forbidden)}")
        for t in self.tasks:
            lines += ["", "[[tasks]]", f"name = {_s(t.name)}", f"title = {_s(t.title)}"]
            if t.solution:
                lines.append(f"solution = {_list(t.solution)}")
            if t.forbidden:
                lines.append(f"forbidden = {_list(t.forbidden)}")
        return "\n".join(lines) + "\n"


def _s(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a TOML basic string


def _list(values: list[str]) -> str:
    return "[" + ", ".join(_s(v) for v in values) + "]"


def _strings(where: str, value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{where} must be a string or a list of strings, got {value!r}")
    return list(value)


def find_manifest(start: Path) -> Path | None:
    """The ``assignment.toml`` in ``start`` or the nearest folder above it."""
    start = start.resolve()
    for folder in (start, *start.parents) if start.is_dir() else start.parents:
        if (folder / MANIFEST).is_file():
            return folder / MANIFEST
    return None


def load(folder: str | Path, *, solutions: bool = True) -> Manifest:
    """Read ``folder/assignment.toml`` (or the manifest file itself); ``solutions=False``
    accepts a folder without the solution modules (a handout, the grader's test copy)."""
    path = Path(folder)
    if path.is_dir():
        path = path / MANIFEST
    if not path.is_file():
        raise ManifestError(
            f"no {MANIFEST} in {path.parent}: an assignment folder needs one "
            "(python -m minitorch_alexnet assignment new LAYER DEST makes a folder with it)"
        )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise ManifestError(f"{path}: not valid TOML: {e}") from None
    return parse(data, path.parent, solutions=solutions)


def parse(data: dict[str, Any], root: Path, *, solutions: bool = True) -> Manifest:
    """A :class:`Manifest` from the TOML's tables (``root``: the folder)."""
    known = {"title", "module", "modules", "tasks", "forbidden", "timeout", "examples"}
    known |= {"backend", "pasted", "private"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ManifestError(f"{MANIFEST}: unknown keys {unknown}; known: {sorted(known)}")
    if "module" in data and "modules" in data:
        raise ManifestError(f"{MANIFEST}: give `module` or `modules`, not both")
    modules = _strings("module", data.get("modules", data.get("module", [])))
    if not modules:
        raise ManifestError(f"{MANIFEST}: `module` (the solution file's name, no .py) is missing")
    for m in modules:
        if not m.isidentifier():
            raise ManifestError(f"{MANIFEST}: module {m!r} is not a Python module name")
        if solutions and not (root / f"{m}.py").is_file():
            raise ManifestError(f"{MANIFEST}: the solution module {m}.py is not in {root}")
    tasks = []
    for i, t in enumerate(data.get("tasks") or [{"name": "task1"}]):
        if not isinstance(t, dict) or "name" not in t:
            raise ManifestError(f"{MANIFEST}: tasks[{i}] needs a name (its pytest marker)")
        name = t["name"]
        if not (isinstance(name, str) and name.isidentifier()):
            raise ManifestError(f"{MANIFEST}: task name {name!r} is not a valid marker name")
        extra = sorted(set(t) - {"name", "title", "solution", "forbidden"})
        if extra:
            raise ManifestError(f"{MANIFEST}: task {name}: unknown keys {extra}")
        tasks.append(
            Task(
                name,
                str(t.get("title", "")),
                _strings(f"task {name}: solution", t.get("solution", [])),
                _strings(f"task {name}: forbidden", t.get("forbidden", [])),
            )
        )
    if len({t.name for t in tasks}) != len(tasks):
        raise ManifestError(f"{MANIFEST}: two tasks have the same name")
    pasted = data.get("pasted", "flag")
    if pasted not in ("flag", "zero"):
        raise ManifestError(f"{MANIFEST}: pasted must be 'flag' or 'zero', got {pasted!r}")
    private = data.get("private", {})
    bugs = []
    for i, b in enumerate(private.get("bugs", [])):
        name = b.get("name", f"bug {i + 1}")
        edits = [(e["replace"], e["with"]) for e in b.get("edits", [])]
        if "replace" in b:
            edits.insert(0, (b["replace"], b["with"]))
        if not edits and not b.get("patch"):
            raise ManifestError(f"{MANIFEST}: bug {name!r} needs replace/with, edits or patch")
        bugs.append(Bug(name, b.get("file", f"{modules[0]}.py"), edits, b.get("patch")))
    timeout, examples = data.get("timeout", 60), data.get("examples", 10)
    if not (isinstance(timeout, (int, float)) and timeout > 0):
        raise ManifestError(f"{MANIFEST}: timeout must be a number of seconds > 0")
    if not (isinstance(examples, int) and examples >= 1):
        raise ManifestError(f"{MANIFEST}: examples must be an int >= 1")
    return Manifest(
        root=root.resolve(),
        title=str(data.get("title", root.name)),
        modules=modules,
        tasks=tasks,
        forbidden=_strings("forbidden", data.get("forbidden", [])),
        timeout=float(timeout),
        examples=examples,
        backend=str(data.get("backend", "numpy")),
        pasted=pasted,
        hidden=_strings("private.hidden", private.get("hidden", [])),
        private_files=_strings("private.files", private.get("files", [])),
        bugs=bugs,
        reference=dict(private.get("reference", {})),
    )
