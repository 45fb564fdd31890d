"""The table of overridable functions and each backend's override, for docs/backends.md.

    python -m minitorch_alexnet.backend.table            # print the table
    python -m minitorch_alexnet.backend.table --write    # refresh it in docs/backends.md

It is made from the registry itself: the references, and the ``OVERRIDES`` tables of
the backend packages, read without importing Numba or CuPy (so it runs anywhere).
``tests/test_docs.py`` fails when the page's table differs from it.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from . import _location, dispatch

BACKEND_PACKAGES = {"numba": "numba", "cupy": "cuda"}  # backend name -> package here
BEGIN = "<!-- overrides table: python -m minitorch_alexnet.backend.table --write -->"
END = "<!-- end of the overrides table -->"
PAGE = Path(__file__).resolve().parent.parent.parent / "docs" / "backends.md"


def _promise_text(promise: dispatch.Promise) -> str:
    if promise.exact:
        return "exact"
    rtol32 = promise.tolerance.get("float32", (None,))[0]
    return f"to rounding (float32 rtol {rtol32:g})"


def render_table() -> str:
    """A Markdown table: one row per overridable name, one column per backend."""
    manifests = {
        backend: importlib.import_module(f"{__package__}.{package}").OVERRIDES
        for backend, package in BACKEND_PACKAGES.items()
    }
    rows = [
        "| name | reference (what `numpy` runs) | `numba` | `cupy` |",
        "| --- | --- | --- | --- |",
    ]
    for name, fn in sorted(dispatch.references().items(), key=lambda kv: _location(kv[1])):
        cells = [f"`{name}`", f"`{_location(fn).path.removeprefix('minitorch_alexnet/')}`"]
        for backend, package in BACKEND_PACKAGES.items():
            entry = manifests[backend].get(name)
            if entry is None:
                cells.append("the reference")
            else:
                module, promise = entry
                path = f"backend/{package}/{module}.py"
                cells.append(f"`{path}`, {_promise_text(promise)}")
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def replace_table(page: str) -> str:
    """``page`` with the text between the BEGIN and END markers made the current table."""
    if BEGIN not in page or END not in page:
        raise ValueError(f"the page has no overrides table between {BEGIN!r} and {END!r}")
    head, rest = page.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{BEGIN}\n\n{render_table()}\n{END}{tail}"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--write", action="store_true", help=f"refresh the table in {PAGE.name}")
    args = p.parse_args(argv)
    if args.write:
        PAGE.write_text(replace_table(PAGE.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(render_table(), end="")


if __name__ == "__main__":
    main()
