"""Docstring examples run as tests: one test per module of `keras_mtl`.

Each module's `>>>` examples are run with `doctest` (flags `ELLIPSIS` and
`NORMALIZE_WHITESPACE`), and a failure names the docstring, the example and the
output expected and got.

Convention for writing examples: an example runs in its module's own namespace,
with three names predefined, so an example need not import them:

- `np`: numpy,
- `keras`: keras,
- `km`: keras_mtl.

Anything else an example uses it imports or defines itself. Examples stay cheap
(tiny arrays, at most a couple of training steps) and write files only under a
temporary directory they create and remove (`tempfile`). An example that needs a
download or data a user does not have (a data set loaded from its default
location) is a plain indented code block, without `>>>`, so it is not run;
the network is blocked while examples run, so one that tries to download fails.
Printed shapes are tuples (`tuple(x.shape)`), never `TensorShape`s.
"""

from __future__ import annotations

import doctest
import importlib
import io
import pkgutil
import socket

import keras
import numpy as np
import pytest

import keras_mtl

#: Modules not collected: `__main__` runs the CLI when imported.
SKIPPED = {"keras_mtl.__main__"}

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

ALL_MODULES = sorted(
    info.name for info in pkgutil.walk_packages(keras_mtl.__path__, "keras_mtl.")
)
MODULES = [name for name in ALL_MODULES if name not in SKIPPED]


def docstring_tests(module) -> list[doctest.DocTest]:
    """The doctests of the docstrings defined in `module` (not imported names)."""
    finder = doctest.DocTestFinder(exclude_empty=True)
    extraglobs = {"np": np, "keras": keras, "km": keras_mtl}
    tests = finder.find(module, module.__name__, module=module, extraglobs=extraglobs)
    return sorted((t for t in tests if t.examples), key=lambda t: t.name)


def run_docstring_tests(tests: list[doctest.DocTest]) -> tuple[int, int, str]:
    """(failed, attempted, report) over `tests`; the report is doctest's own."""
    failed = attempted = 0
    report = io.StringIO()
    for test in tests:
        runner = doctest.DocTestRunner(optionflags=FLAGS)
        result = runner.run(test, out=report.write, clear_globs=True)
        failed += result.failed
        attempted += result.attempted
    return failed, attempted, report.getvalue()


def test_skipped_are_modules():
    """A renamed or deleted module cannot stay behind in SKIPPED."""
    assert SKIPPED <= set(ALL_MODULES), sorted(SKIPPED - set(ALL_MODULES))


def test_runner_reports_a_wrong_output():
    """The runner fails on a wrong output and names docstring, example and outputs."""

    def shape_of_ones():
        """
        >>> tuple(np.ones((2, 3)).shape)
        (3, 2)
        """

    finder = doctest.DocTestFinder()
    tests = finder.find(shape_of_ones, "demo.shape_of_ones", globs={"np": np})
    failed, attempted, report = run_docstring_tests(tests)
    assert (failed, attempted) == (1, 1)
    assert "demo.shape_of_ones" in report
    assert "tuple(np.ones((2, 3)).shape)" in report
    assert "Expected:\n    (3, 2)\nGot:\n    (2, 3)" in report


@pytest.fixture
def no_network(monkeypatch):
    """Any connection attempt raises: docstring examples must not download."""

    def refuse(*args, **kwargs):
        raise RuntimeError(
            "A docstring example tried to open a network connection; an example "
            "that needs a download must be a plain code block (no `>>>`)."
        )

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_no_network_refuses_connections(no_network):
    with pytest.raises(RuntimeError, match="plain code block"):
        socket.create_connection(("127.0.0.1", 9))
    with socket.socket() as sock, pytest.raises(RuntimeError, match="download"):
        sock.connect(("127.0.0.1", 9))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, no_network):
    if name == "keras_mtl.datasets.census_tfds":
        pytest.importorskip("tensorflow_datasets")
    module = importlib.import_module(name)
    tests = docstring_tests(module)
    if not tests:
        pytest.skip("module has no docstring examples")
    failed, attempted, report = run_docstring_tests(tests)
    assert failed == 0, (
        f"{failed} of {attempted} docstring examples of {name} failed:\n{report}"
    )
