"""The README's quick start runs as written (a newcomer pastes it first)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_quick_start_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README.md has no python block"
    exec(compile(blocks[0], str(README), "exec"), {"__name__": "__readme__"})
    out = capsys.readouterr().out
    assert "gradcheck PASSED" in out
    assert "Total params: 62,397,480" in out
