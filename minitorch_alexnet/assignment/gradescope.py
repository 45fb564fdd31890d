"""Gradescope's autograder: a zip with ``setup.sh``, ``run_autograder`` and what they need.

Gradescope builds an image from the zip once (``setup.sh``), then for every submission
copies the student's files into ``/autograder/submission`` and runs
``/autograder/source/run_autograder``, which must leave
``/autograder/results/results.json``. Ours calls::

    python3 -m minitorch_alexnet assignment grade assignment /autograder/submission \\
        --results /autograder/results/results.json

The zip bundles this library's source (it is not on PyPI), installed by ``setup.sh``
with its test dependencies (pytest, Hypothesis, pytest-timeout), and the assignment
folder without its solution modules, planted bugs and private files, its manifest
without the ``[private]`` table: grading never needs them.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from . import manifest as _manifest
from .grading import HANDOUT
from .handout import folder_files, graded_files, strip_solutions

__all__ = ["RUN_AUTOGRADER", "SETUP_SH", "autograder_zip", "library_files", "write_library"]

SETUP_SH = """#!/usr/bin/env bash
# Gradescope runs this once, when it builds the autograder's image.
set -euo pipefail
cd /autograder/source
apt-get update -qq && apt-get install -y -qq python3 python3-pip python3-venv > /dev/null
python3 -m venv /autograder/venv
/autograder/venv/bin/pip install --quiet ./library pytest hypothesis pytest-timeout
"""

RUN_AUTOGRADER = """#!/usr/bin/env bash
# Gradescope runs this for every submission; it must write results/results.json.
cd /autograder/source
mkdir -p /autograder/results
/autograder/venv/bin/python -m minitorch_alexnet assignment grade assignment \\
    /autograder/submission --results /autograder/results/results.json
"""

PYPROJECT = """[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "minitorch-alexnet"
version = "{version}"
requires-python = ">=3.10"
dependencies = {dependencies}

[project.optional-dependencies]
test = ["pytest>=7", "hypothesis>=6.80", "pytest-timeout>=2.1"]

[tool.setuptools.packages.find]
include = ["minitorch_alexnet*"]
"""


def _dependencies() -> str:
    """The library's runtime requirements, as a TOML list: from the checkout's
    pyproject.toml, else from the installed distribution's metadata."""
    import json

    import minitorch_alexnet

    from .manifest import tomllib

    pyproject = Path(minitorch_alexnet.__file__).resolve().parent.parent / "pyproject.toml"
    deps: list[str] = []
    if pyproject.is_file():
        deps = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]["dependencies"]
    else:
        from importlib import metadata

        try:
            deps = [r for r in metadata.requires("minitorch-alexnet") or [] if "extra ==" not in r]
        except metadata.PackageNotFoundError:
            deps = ["numpy>=1.24", "numba>=0.58", "tqdm>=4.60"]
    return json.dumps(deps)


def library_files() -> list[tuple[str, bytes]]:
    """This library as an installable source tree: (relative path, contents) pairs,
    ``pyproject.toml`` first. The package alone: no examples, no assignments."""
    import minitorch_alexnet

    package = Path(minitorch_alexnet.__file__).resolve().parent
    text = PYPROJECT.format(version=minitorch_alexnet.__version__, dependencies=_dependencies())
    out = [("pyproject.toml", text.encode())]
    out += [(f"minitorch_alexnet/{p.relative_to(package).as_posix()}", p.read_bytes())
            for p in folder_files(package)]  # fmt: skip
    return out


def write_library(dest: str | Path) -> Path:
    """Write :func:`library_files` into ``dest`` (students: ``pip install "./library[test]"``)."""
    dest = Path(dest)
    for rel, data in library_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return dest


def autograder_zip(src: str | Path, out: str | Path) -> Path:
    """Write Gradescope's autograder zip for the assignment folder ``src``; return its path."""
    m = _manifest.load(src)
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        for name, text in (("setup.sh", SETUP_SH), ("run_autograder", RUN_AUTOGRADER)):
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o755 << 16
            z.writestr(info, text)
        for rel, data in library_files():
            z.writestr(f"library/{rel}", data)
        for p in graded_files(m):  # no solution, bug patch, private file or [private] table
            z.write(p, f"assignment/{p.relative_to(m.root).as_posix()}")
        z.writestr(f"assignment/{_manifest.MANIFEST}", m.public_toml(grading=True))
        for mod in m.modules:  # the given code, so that copies of it are not flagged
            text = strip_solutions((m.root / f"{mod}.py").read_text(encoding="utf-8"), mod, m)
            z.writestr(f"assignment/{HANDOUT}/{mod}.py", text)
    return out
