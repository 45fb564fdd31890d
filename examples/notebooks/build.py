"""Build the notebooks of this folder, or check that the committed ones are up to date.

    python examples/notebooks/build.py            # write them
    python examples/notebooks/build.py --check    # exit 1 if a committed one differs

What it owns:

* ``batchnorm_assignment.ipynb``, whole: generated from the released handout of
  ``examples/assignments/batchnorm`` (``minitorch_alexnet.assignment.release``, the
  same stubs the students' folder gets), never edited by hand. Change the
  assignment, then run this script.
* in every notebook, the first two cells: the title cell's "Open in Colab" badge
  and the setup cell, which installs the package only when it cannot be imported.
  The rest of ``layer_walkthrough.ipynb`` and ``cifar10_quick_run.ipynb`` is written
  by hand in Jupyter.
* every notebook is stored without outputs and execution counts, with stable cell
  ids, so a diff shows what changed in the text only.

The Colab badge and the install command come from one setting: the repository's
public URL in ``pyproject.toml``, ``[project.urls]`` (the key ``Repository``, else
``Source`` or ``Homepage``). Colab opens notebooks from GitHub, so a
``https://github.com/OWNER/NAME`` URL gives each notebook a badge pointing at its
file on the ``main`` branch and a setup cell that installs from that repository;
without such a URL there is no badge, and the setup cell installs
``minitorch-alexnet`` from the package index.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

import nbformat

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
sys.path.insert(0, str(ROOT))

ASSIGNMENT = ROOT / "examples" / "assignments" / "batchnorm"
BATCHNORM = "batchnorm_assignment.ipynb"
NOTEBOOKS = ("layer_walkthrough.ipynb", BATCHNORM, "cifar10_quick_run.ipynb")
BRANCH = "main"
_BADGE = re.compile(r"^\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\n*", re.MULTILINE)


def repository_url(pyproject: Path = ROOT / "pyproject.toml") -> str | None:
    """The repository's public GitHub URL from ``[project.urls]``, or None when none is set."""
    urls = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {}).get("urls", {})
    for key in ("Repository", "Source", "Homepage"):
        url = str(urls.get(key, "")).rstrip("/")
        if re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+", url):
            return url.removesuffix(".git")
    return None


def badge(name: str, url: str | None) -> str:
    """The Markdown of the "Open in Colab" badge of notebook ``name`` ("" without a URL)."""
    if url is None:
        return ""
    path = url.removeprefix("https://github.com/")
    link = (
        f"https://colab.research.google.com/github/{path}/blob/{BRANCH}/examples/notebooks/{name}"
    )
    return f"[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]({link})"


SETUP = """# Setup: make minitorch_alexnet importable. Nothing is installed when it already is.
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

PACKAGE = INSTALL  # what pip installs when the package is missing
if importlib.util.find_spec("minitorch_alexnet") is None:
    checkout = next((p for p in Path.cwd().parents if (p / "minitorch_alexnet").is_dir()), None)
    if checkout is not None:  # opened inside a source checkout: use that code as it is
        sys.path.insert(0, str(checkout))
        os.environ["PYTHONPATH"] = os.pathsep.join(
            filter(None, [str(checkout), os.environ.get("PYTHONPATH")])
        )
    else:  # Colab, or a fresh environment
        subprocess.check_call([sys.executable, "-m", "pip", "install", "--quiet", PACKAGE])
import minitorch_alexnet as mt  # noqa: E402 (importable only now)

print(f"minitorch_alexnet from {Path(mt.__file__).parent}, backend {mt.get_backend().name}")"""


def setup_cell(url: str | None) -> str:
    """The first code cell: make ``minitorch_alexnet`` importable, installing it only if needed."""
    spec = f"minitorch-alexnet[test,plot] @ git+{url}" if url else "minitorch-alexnet[test,plot]"
    return SETUP.replace("INSTALL", json.dumps(spec))


def _clean(nb: nbformat.NotebookNode, name: str) -> nbformat.NotebookNode:
    """No outputs, no execution counts, stable ids, the standard kernel."""
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{Path(name).stem}-{i}"
        cell["metadata"] = {}
        if cell["cell_type"] == "code":
            cell["outputs"] = []
            cell["execution_count"] = None
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
    }
    nb.nbformat, nb.nbformat_minor = 4, 5
    return nb


def with_header(nb: nbformat.NotebookNode, name: str, url: str | None) -> nbformat.NotebookNode:
    """``nb`` with the badge in its title cell (cell 0) and a fresh setup cell (cell 1)."""
    title, setup = nb.cells[0], nb.cells[1]
    if title["cell_type"] != "markdown" or setup["cell_type"] != "code":
        raise ValueError(f"{name}: cell 1 must be the title (Markdown), cell 2 the setup (code)")
    text = _BADGE.sub("", title["source"])
    first, _, rest = text.partition("\n")
    mark = badge(name, url)
    title["source"] = f"{first}\n\n{mark}\n{rest}".rstrip() if mark else text.rstrip()
    title["source"] = re.sub(r"\n{3,}", "\n\n", title["source"])
    setup["source"] = setup_cell(url)
    return _clean(nb, name)


