"""The notebooks, as a Colab user meets them.

Static checks (every run): committed without outputs and with cell ids, one
identical set-up cell that installs the release named in setup.py, a Colab
badge, a README row each.

The slow test runs each notebook top to bottom in a real Jupyter kernel, in its
small mode, in a Colab-like runtime (`tests/notebook_runtime.py`): a fresh
virtual environment with this machine's TensorFlow, Keras and Jupyter but no
keras_mtl, into which the set-up cell itself installs the wheel built from this
checkout (not an editable install: the wheel must carry every package file).
After the last cell, `tests/notebook_checks/<notebook>.py` asserts on what the
notebook computed, and every figure must have a title and labelled axes.
"""

import json
import os
import pathlib
import re
import signal
import subprocess

import pytest

from tests.notebook_runtime import (
    NOTEBOOKS,
    REPO,
    build_wheel,
    code_cells,
    colab_like_runtime,
    kernel_env,
    run_notebook,
)

PATHS = sorted(NOTEBOOKS.glob("*.ipynb"))
CHECKS = pathlib.Path(__file__).parent / "notebook_checks"
#: The notebooks reading ../shared/data (skipped without it; on Colab they download).
NEEDS_DATA = {"census_mmoe_vs_ple.ipynb", "dupn_movielens.ipynb"}
#: The notebooks the issue asks for, and how many figures each draws (every one
#: titled, every axes labelled).
FIGURES = {
    "quickstart.ipynb": 2,
    "census_mmoe_vs_ple.ipynb": 3,
    "esmm_funnel.ipynb": 3,
    "dupn_movielens.ipynb": 3,
    "deployment.ipynb": 1,
}


def setup_field(name: str) -> str:
    """A string field of setup.py's `setup(...)` call."""
    (value,) = re.findall(
        rf'^\s+{name}="([^"]+)"', (REPO / "setup.py").read_text(), re.M
    )
    return value


def release_requirement() -> str:
    """The pip requirement of this release: the repository at tag v<version>."""
    return f"keras-mtl @ git+{setup_field('url')}@v{setup_field('version')}"


def colab_link(name: str) -> str:
    """The "Open in Colab" address of a notebook at this release's tag."""
    repository = setup_field("url").removeprefix("https://github.com/")
    return (
        f"https://colab.research.google.com/github/{repository}/blob/"
        f"v{setup_field('version')}/notebooks/{name}"
    )


