"""Branched multi-task model: a shared trunk, one branch per group of tasks."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl._checks import check_units
from keras_mtl.features import Feature
from keras_mtl.layers import MLP
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    finish_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


def check_branches(
    owner: str, branches: Sequence[Sequence[str]] | None, names: Sequence[str]
) -> list[list[str]]:
    """`branches` as a list of lists of task names, every one of `names` once.

    None means one branch of every task, in the order of `names`. An empty group, a name
    that is no task, a task named twice or a task left out is a ValueError
    naming `owner`, the argument and the task(s).
    """
    names = list(names)
    if branches is None:
        return [names]
    if isinstance(branches, (str, bytes)) or not isinstance(branches, Sequence):
        raise ValueError(
            f"{owner}: branches must be a list of lists of task names, got "
            f"{branches!r}."
        )
    groups, seen = [], set()
    for group in branches:
        if isinstance(group, (str, bytes)) or not isinstance(group, Sequence):
            raise ValueError(
                f"{owner}: branches must be a list of lists of task names; got the "
                f"group {group!r} (a one-task group is a list too, e.g. ['spend'])."
            )
        if not group:
            raise ValueError(f"{owner}: branches has an empty group: {branches!r}.")
        for name in group:
            if name not in names:
                raise ValueError(
                    f"{owner}: branches names {name!r}, which is no task; the tasks "
                    f"are {names}."
                )
            if name in seen:
                raise ValueError(
                    f"{owner}: branches names task {name!r} twice; every task "
                    "belongs to exactly one branch."
                )
            seen.add(name)
        groups.append(list(group))
    missing = [name for name in names if name not in seen]
    if missing:
        raise ValueError(
            f"{owner}: branches leaves out task(s) {missing}; every task belongs "
            f"to exactly one branch (got {branches!r})."
        )
    return groups


@builds(TOWER_TASK_TYPES)
def build_branched(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    branches: Sequence[Sequence[str]] | None = None,
    shared_units: Sequence[int] = (64,),
    branch_units: Sequence[int] = (32,),
    tower_units: Sequence[int] = (8,),
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """A shared trunk that splits into branches, one per group of tasks.

    The tree-shaped network of fully-adaptive feature sharing (Lu et al.), with
    one split point: every task reads the shared trunk (an MLP named
    "bottom"), then the branch of its group (an MLP named `branch_<k>_hidden`,
    k = 1, 2, … in the order of `branches`), then its own tower. Tasks in one
    group share the branch; tasks in different groups share the trunk only.
    One group of all tasks is a shared-bottom model with the deeper bottom
    `shared_units + branch_units`; one group per task gives each task its own
    layers above the trunk. `keras_mtl.models.adaptive_branching` chooses the
    groups from how alike the tasks are.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass).
        branches: list of lists of task names, or None. The groups of tasks
            that share a branch; every task belongs to exactly one group.
            Defaults to None: one group of every task.
        shared_units: widths of the shared trunk (may be empty: the branches
            then read the encoded features). Defaults to (64,).
        branch_units: widths of each branch (not empty). Defaults to (32,).
        tower_units: widths of each task tower. Defaults to (8,).
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each layer of the trunk and of
            every branch. Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments
            to `MultiTaskModel.compile`, False leaves the model uncompiled.
            Defaults to True.
        name: model name. Defaults to None: "branched".

    Returns:
        A `MultiTaskModel`: inputs named after the features, outputs a dict
        keyed by task name.

    Example:
    >>> tasks = [Task("click"), Task("like"), Task("stay", "regression")]
    >>> model = build_branched([km.DenseFeature("x", dim=4)], tasks,
    ...                        branches=[["click", "like"], ["stay"]])
    >>> [layer.name for layer in model.layers if "branch" in layer.name]
    ['branch_1_hidden', 'branch_2_hidden']
    >>> p = model.predict({"x": np.zeros((2, 4), "float32")}, verbose=0)
    >>> sorted(p), p["stay"].shape
    (['click', 'like', 'stay'], (2,))

    References:
        Lu, Kumar, Zhai, Cheng, Javidi, Feris, "Fully-adaptive Feature Sharing
        in Multi-Task Networks with Applications in Person Attribute
        Classification", CVPR 2017, arXiv:1611.05377.
    """
    owner = "build_branched"
    tasks = check_builder_tasks(build_branched, tasks)
    check_dropout(build_branched, dropout=dropout, hidden_dropout=hidden_dropout)
    shared_units = check_units(owner, "shared_units", shared_units)
    branch_units = check_units(owner, "branch_units", branch_units, allow_empty=False)
    inputs, x = encode_inputs(features)
    groups = check_branches(owner, branches, [task.name for task in tasks])
    if shared_units:
        x = MLP(shared_units, dropout=hidden_dropout, name="bottom")(x)
    branch_of = {}
    for k, group in enumerate(groups, start=1):
        h = MLP(branch_units, dropout=hidden_dropout, name=f"branch_{k}_hidden")(x)
        branch_of.update(dict.fromkeys(group, h))
    return finish_model(
        inputs,
        [branch_of[task.name] for task in tasks],
        tasks,
        tower_units,
        dropout,
        name or "branched",
        compile,
    )
