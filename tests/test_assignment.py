"""minitorch_alexnet.assignment, the parts that need no grading run: solution regions
and release, the manifest, the static forbidden-use scan and pasted-copy detection,
and each shipped assignment's handout and its solution's equality with the library."""

from __future__ import annotations

import ast
import inspect
import textwrap
from pathlib import Path

import pytest

from minitorch_alexnet.assignment import ManifestError, ReleaseError, load, release
from minitorch_alexnet.assignment.equivalence import compare_with_library
from minitorch_alexnet.assignment.forbidden import resolve, scan_source
from minitorch_alexnet.assignment.handout import (
    MIN_LEAK,
    find_regions,
    hidden_test_files,
    leaked_lines,
    solution_lines,
    strip_solutions,
)
from minitorch_alexnet.assignment.pasted import find_pasted
from minitorch_alexnet.assignment.scaffold import LAYERS, ScaffoldError, new
from minitorch_alexnet.nn import linear

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = sorted(p.parent for p in (ROOT / "examples" / "assignments").glob("*/assignment.toml"))


def test_five_assignments_are_shipped():
    names = {p.name for p in SHIPPED}
    assert {"relu_linear", "batchnorm", "conv2d", "maxpool2d", "sgd"} <= names


# ---------------------------------------------------------------- regions and stubs
SOURCE = '''
class Layer:
    def forward(self, x):
        """Students read this."""
        # BEGIN SOLUTION
        y = x * 2  # the answer
        return y
        # END SOLUTION

    def backward(self, g):
        if g is None:
            # BEGIN SOLUTION task2
            return 0
            # END SOLUTION
        return g


# BEGIN SOLUTION
HELPER = 3
# END SOLUTION
'''


def test_regions_become_stubs_at_their_indentation_naming_the_task():
    out = strip_solutions(SOURCE)
    assert "x * 2" not in out and "the answer" not in out and "HELPER" not in out
    assert '        raise NotImplementedError("task1: write Layer.forward")' in out
    assert '            raise NotImplementedError("task2: write Layer.backward")' in out
    assert "# task1: write this part: here" in out  # module level: a comment, not a raise
    assert '"""Students read this."""' in out
    ast.parse(out)
    regions = find_regions(SOURCE)
    assert [(r.where, r.task) for r in regions] == [
        ("Layer.forward", "task1"),
        ("Layer.backward", "task2"),
        ("", "task1"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        ("def f():\n    # BEGIN SOLUTION\n    return 1\n", "never closed"),
        ("def f():\n    return 1\n    # END SOLUTION\n", "without a BEGIN"),
        ("# BEGIN SOLUTION\n# BEGIN SOLUTION\n# END SOLUTION\n", "inside the region"),
    ],
)
def test_bad_markers_are_refused(text, message):
    with pytest.raises(ReleaseError, match=message):
        strip_solutions(text)


def _folder(tmp_path: Path, solution: str, tests: dict[str, str] | None = None) -> Path:
    src = tmp_path / "src"
    src.mkdir()
    (src / "assignment.toml").write_text(
        'title = "t"\nmodule = "layer"\n[[tasks]]\nname = "task1"\ntitle = "all"\n'
        '[private]\nhidden = ["test_hidden.py"]\n'
    )
    (src / "layer.py").write_text(textwrap.dedent(solution))
    for name, text in (tests or {"test_layer.py": "def test_x():\n    pass\n"}).items():
        (src / name).write_text(text)
    return src


def test_release_refuses_a_non_empty_out_unless_forced(tmp_path):
    src = _folder(
        tmp_path, "def f():\n    # BEGIN SOLUTION\n    return 41 + 1\n    # END SOLUTION\n"
    )
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ReleaseError, match="not empty"):
        release(src, out)
    assert (out / "notes.txt").read_text() == "mine"
    assert release(src, out, force=True) == out.resolve()
    assert not (out / "notes.txt").exists() and (out / "layer.py").exists()
    with pytest.raises(ReleaseError, match="inside the assignment folder"):
        release(src, src / "handout")


