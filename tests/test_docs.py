"""The documentation site: its code quotes, links, figures and examples must stay true.

* every code quote (a block titled ``path.py::Name``) must still be in the source;
* every page in the navigation exists, and every relative link and image resolves
  (what ``mkdocs build --strict`` would reject);
* the pages meant to be followed (getting started, the tutorial, ...) run as
  written: their Python blocks execute in order, a shell block that calls
  ``python -m minitorch_alexnet gradcheck`` and shows its output runs that
  command, and each ``text`` block after one of those matches the output (lines
  with "..." are skipped, numbers compared to 3 digits);
* the im2col figures can be redrawn from the reference im2col and col2im, the
  overrides table in backends.md is the one the registry generates, and the site
  builds with ``mkdocs build --strict`` when MkDocs is installed.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

import minitorch_alexnet as mt

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
LAYER_PAGES = [
    "conv2d",
    "relu",
    "maxpool2d",
    "avgpool",
    "batchnorm",
    "syncbatchnorm",
    "dropout",
    "linear",
    "lrn",
    "cross-entropy",
    "softmax",
]
RUNNABLE_PAGES = [
    "getting-started.md",
    "tutorial.md",
    "im2col.md",
    "backends.md",
    "assignment.md",
]


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


hooks = _load("docs_hooks", DOCS / "hooks.py")


def _pages() -> list[Path]:
    # docs/node_modules holds what `npm ci --prefix docs` installs (MathJax), not pages
    return sorted(p for p in DOCS.rglob("*.md") if "node_modules" not in p.parts)


# ---------------------------------------------------------------- code quotes
@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_code_quotes_resolve(page):
    text = page.read_text(encoding="utf-8")
    problems = []
    for ref in hooks.find_code_refs(text):
        try:
            hooks.resolve(ref, ROOT)
        except hooks.CodeRefError as e:
            problems.append(str(e))
    assert not problems, f"{page.relative_to(ROOT)}:\n" + "\n\n".join(problems)


@pytest.mark.parametrize("name", LAYER_PAGES)
def test_every_layer_page_quotes_its_forward_and_backward(name):
    refs = hooks.find_code_refs((DOCS / "layers" / f"{name}.md").read_text(encoding="utf-8"))
    quals = {r.qualname.rsplit(".", 1)[-1] for r in refs}
    assert {"forward", "backward"} <= quals, f"layers/{name}.md quotes only {sorted(quals)}"


def test_a_stale_quote_is_caught(tmp_path):
    """The checker must fail when the code under a quote changes."""
    (tmp_path / "m.py").write_text("def f(x):\n    y = x + 1\n    return y\n")
    good = '```python title="m.py::f"\ny = x + 1\nreturn y\n```\n'
    (ref,) = hooks.find_code_refs(good)
    assert hooks.resolve(ref, tmp_path) == (2, 3)
    assert 'title="m.py, f, lines 2-3" linenums="2"' in hooks.rewrite(good, tmp_path)
    for bad in (
        good.replace("x + 1", "x + 2"),  # the line changed
        good.replace("::f", "::g"),  # the function is gone
        good.replace("return y\n", "return y\nreturn y\n"),  # not consecutive in the file
    ):
        (ref,) = hooks.find_code_refs(bad)
        with pytest.raises(hooks.CodeRefError):
            hooks.resolve(ref, tmp_path)


# ---------------------------------------------------------------- navigation and links
def _nav_files() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text[text.index("\nnav:") :]
    return re.findall(r":\s*([\w./-]+\.md)\s*$", nav, re.MULTILINE)


def test_nav_lists_every_page_and_only_existing_ones():
    nav = _nav_files()
    assert len(nav) == len(set(nav))
    missing = [p for p in nav if not (DOCS / p).is_file()]
    assert not missing, f"mkdocs.yml lists pages that do not exist: {missing}"
    pages = {str(p.relative_to(DOCS)) for p in _pages()}
    assert pages == set(nav), f"pages not in the nav: {sorted(pages - set(nav))}"


_LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


@pytest.mark.parametrize("page", _pages(), ids=lambda p: str(p.relative_to(DOCS)))
def test_relative_links_and_images_resolve(page):
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.DOTALL)
    broken = []
    for target in _LINK.findall(text):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        if not path.is_file() or DOCS not in path.parents:
            broken.append(target)
    assert not broken, f"{page.relative_to(DOCS)} links to missing files: {broken}"


# ---------------------------------------------------------------- runnable pages
@dataclass
class Block:
    lang: str
    info: str
    body: str

    @property
    def title(self) -> str | None:
        m = re.search(r'title="([^"]+)"', self.info)
        return m.group(1) if m else None


def _blocks(text: str) -> list[Block]:
    fence = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
    return [Block(m.group(1), m.group(2), m.group(3)) for m in fence.finditer(text)]


_NUMBER = re.compile(r"[+-]?\d+\.\d+(?:e[+-]?\d+)?")


def _normalise(line: str) -> str:
    """Numbers to 3 significant digits, anything below 1e-6 to '~0' (round-off differs
    between machines), runs of spaces to one."""

    def fix(m: re.Match) -> str:
        v = float(m.group())
        return "~0" if abs(v) < 1e-6 else f"{v:.3g}"

    return " ".join(_NUMBER.sub(fix, line).split())


def _matches(expected: str, output: str) -> list[str]:
    """Lines of ``expected`` (except '...') missing from ``output``, both normalised."""
    got = {_normalise(line) for line in output.splitlines()}
    return [
        line
        for line in expected.splitlines()
        if line.strip() and line.strip() != "..." and _normalise(line) not in got
    ]


def _run_page(name: str, workdir: Path) -> None:
    from minitorch_alexnet.__main__ import main as cli

    namespace: dict = {"__name__": "__docs__"}
    output: str | None = None
    blocks = _blocks((DOCS / name).read_text(encoding="utf-8"))
    for i, block in enumerate(blocks):
        where = f"{name}, block {i + 1} ({block.lang} {block.info.strip()})"
        if block.lang == "python":
            if block.title and "::" in block.title:
                continue  # a quote of the source, checked above
            if block.title and block.title.endswith(".py"):
                (workdir / block.title).write_text(block.body, encoding="utf-8")
                for mod in [m for m, v in sys.modules.items() if _is_in(v, workdir)]:
                    del sys.modules[mod]  # the next import reads the new file
            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                try:
                    exec(compile(block.body, where, "exec"), namespace)
                except Exception as e:
                    raise AssertionError(f"{where} raised {type(e).__name__}: {e}") from e
            if block.title and block.title.startswith("test_"):
                module = _load(block.title[:-3], workdir / block.title)
                for fname in dir(module):
                    if fname.startswith("test_"):
                        getattr(module, fname)()
            output = buf.getvalue()
        elif block.lang == "bash":
            # commands whose output the page shows (a text block follows) are run
            shown = i + 1 < len(blocks) and blocks[i + 1].lang == "text"
            commands = [
                shlex.split(line, comments=True)[3:]
                for line in block.body.splitlines()
                if shown and line.startswith("python -m minitorch_alexnet gradcheck")
            ]
            output = None
            for argv in commands:
                for mod in [m for m, v in sys.modules.items() if _is_in(v, workdir)]:
                    del sys.modules[mod]
                buf = io.StringIO()
                with contextlib.redirect_stdout(buf):
                    status = cli(argv)
                output = buf.getvalue()
                assert status == (1 if "FAILED" in output else 0), (where, status, output)
        elif block.lang == "text" and output is not None:
            missing = _matches(block.body, output)
            assert not missing, (
                f"{where}: these lines are not in the output:\n"
                + "\n".join(missing)
                + f"\n--- output ---\n{output}"
            )
            output = None


def _is_in(module, folder: Path) -> bool:
    f = getattr(module, "__file__", None)
    return bool(f) and Path(f).resolve().parent == folder.resolve()


@pytest.mark.parametrize("page", RUNNABLE_PAGES)
def test_page_runs_as_written(page, tmp_path, monkeypatch):
    # subprocesses started by a page must import this checkout, whatever the folder
    path = os.environ.get("PYTHONPATH", "")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(ROOT), path])))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The pages' arrays are tiny: Numba's parallel threads would only add overhead
    # (a lot of it on a busy machine), so the kernels run on one thread here.
    import numba

    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        with mt.use_backend("numba"):
            mt.manual_seed(0)
            _run_page(page, tmp_path)
    finally:
        numba.set_num_threads(threads)


def test_tutorial_finds_the_bug_then_passes(tmp_path, monkeypatch):
    """The tutorial's story: the first avgpool.py fails gradcheck, the fixed one passes."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    files = [b for b in _blocks((DOCS / "tutorial.md").read_text()) if b.title == "avgpool.py"]
    assert len(files) == 2
    from minitorch_alexnet.testing import normal

    x = normal(0, (2, 3, 4, 4))
    results = []
    for block in files:
        namespace: dict = {}
        exec(compile(block.body, "avgpool.py", "exec"), namespace)
        results.append(mt.gradcheck(namespace["AvgPool2d"](2), x))
    assert not results[0].ok and results[1].ok
    bad = results[0].tensors[0]
    assert bad.analytic == pytest.approx(4 * bad.numeric)


