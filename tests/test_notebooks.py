"""The notebooks of examples/notebooks/: up to date, stored clean, and running top to bottom.

* the committed notebooks are exactly what ``examples/notebooks/build.py`` makes
  (the BatchNorm one from the released assignment handout; every one without
  outputs, with the setup cell and the Colab badge that ``pyproject.toml`` implies);
* each notebook runs from its first cell to its last in a Jupyter kernel (nbclient),
  in a fresh folder, with no network: the CIFAR-10 one on a small CIFAR-10-layout
  folder this test writes (the labelled synthetic images, 300 to train on, 100 to
  test), found through ``$MINITORCH_ALEXNET_DATA`` as a student's download would be;
* the BatchNorm notebook as handed out reports the missing methods, and with the
  solution in its module cell passes every test it runs.

Needs nbformat, nbclient and ipykernel (the ``test`` extra); skips without them.
"""

from __future__ import annotations

import importlib.util
import os
import pickle
import shutil
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "examples" / "notebooks"

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")


def _build():
    spec = importlib.util.spec_from_file_location("notebooks_build", FOLDER / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


build = _build()


# ---------------------------------------------------------------- what is committed
def test_committed_notebooks_are_what_the_generator_makes():
    made = build.build_all(build.repository_url())
    assert sorted(made) == sorted(p.name for p in FOLDER.glob("*.ipynb"))
    stale = [n for n, text in made.items() if (FOLDER / n).read_text(encoding="utf-8") != text]
    assert not stale, f"out of date: {stale}; run python examples/notebooks/build.py"
    assert build.main(["--check"]) == 0


def test_notebooks_are_stored_without_outputs():
    for path in sorted(FOLDER.glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(not c.outputs and c.execution_count is None for c in code), path.name


def test_the_handout_cell_is_the_released_module(tmp_path):
    from minitorch_alexnet.assignment import release

    handout = release(build.ASSIGNMENT, tmp_path / "handout")
    nb = nbformat.read(FOLDER / build.BATCHNORM, as_version=4)
    cell = next(c.source for c in nb.cells if c.source.startswith("%%writefile batchnorm.py"))
    module = (handout / "batchnorm.py").read_text(encoding="utf-8")
    assert cell.split("\n", 1)[1].strip() == module.strip()
    assert "raise NotImplementedError" in cell and "BEGIN SOLUTION" not in cell


def test_the_badge_and_install_follow_the_repository_url(tmp_path):
    url = build.repository_url()
    for path in sorted(FOLDER.glob("*.ipynb")):
        title, setup = nbformat.read(path, as_version=4).cells[:2]
        assert ("colab-badge" in title.source) == (url is not None), path.name
        assert 'find_spec("minitorch_alexnet") is None' in setup.source
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\nname = "x"\n')
    assert build.repository_url(pyproject) is None
    pyproject.write_text('[project.urls]\nRepository = "https://github.com/someone/minitorch"\n')
    url = build.repository_url(pyproject)
    assert url == "https://github.com/someone/minitorch"
    nb = nbformat.read(FOLDER / "layer_walkthrough.ipynb", as_version=4)
    title, setup = build.with_header(nb, "layer_walkthrough.ipynb", url).cells[:2]
    link = (
        "https://colab.research.google.com/github/someone/minitorch/blob/main/"
        "examples/notebooks/layer_walkthrough.ipynb"
    )
    assert link in title.source and title.source.startswith("# ")
    assert "git+https://github.com/someone/minitorch" in setup.source
    again = build.with_header(nb, "layer_walkthrough.ipynb", None).cells[0]
    assert "colab" not in again.source  # removed again when the URL goes


# ---------------------------------------------------------------- running them
def _cifar_folder(root: Path) -> Path:
    """The labelled synthetic images in CIFAR-10's layout: 5 x 60 to train on, 100 to test."""
    from minitorch_alexnet import data

    splits = data.make_synthetic(300, 100, seed=0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def write(name, images, labels):
        d = {b"data": images.reshape(len(images), -1), b"labels": [int(v) for v in labels]}
        (folder / name).write_bytes(pickle.dumps(d, protocol=2))

    for i in range(5):
        part = slice(60 * i, 60 * (i + 1))
        write(f"data_batch_{i + 1}", splits.train.images[part], splits.train.labels[part])
    write("test_batch", splits.test.images, splits.test.labels)
    names = {b"label_names": [c.encode() for c in splits.classes]}
    (folder / "batches.meta").write_bytes(pickle.dumps(names, protocol=2))
    return root


def _execute(nb, workdir: Path):
    """Run every cell in a fresh kernel in ``workdir``; a cell that raises fails the test."""
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()
    return nb


def _text(nb) -> str:
    out = []
    for cell in nb.cells:
        for o in cell.get("outputs", []):
            out.append(o.get("text", "") or "".join(o.get("data", {}).get("text/plain", "")))
    return "\n".join(out)


@pytest.fixture
def kernel_env(tmp_path, monkeypatch):
    """What the kernels inherit: this checkout importable, the small CIFAR-10 folder."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    monkeypatch.setenv("PYTHONPATH", path)
    monkeypatch.setenv("MINITORCH_ALEXNET_DATA", str(_cifar_folder(tmp_path / "data")))
    work = tmp_path / "work"
    work.mkdir()
    return work


def test_layer_walkthrough_runs(kernel_env):
    nb = _execute(nbformat.read(FOLDER / "layer_walkthrough.ipynb", as_version=4), kernel_env)
    text = _text(nb)
    assert "gradcheck FAILED for LeakyReLU" in text and "gradcheck PASSED for LeakyReLU" in text


def test_cifar10_quick_run_runs_on_a_small_slice(kernel_env):
    nb = _execute(nbformat.read(FOLDER / "cifar10_quick_run.ipynb", as_version=4), kernel_env)
    text = _text(nb)
    assert "300 training and 100 test images" in text
    assert "epoch 4: train loss" in text
    images = sum(
        1 for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})
    )
    assert images == 7  # samples, curves, filters, confusion, saliency, activations, predictions


def test_batchnorm_notebook_as_handed_out_reports_the_missing_methods(kernel_env):
    nb = _execute(nbformat.read(FOLDER / build.BATCHNORM, as_version=4), kernel_env)
    text = _text(nb)
    assert "NotImplementedError: task1: write BatchNorm2d.forward" in text
    assert " failed" in text and " passed" not in text
    assert (kernel_env / "batchnorm.py").is_file() and (kernel_env / "test_batchnorm.py").is_file()


def test_batchnorm_notebook_with_the_solution_passes(kernel_env, tmp_path):
    from minitorch_alexnet.assignment import release

    handout = release(build.ASSIGNMENT, tmp_path / "handout")
    shutil.copyfile(build.ASSIGNMENT / "batchnorm.py", handout / "batchnorm.py")  # solved
    nb = build.batchnorm_notebook(handout, "solved")
    nb.cells[1].source = build.setup_cell(None)
    text = _text(_execute(nb, kernel_env))
    assert " failed" not in text and "FAILED" not in text, text[-3000:]
    assert text.count(" passed") == 2 and "PASSED" in text  # both tasks, then gradcheck