def test_release_refuses_to_leak_a_solution_line_through_a_docstring(tmp_path):
    src = _folder(
        tmp_path,
        '''
        def f(x):
            """Hint: return x * 2 + 1 (oops)."""
            # BEGIN SOLUTION
            return x * 2 + 1 (oops)
            # END SOLUTION
        ''',
    )
    with pytest.raises(ReleaseError, match=r"return x \* 2 \+ 1"):
        release(src, tmp_path / "out")


def test_release_refuses_a_hidden_test_in_a_handed_out_file(tmp_path):
    test = 'import pytest\n\n@pytest.mark.visibility("hidden")\ndef test_x():\n    pass\n'
    src = _folder(tmp_path, "X = 1\n", {"test_layer.py": test})
    with pytest.raises(ReleaseError, match="hidden"):
        release(src, tmp_path / "out")


def test_manifest_errors_say_what_is_wrong(tmp_path):
    with pytest.raises(ManifestError, match="no assignment.toml"):
        load(tmp_path)
    (tmp_path / "assignment.toml").write_text('title = "t"\nmodule = "missing"\n')
    with pytest.raises(ManifestError, match="missing.py is not in"):
        load(tmp_path)
    (tmp_path / "assignment.toml").write_text('module = "m"\ncolour = "red"\n')
    with pytest.raises(ManifestError, match="unknown keys"):
        load(tmp_path)


# ---------------------------------------------------------------- the shipped handouts
@pytest.mark.parametrize("src", SHIPPED, ids=lambda p: p.name)
def test_handout_has_no_solution_line_and_no_hidden_test(src, tmp_path):
    m = load(src)
    out = release(src, tmp_path / "handout")
    assert leaked_lines(src, out) == []
    handout = {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()}
    hidden = [p.relative_to(src).as_posix() for p in hidden_test_files(m)]
    assert hidden and not set(hidden) & handout, "every folder has hidden tests, left out"
    for p in out.rglob("*.py"):
        text = p.read_text()
        assert "BEGIN SOLUTION" not in text and 'visibility("hidden")' not in text
        ast.parse(text)
    solution = (src / f"{m.module}.py").read_text()
    stub = (out / f"{m.module}.py").read_text()
    lines = solution_lines(solution)
    assert lines and all(len(line) >= MIN_LEAK for line in lines)
    assert all(line not in stub for line in lines)
    tasks = {t.name for t in m.tasks}
    raised = {r.task for r in find_regions(solution, manifest=m)}
    assert raised <= tasks and stub.count("raise NotImplementedError") == len(
        find_regions(solution)
    )
    public = (out / "assignment.toml").read_text()
    assert "[private" not in public and "bugs" not in public
    assert load(out, solutions=False).tasks == m.tasks


@pytest.mark.parametrize("name", ["relu_linear", "conv2d", "sgd"])
def test_shipped_solution_equals_the_library(name):
    """check's last step, alone (test_assignment_grading.py runs check on the others)."""
    lines = compare_with_library(load(ROOT / "examples" / "assignments" / name), examples=6)
    assert lines and all(line.startswith("ok") for line in lines), "\n".join(lines)


# ---------------------------------------------------------------- forbidden uses, statically
@pytest.fixture(scope="module")
def forbidden():
    return resolve(load(ROOT / "examples" / "assignments" / "relu_linear").forbidden_by_task())


