"""Grading setup: which submission to grade, and Hypothesis settings for fair, repeatable runs.

    python -m pytest examples/assignment                                    # the handout
    python -m pytest examples/assignment --student path/to/submission/      # a submission
    python -m pytest examples/assignment --student examples/assignment/solution

``--student`` takes a folder holding ``student_batchnorm.py`` or the file itself;
``$STUDENT`` does the same when the option is not given.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest
from hypothesis import Phase, settings

HERE = Path(__file__).resolve().parent
MODULE = "student_batchnorm"

# The same cases on every run (derandomized), so every submission meets the same inputs;
# no deadline, since the first call of a compiled kernel may take a moment; no "explain"
# phase, which reruns a failing case many times (seconds per failing test) to annotate it.
settings.register_profile(
    "grading",
    derandomize=True,
    deadline=None,
    max_examples=20,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.shrink],
)
settings.load_profile("grading")


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--student",
        default=None,
        help=f"folder with {MODULE}.py (or the file) to grade; default: the handout",
    )


@pytest.fixture(scope="session")
def student(request: pytest.FixtureRequest):
    """The submission's module, loaded from its file (whatever else is on sys.path)."""
    where = request.config.getoption("--student") or os.environ.get("STUDENT") or HERE
    path = Path(where)
    if path.is_dir():
        path = path / f"{MODULE}.py"
    if not path.is_file():
        pytest.exit(f"no submission at {path}", returncode=2)
    spec = importlib.util.spec_from_file_location(MODULE, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
