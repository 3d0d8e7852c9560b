"""Fully-adaptive feature sharing: per-example losses, task affinity, the
grouping criterion and its search on hand-made numbers, then the whole run on
four synthetic tasks made as two related pairs."""

import importlib
import itertools

import numpy as np
import pandas as pd
import pytest

import keras_mtl as km
from keras_mtl.models.adaptive_branching import (
    group_tasks,
    grouping_cost,
    per_example_losses,
    task_affinity,
)

#: The module (`keras_mtl.models.adaptive_branching` is the function).
module = importlib.import_module("keras_mtl.models.adaptive_branching")
NAN = np.nan


def affinity_frame(values, names=None):
    names = names or [f"t{i}" for i in range(len(values))]
    return pd.DataFrame(np.asarray(values, float), index=names, columns=names)


# ----------------------------------------------------------- per-example losses


def test_per_example_losses_by_task_type_with_missing_labels():
    tasks = [
        km.Task("click"),
        km.Task("spend", "regression", missing_value=-1),
        km.Task("genre", "multiclass", num_classes=3),
    ]
    labels = {
        "click": np.array([1.0, 0.0, NAN]),
        "spend": np.array([2.0, -1.0, 0.5]),
        "genre": np.array([[0, 1, 0], [0.5, 0.5, 0], [NAN, NAN, NAN]]),
    }
    predictions = {
        "click": np.array([0.8, 0.25, 0.5]),
        "spend": np.array([1.5, 3.0, 0.5]),
        "genre": np.array([[0.2, 0.5, 0.3], [0.25, 0.25, 0.5], [0.2, 0.2, 0.6]]),
    }
    losses = per_example_losses(tasks, labels, predictions)
    assert list(losses.columns) == ["click", "spend", "genre"]
    expected = {
        "click": [-np.log(0.8), -np.log(0.75), NAN],
        "spend": [0.25, NAN, 0.0],
        "genre": [-np.log(0.5), -np.log(0.25), NAN],  # 0.5·ln¼ + 0.5·ln¼
    }
    for name, values in expected.items():
        np.testing.assert_allclose(losses[name], values, rtol=1e-12)
    clipped = per_example_losses(
        tasks[:1], {"click": np.array([1.0])}, {"click": np.array([0.0])}
    )
    np.testing.assert_allclose(clipped["click"], [-np.log(1e-7)], rtol=1e-9)


def test_per_example_losses_name_what_is_wrong():
    task = km.Task("click")
    with pytest.raises(ValueError, match="predictions has no entry for task 'click'"):
        per_example_losses([task], {"click": [1.0]}, {"ctr": [0.5]})
    with pytest.raises(ValueError, match=r"labels of shape \(2,\) and predictions"):
        per_example_losses([task], {"click": [1.0, 0.0]}, {"click": [0.5]})
    rank = km.Task("rank", "ranking", list_size=2)
    with pytest.raises(ValueError, match="task 'rank' has type 'ranking'"):
        per_example_losses([rank], {"rank": [[1, 0]]}, {"rank": [[0.1, 0.2]]})


# ---------------------------------------------------------------- task affinity


def test_affinity_counts_agreement_on_rows_labelled_for_both():
    losses = pd.DataFrame(
        {
            "a": [0.1, 0.9, 0.2, 0.8, NAN, 0.5],  # median 0.5: easy rows 0, 2
            "b": [1.0, 3.0, 2.0, 4.0, 0.0, NAN],  # median 2: easy rows 0, 4
            "c": [0.8, 0.1, 0.9, 0.2, 0.5, 0.3],  # median 0.4: easy rows 1, 3, 5
        }
    )
    table = task_affinity(losses)
    assert list(table.index) == list(table.columns) == ["a", "b", "c"]
    # a, b on rows 0-3: easy/hard (1,1), (0,0), (1,0), (0,0) -> 3 of 4 agree
    assert table.loc["a", "b"] == table.loc["b", "a"] == 0.75
    assert table.loc["a", "c"] == 0.0  # a's easy rows are c's hard ones
    assert table.loc["b", "c"] == 0.2  # rows 0-4: agree on row 2 only
    np.testing.assert_array_equal(np.diag(table), 1.0)
    # At the 0.75 quantile: a easy on rows 0, 2, 5 (< 0.8), b on 0, 2, 4 (< 3).
    assert task_affinity(losses, easy_quantile=0.75).loc["a", "b"] == 1.0
    # A dict of arrays works the same.
    as_dict = task_affinity({k: losses[k].to_numpy() for k in losses})
    pd.testing.assert_frame_equal(as_dict, table)


