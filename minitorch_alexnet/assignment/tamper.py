"""The modules the tests rely on, watched: a submission may not change them.

The tests run in the submission's process, so code in the submission could replace a
helper the tests compare with (``minitorch_alexnet.testing.assert_matches_reference``,
``numpy.testing.assert_allclose``) and every comparison would pass. The plugin takes a
:func:`snapshot` of these modules before it imports the submission, and compares
(:func:`changes`) after the import and again when the run ends: a name rebound, added or
removed in one of them, or in a class one of them defines, or a module of theirs
replaced in ``sys.modules``, is a violation that costs every task.

Allowed: a submodule bound to its package when it is first imported; private state
(a name starting with ``_`` whose old and new values are both not callable, such as
the active backend or a random generator's seed); and, outside ``minitorch_alexnet``,
any data that is not callable (the flags Hypothesis and pytest keep).
"""

from __future__ import annotations

import ast
import importlib
import sys
import types
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from . import syntax

__all__ = ["HINT", "WATCHED", "changes", "imported_names", "snapshot"]

#: watched modules, by name; with PREFIXES, their submodules too
WATCHED = ("minitorch_alexnet", "numpy", "numpy.testing", "hypothesis", "pytest", "builtins")
PREFIXES = ("minitorch_alexnet.", "numpy.testing.", "hypothesis.")
#: imported before the snapshot, so that a submission cannot change them first
PRELOAD = ("numpy.testing", "minitorch_alexnet.testing", "hypothesis", "hypothesis.strategies")
IGNORED = {"__warningregistry__"}  # where ``warnings`` records what it has shown
HINT = (
    "the tests and their helpers (minitorch_alexnet, numpy, numpy.testing, Hypothesis, "
    "pytest, builtins) must stay as they are; remove the code that changes them"
)
_ABSENT = object()

#: label -> (the module or class, a copy of its namespace)
Snapshot = dict[str, tuple[Any, dict[str, Any]]]


def _watched(name: str) -> bool:
    return name in WATCHED or name.startswith(PREFIXES)


def _namespace(owner: Any) -> dict[str, Any] | None:
    try:
        return dict(vars(owner))
    except TypeError:
        return None


def imported_names(folder: Path) -> list[str]:
    """The watched modules the Python files under ``folder`` (the tests) import, so that
    :func:`snapshot` can load them first (``from a.b import c``: ``a.b`` and ``a.b.c``)."""
    names: set[str] = set()
    for path in sorted(folder.rglob("*.py")):
        try:
            tree = syntax.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError, OSError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.add(node.module)
                names.update(f"{node.module}.{a.name}" for a in node.names)
    return sorted(n for n in names if _watched(n))


def snapshot(preload: Iterable[str] = ()) -> Snapshot:
    """The namespaces of every loaded watched module and of the classes they define;
    :data:`PRELOAD` and ``preload`` are imported first (those that import)."""
    for name in (*PRELOAD, *preload):
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112 - Hypothesis is optional outside grading
            continue
    out: Snapshot = {}
    for name, module in list(sys.modules.items()):
        if not isinstance(module, types.ModuleType) or not _watched(name):
            continue
        ns = _namespace(module)
        if ns is None:
            continue
        out[name] = (module, ns)
        for attr, value in ns.items():
            if isinstance(value, type) and getattr(value, "__module__", None) == name:
                cls_ns = _namespace(value)
                if cls_ns is not None:
                    out.setdefault(f"{name}.{attr}", (value, cls_ns))
    return out


def _allowed(label: str, owner: Any, attr: str, old: Any, new: Any) -> bool:
    if attr in IGNORED:
        return True
    if isinstance(new, types.ModuleType) and isinstance(owner, types.ModuleType):
        if new.__name__ == f"{owner.__name__}.{attr}" and sys.modules.get(new.__name__) is new:
            return True  # a submodule, bound to its package when first imported
    if callable(old) or callable(new) or isinstance(old, types.ModuleType):
        return False
    # data: private state anywhere; public data only outside this library (Hypothesis
    # and pytest set flags of their own, such as hypothesis.core.running_under_pytest)
    return attr.startswith("_") or not label.startswith("minitorch_alexnet")


def changes(before: Snapshot) -> list[tuple[str, str]]:
    """(dotted name, what happened) for each change since ``before`` that is not allowed."""
    found = []
    for label, (owner, old) in before.items():
        if isinstance(owner, types.ModuleType):
            current = sys.modules.get(label, owner)
            if current is not owner:
                found.append((label, "replaced the module"))
        new = _namespace(owner)
        if new is None:
            continue
        for attr in sorted(old.keys() | new.keys()):
            a, b = old.get(attr, _ABSENT), new.get(attr, _ABSENT)
            if a is b or _allowed(label, owner, attr, a, b):
                continue
            how = "added" if a is _ABSENT else "deleted" if b is _ABSENT else "replaced"
            found.append((f"{label}.{attr}", how))
    return found