def _module_parts(text: str) -> tuple[str, str]:
    """A module's docstring (without quotes) and the code after it."""
    m = re.match(r'\s*"""(.*?)"""\n', text, re.DOTALL)
    if not m:
        raise ValueError("the handout module must start with a docstring")
    return m.group(1).strip(), text[m.end() :].strip() + "\n"


def batchnorm_notebook(handout: Path, title: str) -> nbformat.NotebookNode:
    """The assignment as a notebook, from a released handout folder."""
    v4 = nbformat.v4
    module = (handout / "batchnorm.py").read_text(encoding="utf-8")
    doc, _ = _module_parts(module)
    support = {
        p.name: p.read_text(encoding="utf-8")
        for p in sorted(handout.iterdir())
        if p.is_file() and p.name != "batchnorm.py"
    }
    doc = doc.split("\n\n", 1)[1] if "\n\n" in doc else ""  # the first line is the title
    return v4.new_notebook(
        cells=[
            v4.new_markdown_cell(
                f"# Assignment: {title}\n\n"
                "Write the forward and backward passes of batch normalisation, then let the "
                "grading tests check them against the library's `nn.BatchNorm2d` and against "
                "finite differences."
            ),
            v4.new_code_cell(""),
            v4.new_markdown_cell(
                "## The handout\n\nThe cell below writes your module, `batchnorm.py`, into "
                "the notebook's folder. Fill in the two methods that raise "
                "`NotImplementedError`, then run the cell again (it saves the file) and the "
                "checks after it.\n\nFrom the handout's instructions:\n\n"
                + "\n".join(f"> {line}" if line else ">" for line in doc.splitlines())
            ),
            v4.new_code_cell(f"%%writefile batchnorm.py\n{module.strip()}"),
            v4.new_markdown_cell(
                "## The tests you are given\n\nThe next cells save the grading tests, their "
                "pytest settings and the assignment's manifest next to your module. Read the "
                "tests if you like; leave them as they are and run each cell once."
            ),
            *(
                v4.new_code_cell(f"%%writefile {name}\n{text.strip()}")
                for name, text in support.items()
            ),
            v4.new_markdown_cell(
                "## Task 1: the forward pass\n\nEach test prints what is wrong: the tensor, "
                "the index, your value and the reference's. Run it after every change of "
                "`batchnorm.py` (run the module's cell first)."
            ),
            v4.new_code_cell(
                "!{sys.executable} -m pytest -q -p no:cacheprovider --tb=short -m task1"
            ),
            v4.new_markdown_cell(
                "## Task 2: the backward pass\n\nDerive $dx$ first (the documentation's "
                "BatchNorm page walks through it). The finite-difference check needs no "
                "reference layer: it perturbs each input and compares the change of the "
                "loss with your gradient."
            ),
            v4.new_code_cell(
                "!{sys.executable} -m pytest -q -p no:cacheprovider --tb=short -m task2\n"
                "!{sys.executable} -m minitorch_alexnet gradcheck batchnorm:make_layer"
            ),
            v4.new_markdown_cell(
                "## Hand it in\n\nWhen every test passes, hand in `batchnorm.py` (the "
                "file the module's cell wrote). The grader runs these tests and a few more."
            ),
        ]
    )


def build_all(url: str | None = None) -> dict[str, str]:
    """Notebook name -> its JSON text, as this script writes it."""
    from minitorch_alexnet.assignment import load, release

    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = release(ASSIGNMENT, Path(tmp) / "handout")
        title = load(ASSIGNMENT).title
        nb = with_header(batchnorm_notebook(folder, title), BATCHNORM, url)
    out[BATCHNORM] = nbformat.writes(nb) + "\n"
    for name in NOTEBOOKS:
        if name != BATCHNORM:
            nb = nbformat.read(HERE / name, as_version=4)
            out[name] = nbformat.writes(with_header(nb, name, url)) + "\n"
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Build the notebooks, or check the committed ones.")
    p.add_argument("--check", action="store_true", help="only compare; exit 1 when one differs")
    args = p.parse_args(argv)
    built = build_all(repository_url())
    stale = [
        n
        for n, text in built.items()
        if not (HERE / n).is_file() or (HERE / n).read_text(encoding="utf-8") != text
    ]
    if args.check:
        for name in stale:
            print(f"{name} is out of date: run python examples/notebooks/build.py", file=sys.stderr)
        return 1 if stale else 0
    for name in stale:
        (HERE / name).write_text(built[name], encoding="utf-8")
        print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