@pytest.mark.parametrize(
    "losses, kwargs, match",
    [
        ({"a": [1.0, 2.0]}, {"easy_quantile": 0.0}, "easy_quantile must be a number"),
        ({"a": [1.0, 2.0]}, {"easy_quantile": 1}, r"in \(0, 1\), got 1"),
        ({"a": [1.0, 2.0]}, {"easy_quantile": True}, "got True"),
        ({"a": [1.0, NAN], "b": [NAN, 2.0]}, {}, "'a' and 'b' share no labelled"),
        ({"a": [1.0, 2.0], "b": [NAN, NAN]}, {}, "task 'b' has no finite loss"),
        ({"a": [1.0], "b": [1.0, 2.0]}, {}, "dict of equally long 1-D arrays"),
        (pd.DataFrame(), {}, "losses has no task"),
    ],
)
def test_affinity_errors(losses, kwargs, match):
    with pytest.raises(ValueError, match=f"^task_affinity: .*{match}"):
        task_affinity(losses, **kwargs)


# ------------------------------------------------------- the grouping criterion

#: Two related pairs: (t0, t1) and (t2, t3).
PAIRS = [
    [1.0, 0.85, 0.5, 0.45],
    [0.85, 1.0, 0.55, 0.5],
    [0.5, 0.55, 1.0, 0.8],
    [0.45, 0.5, 0.8, 1.0],
]


def test_grouping_cost_by_hand():
    a = affinity_frame([[1.0, 0.9, 0.5], [0.9, 1.0, 0.4], [0.5, 0.4, 1.0]], list("xyz"))
    # x, y: 0.1 to each other, z alone 0 -> (0.1 + 0.1 + 0) / 3; 1 of 2 extra branches
    assert grouping_cost(a, [["x", "y"], ["z"]], 0.5) == pytest.approx(0.2 / 3 + 0.25)
    # One group: each task's least similar mate: x-z 0.5, y-z 0.6, z-y 0.6.
    assert grouping_cost(a, [["x", "y", "z"]], 0.5) == pytest.approx(1.7 / 3)
    assert grouping_cost(a, [["x"], ["y"], ["z"]], 0.3) == pytest.approx(0.3)
    assert grouping_cost(a, [["z"], ["y", "x"]], 0.0) == pytest.approx(0.2 / 3)


def test_complexity_trades_separation_for_branches():
    a = affinity_frame(PAIRS)
    assert group_tasks(a) == [["t0", "t1"], ["t2", "t3"]]  # complexity 0.5
    assert group_tasks(a, complexity=0.0) == [["t0"], ["t1"], ["t2"], ["t3"]]
    assert group_tasks(a, complexity=3.0) == [["t0", "t1", "t2", "t3"]]
    # Task order: groups by their first task, tasks in the affinity's order.
    order = ["t2", "t0", "t3", "t1"]
    shuffled = a.loc[order, order]
    assert group_tasks(shuffled) == [["t2", "t3"], ["t0", "t1"]]
    # Ties go to fewer branches: t0 and t1 agreeing on every example cost
    # nothing together, even at complexity 0.
    same = affinity_frame([[1.0, 1.0, 0.5], [1.0, 1.0, 0.5], [0.5, 0.5, 1.0]])
    assert group_tasks(same, complexity=0.0) == [["t0", "t1"], ["t2"]]
    # Two tasks share a branch exactly when 1 - affinity < complexity.
    two = affinity_frame([[1.0, 0.7], [0.7, 1.0]])
    assert group_tasks(two, complexity=0.31) == [["t0", "t1"]]
    assert group_tasks(two, complexity=0.29) == [["t0"], ["t1"]]


def _all_groupings(n):
    """Every partition of range(n), from every labelling (independent of the
    module's enumeration)."""
    seen = set()
    for labels in itertools.product(range(n), repeat=n):
        groups = {}
        for task, label in enumerate(labels):
            groups.setdefault(label, []).append(task)
        key = tuple(sorted(tuple(g) for g in groups.values()))
        if key not in seen:
            seen.add(key)
            yield [list(g) for g in key]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_search_finds_the_cheapest_grouping(seed):
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.uniform(0.2, 1.0, (5, 5)), 1)
    a = affinity_frame(upper + upper.T + np.eye(5))
    names = list(a.index)
    costs = [
        grouping_cost(a, [[names[i] for i in g] for g in groups], 0.4)
        for groups in _all_groupings(5)
    ]
    assert len(costs) == 52  # Bell(5)
    chosen = group_tasks(a, complexity=0.4)
    assert grouping_cost(a, chosen, 0.4) == pytest.approx(min(costs), abs=1e-12)