@pytest.mark.parametrize(
    "source, task",
    [
        ("from minitorch_alexnet import nn\nclass ReLU(nn.ReLU):\n    pass\n", "task1"),
        ("from minitorch_alexnet.nn import Linear\n", "task2"),
        ("import minitorch_alexnet as mt\nLinear = mt.nn.Linear\n", "task2"),
        ("from minitorch_alexnet import nn\nL = getattr(nn, 'Linear')\n", "task2"),
        ("import importlib\nm = importlib.import_module('minitorch_alexnet.nn.activation')\n",
         "task1"),
        ("m = __import__('minitorch_alexnet.nn.linear')\n", "task2"),
        ("import sys\nf = sys.modules['minitorch_alexnet.nn.linear'].linear_forward\n", "task2"),
        ("from minitorch_alexnet.nn.linear import linear_backward as lb\n", "task2"),
        ("from minitorch_alexnet.backend.numba.elementwise import relu_forward\n", "task1"),
    ],
)  # fmt: skip
def test_static_scan_finds_the_forbidden_use(source, task, forbidden):
    found = scan_source(source, forbidden, "sub.py")
    assert found, source
    assert any(task in v.tasks for v in found)
    assert "forbids" in found[0].message()


def test_computed_lookups_in_the_library_are_forbidden(forbidden):
    src = (
        "import importlib\nname = 'nn'\nm = importlib.import_module('minitorch_alexnet.' + name)\n"
    )
    assert scan_source(src, forbidden)[0].name == "a module whose name is computed"
    src = "from minitorch_alexnet import nn\nk = 'Lin' + 'ear'\nL = getattr(nn, k)\n"
    assert "computed attribute" in scan_source(src, forbidden)[0].name


def test_module_parameter_init_and_the_kit_stay_allowed(forbidden):
    src = (
        "import minitorch_alexnet as mt\nfrom minitorch_alexnet.nn import Module, Parameter, init\n"
        "from minitorch_alexnet.testing import normal\nfrom minitorch_alexnet import get_backend\n"
        "class ReLU(Module):\n    def forward(self, x):\n"
        "        return mt.get_backend().xp.maximum(x, 0)\n"
    )
    assert scan_source(src, forbidden) == []


# ---------------------------------------------------------------- pasted copies
def test_a_renamed_copy_of_a_library_function_is_found(forbidden):
    source = textwrap.dedent(inspect.getsource(linear.linear_backward.reference))
    source = source.replace("@overridable\n", "").replace("linear_backward", "my_backward")
    for old, new_name in (("grad_out", "dy"), ("dW", "grad_w"), ("db", "grad_b")):
        source = source.replace(old, new_name)  # names only: constants such as "x" stay
    found = find_pasted(source, forbidden)
    assert [p.library for p in found] == ["minitorch_alexnet.nn.linear.linear_backward"]
    assert "same syntax tree" in found[0].message()
    own = "def my_backward(dy, ctx):\n    x = ctx['x']\n    return dy @ ctx['weight'], dy.T @ x\n"
    assert find_pasted(own, forbidden) == []


# ---------------------------------------------------------------- new
def test_new_writes_a_folder_whose_solution_equals_the_library(tmp_path):
    for layer in LAYERS:
        dest = new(layer, tmp_path / layer)
        m = load(dest)
        text = (dest / f"{m.module}.py").read_text()
        assert text.count("# BEGIN SOLUTION") == len(LAYERS[layer].functions)
        lines = compare_with_library(m, examples=4)
        assert lines and all(line.startswith("ok") for line in lines), "\n".join(lines)
        out = release(dest, tmp_path / f"{layer}-handout")
        assert leaked_lines(dest, out) == []
    with pytest.raises(ScaffoldError, match="not empty"):
        new("ReLU", tmp_path / "ReLU")
    with pytest.raises(ScaffoldError, match="no template for 'Conv3d'"):
        new("Conv3d", tmp_path / "x")


@pytest.mark.parametrize("src", SHIPPED, ids=lambda p: p.name)
def test_subclassing_each_shipped_layer_is_forbidden_to_every_task_of_it(src):
    """What grading zeroes (tests/test_assignment_grading.py grades such submissions)."""
    m = load(src)
    f = resolve(m.forbidden_by_task())
    assert not f.unresolved
    names = {t.name for t in m.tasks}
    for target in m.reference.values():  # the library classes the assignment replaces
        package, _, name = target.rpartition(".")
        alias = package.rsplit(".", 1)[-1]
        found = scan_source(f"from {package.rpartition('.')[0]} import {alias}\n\n\n"
                            f"class {name}({alias}.{name}):\n    pass\n", f)  # fmt: skip
        costs = {t for v in found for t in v.tasks}
        layer_tasks = {t.name for t in m.tasks if target in m.forbidden_by_task()[t.name]}
        assert found and costs == (layer_tasks or names), (target, found)


