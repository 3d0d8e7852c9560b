"""Run the notebooks as a Colab user would: a real Jupyter kernel, top to bottom.

`colab_like_runtime(directory)` makes a fresh virtual environment that sees this
machine's packages (TensorFlow, Keras, Jupyter: what Colab preinstalls) but not
keras_mtl: the venv has no site-packages of its own beyond a path file listing
the system ones, and the path file's entries are plain paths, so the system's
`.pth` start-up hooks (the editable install's import finder among them) do not
run there. A notebook's set-up cell then installs keras-mtl into it, as on a
fresh Colab runtime.

`run_notebook(path, python=...)` executes every cell in an IPython kernel of
that interpreter (nbclient), with two cells of its own around the notebook's:
the first records each matplotlib figure as the inline backend shows it, the
last fails on any figure without a title or an axes without both labels.

From a shell (a quick look at one notebook in this environment, small mode):

    python -m tests.notebook_runtime notebooks/quickstart.ipynb
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import site
import subprocess
import sys
import tempfile
from typing import NamedTuple

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"

#: Injected before the notebook's first cell: every open figure is checked when
#: `plt.show()` is called and after each cell (a post-execute hook that runs
#: before the inline backend's, which displays and closes the figures left
#: open); the checks are collected in `_figure_checks`.
FIGURE_HOOK = """\
import matplotlib.pyplot

_figure_checks = []

def _check_figures():
    import sys
    if "matplotlib.pyplot" not in sys.modules:
        return
    plt = sys.modules["matplotlib.pyplot"]
    if not plt.get_fignums():
        return
    current = plt.gcf()  # (plt.figure(n) below makes n current: restored after)
    for number in plt.get_fignums():
        figure = plt.figure(number)
        if any(entry[0] is figure for entry in _figure_checks):
            continue
        panels = [ax for ax in figure.axes if ax.get_label() != "<colorbar>"]
        titled = bool(figure.get_suptitle()) or any(ax.get_title() for ax in panels)
        unlabelled = [
            index for index, ax in enumerate(panels)
            if ax.has_data() and not (ax.get_xlabel() and ax.get_ylabel())
        ]
        _figure_checks.append((figure, titled, unlabelled))
    plt.figure(current)

def _checked_show(*args, _show=matplotlib.pyplot.show, **kwargs):
    _check_figures()
    return _show(*args, **kwargs)

matplotlib.pyplot.show = _checked_show
get_ipython().events.register("post_execute", _check_figures)
"""

#: Appended after the notebook's last cell; `{report}` is replaced by a file
#: path. The figure count and the kernel's process id go to that file, not to
#: the cell's output: a kernel's output messages can come late or get lost.
FIGURE_REPORT = """\
import json as _json
import os as _os

_check_figures()
_figure_problems = [
    (number, titled, unlabelled)
    for number, (_, titled, unlabelled) in enumerate(_figure_checks)
    if not titled or unlabelled
]
with open({report!r}, "w") as _report:
    _json.dump({{"figures": len(_figure_checks), "kernel": _os.getpid()}}, _report)
assert not _figure_problems, (
    "figures without a title or with unlabelled axes (figure, titled, panels): "
    f"{{_figure_problems}}"
)
"""


def system_site_packages() -> list[str]:
    """The site-packages directories of this interpreter (user site included)."""
    paths = list(site.getsitepackages())
    user = site.getusersitepackages()
    if os.path.isdir(user):
        paths.append(user)
    return paths


def colab_like_runtime(directory: str | os.PathLike) -> pathlib.Path:
    """A fresh venv in `directory` with this machine's packages but no keras_mtl.

    Returns:
        Its python executable.
    """
    directory = pathlib.Path(directory)
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(directory)], check=True
    )
    python = directory / "bin" / "python"
    own = subprocess.run(
        [str(python), "-c", "import site; print(site.getsitepackages()[0])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    pathlib.Path(own, "_preinstalled.pth").write_text(
        "\n".join(system_site_packages()) + "\n"
    )
    return python


def build_wheel(directory: str | os.PathLike) -> pathlib.Path:
    """The project's wheel, built into `directory` from a copy of this checkout
    without build leftovers (a stale `build/lib` would go into the wheel)."""
    source = pathlib.Path(directory, "source")
    shutil.copytree(
        REPO,
        source,
        ignore=shutil.ignore_patterns(
            ".git",
            "build",
            "dist",
            "*.egg-info",
            "__pycache__",
            ".*_cache",
            "saved_models",
        ),
    )
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(directory),
            str(source),
        ],
        check=True,
    )
    (wheel,) = pathlib.Path(directory).glob("keras_mtl-*.whl")
    return wheel


def code_cells(path: str | os.PathLike) -> list[str]:
    """The sources of a notebook's code cells."""
    cells = json.loads(pathlib.Path(path).read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]


