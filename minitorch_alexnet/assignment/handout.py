"""Solution regions and the handout: ``release SRC OUT``.

A solution region is the code between two comment lines, the convention of nbgrader
and TinyTorch::

    def forward(self, x):
        \"\"\"What students read: the shapes and the formulas to implement.\"\"\"
        # BEGIN SOLUTION
        ...
        # END SOLUTION

The handout replaces each region, comments included, by one line at the region's
indentation, ``raise NotImplementedError("task1 (forward): write BatchNorm2d.forward")``,
naming the task (``# BEGIN SOLUTION task2`` names it explicitly; otherwise the task
whose ``solution`` list holds the enclosing function or class). Keep what students
should read (docstrings, signatures, given code) outside the regions.
"""

from __future__ import annotations

import ast
import fnmatch
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import manifest as _manifest
from . import syntax
from .manifest import Manifest

__all__ = [
    "ReleaseError",
    "Region",
    "find_regions",
    "folder_files",
    "graded_files",
    "hidden_test_files",
    "leaked_lines",
    "prepare_out",
    "release",
    "released_files",
    "strip_solutions",
]

BEGIN = re.compile(r"^(?P<indent>[ \t]*)#+ *BEGIN SOLUTION\b(?P<arg>.*)$")
END = re.compile(r"^[ \t]*#+ *END SOLUTION\b")
HIDDEN_MARK = re.compile(r"""visibility\(\s*["'](hidden|after_due_date|after_published)["']""")
SKIP_DIRS = {"__pycache__", ".hypothesis", ".pytest_cache", ".ruff_cache", ".ipynb_checkpoints"}
SKIP_SUFFIXES = (".pyc", ".nbi", ".nbc")  # bytecode and Numba's caches
#: solution lines shorter than this (``else:``, ``return y``) may appear in a handout
MIN_LEAK = 12


class ReleaseError(ValueError):
    """The folder cannot be released as it is (a marker, a hidden test, a leak, OUT)."""


@dataclass
class Region:
    """One solution region: lines ``begin`` and ``end`` (0-based, the marker lines)."""

    path: str
    begin: int
    end: int
    indent: str
    task: str
    where: str  # the enclosing function's qualified name, "" at module level