def test_the_submitted_file_is_found_in_a_folder(tmp_path):
    from minitorch_alexnet.assignment.grading import _submission_files

    m = load(ROOT / "examples" / "assignments" / "sgd")
    (tmp_path / "My SGD.py").write_text("x = 1\n")
    assert _submission_files(m, tmp_path) == {"sgd": tmp_path / "My SGD.py"}  # the only one
    (tmp_path / "sgd.py").write_text("x = 2\n")
    assert _submission_files(m, tmp_path) == {"sgd": tmp_path / "sgd.py"}  # the right name
    assert _submission_files(m, tmp_path / "sgd.py") == {"sgd": tmp_path / "sgd.py"}


# ---------------------------------------------------------------- what leaves the folder
def _private_folder(tmp_path: Path) -> tuple[Path, list[str]]:
    """relu_linear, with a bug patch, a private file and caches; and its solution lines."""
    import shutil

    src = tmp_path / "relu_linear"
    shutil.copytree(ROOT / "examples" / "assignments" / "relu_linear", src)
    toml = (src / "assignment.toml").read_text()
    toml = toml.replace("[private]\n", '[private]\nfiles = ["answers.md"]\n')
    toml = (
        'pasted = "zero"\n'
        + toml
        + '\n[[private.bugs]]\nname = "a patch"\npatch = "bugs/x.patch"\n'
    )
    (src / "assignment.toml").write_text(toml)
    solution = solution_lines((src / "relu_linear.py").read_text())
    (src / "bugs").mkdir()
    (src / "bugs" / "x.patch").write_text(f"-        {solution[0]}\n+        pass\n")
    (src / "answers.md").write_text(f"the answer: {solution[1]}\n")
    for cache in ("relu_linear.nbi", "__pycache__/x.pyc", ".hypothesis/db"):
        (src / cache).parent.mkdir(exist_ok=True)
        (src / cache).write_text(solution[2])
    return src, solution


def _leaks(texts: dict[str, str], solution: list[str]) -> list[str]:
    return [name for name, text in texts.items()
            if "[private" in text or any(line in text for line in solution)]  # fmt: skip


def test_grading_and_the_autograder_get_no_solution_line_and_no_private_table(tmp_path):
    import zipfile

    from minitorch_alexnet.assignment.gradescope import autograder_zip
    from minitorch_alexnet.assignment.grading import stage_tests

    src, solution = _private_folder(tmp_path)
    m = load(src)
    staged = stage_tests(m, tmp_path / "staged")
    texts = {p.relative_to(staged).as_posix(): p.read_text() for p in staged.rglob("*")
             if p.is_file()}  # fmt: skip
    assert "test_relu_linear_hidden.py" in texts  # hidden tests are graded, of course
    assert _leaks(texts, solution) == [], "solution lines or [private] in the staged tests"
    assert not {"answers.md", "bugs/x.patch", "relu_linear.nbi"} & set(texts)
    graded = load(staged, solutions=False)
    assert (graded.tasks, graded.pasted, graded.bugs) == (m.tasks, "zero", [])
    with zipfile.ZipFile(autograder_zip(src, tmp_path / "ag.zip")) as z:
        texts = {n: z.read(n).decode() for n in z.namelist() if n.startswith("assignment/")}
    assert "assignment/test_relu_linear_hidden.py" in texts
    assert _leaks(texts, solution) == [] and not any(n.endswith(".nbi") for n in texts)
    out = release(src, tmp_path / "handout")
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [
        "assignment.toml", "conftest.py", "relu_linear.py", "test_relu_linear.py"]  # fmt: skip


