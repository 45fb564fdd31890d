"""Pasted copies: a submitted function whose syntax tree is a forbidden library function's.

Both trees are normalised first: docstrings, decorators, annotations and the
function's own name dropped, and every variable and argument renamed by order of
first appearance (``x``, ``grad_out`` -> ``v0``, ``v1``), so renaming and rewording do
not hide a copy; attribute names (``.reshape``, ``.sum``) and constants stay. Functions
under :data:`MIN_NODES` nodes are not compared: a one-line ``return dy * mask`` is what
every correct answer writes.

What a match costs is the manifest's ``pasted``: ``"flag"`` (the default) notes it in
the results for the teacher, with no points lost; ``"zero"`` treats it like any
other forbidden use.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Any

from . import syntax
from .forbidden import Forbidden

__all__ = ["MIN_NODES", "PastedCopy", "find_pasted", "normalise"]

MIN_NODES = 40


@dataclass
class PastedCopy:
    """A submitted function that is a library function, names aside."""

    function: str  # the submission's qualified name
    line: int
    library: str  # the library function's dotted name
    tasks: list[str]

    def message(self) -> str:
        return (
            f"{self.function} (line {self.line}) has the same syntax tree as the library's "
            f"{self.library} once names and docstrings are normalised: a pasted copy?"
        )

    def to_json(self) -> dict[str, Any]:
        return dict(function=self.function, line=self.line, library=self.library, tasks=self.tasks)


class _Rename(ast.NodeTransformer):
    def __init__(self) -> None:
        self.names: dict[str, str] = {}

    def _new(self, name: str) -> str:
        return self.names.setdefault(name, f"v{len(self.names)}")

    def visit_Name(self, node: ast.Name) -> ast.AST:
        return ast.copy_location(ast.Name(self._new(node.id), node.ctx), node)

    def visit_arg(self, node: ast.arg) -> ast.AST:
        return ast.copy_location(ast.arg(self._new(node.arg), None), node)


def _strip_docstring(body: list[ast.stmt]) -> list[ast.stmt]:
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        if isinstance(body[0].value.value, str):
            return body[1:] or [ast.Pass()]
    return body


def normalise(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[str, int]:
    """The normalised dump of a function's tree, and its size in nodes."""
    node = syntax.parse(ast.unparse(fn)).body[0]  # a private copy
    assert isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    node.name, node.decorator_list, node.returns = "f", [], None
    for sub in ast.walk(node):
        if isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            sub.body = _strip_docstring(sub.body)
        if isinstance(sub, ast.AnnAssign):
            sub.annotation = ast.Constant(None)
    node = _Rename().visit(node)
    size = sum(1 for _ in ast.walk(node))
    return ast.dump(node, annotate_fields=False), size


def _functions(tree: ast.AST) -> list[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    out = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                out.append((prefix + child.name, child))
                visit(child, prefix + child.name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")

    visit(tree, "")
    return out


def _library_trees(f: Forbidden) -> dict[str, tuple[str, list[str]]]:
    """Normalised dump -> (library name, tasks) for every forbidden function."""
    out: dict[str, tuple[str, list[str]]] = {}
    for name, fn, tasks in f.functions:
        try:
            source = textwrap.dedent(inspect.getsource(fn))
            node = syntax.parse(source).body[0]
        except (OSError, TypeError, SyntaxError, IndexError):
            continue
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            dump, size = normalise(node)
            if size >= MIN_NODES:
                out.setdefault(dump, (name, sorted(tasks)))
    return out


def given_functions(handout: str) -> set[str]:
    """The normalised trees of the functions a handout gives (not reported as copies)."""
    try:
        return {normalise(node)[0] for _, node in _functions(syntax.parse(handout))}
    except SyntaxError:
        return set()


def find_pasted(source: str, f: Forbidden, given: set[str] | None = None) -> list[PastedCopy]:
    """The submission's functions whose normalised tree equals a forbidden function's;
    those equal to a function of the handout (``given``, see :func:`given_functions`)
    are the teacher's given code and not reported."""
    try:
        tree = syntax.parse(source)
    except SyntaxError:
        return []
    library = _library_trees(f)
    found = []
    for qualname, node in _functions(tree):
        dump, size = normalise(node)
        if size >= MIN_NODES and dump in library and dump not in (given or set()):
            name, tasks = library[dump]
            found.append(PastedCopy(qualname, node.lineno, name, tasks))
    return found