def _qualnames(tree: ast.AST) -> list[tuple[int, int, str]]:
    """(first line, last line, qualified name) of every function and class."""
    out: list[tuple[int, int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                name = f"{prefix}{child.name}"
                out.append((child.lineno, child.end_lineno or child.lineno, name))
                visit(child, name + ".")
            else:
                visit(child, prefix)

    visit(tree, "")
    return out


def _task_for(where: str, arg: str, m: Manifest | None, path: str, line: int) -> str:
    names = [t.name for t in m.tasks] if m else []
    if arg:
        if m and arg not in names:
            raise ReleaseError(f"{path}:{line}: BEGIN SOLUTION names task {arg!r}; tasks: {names}")
        return arg
    if m:
        best, best_len = None, -1
        for t in m.tasks:
            for s in t.solution:
                if (where == s or where.startswith(s + ".")) and len(s) > best_len:
                    best, best_len = t.name, len(s)
        if best:
            return best
        return names[0]
    return "task1"


def find_regions(
    text: str, path: str = "<source>", manifest: Manifest | None = None
) -> list[Region]:
    """The solution regions of a Python file, checked: every BEGIN closed, none nested."""
    lines = text.splitlines()
    try:
        names = _qualnames(syntax.parse(text))
    except SyntaxError as e:
        raise ReleaseError(f"{path}: not valid Python ({e})") from None
    regions, open_at = [], None
    for i, line in enumerate(lines):
        b = BEGIN.match(line)
        if b:
            if open_at is not None:
                raise ReleaseError(f"{path}:{i + 1}: BEGIN SOLUTION inside the region of line "
                                   f"{open_at[0] + 1}; close it first")  # fmt: skip
            open_at = (i, b["indent"], b["arg"].strip())
        elif END.match(line):
            if open_at is None:
                raise ReleaseError(f"{path}:{i + 1}: END SOLUTION without a BEGIN SOLUTION")
            start, indent, arg = open_at
            inside = [n for n in names if n[0] <= start + 1 <= n[1]]
            where = max(inside, key=lambda n: n[0])[2] if inside else ""
            task = _task_for(where, arg, manifest, path, start + 1)
            regions.append(Region(path, start, i, indent, task, where))
            open_at = None
    if open_at is not None:
        raise ReleaseError(f"{path}:{open_at[0] + 1}: BEGIN SOLUTION is never closed")
    return regions


def strip_solutions(text: str, path: str = "<source>", manifest: Manifest | None = None) -> str:
    """``text`` with every solution region replaced by a stub naming its task."""
    regions = find_regions(text, path, manifest)
    if not regions:
        return text
    lines = text.splitlines(keepends=True)
    out, last = [], 0
    for r in regions:
        out += lines[last : r.begin]
        task = manifest.task(r.task) if manifest else None
        what = f"write {r.where}" if r.where else "write this part"
        text = f"{r.task}: {what}" + (f" ({task.title})" if task and task.title else "")
        if r.indent or r.where:
            out.append(f"{r.indent}raise NotImplementedError({json.dumps(text)})\n")
        else:  # module level: a raise would stop the import
            out.append(f"# {text}: here\n")
        last = r.end + 1
    out += lines[last:]
    stripped = "".join(out)
    try:
        syntax.parse(stripped)
    except SyntaxError as e:  # pragma: no cover - a region cut through a statement
        raise ReleaseError(f"{path}: the handout would not parse ({e}); does a region "
                           "start or end inside a statement?") from None  # fmt: skip
    return stripped


def solution_lines(text: str, path: str = "<source>") -> list[str]:
    """The stripped lines inside solution regions (markers excluded), MIN_LEAK long or more."""
    lines = text.splitlines()
    found = []
    for r in find_regions(text, path):
        found += [
            s for s in (ln.strip() for ln in lines[r.begin + 1 : r.end]) if len(s) >= MIN_LEAK
        ]
    return found


def hidden_test_files(m: Manifest) -> list[Path]:
    """Test files the handout leaves out: listed in ``private.hidden``, or marked hidden
    as a whole (``pytestmark = pytest.mark.visibility("hidden")``)."""
    out = []
    for p in sorted(m.root.rglob("*.py")):
        rel = p.relative_to(m.root).as_posix()
        if any(part in SKIP_DIRS for part in p.parts):
            continue
        if any(fnmatch.fnmatch(rel, g) for g in m.hidden):
            out.append(p)
            continue
        tree = syntax.parse(p.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "pytestmark" for t in node.targets
            ):
                if HIDDEN_MARK.search(ast.unparse(node.value)):
                    out.append(p)
    return out


def folder_files(root: Path) -> list[Path]:
    """The files under ``root`` worth copying: no caches (:data:`SKIP_DIRS`,
    :data:`SKIP_SUFFIXES`), nothing under a dot-folder, no dot-file."""
    return [
        p
        for p in sorted(root.rglob("*"))
        if p.is_file()
        and not any(part in SKIP_DIRS or part.startswith(".") for part in p.relative_to(root).parts)
        and p.suffix not in SKIP_SUFFIXES
    ]


def _private(m: Manifest, p: Path, patches: set[Path]) -> bool:
    """The manifest, a planted bug's patch, or a ``[private] files`` file."""
    rel = p.relative_to(m.root).as_posix()
    return (
        p.name == _manifest.MANIFEST
        or p.resolve() in patches
        or any(fnmatch.fnmatch(rel, g) for g in m.private_files)
    )


def released_files(m: Manifest) -> list[Path]:
    """The folder's files that go into the handout (solution modules stripped later)."""
    hidden = set(hidden_test_files(m))
    patches = {(m.root / b.patch).resolve() for b in m.bugs if b.patch}
    return [p for p in folder_files(m.root) if p not in hidden and not _private(m, p, patches)]


def graded_files(m: Manifest) -> list[Path]:
    """The folder's files that grading needs: the tests, hidden ones included, and their
    helpers; no solution module, no bug patch, no private file, not the manifest (the
    grader writes :meth:`~.manifest.Manifest.public_toml` in its place)."""
    solutions = {m.root / f"{mod}.py" for mod in m.modules}
    patches = {(m.root / b.patch).resolve() for b in m.bugs if b.patch}
    return [p for p in folder_files(m.root) if p not in solutions and not _private(m, p, patches)]


def prepare_out(
    out: str | Path,
    *,
    force: bool,
    label: str = "OUT",
    source: Path | None = None,
    error: type[Exception] = ReleaseError,
) -> Path:
    """Make ``out`` an empty folder to write into; return it, resolved.

    Refuses a file; a folder that is, holds or lies inside ``source``; and a non-empty
    folder unless ``force``, which empties it, but never the current folder, the home
    folder or a folder holding either.
    """
    out = Path(out).resolve()
    if source is not None and (out == source or source in out.parents or out in source.parents):
        raise error(
            f"{label} {out} is, holds or lies inside the assignment folder {source}; "
            "pick another place"
        )
    if out.exists() and not out.is_dir():
        raise error(f"{label} {out} is a file; give a folder (a new one, or an empty one)")
    if out.exists() and any(out.iterdir()):
        if not force:
            raise error(f"{label} {out} is not empty; pass --force (force=True) to replace it")
        for keep, what in ((Path.cwd().resolve(), "the current folder"),
                           (Path.home().resolve(), "your home folder")):  # fmt: skip
            if out == keep or out in keep.parents:
                raise error(
                    f"{label} {out} is or holds {what}: --force would delete it; pick a new folder"
                )
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    return out


def leaked_lines(src: str | Path, out: str | Path) -> list[str]:
    """Solution lines of ``src``'s files that appear anywhere in the handout ``out``."""
    m = _manifest.load(src)
    handout = "\n".join(
        p.read_text(encoding="utf-8", errors="replace")
        for p in Path(out).rglob("*")
        if p.is_file() and p.suffix in (".py", ".md", ".txt", ".toml", ".ipynb", ".cfg", ".ini")
    )
    leaks = []
    for p in sorted(m.root.rglob("*.py")):
        if any(part in SKIP_DIRS for part in p.parts):
            continue
        for line in solution_lines(p.read_text(encoding="utf-8"), str(p)):
            if line in handout:
                leaks.append(f"{p.name}: {line}")
    return leaks


def release(src: str | Path, out: str | Path, *, force: bool = False) -> Path:
    """Write the handout of the assignment folder ``src`` into ``out``; return ``out``.

    Every solution region becomes a stub raising ``NotImplementedError`` that names
    its task; hidden test files, planted bugs' patches, private files and the
    manifest's ``[private]`` table are left out. Refuses a non-empty ``out`` unless
    ``force`` (which empties it first), and checks that no line of a solution region
    (of :data:`MIN_LEAK` characters or more) and no hidden test is in the result.
    """
    m = _manifest.load(src)
    out = prepare_out(out, force=force, source=m.root)
    for p in released_files(m):
        rel = p.relative_to(m.root)
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if p.suffix == ".py":
            text = strip_solutions(p.read_text(encoding="utf-8"), str(rel), m)
            if HIDDEN_MARK.search(text):
                shutil.rmtree(out)
                raise ReleaseError(
                    f"{rel} marks a test hidden or after_due_date but is handed out: move "
                    f"such tests to a file listed in [private] hidden"
                )
            target.write_text(text, encoding="utf-8")
        else:
            shutil.copy2(p, target)
    (out / _manifest.MANIFEST).write_text(m.public_toml(), encoding="utf-8")
    leaks = leaked_lines(m.root, out)
    if leaks:
        shutil.rmtree(out)
        raise ReleaseError(
            "these solution lines would still be in the handout (given code, a docstring or "
            "a comment repeats them; reword it or move it into the region):\n  "
            + "\n  ".join(leaks)
        )
    return out
