"""The branched builder: which task reads which branch, and its `branches`
checks. The builder battery (learning, .keras round trip, serving parity, bad
specs) runs for it with every flat builder in test_builders.py;
`adaptive_branching`, which chooses the branches, in test_adaptive_branching.py."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from tests.helpers import value_and_gradients
from tests.models.test_builders import BATTERY_TASKS, FEATURES, features_only, make_data

SMALL = dict(shared_units=(8,), branch_units=(4,), tower_units=(4,), compile=False)


def _gradient_owners(model, x, task):
    """The variable paths that the task's output depends on (a gradient that
    is not zero: unconnected ones are None on TensorFlow, zeros on JAX)."""
    variables = model.trainable_variables
    _, grads = value_and_gradients(
        lambda: keras.ops.sum(model(x)[task]), variables=variables
    )
    return {v.path.split("/")[0] for v, g in zip(variables, grads) if np.any(g)}


def test_each_task_reads_the_trunk_and_its_own_branch_only():
    model = km.build_branched(
        FEATURES, BATTERY_TASKS, branches=[["income", "segment"], ["spend"]], **SMALL
    )
    first, second = (model.get_layer(f"branch_{k}_hidden") for k in (1, 2))
    for task, branch in [("income", first), ("segment", first), ("spend", second)]:
        assert model.get_layer(f"{task}_tower").input is branch.output
    assert first.input is second.input is model.get_layer("bottom").output
    x = features_only(make_data(16))
    uses = {t.name: _gradient_owners(model, x, t.name) for t in BATTERY_TASKS}
    assert uses["income"] == {
        "feature_encoder", "bottom", "branch_1_hidden", "income_tower"
    }  # fmt: skip
    assert uses["segment"] == {
        "feature_encoder", "bottom", "branch_1_hidden", "segment_tower"
    }  # fmt: skip
    assert uses["spend"] == {
        "feature_encoder", "bottom", "branch_2_hidden", "spend_tower"
    }  # fmt: skip
    assert model.name == "branched"


def test_default_is_one_branch_and_an_empty_trunk_reads_the_encoder():
    model = km.build_branched(FEATURES, BATTERY_TASKS, **SMALL)
    branches = [layer.name for layer in model.layers if "branch" in layer.name]
    assert branches == ["branch_1_hidden"]
    for task in BATTERY_TASKS:
        tower = model.get_layer(f"{task.name}_tower")
        assert tower.input is model.get_layer("branch_1_hidden").output
    no_trunk = km.build_branched(
        FEATURES,
        BATTERY_TASKS,
        branches=[["income"], ["spend"], ["segment"]],
        **{**SMALL, "shared_units": ()},
    )
    assert "bottom" not in [layer.name for layer in no_trunk.layers]
    encoder = no_trunk.get_layer("feature_encoder")
    for k in (1, 2, 3):
        assert no_trunk.get_layer(f"branch_{k}_hidden").input is encoder.output
    # (the branches are the only per-group layers: three MLPs of 4 units)
    assert no_trunk.get_layer("branch_3_hidden").output.shape == (None, 4)


@pytest.mark.parametrize(
    "branches, match",
    [
        ([["income", "spend"]], r"leaves out task\(s\) \['segment'\]"),
        ([["income", "spend"], ["segment", "income"]], "names task 'income' twice"),
        (
            [["income", "spend", "segment", "clicks"]],
            "names 'clicks', which is no task",
        ),
        ([["income", "spend", "segment"], []], "has an empty group"),
        (
            ["income", ["spend", "segment"]],
            r"must be a list of lists of task names; got the group 'income' \(a one-",
        ),
        ("income", "must be a list of lists of task names, got 'income'"),
        (
            [3, ["income", "spend", "segment"]],
            "must be a list of lists of task names; got the group 3",
        ),
    ],
)
def test_bad_branches_are_named(branches, match):
    with pytest.raises(ValueError, match=f"^build_branched: branches {match}"):
        km.build_branched(FEATURES, BATTERY_TASKS, branches=branches, **SMALL)


def test_bad_widths_are_named():
    with pytest.raises(ValueError, match="build_branched: branch_units must hold"):
        km.build_branched(FEATURES, BATTERY_TASKS, branch_units=())
    with pytest.raises(ValueError, match="build_branched: shared_units must hold"):
        km.build_branched(FEATURES, BATTERY_TASKS, shared_units=(0,))