def test_greedy_search_above_the_exhaustive_limit(monkeypatch):
    assert module.EXHAUSTIVE_TASKS == 8
    rng = np.random.default_rng(0)
    blocks = np.repeat([0, 1, 2], [4, 3, 3])[rng.permutation(10)]  # 10 tasks
    noise = np.triu(rng.uniform(-0.05, 0.05, (10, 10)), 1)
    values = np.where(blocks[:, None] == blocks[None, :], 0.9, 0.5)
    values = values + noise + noise.T
    np.fill_diagonal(values, 1.0)
    a = affinity_frame(values)
    expected = [[f"t{i}" for i in np.flatnonzero(blocks == b)] for b in range(3)]
    assert sorted(group_tasks(a)) == sorted(expected)
    # The greedy merges find the pairs too when forced on four tasks.
    monkeypatch.setattr(module, "EXHAUSTIVE_TASKS", 0)
    assert group_tasks(affinity_frame(PAIRS)) == [["t0", "t1"], ["t2", "t3"]]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: group_tasks(np.eye(2)), "affinity must be a task x task DataFrame"),
        (
            lambda: group_tasks(pd.DataFrame(np.eye(2), columns=["a", "b"])),
            "square with the same unique task names",
        ),
        (
            lambda: group_tasks(affinity_frame([[1.0, 0.2], [0.3, 1.0]])),
            "symmetric with values in",
        ),
        (lambda: group_tasks(affinity_frame(PAIRS), -0.1), "complexity must be"),
        (
            lambda: grouping_cost(affinity_frame(PAIRS), [["t0", "t1"], ["t2"]]),
            r"branches leaves out task\(s\) \['t3'\]",
        ),
    ],
)
def test_grouping_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------- the whole run

FEATURES = [km.DenseFeature("x", dim=8)]
#: Interleaved, so that a pair is not simply two neighbours.
TASKS = [
    km.Task("a1", "regression"),
    km.Task("b1"),
    km.Task("a2", "regression"),
    km.Task("b2"),
]


def two_pairs(seed, n=1024, dim=8, noise=0.02):
    """a1, a2: one non-linear function of x plus noise (regression); b1, b2:
    the sign of another, of an orthogonal direction of x, plus noise (binary).
    Each pair shares its function; the pairs are independent."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, dim)).astype("float32")
    q, _ = np.linalg.qr(rng.normal(size=(dim, 2)))
    fa, fb = (np.sin(2 * z) + z for z in (x @ q[:, 0], x @ q[:, 1]))
    e = rng.normal(size=(4, n)) * noise
    return {
        "x": x,
        "a1": (fa + e[0]).astype("float32"),
        "a2": (fa + e[1]).astype("float32"),
        "b1": (fb + e[2] > 0).astype("float32"),
        "b2": (fb + e[3] > 0).astype("float32"),
    }


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_related_pairs_are_grouped_into_those_pairs(seed):
    build = seed == 0  # the model itself once
    found = km.adaptive_branching(
        FEATURES,
        TASKS,
        two_pairs(seed),
        epochs=10,
        batch_size=64,
        seed=seed,
        build=build,
        shared_units=(8,),
        branch_units=(4,),
        tower_units=(4,),
        compile=False,
    )
    assert found.groups == [["a1", "a2"], ["b1", "b2"]]
    a = found.affinity
    assert list(a.index) == ["a1", "b1", "a2", "b2"]
    pairs = [a.loc["a1", "a2"], a.loc["b1", "b2"]]
    across = [a.loc[i, j] for i in ("a1", "a2") for j in ("b1", "b2")]
    assert min(pairs) > max(across), a
    assert found.cost == pytest.approx(grouping_cost(a, found.groups, 0.5))
    assert list(found.separation.index) == [1, 2, 3, 4]
    assert found.separation[4] == 0.0
    assert found.cost == pytest.approx(found.separation[2] + 0.5 / 3)
    if not build:
        assert found.model is None
        return
    model = found.model
    assert model.name == "branched"
    for task, k in [("a1", 1), ("a2", 1), ("b1", 2), ("b2", 2)]:
        branch = model.get_layer(f"branch_{k}_hidden")
        assert model.get_layer(f"{task}_tower").input is branch.output


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(tasks=[km.Task("a"), km.Task("b", metric_only=True)]), "'b' is metric"),
        (dict(tasks=[km.Task("r", "ranking", list_size=2)]), "type 'ranking'"),
        (dict(branches=[["a1", "a2", "b1", "b2"]]), "branches is what"),
        (dict(units=(8,)), "options are for build_branched: .*'units'"),
        (dict(complexity=-1), "complexity must be a finite number >= 0"),
        (dict(epochs=0), "epochs must be a positive int"),
        (dict(thin_units=()), "thin_units must hold a non-empty"),
        (dict(learning_rate=0), "learning_rate must be a finite number > 0"),
    ],
)
def test_bad_arguments_fail_before_training(kwargs, match):
    args = dict(features=FEATURES, tasks=TASKS, data={}) | kwargs
    with pytest.raises(ValueError, match=f"^adaptive_branching: .*{match}"):
        km.adaptive_branching(**args)