def test_folder_files_skip_caches_and_dot_folders(tmp_path):
    from minitorch_alexnet.assignment.handout import folder_files

    src, _ = _private_folder(tmp_path)
    names = {p.relative_to(src).as_posix() for p in folder_files(src)}
    assert "answers.md" in names and "bugs/x.patch" in names
    assert not {"relu_linear.nbi", "__pycache__/x.pyc", ".hypothesis/db"} & names


def test_new_and_release_refuse_a_file_and_the_current_folder(tmp_path, monkeypatch):
    (tmp_path / "a file").write_text("x")
    with pytest.raises(ScaffoldError, match="is a file"):
        new("ReLU", tmp_path / "a file")
    here = tmp_path / "here"
    here.mkdir()
    (here / "mine.txt").write_text("keep me")
    monkeypatch.chdir(here)
    with pytest.raises(ScaffoldError, match="current folder"):
        new("Conv2d", ".", force=True)
    with pytest.raises(ScaffoldError, match="current folder"):
        new("Conv2d", tmp_path, force=True)  # holds it
    src = _folder(tmp_path, "X = 1\n")
    with pytest.raises(ReleaseError, match="current folder"):
        release(src, here, force=True)
    assert (here / "mine.txt").read_text() == "keep me"


def test_equivalence_reports_a_crash_instead_of_raising(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "assignment.toml").write_text(
        'module = "layer"\n[private.reference]\nSGD = "minitorch_alexnet.optim.SGD"\n'
        'relu_forward = "minitorch_alexnet.nn.activation.relu_forward"\n'
    )
    (src / "layer.py").write_text(
        "class SGD:\n    def __init__(self, params, lr):\n        pass\n\n\n"
        "def relu_forward(x, save=True):\n    raise RuntimeError('boom')\n"
    )
    lines = compare_with_library(load(src), examples=2)
    assert lines[0].startswith("FAIL SGD raised TypeError: "), lines  # a wrong signature
    assert lines[1] == "FAIL relu_forward raised RuntimeError: boom", lines
    (src / "layer.py").write_text("raise ImportError('no such thing')\n")
    assert compare_with_library(load(src)) == [
        "FAIL reference: the solution layer.py could not be imported: ImportError: no such thing"
    ]


def test_check_names_the_hidden_tests_a_handout_holds(tmp_path, monkeypatch):
    import shutil

    from minitorch_alexnet.assignment import checking

    src = _folder(tmp_path, "X = 1\n", {"test_layer.py": "def test_x():\n    pass\n",
                                        "test_hidden.py": "def test_y():\n    pass\n"})  # fmt: skip

    def leaky_release(root, out):
        out = release(root, out)
        shutil.copy2(src / "test_hidden.py", out / "test_hidden.py")
        return out

    monkeypatch.setattr(checking, "release", leaky_release)
    monkeypatch.setattr(checking, "grade", lambda root, sub: checking.Grade("t", str(sub)))
    text = checking.check(src, jobs=1, library=False).text()
    assert "FAIL the handout holds hidden tests: test_hidden.py" in text, text


def test_the_docs_say_what_the_time_limit_backstop_does():
    text = (ROOT / "docs" / "assignment.md").read_text()
    assert "the others still\nrun. Hypothesis" not in text
    assert "it ends the whole\nrun: the tests that had not finished score 0" in text


def test_check_uses_the_grading_profile_and_cleans_up_its_backend(tmp_path, monkeypatch):
    from minitorch_alexnet.assignment import plugin
    from minitorch_alexnet.backend import dispatch

    asked = []
    real = plugin.grading_settings
    monkeypatch.setattr(plugin, "grading_settings", lambda n: asked.append(n) or real(n))
    lines = compare_with_library(load(new("ReLU", tmp_path / "relu")), examples=3)
    assert lines and all(line.startswith("ok") for line in lines), lines
    assert asked and set(asked) == {3}
    assert dispatch.overrides("assignment-check") == {}  # unregistered after the check
