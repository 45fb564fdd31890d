"""Grading submissions (pytest in a subprocess, the assignment plugin loaded): no credit
for delegating to the library, Gradescope's results.json, time limits, per-task grading,
and the teacher's self-check on two shipped assignments and on a folder made by `new`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from minitorch_alexnet.assignment import check, grade, new, syntax

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "assignments"
RELU_LINEAR = EXAMPLES / "relu_linear"

# a correct Linear, written out (the solution's, without markers)
LINEAR = """
class Linear(Module):
    def __init__(self, in_features, out_features, bias=True):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(init.fan_in_uniform((out_features, in_features), in_features))
        self.bias = Parameter(init.fan_in_uniform((out_features,), in_features)) if bias else None

    def forward(self, x):
        self.save_for_backward(x=x)
        y = x @ self.weight.data.T
        return y if self.bias is None else y + self.bias.data

    def backward(self, grad_out):
        x = self.saved()["x"]
        self.weight.accumulate_grad(grad_out.T @ x)
        if self.bias is not None:
            self.bias.accumulate_grad(grad_out.sum(axis=0))
        return grad_out @ self.weight.data
"""
RELU = """
class ReLU(Module):
    def forward(self, x):
        self.save_for_backward(positive=x > 0)
        return x * (x > 0)

    def backward(self, grad_out):
        return grad_out * self.saved()["positive"]
