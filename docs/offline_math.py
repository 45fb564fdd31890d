"""MathJax served with the site, so that the formulas render without a network.

The derivations are the point of these pages, and a page that fetches its maths
renderer from a CDN shows raw LaTeX in a lab without internet, on a train or in an
exam room. So the build ships MathJax itself:

* ``docs/package.json`` pins MathJax 3 and ``docs/package-lock.json`` its checksum;
  ``npm ci --prefix docs`` installs it into ``docs/node_modules/`` (ignored by git,
  excluded from the pages in ``mkdocs.yml``). Nothing of it is committed.
* :func:`on_files` (an MkDocs hook, listed under ``hooks:`` in ``mkdocs.yml``)
  adds the browser build (``es5/``: the ``tex-mml-chtml.js`` component, the TeX
  extensions it loads on demand, its fonts, the menu, the accessibility modules)
  and MathJax's licence to the site under ``assets/mathjax/``, and ``mkdocs.yml``
  loads ``assets/mathjax/tex-mml-chtml.js``; MathJax finds the rest relative to
  that file.
* Without the install the build stops and says which command to run.

``tests/test_offline_math.py`` opens built pages in headless Chromium with every
request off the local machine refused and checks that their formulas were typeset.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

PACKAGE = Path(__file__).resolve().parent / "node_modules" / "mathjax"
DEST = "assets/mathjax"
#: what the page loads, the folders it loads from on demand, and the licence
COMPONENT = "tex-mml-chtml.js"
FOLDERS = ("input", "output", "ui", "a11y", "sre")
INSTALL = "npm ci --prefix docs"


class MathJaxMissing(RuntimeError):
    """MathJax is not installed where the build looks for it."""


def mathjax_files(package: Path = PACKAGE) -> dict[str, Path]:
    """Site path (relative to the site root) -> file, for everything the site ships of MathJax.

    Raises:
        MathJaxMissing: ``package`` has no ``es5/tex-mml-chtml.js`` (not installed).
    """
    es5 = package / "es5"
    if not (es5 / COMPONENT).is_file():
        raise MathJaxMissing(
            f"MathJax is not installed for the docs build (no {COMPONENT} under "
            f"docs/node_modules/mathjax/es5): run `{INSTALL}` from the repository root "
            "(needs Node.js and npm), then build again"
        )
    out = {f"{DEST}/{COMPONENT}": es5 / COMPONENT, f"{DEST}/LICENSE": package / "LICENSE"}
    for folder in FOLDERS:
        for path in sorted((es5 / folder).rglob("*")):
            if path.is_file():
                out[f"{DEST}/{path.relative_to(es5).as_posix()}"] = path
    return out


def on_files(files: Any, config: Any, **kwargs: Any) -> Any:
    """MkDocs hook: add MathJax's files to the site (a missing install stops the build)."""
    from mkdocs.exceptions import PluginError
    from mkdocs.structure.files import File

    try:
        shipped = mathjax_files()
    except MathJaxMissing as e:
        raise PluginError(str(e)) from None
    for uri, path in shipped.items():
        files.append(File.generated(config, uri, abs_src_path=str(path)))
    return files