# ---------------------------------------------------------------- figures and the build
def test_figures_redraw_from_the_reference_im2col(tmp_path):
    pytest.importorskip("matplotlib")
    figures = _load("make_figures", DOCS / "make_figures.py")
    ex = figures.example()
    # column 1 of X_col is the window of output (0, 1): rows 0..2, columns 1..3 of x
    assert (ex["cols"][:, 1] == ex["x"][0, 0, 0:3, 1:4].reshape(-1)).all()
    assert ex["counts"][0, 0].tolist() == [[1, 2, 2, 1], [2, 4, 4, 2], [2, 4, 4, 2], [1, 2, 2, 1]]
    assert figures.main(["--out", str(tmp_path)]) == 0
    for name in figures.FIGURES:
        assert (tmp_path / name).stat().st_size > 1000
        assert (DOCS / "img" / name).is_file(), f"docs/img/{name} is not committed"


def test_mkdocs_build_strict(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    if not (DOCS / "node_modules" / "mathjax" / "es5").is_dir():
        pytest.skip("MathJax is not installed for the docs build: npm ci --prefix docs")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    html = (tmp_path / "layers" / "conv2d" / "index.html").read_text(encoding="utf-8")
    assert "minitorch_alexnet/nn/conv.py, Conv2d.forward, line" in html


def test_backends_page_has_the_generated_overrides_table():
    """docs/backends.md's table of overrides is exactly what the registry gives now."""
    from minitorch_alexnet.backend import table

    command = "python -m minitorch_alexnet.backend.table --write"
    assert table.PAGE == DOCS / "backends.md", f"{command} writes {table.PAGE}"
    page = (DOCS / "backends.md").read_text(encoding="utf-8")
    assert table.BEGIN in page and table.END in page, (
        f"docs/backends.md lacks the overrides table's markers {table.BEGIN!r} and "
        f"{table.END!r}; put them back and run `{command}`"
    )
    assert table.replace_table(page) == page, (
        f"the overrides table in docs/backends.md is out of date: run `{command}`"
    )
    # and a stale table is caught: a row gone, or a row for a name that is not there
    row = next(line for line in page.splitlines() if line.startswith("| `conv2d_forward` |"))
    extra = "| `conv2d_gone` | `minitorch_alexnet/nn/conv.py` | the reference | the reference |"
    for stale in (page.replace(row + "\n", ""), page.replace(row, f"{row}\n{extra}")):
        assert stale != page and table.replace_table(stale) == page


def test_getting_started_has_the_readme_commands():
    """The install-and-run commands of README.md's "The two commands" are on the page."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## The two commands", 1)[1].split("\n## ", 1)[0]
    commands = [b.body.strip() for b in _blocks(section) if b.lang == "bash"]
    assert len(commands) >= 2
    page = (DOCS / "getting-started.md").read_text(encoding="utf-8")
    missing = [c for c in commands if c not in page]
    assert not missing, f"docs/getting-started.md lacks README's commands: {missing}"
