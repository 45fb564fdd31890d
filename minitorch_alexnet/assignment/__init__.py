"""Assignments for courses: one folder per assignment, released, graded and self-checked.

An assignment folder holds a manifest (``assignment.toml``, :mod:`.manifest`), the
solution module with ``# BEGIN SOLUTION`` / ``# END SOLUTION`` regions, and pytest
tests with points, a visibility and a task marker (:mod:`.plugin`). The commands
(``python -m minitorch_alexnet assignment ...``, :mod:`.cli`):

* :func:`release` writes the handout: regions replaced by ``NotImplementedError``
  stubs naming the task, hidden tests and private files left out;
* :func:`grade` grades a submitted file, never the library or the solution, and
  writes Gradescope's ``results.json``; a submission that subclasses, aliases,
  imports or calls the library's own layer scores 0 on that task (:mod:`.forbidden`);
* :func:`check` is the teacher's self-check: the solution full marks, the handout 0,
  every planted bug loses points, the solution equal to the library;
* :func:`new` starts a folder from a library layer's own reference functions.
"""

from __future__ import annotations

from typing import Any

from .handout import ReleaseError, release
from .manifest import Manifest, ManifestError, load

__all__ = ["Manifest", "ManifestError", "ReleaseError", "check", "grade", "load", "new", "release"]


def grade(*args: Any, **kwargs: Any) -> Any:
    """:func:`minitorch_alexnet.assignment.grading.grade`."""
    from .grading import grade as _grade

    return _grade(*args, **kwargs)


def check(*args: Any, **kwargs: Any) -> Any:
    """:func:`minitorch_alexnet.assignment.checking.check`."""
    from .checking import check as _check

    return _check(*args, **kwargs)


def new(*args: Any, **kwargs: Any) -> Any:
    """:func:`minitorch_alexnet.assignment.scaffold.new`."""
    from .scaffold import new as _new

    return _new(*args, **kwargs)