"""
HEAD = "from minitorch_alexnet.nn import Module, Parameter, init\n"

SUBMISSIONS = {
    # task1 (ReLU) delegated by subclassing; Linear written: task2 keeps its points
    "subclass": HEAD
    + "from minitorch_alexnet import nn\n\n\nclass ReLU(nn.ReLU):\n    pass\n"
    + LINEAR,
    # the library's Linear under the expected name
    "alias": HEAD + "from minitorch_alexnet.nn import Linear  # noqa\n" + RELU,
    # a lookup by importlib and getattr
    "lookup": HEAD + "import importlib\n_m = importlib.import_module('minitorch_alexnet.nn')\n"
    "Linear = getattr(_m, 'Linear')\n" + RELU,
    # a computed lookup: no name of the library's layer in the source; it could reach
    # anything, so it costs every task
    "computed": HEAD
    + "import importlib\n_m = importlib.import_module('minitorch_alexnet.' + 'nn')\n"
    "Linear = getattr(_m, 'Lin' + 'ear')\n" + RELU,
    # a Linear of its own whose forward calls the library's reference function, found
    # through sys.modules with a computed name: only the call betrays it
    "call": HEAD
    + "import sys\n"
    + RELU
    + LINEAR.replace(
        "        y = x @ self.weight.data.T\n",
        "        f = vars(sys.modules['minitorch_alexnet.nn.' + 'linear'])['linear_forward']\n"
        "        y = f.reference(x, self.weight.data, None)[0]\n",
    ),
    # the library's linear_backward pasted in, names changed: flagged, not zeroed
    "pasted": HEAD
    + RELU
    + LINEAR.replace(
        '        x = self.saved()["x"]\n        self.weight.accumulate_grad(grad_out.T @ x)\n'
        "        if self.bias is not None:\n            self.bias.accumulate_grad(grad_out.sum("
        "axis=0))\n        return grad_out @ self.weight.data\n",
        "        ctx = dict(self.saved(), weight=self.weight.data,\n"
        "                   has_bias=self.bias is not None)\n"
        "        dx, dW, db = linear_backward(grad_out, ctx)\n"
        "        self.weight.accumulate_grad(dW)\n        if db is not None:\n"
        "            self.bias.accumulate_grad(db)\n        return dx\n",
    )
    + textwrap.dedent('''
        def linear_backward(dy, saved, input_grad=True):
            """Mine, honest."""
            x, w = saved["x"], saved["weight"]
            grad_w = dy.T @ x
            grad_b = dy.sum(axis=0) if saved["has_bias"] else None
            grad_x = dy @ w if input_grad else None
            return grad_x, grad_w, grad_b
    '''),
    "syntax error": "def broken(:\n",
    "correct": HEAD + RELU + LINEAR,
    # right code, and the comparisons switched off at import: every task scores 0
    "patched kit": HEAD
    + "import minitorch_alexnet.testing as _t\n\n"
    + "_t.assert_matches_reference = lambda *a, **k: None\n"
    + RELU
    + LINEAR,
    # the same, while a test runs: numpy.testing's helper replaced in ReLU.forward
    "patched later": HEAD
    + RELU.replace(
        "    def forward(self, x):\n",
        "    def forward(self, x):\n"
        "        import numpy.testing\n\n"
        "        numpy.testing.assert_allclose = lambda *a, **k: None\n",
    )
    + LINEAR,
    # nothing written, and an atexit hook that appends a full-marks result (100 times
    # over) for every test to the report
    "forged": HEAD
    + "class ReLU(Module):\n    pass\n\n\nclass Linear(Module):\n    pass\n"
    + textwrap.dedent("""
        import atexit, json, sys

        def _forge():
            path = sys.argv[sys.argv.index("--assignment-report") + 1]
            records = [json.loads(line.split("\\t")[0]) for line in open(path)]
            tests = next(r for r in records if r["event"] == "collected")["tests"]
            with open(path, "a") as f:
                for t in tests:
                    f.write(json.dumps({"event": "result", "nodeid": t["nodeid"],
                                        "outcome": "passed", "fraction": 100,
                                        "output": "", "duration": 0}) + "\\n")

        atexit.register(_forge)
    """),
}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    where = tmp_path_factory.mktemp("submissions")
    paths = {}
    for name, text in SUBMISSIONS.items():
        folder = where / name.replace(" ", "_")
        folder.mkdir()
        (folder / "relu_linear.py").write_text(text)
        paths[name] = folder
    with ThreadPoolExecutor(2) as pool:
        futures = {
            n: pool.submit(grade, RELU_LINEAR, p, p / "results.json") for n, p in paths.items()
        }
        return {n: (f.result(), json.loads((paths[n] / "results.json").read_text()))
                for n, f in futures.items()}  # fmt: skip


def _task_scores(g):
    return {task: score for task, (score, _) in g.by_task().items()}


def test_the_honest_submission_gets_full_marks(graded):
    g, _ = graded["correct"]
    assert g.score == g.max_score == 10 and not g.violations and not g.pasted


@pytest.mark.parametrize("name, lost", [("subclass", "task1"), ("alias", "task2"),
                                        ("lookup", "task2"), ("call", "task2")])  # fmt: skip
def test_delegating_to_the_library_scores_zero_on_that_layer(graded, name, lost):
    g, results = graded[name]
    kept = {"task1", "task2"} - {lost}
    scores = _task_scores(g)
    assert scores[lost] == 0, g.summary()
    assert all(scores[t] == dict(g.by_task())[t][1] for t in kept), g.summary()  # full
    assert g.violations and all(lost in v.tasks for v in g.violations)
    zeroed = [t for t in results["tests"] if t["tags"] == [lost]]
    assert zeroed and all(t["score"] == 0 and "forbids" in t["output"] for t in zeroed)


def test_a_computed_lookup_costs_every_task(graded):
    g, _ = graded["computed"]
    assert g.score == 0 and any("computed" in v.name for v in g.violations), g.summary()


def test_a_call_into_the_library_is_caught_at_run_time(graded):
    g, _ = graded["call"]
    assert any(v.how == "calls" and v.name.endswith("linear.linear_forward") for v in g.violations)


def test_a_pasted_copy_is_flagged_for_the_teacher_without_losing_points(graded):
    g, results = graded["pasted"]
    assert g.score == g.max_score, g.summary()
    assert [p.library for p in g.pasted] == ["minitorch_alexnet.nn.linear.linear_backward"]
    assert "Flagged for the teacher" in results["output"]
    task2 = [t for t in results["tests"] if t["tags"] == ["task2"]]
    assert all("pasted copy" in t["output"] for t in task2)


def test_a_submission_that_does_not_import_scores_zero_with_the_reason(graded):
    g, results = graded["syntax error"]
    assert g.score == 0 and len(g.tests) == len(graded["correct"][0].tests) > 0
    assert all("could not be imported" in t["output"] for t in results["tests"])


@pytest.mark.parametrize("name, changed, when", [
    ("patched kit", "minitorch_alexnet.testing.assert_matches_reference", "imported"),
    ("patched later", "numpy.testing.assert_allclose", "the tests ran"),
])  # fmt: skip
def test_a_submission_that_patches_the_tests_helpers_scores_zero(graded, name, changed, when):
    g, results = graded[name]
    assert g.score == 0, g.summary()
    assert [(v.name, v.how, v.tasks) for v in g.violations] == [(changed, "replaced", [])]
    assert when in g.violations[0].where and "must stay as they are" in results["output"]
    assert all(t["status"] == "failed" and changed in t["output"] for t in results["tests"])


def test_lines_appended_to_the_report_are_ignored(graded):
    g, _ = graded["forged"]
    assert g.score == 0 and all(t.score == 0 for t in g.tests), g.summary()
    assert any("after the end of the run were ignored" in p for p in g.problems), g.problems


def _report(path, key, records):
    """A report as the plugin writes it, signed with ``key``; a str is a line written
    by someone else (the submission, a crash)."""
    from minitorch_alexnet.assignment.plugin import _writer

    w = _writer(str(path), key)
    for r in records:
        w(r) if isinstance(r, dict) else w._out.write(r + "\n")
    w.close()
    return path


def _collected(n):
    return {"event": "collected", "tests": [
        dict(nodeid=f"t.py::test_{i}", name=f"test_{i}", points=2.0, visibility="visible",
             task="task1", doc="") for i in range(n)]}  # fmt: skip


def _result(i, fraction=1.0):
    return {"event": "result", "nodeid": f"t.py::test_{i}", "outcome": "passed",
            "fraction": fraction, "output": "", "duration": 0.0}  # fmt: skip


def _scored(path, key):
    from minitorch_alexnet.assignment.forbidden import resolve
    from minitorch_alexnet.assignment.grading import Grade, _read_report, _score
    from minitorch_alexnet.assignment.manifest import load

    m, g = load(RELU_LINEAR), Grade("t", "sub")
    records, tampered = _read_report(path, key, g)
    _score(g, m, records, resolve({}), "", tampered)
    return g


def test_the_report_keeps_the_first_result_clamped_and_stops_at_finished(tmp_path):
    key = b"k" * 32
    forged = '{"event": "result", "nodeid": "t.py::test_3", "fraction": 1, "seq": 7}'
    path = _report(tmp_path / "r.jsonl", key, [
        _collected(4), _result(0, 100), '{"event": "resu', _result(1), _result(1),
        '{"no event": 1}', _result(2, -3), forged, {"event": "finished", "exitstatus": 0},
        _result(3), "after the end"])  # fmt: skip
    g = _scored(path, key)
    assert [t.score for t in g.tests] == [2.0, 0.0, 0.0, 0.0], g.summary()
    assert [t.status for t in g.tests][1:] == ["failed", "passed", "did not run"]
    assert "tampered" in g.tests[1].output
    notes = "\n".join(g.problems)
    assert "t.py::test_1 were tampered with" in notes
    assert "1 line(s) of the test report could not be read" in notes  # cut short: skipped
    assert "2 line(s) of the test report were not signed by the grading plugin" in notes
    assert "2 line(s) after the end of the run were ignored" in notes


def test_a_report_with_a_line_removed_scores_zero(tmp_path):
    key = b"k" * 32
    path = _report(tmp_path / "r.jsonl", key, [
        _collected(2), _result(0),
        {"event": "violation", "name": "x", "how": "calls", "where": "w", "tasks": []},
        _result(1), {"event": "finished", "exitstatus": 0}])  # fmt: skip
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + lines[3:]) + "\n")  # the violation's line removed
    g = _scored(path, key)
    assert g.score == 0 and any("missing" in p for p in g.problems), g.summary()


def test_a_run_stopped_by_the_time_limit_shows_its_output(monkeypatch, tmp_path):
    from minitorch_alexnet.assignment import grading

    def stuck(cmd, **kwargs):
        raise subprocess.TimeoutExpired(cmd, 5, output=b"partial \xff out", stderr=b"stuck here")

    monkeypatch.setattr(grading.subprocess, "run", stuck)
    (tmp_path / "relu_linear.py").write_text(SUBMISSIONS["correct"])
    g = grade(RELU_LINEAR, tmp_path)
    notes = "\n".join(g.problems)
    assert "stopped after" in notes and "partial \ufffd out" in notes and "stuck here" in notes
    assert "b'" not in notes and g.score == 0


def test_results_json_is_what_gradescope_reads(graded):
    g, results = graded["subclass"]
    assert isinstance(results["score"], float) and results["score"] == g.by_task()["task2"][1]
    assert results["stdout_visibility"] in ("hidden", "visible")
    for t in results["tests"]:
        assert {"name", "score", "max_score", "visibility", "output"} <= set(t)
        assert t["visibility"] in ("visible", "hidden", "after_due_date", "after_published")
        assert 0 <= t["score"] <= t["max_score"]
    assert sum(t["score"] for t in results["tests"]) == results["score"]
    assert {t["visibility"] for t in results["tests"]} == {"visible", "hidden"}


def test_one_task_alone_and_a_time_limit(tmp_path):
    """`-m task1` through grade(tasks=...); a forward pass that never returns fails its
    tests by the time limit while the others still run."""
    src = new("ReLU", tmp_path / "relu")
    manifest = (src / "assignment.toml").read_text().replace("timeout = 60", "timeout = 2")
    (src / "assignment.toml").write_text(manifest)
    text = (src / "relu.py").read_text()
    start = text.index("    # BEGIN SOLUTION")
    looping = text[:start] + "    while True:\n        pass\n" + text[start:]
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "relu.py").write_text(looping)
    g = grade(src, tmp_path / "sub", tasks=["task1"])
    assert {t.task for t in g.tests} == {"task1"} and len(g.tests) == 1
    assert g.score == 0 and "Timeout" in g.tests[0].output


class _Cycle:
    """Cyclic garbage whose ``__del__`` runs Python code inside a collection."""

    def __init__(self) -> None:
        self.me = self

    def __del__(self) -> None:
        sum(range(2000))


def test_parsing_from_two_threads_at_once():
    # check() grades in threads; on CPython 3.11 two unlocked ast.parse calls, with a
    # thread switch inside one (here: a collection running __del__, switches forced
    # often), raise "SystemError: AST constructor recursion depth mismatch"
    source = (ROOT / "minitorch_alexnet" / "assignment" / "forbidden.py").read_text()

    def parse_many(_: int) -> int:
        for _ in range(200):
            [_Cycle() for _ in range(50)]
            syntax.parse(source)
        return 1

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with ThreadPoolExecutor(2) as pool:
            assert sum(pool.map(parse_many, range(2))) == 2
    finally:
        sys.setswitchinterval(before)


def test_the_package_parses_only_through_the_lock():
    package = ROOT / "minitorch_alexnet"
    direct = [
        str(p.relative_to(ROOT))
        for p in package.rglob("*.py")
        if p.name != "syntax.py" and "ast.parse(" in p.read_text(encoding="utf-8")
    ]
    assert not direct, f"call assignment.syntax.parse instead of ast.parse in {direct}"


@pytest.mark.parametrize("name", ["batchnorm", "maxpool2d"])
def test_check_passes_on_a_shipped_assignment(name):
    report = check(EXAMPLES / name, jobs=2)
    assert report.ok, report.text()
    text = report.text()
    assert "the solution scores" in text and "the handout scores 0" in text
    assert "FAIL" not in text and "ok   bug" in text
    if name == "maxpool2d":  # the published bug: right only when windows do not overlap
        assert "stride == kernel" in text and "test_a_pixel_that_wins_two_windows" in text


def test_new_then_check_in_one_command_each(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "minitorch_alexnet", "assignment"]
    made = subprocess.run(cmd + ["new", "Linear", str(tmp_path / "lin")], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert made.returncode == 0, made.stderr
    out = subprocess.run(cmd + ["check", str(tmp_path / "lin")], capture_output=True, text=True,
                         env=env)  # fmt: skip
    assert out.returncode == 0, out.stdout + out.stderr
    assert "passes" in out.stdout and "equal the library's references" in out.stdout
    again = subprocess.run(cmd + ["new", "Linear", str(tmp_path / "lin")], capture_output=True,
                           text=True, env=env)  # fmt: skip
    assert again.returncode == 2 and "not empty" in again.stderr
