"""Code references in the docs: quoted source lines that stay true, with their line numbers.

A page quotes code with a fenced block whose title names a file and, after ``::``,
a function or class in it::

    ```python title="minitorch_alexnet/nn/linear.py::Linear.backward"
    return mm(grad_out, self.weight.data)  # dx = dy W
    ```

The quoted lines (leading indentation ignored) must appear, consecutively, inside
that function. When the site is built, :func:`on_page_markdown` (an MkDocs hook,
see ``hooks:`` in mkdocs.yml) finds where they are now and turns the title into
``minitorch_alexnet/nn/linear.py, Linear.backward, line 61`` with the real line
numbers beside the code; a quote that no longer matches the source stops the build.
``tests/test_docs.py`` checks the same for every page, so the docs cannot drift
from the code unnoticed. An empty name after ``::`` (``title="path.py::"``) searches
the whole file.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent

# an opening fence of a python block whose title looks like "path/to/file.py::Qual.name"
_FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>py|python)\b(?P<before>[^\n]*?)"
    r'title="(?P<path>[\w./-]+\.py)::(?P<qual>[\w.]*)"(?P<after>[^\n]*)$',
    re.MULTILINE,
)


class CodeRefError(ValueError):
    """A code reference that does not resolve."""


class CodeRef(NamedTuple):
    """One quoted block: where it points and what it quotes."""

    path: str  # relative to the repository root
    qualname: str  # "Class.method", "function" or "" for the whole file
    snippet: str  # the quoted lines, dedented
    start: int  # offset of the opening fence in the page
    end: int  # offset just after the closing fence
    header_span: tuple[int, int]  # the opening fence line

    def label(self) -> str:
        return f"{self.path}::{self.qualname}" if self.qualname else self.path


def find_code_refs(markdown: str) -> list[CodeRef]:
    """Every code reference block of a page, in order."""
    refs = []
    for m in _FENCE.finditer(markdown):
        indent, fence = m.group("indent"), m.group("fence")
        body_start = m.end() + 1
        close = re.compile(rf"^{re.escape(indent)}{re.escape(fence)}[ \t]*$", re.MULTILINE)
        c = close.search(markdown, body_start)
        if c is None:
            raise CodeRefError(f"unclosed code block for {m.group('path')}")
        body = markdown[body_start : c.start()]
        lines = [ln[len(indent) :] if ln.startswith(indent) else ln for ln in body.split("\n")]
        snippet = textwrap.dedent("\n".join(lines)).strip("\n")
        refs.append(
            CodeRef(
                m.group("path"), m.group("qual"), snippet, m.start(), c.end(), (m.start(), m.end())
            )
        )
    return refs


def _node_span(tree: ast.Module, qualname: str, path: str) -> tuple[int, int]:
    """(first line, last line) of ``qualname`` (``A.b``) in a parsed file; the file if empty."""
    if not qualname:
        return 1, 10**9
    body: list[Any] = tree.body
    node: Any = None
    for part in qualname.split("."):
        node = next(
            (
                n
                for n in body
                if isinstance(n, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                and n.name == part
            ),
            None,
        )
        if node is None:
            raise CodeRefError(f"{path} has no {qualname!r} (no {part!r} found)")
        body = node.body
    first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
    return first, node.end_lineno


def resolve(ref: CodeRef, root: Path = ROOT) -> tuple[int, int]:
    """The line numbers (first, last; 1-based) the quoted lines have in the file now.

    Raises:
        CodeRefError: the file, the function or the lines are not there.
    """
    file = root / ref.path
    if not file.is_file():
        raise CodeRefError(f"{ref.label()}: no file {ref.path}")
    source = file.read_text(encoding="utf-8")
    lo, hi = _node_span(ast.parse(source), ref.qualname, ref.path)
    lines = source.splitlines()
    want = [ln.strip() for ln in ref.snippet.splitlines()]
    if not want or not any(want):
        raise CodeRefError(f"{ref.label()}: the quoted block is empty")
    hi = min(hi, len(lines))
    for i in range(lo - 1, hi - len(want) + 1):
        if all(lines[i + k].strip() == w for k, w in enumerate(want)):
            return i + 1, i + len(want)
    raise CodeRefError(
        f"{ref.label()}: these lines are not in {ref.path}"
        + (f" inside {ref.qualname}" if ref.qualname else "")
        + " any more (the code changed: update the quote in the docs):\n"
        + textwrap.indent(ref.snippet, "    ")
    )


def rewrite(markdown: str, root: Path = ROOT) -> str:
    """The page with every code reference titled by file, function and current line numbers."""
    out, pos = [], 0
    for ref in find_code_refs(markdown):
        first, last = resolve(ref, root)
        a, b = ref.header_span
        m = _FENCE.match(markdown, a)
        assert m is not None
        where = f"line {first}" if first == last else f"lines {first}-{last}"
        what = f", {ref.qualname}" if ref.qualname else ""
        header = (
            f"{m.group('indent')}{m.group('fence')}{m.group('lang')}{m.group('before')}"
            f'title="{ref.path}{what}, {where}" linenums="{first}"{m.group("after")}'
        )
        out += [markdown[pos:a], header]
        pos = b
    out.append(markdown[pos:])
    return "".join(out)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    """MkDocs hook: resolve the page's code references (a stale one stops the build)."""
    from mkdocs.exceptions import PluginError

    root = Path(config["config_file_path"]).resolve().parent
    try:
        return rewrite(markdown, root)
    except CodeRefError as e:
        raise PluginError(f"{page.file.src_path}: {e}") from None
