"""docs/tutorial.md, followed the way a student follows it: in real Python processes.

A student saves each file block where the page says (``avgpool.py``, later the
fixed ``avgpool.py``, ``test_avgpool.py``) and pastes the other Python blocks into
a session started in that folder. Two ways are checked, each with fresh processes
and nothing purged from ``sys.modules`` between blocks:

* **one session**: every block, in order, in one interpreter (a module imported
  early stays imported: a block that needs the saved file again must reload it);
* **a new session per block**: each block in its own ``python -c`` (a block that
  uses a name must import it).

The shell commands whose output the page shows run too, with the exit status the
output implies, and ``python -m pytest test_avgpool.py`` runs once the test file is
saved. The PyTorch block also runs where PyTorch cannot be imported, and must say
that it skipped the comparison.

``tests/test_docs.py`` checks the page's printed output against its text blocks.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# another version of the page can be checked the same way (a draft, an older commit's)
PAGE = Path(os.environ.get("TUTORIAL_PAGE", ROOT / "docs" / "tutorial.md"))
MARK = "---- end of block {} ----"

# One interpreter for the whole page: the steps arrive as JSON on stdin, file blocks
# are written where the page says, code blocks run in one namespace like a REPL's.
SESSION = f"""
import json, sys, traceback
namespace = {{"__name__": "__main__"}}
for i, (kind, name, body) in enumerate(json.load(sys.stdin)):
    if kind == "file":
        with open(name, "w", encoding="utf-8") as f:
            f.write(body)
        continue
    try:
        exec(compile(body, f"<block {{i + 1}}>", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"block {{i + 1}} failed")
    print({MARK!r}.format(i + 1), flush=True)
"""


@dataclass
class Step:
    kind: str  # "file", "python" or "shell"
    name: str  # the file's name, or "" for code
    body: str
    shows_output: bool = False  # a text block follows (shell commands: their exit status)


def steps(page_text: str) -> list[Step]:
    """The page's file blocks, Python blocks and shown shell commands, in order."""
    fence = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
    blocks = [(m.group(1), m.group(2), m.group(3)) for m in fence.finditer(page_text)]
    out = []
    for i, (lang, info, body) in enumerate(blocks):
        title = re.search(r'title="([^"]+)"', info)
        shown = i + 1 < len(blocks) and blocks[i + 1][0] == "text"
        if lang == "python" and title and "::" not in title.group(1):
            out.append(Step("file", title.group(1), body))
        elif lang == "python" and not title:
            out.append(Step("python", "", body, shown))
        elif lang == "bash":
            out += [
                Step("shell", "", line, shown)
                for line in body.splitlines()
                if line.startswith("python -m minitorch_alexnet")
            ]
    return out


def _env(extra_path: Path | None = None) -> dict[str, str]:
    path = [str(extra_path)] if extra_path else []
    path += [str(ROOT), os.environ.get("PYTHONPATH", "")]
    # the arrays are tiny: one Numba thread avoids thread start-up on a busy machine
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, path)),
        "NUMBA_NUM_THREADS": "1",
    }


def _run(argv: list[str], cwd: Path, *, stdin: str | None = None, env=None):
    return subprocess.run(
        argv, cwd=cwd, input=stdin, capture_output=True, text=True, env=env or _env(), timeout=600
    )


def run_in_one_session(page_text: str, folder: Path) -> None:
    """Every code block in one interpreter, file blocks saved on the way.

    Raises:
        AssertionError: a block raised; the message has its traceback.
    """
    todo = [(s.kind, s.name, s.body) for s in steps(page_text) if s.kind in ("file", "python")]
    proc = _run([sys.executable, "-c", SESSION], folder, stdin=json.dumps(todo))
    assert proc.returncode == 0, f"one session: {proc.stderr[-3000:]}"


def run_block_by_block(page_text: str, folder: Path) -> dict[str, str]:
    """Each code block and shell command in a new process, file blocks saved on the way.

    Returns:
        The output of each Python block, keyed by its first 60 characters.
    Raises:
        AssertionError: a block raised, or a command's exit status is not the one
            its shown output implies (1 for FAILED, else 0).
    """
    outputs = {}
    for step in steps(page_text):
        if step.kind == "file":
            (folder / step.name).write_text(step.body, encoding="utf-8")
            if step.name.startswith("test_"):
                argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", step.name]
                proc = _run(argv, folder)
                assert proc.returncode == 0, f"pytest {step.name}: {proc.stdout[-3000:]}"
        elif step.kind == "python":
            proc = _run([sys.executable, "-c", step.body], folder)
            assert proc.returncode == 0, f"new session:\n{step.body}\n{proc.stderr[-3000:]}"
            outputs[step.body[:60]] = proc.stdout
        elif step.shows_output:
            proc = _run([sys.executable, *shlex.split(step.body, comments=True)[1:]], folder)
            expected = 1 if "FAILED" in proc.stdout else 0
            assert proc.returncode == expected, f"{step.body}: {proc.returncode}\n{proc.stdout}"
    return outputs


def test_the_tutorial_runs_in_one_session(tmp_path):
    run_in_one_session(PAGE.read_text(encoding="utf-8"), tmp_path)


def test_the_tutorial_runs_block_by_block_in_new_sessions(tmp_path):
    text = PAGE.read_text(encoding="utf-8")
    run_block_by_block(text, tmp_path)
    # the PyTorch block where PyTorch cannot be imported: it must say it skipped
    (torch_block,) = [s.body for s in steps(text) if "import torch" in s.body]
    blocker = tmp_path / "no_torch" / "torch"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('no torch here')\n")
    proc = _run([sys.executable, "-c", torch_block], tmp_path, env=_env(blocker.parent))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "skipped" in proc.stdout, f"no word of the skipped comparison: {proc.stdout!r}"


# ---------------------------------------------------------------- the checks can fail
STALE = """
```python title="m.py"
VALUE = 1
```

```python
from m import VALUE

assert VALUE == 1
```

```python title="m.py"
VALUE = 2
```

```python
from m import VALUE

assert VALUE == 2, "stale module"
```
"""


def test_one_session_keeps_the_first_import_of_a_module(tmp_path):
    """A page that imports a changed file again without reloading it fails in one
    session (as it does for a student) and passes block by block."""
    with pytest.raises(AssertionError, match="stale module"):
        run_in_one_session(STALE, tmp_path)
    run_block_by_block(STALE, tmp_path)


def test_a_block_that_relies_on_an_earlier_one_fails_in_a_new_session(tmp_path):
    page = "```python\nimport math\n```\n\n```python\nprint(math.pi)\n```\n"
    run_in_one_session(page, tmp_path)
    with pytest.raises(AssertionError, match="NameError"):
        run_block_by_block(page, tmp_path)
