"""The package's imports flow one way: each module imports only lower layers.

`LAYERS` is the declared order (README, "Development"). A module may import
modules of a lower layer, and modules of its own subpackage; anything else
(an upward import, or a sideways one between two rooms of the same layer) fails
here with the importing file, line and both layers named.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_mtl"

#: Rooms of the package, lowest first; a room is a top-level module or subpackage
#: ("__init__" is the `keras_mtl` facade, which re-exports the public names).
LAYERS = (
    ("_installed", "_checks", "_keras_compat"),
    ("features", "transforms"),
    ("tasks", "masking", "_graph"),
    ("data", "layers", "losses", "metrics", "weighting"),
    ("training", "optimizers"),
    ("models",),
    ("diagnostics", "datasets", "serving", "objectives", "sweep"),
    ("__init__",),
    ("cli",),
    ("__main__",),
)
LEVEL = {room: level for level, rooms in enumerate(LAYERS) for room in rooms}


def room_of(module: str) -> str | None:
    """`keras_mtl.data.dataset` -> `data`; None for modules outside the package."""
    parts = module.split(".")
    if parts[0] != "keras_mtl":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: pathlib.Path):
    """`(line, imported module)` for every import of `keras_mtl` in a file,
    including imports inside functions."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "keras_mtl":  # from keras_mtl import data, layers
                for alias in node.names:
                    yield node.lineno, f"keras_mtl.{alias.name}"
            else:
                yield node.lineno, node.module


def module_files():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield path, ".".join(rel.parts)


def violations(files) -> list[str]:
    found = []
    for path, module in files:
        here = room_of(module)
        for line, imported in imports_of(path):
            there = room_of(imported)
            if there is None or there == here:
                continue
            if LEVEL[there] >= LEVEL[here]:
                found.append(
                    f"{module}:{line} ({here}, layer {LEVEL[here]}) imports "
                    f"{imported} ({there}, layer {LEVEL[there]})"
                )
    return found


def test_every_room_is_in_the_declared_order():
    rooms = {room_of(m) for _, m in module_files()}
    assert rooms <= set(LEVEL), f"undeclared rooms: {sorted(rooms - set(LEVEL))}"


def test_imports_only_go_down():
    assert violations(module_files()) == []


def test_an_upward_import_is_reported(tmp_path):
    upward = tmp_path / "tasks.py"
    upward.write_text("from keras_mtl.models import build_mmoe\n")
    sideways = tmp_path / "losses.py"
    sideways.write_text("def f():\n    from keras_mtl.layers import MLP\n")
    own = tmp_path / "mlp.py"
    own.write_text("from keras_mtl.layers._shapes import shape_list\n")
    found = violations(
        [
            (upward, "keras_mtl.tasks"),
            (sideways, "keras_mtl.losses"),
            (own, "keras_mtl.layers.mlp"),
        ]
    )
    assert found == [
        "keras_mtl.tasks:1 (tasks, layer 2) imports keras_mtl.models (models, layer 5)",
        "keras_mtl.losses:2 (losses, layer 3) imports keras_mtl.layers "
        "(layers, layer 3)",
    ]


@pytest.mark.parametrize("module", ["keras_mtl.cli", "keras_mtl.data.dataset"])
def test_room_of(module):
    assert room_of(module) == module.split(".")[1]