def test_the_notebooks_the_issue_asks_for_are_there():
    assert set(FIGURES) == {path.name for path in PATHS}


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_links_to_the_repository_name_this_release(path):
    """Badges, install and links to files: the repository of setup.py's url at
    this version's tag (a version bump moves them all)."""
    repository = setup_field("url").removeprefix("https://")
    cells = json.loads(path.read_text())["cells"]
    text = "\n".join("".join(cell["source"]) for cell in cells)
    tags = re.findall(rf"{re.escape(repository)}(?:/blob/|@)([^/\s\"')]+)", text)
    assert tags and set(tags) == {f"v{setup_field('version')}"}, (path.name, tags)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_committed_without_outputs_and_with_cell_ids(path):
    import nbformat

    notebook = nbformat.read(str(path), as_version=4)
    nbformat.validate(notebook)  # ids are part of the 4.5 schema
    ids = [cell.get("id") for cell in notebook.cells]
    assert all(ids) and len(set(ids)) == len(ids), path.name
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name
    assert notebook.metadata["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_one_set_up_cell_that_installs_this_release(path):
    setup = code_cells(path)[0]
    assert setup == code_cells(NOTEBOOKS / "quickstart.ipynb")[0], path.name
    default = re.search(
        r'KERAS_MTL_REQUIREMENT = os\.environ\.get\(\s*"KERAS_MTL_REQUIREMENT",\s*"([^"]+)"',
        setup,
    )
    assert default and default.group(1) == release_requirement()
    # installs only when missing, held to the runtime's TensorFlow and Keras
    assert 'if importlib.util.find_spec("keras_mtl") is None:' in setup
    assert 'for name in ("tensorflow", "keras", "protobuf"):' in setup
    assert '"-c", pinned.name' in setup
    assert 'SIZE = os.environ.get("KERAS_MTL_NOTEBOOK_SIZE", "default")' in setup
    # the first cell says what the notebook is, with its Colab badge
    first = json.loads(path.read_text())["cells"][0]
    assert first["cell_type"] == "markdown"
    assert f"]({colab_link(path.name)})" in "".join(first["source"])


def test_readme_lists_every_notebook_with_its_colab_link():
    readme = (REPO / "README.md").read_text()
    assert setup_field("url") in readme
    for path in PATHS:
        row = next(
            (
                line
                for line in readme.splitlines()
                if line.startswith("|") and f"(notebooks/{path.name})" in line
            ),
            None,
        )
        assert row is not None, f"no README row for {path.name}"
        assert colab_link(path.name) in row, path.name


# -- running them ------------------------------------------------------------


@pytest.fixture(scope="module")
def colab_runtime(tmp_path_factory):
    """A Colab-like venv into which the set-up cell installed the checkout's wheel."""
    root = tmp_path_factory.mktemp("colab")
    wheel = build_wheel(root / "dist")
    python = colab_like_runtime(root / "venv")
    probe = "import importlib.util as u; print(u.find_spec('keras_mtl') is None)"
    fresh = subprocess.run(
        [str(python), "-c", probe],
        cwd=root,
        env=kernel_env(),
        capture_output=True,
        text=True,
    )
    assert fresh.stdout.strip() == "True", fresh.stderr  # like a fresh runtime
    setup = code_cells(NOTEBOOKS / "quickstart.ipynb")[0]
    install = subprocess.run(
        [str(python), "-c", setup],
        cwd=root,
        env=kernel_env(KERAS_MTL_REQUIREMENT=str(wheel)),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    where = subprocess.run(
        [
            str(python),
            "-c",
            "import keras, keras_mtl, keras_mtl_cli, tensorflow\n"
            "from keras_mtl.datasets import census\n"
            "print(keras_mtl.__file__, keras_mtl_cli.__file__, tensorflow.__file__,"
            " keras.__file__, *sorted(census.VOCABULARIES['sex']))",
        ],
        cwd=root,
        capture_output=True,
        text=True,
        env=kernel_env(),
    )
    assert where.returncode == 0, where.stderr[-3000:]
    package, launcher, tensorflow, keras, *sexes = where.stdout.split()
    venv = str(root / "venv")
    assert package.startswith(venv) and launcher.startswith(venv)  # from the wheel
    assert not tensorflow.startswith(venv) and not keras.startswith(venv)  # kept
    assert sexes == ["Female", "Male"]  # the wheel carries the vocabularies' file
    return python


@pytest.mark.slow
@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.name)
def test_notebook_runs_in_a_real_kernel(path, colab_runtime, tmp_path, request):
    env = kernel_env(KERAS_MTL_NOTEBOOK_SIZE="small")
    if path.name in NEEDS_DATA:
        env["KERAS_MTL_DATA"] = str(request.getfixturevalue("shared_data"))
    checks = CHECKS / f"{path.stem}.py"
    run = run_notebook(
        path,
        python=colab_runtime,
        env=env,
        cwd=tmp_path,
        checks=checks.read_text() if checks.is_file() else None,
    )
    assert run.figures == FIGURES[path.name]
    assert not pathlib.Path(f"/proc/{run.kernel_pid}").exists()  # shut down


def test_deployment_notebook_against_a_running_server(colab_runtime, tmp_path):
    """The notebook's other branch, where `tensorflow_model_server` is
    installed (Colab): it starts the server, waits for the model, sends REST
    and gRPC requests through the clients and stops the server by its pid.
    The binary is the suite's TF Serving stand-in (tests/serving), on
    127.0.0.1, ending by itself after 120 s at the latest."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "tensorflow_model_server"
    standin = pathlib.Path(__file__).parent / "serving" / "tf_serving_standin.py"
    pid_file = tmp_path / "server.pid"
    shim.write_text(  # exec keeps the shell's pid: the stand-in's
        f'#!/bin/sh\necho $$ > "{pid_file}"\nexec "{colab_runtime}" "{standin}" '
        f'--port_file="{tmp_path}/ports.json" --max_seconds=120 "$@"\n'
    )
    shim.chmod(0o755)
    env = kernel_env(KERAS_MTL_NOTEBOOK_SIZE="small")
    env["PATH"] = f"{bin_dir}{os.pathsep}{env['PATH']}"
    checks = (CHECKS / "deployment.py").read_text()
    served = "\nassert 'stopped' in globals(), 'no server ran'\n"
    try:
        run_notebook(
            NOTEBOOKS / "deployment.ipynb",
            python=colab_runtime,
            env=env,
            cwd=tmp_path,
            checks=checks + served,
        )
    finally:  # the notebook stops its server; if it failed first, the test does
        pid = int(pid_file.read_text()) if pid_file.is_file() else None
        left_running = pid is not None and pathlib.Path(f"/proc/{pid}").exists()
        if left_running:
            os.kill(pid, signal.SIGKILL)
    assert pid is not None and not left_running, pid


def test_every_notebook_has_its_checks():
    assert {p.stem for p in PATHS} <= {p.stem for p in CHECKS.glob("*.py")}
