"""The docs' formulas render offline: MathJax ships with the site (docs/offline_math.py).

* the built site loads no script, stylesheet or font from another host;
* in headless Chromium, with every request that leaves the local machine refused,
  the derivation pages come out typeset: every formula is a MathJax container, none
  is left as raw LaTeX, none is a TeX error.

They need MkDocs and MathJax's npm install (``npm ci --prefix docs``); the browser
check needs Chromium (``chromium`` or ``chromium-browser`` on the PATH, or
``$CHROMIUM``). Each skips, saying why, when its tools are missing.
"""

from __future__ import annotations

import functools
import http.server
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DERIVATION_PAGES = [
    "layers/conv2d",
    "layers/maxpool2d",
    "layers/batchnorm",
    "layers/cross-entropy",
    "layers/lrn",
    "im2col",
    "tutorial",
    "saliency",
]


def _offline_math():
    spec = importlib.util.spec_from_file_location(
        "docs_offline_math", ROOT / "docs/offline_math.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_missing_install_names_the_command(tmp_path):
    om = _offline_math()
    with pytest.raises(om.MathJaxMissing, match=re.escape("npm ci --prefix docs")):
        om.mathjax_files(tmp_path / "mathjax")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    pytest.importorskip("mkdocs")
    pytest.importorskip("material")
    try:
        _offline_math().mathjax_files()
    except RuntimeError as e:
        pytest.skip(str(e))
    out = tmp_path_factory.mktemp("site")
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return out


_EXTERNAL = re.compile(
    r"""<(?:script|link|img)\b[^>]*\b(?:src|href)=["'](?:https?:)?//[^"']+["']""", re.IGNORECASE
)


def test_the_site_loads_nothing_from_another_host(site):
    assert (site / "assets/mathjax/tex-mml-chtml.js").is_file()
    assert (site / "assets/mathjax/output/chtml/fonts/woff-v2/MathJax_Main-Regular.woff").is_file()
    assert (site / "assets/mathjax/LICENSE").is_file()
    pages = sorted(site.rglob("*.html"))
    assert len(pages) > 10
    loads = {
        str(p.relative_to(site)): _EXTERNAL.findall(p.read_text(encoding="utf-8")) for p in pages
    }
    assert not {k: v for k, v in loads.items() if v}
    conv = (site / "layers/conv2d/index.html").read_text(encoding="utf-8")
    assert 'src="../../assets/mathjax/tex-mml-chtml.js"' in conv


def _chromium() -> str:
    for name in (os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.skip("no Chromium to check the rendering with (install chromium or set $CHROMIUM)")


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:  # keep the test output clean
        pass


def _rendered(browser: str, url: str, profile: Path) -> str:
    """The page's DOM after its scripts ran, every non-local request refused.

    Chromium sends every request to a proxy at a port where nothing listens, except
    those to the local machine (its default bypass list), so nothing can come from
    the network; the virtual time budget lets MathJax finish before the DOM is dumped.
    """
    argv = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--proxy-server=http://127.0.0.1:9",
        "--virtual-time-budget=20000",
        "--dump-dom",
        url,
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


_FORMULA = re.compile(r'<(span|div) class="arithmatex">(.*?)</\1>', re.DOTALL)


def test_derivation_pages_render_their_maths_with_the_network_off(site, tmp_path):
    browser = _chromium()
    handler = functools.partial(_Quiet, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        port = server.server_address[1]
        for page in DERIVATION_PAGES:
            dom = _rendered(browser, f"http://127.0.0.1:{port}/{page}/", tmp_path / "profile")
            formulas = [body for _, body in _FORMULA.findall(dom)]
            assert len(formulas) >= 3, f"{page}: only {len(formulas)} formulas found"
            raw = [f for f in formulas if "<mjx-container" not in f]
            assert not raw, f"{page}: {len(raw)} formulas left as raw LaTeX, e.g. {raw[0][:80]}"
            assert "<mjx-merror" not in dom, f"{page}: MathJax reports a TeX error"
    finally:
        server.shutdown()
        server.server_close()
