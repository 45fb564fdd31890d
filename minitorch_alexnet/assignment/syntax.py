"""``ast.parse`` behind one lock, for the grader's threads.

``check`` grades the reference, the handout and each planted bug in a thread pool,
and each grade parses the submission (forbidden names, pasted functions). CPython
3.11 keeps the depth counter of the code that turns a parse into ``ast`` objects in
interpreter-wide state, not per thread: when a thread switch lands inside it (a
garbage collection running a ``__del__``, say) and another thread parses too, the
first parse fails with ``SystemError: AST constructor recursion depth mismatch``
(python/cpython#106905). Parsing is a few milliseconds of the minutes a grade takes,
so every parse in this package goes through one lock.
"""

from __future__ import annotations

import ast
import threading

_LOCK = threading.Lock()


def parse(source: str, filename: str = "<unknown>") -> ast.Module:
    """``ast.parse(source, filename)``, one thread at a time."""
    with _LOCK:
        return ast.parse(source, filename)