def kernel_env(**overrides: str) -> dict:
    """This process's environment without what would bring the checkout in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env.update(overrides)
    return env


class NotebookRun(NamedTuple):
    notebook: object  # the executed nbformat notebook
    figures: int  # how many figures the injected check saw
    kernel_pid: int  # the kernel's process id (shut down by now)


def run_notebook(
    path: str | os.PathLike,
    *,
    python: str | os.PathLike = sys.executable,
    env: dict | None = None,
    cwd: str | os.PathLike | None = None,
    timeout: int = 600,
    checks: str | None = None,
):
    """Execute the notebook at `path` in a kernel of `python`.

    Args:
        checks: str or None. Code run after the notebook's last cell, in its
            namespace (the test suite's asserts on what it computed).

    Returns:
        A `NotebookRun`: the executed notebook, how many figures the injected
        check saw, and the kernel's process id.

    Raises nbclient's `CellExecutionError` (the cell and its traceback) when a
    cell fails, the checks and the figure check included.
    """
    import nbformat
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(str(path), as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_code_cell(FIGURE_HOOK))
    if checks:
        notebook.cells.append(nbformat.v4.new_code_cell(checks))
    with tempfile.TemporaryDirectory() as specs:
        report = pathlib.Path(specs, "report.json")
        notebook.cells.append(
            nbformat.v4.new_code_cell(FIGURE_REPORT.format(report=str(report)))
        )
        spec_dir = pathlib.Path(specs, "kernels", "keras-mtl-notebooks")
        spec_dir.mkdir(parents=True)
        (spec_dir / "kernel.json").write_text(
            json.dumps(
                {
                    "argv": [
                        str(python),
                        "-m",
                        "ipykernel_launcher",
                        "-f",
                        "{connection_file}",
                    ],
                    "display_name": "keras-mtl notebooks",
                    "language": "python",
                }
            )
        )
        manager = KernelManager(
            kernel_name="keras-mtl-notebooks",
            kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(spec_dir.parent)]),
        )
        client = NotebookClient(
            notebook,
            km=manager,
            timeout=timeout,
            resources={"metadata": {"path": str(cwd or pathlib.Path(path).parent)}},
        )
        try:
            client.execute(env=env if env is not None else kernel_env())
        finally:  # nbclient leaves running a kernel whose manager it was given
            if manager.has_kernel:
                manager.shutdown_kernel(now=True)
        facts = json.loads(report.read_text())
    return NotebookRun(notebook, facts["figures"], facts["kernel"])


def _main(argv: list[str]) -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+")
    parser.add_argument("--size", default="small")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    args = parser.parse_args(argv)
    import time

    for path in args.notebooks:
        start = time.perf_counter()
        env = kernel_env(KERAS_MTL_NOTEBOOK_SIZE=args.size, KERAS_MTL_DATA=args.data)
        env["PYTHONPATH"] = str(REPO)  # this checkout's keras_mtl (a worktree's)
        with tempfile.TemporaryDirectory() as cwd:
            run = run_notebook(path, env=env, cwd=cwd)
        print(f"{path}: {time.perf_counter() - start:.1f} s, {run.figures} figures")


if __name__ == "__main__":
    _main(sys.argv[1:])
