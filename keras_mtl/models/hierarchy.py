"""Task hierarchy: each task supervised at its own depth (the Joint Many-Task model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras

from keras_mtl._checks import check_non_negative, check_positive_int, check_units
from keras_mtl.features import Feature
from keras_mtl.layers import MLP, LabelEmbedding, SuccessiveRegularization, TaskTower
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    make_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


def check_levels(owner: str, levels, tasks: Sequence[Task]) -> dict[str, int]:
    """`{task name: depth}` for `tasks`, or ValueError naming `owner`.

    None gives the tasks' order (the first task at depth 1, the next at 2, ...).
    Otherwise `levels` must map every task, and only the tasks, to a positive
    int, and the depths must run 1, 2, ..., L without a gap: a level without a
    task would be supervised by nothing (give a level more `hidden_units` for
    depth instead).
    """
    names = [task.name for task in tasks]
    if levels is None:
        return {name: depth for depth, name in enumerate(names, start=1)}
    if not isinstance(levels, Mapping):
        raise ValueError(
            f"{owner}: levels must be a dict {{task name: depth}}, got {levels!r}."
        )
    unknown = [name for name in levels if name not in names]
    if unknown:
        raise ValueError(
            f"{owner}: levels names unknown task(s) {unknown}; the tasks are {names}."
        )
    missing = [name for name in names if name not in levels]
    if missing:
        raise ValueError(
            f"{owner}: levels gives no depth for task(s) {missing}; give every "
            f"task a depth (1 is the lowest), e.g. {dict.fromkeys(names, 1)}."
        )
    depths = {
        name: check_positive_int(owner, f"levels[{name!r}]", levels[name])
        for name in names
    }
    gaps = sorted(set(range(1, max(depths.values()) + 1)) - set(depths.values()))
    if gaps:
        raise ValueError(
            f"{owner}: levels leave depth(s) {gaps} without a task; depths must run "
            f"1, 2, ..., {max(depths.values())} without a gap (for a deeper level, "
            f"give it more hidden_units); got {dict(levels)}."
        )
    return depths


@builds(TOWER_TASK_TYPES)
def build_hierarchy(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    levels: Mapping[str, int] | None = None,
    hidden_units: Sequence[int] = (32,),
    label_dim: int = 8,
    tower_units: Sequence[int] = (8,),
    successive_weight: float = 1e-3,
    refresh_every: int = 100,
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """A task hierarchy: each task supervised at its own depth (JMT).

    Tasks sit at levels 1 (lowest) to L (`levels`). Level 1 is an MLP of
    `hidden_units` on the encoded features `x` (`level_1_hidden`); level
    k > 1 is an MLP (`level_k_hidden`) on `[x; h_{k-1}; Σ_j y_j]`
    (`level_k_input`): a shortcut of the input representation, the level
    below's hidden state, and the sum (`level_k_labels` when several) of the
    label embeddings of every task below level k. A
    task's label embedding (`LabelEmbedding`, `{task}_label_embedding`,
    `label_dim` wide) is `Σ_j p(j | h) ℓ(j)` for a multiclass task, `p · ℓ`
    for a binary one and `ŷ · ℓ` (its prediction times a learned vector) for
    a regression one. Each task's tower (`{task}_tower`) reads its level's
    hidden state. The higher tasks' gradients reach the lower levels (through
    the hidden states and the soft label embeddings).

    Successive regularisation (`successive_weight` δ > 0): the hidden MLP of
    every level below the top is wrapped in a `SuccessiveRegularization`
    (then `level_k_hidden` is the wrapper, its MLP `.layer`), which adds
    `δ ‖θ − θ′‖²` over that level's weights, `θ′` a snapshot of them that
    the layer refreshes every `refresh_every` training steps: trained in one
    `fit`, that is the closest to JMT's "the lower task's parameters after
    its own training in this epoch" (see `SuccessiveRegularization`). As one
    summed loss trains every task, the term damps the lower task's own
    updates of those weights too, not only the higher tasks'. The feature
    embeddings and the task towers are not regularised.

    With every task at depth 1 the model is `build_shared_bottom` (one MLP,
    then the towers), layer for layer (its MLP is named `level_1_hidden`, not
    `bottom`).

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass).
        levels: dict of task name to depth (int >= 1), every task named, the
            depths 1, 2, ..., L without a gap; tasks may share a depth.
            Defaults to None: the tasks' order, the first task at depth 1,
            the second at depth 2, and so on.
        hidden_units: widths of every level's MLP (not empty). Defaults to
            (32,).
        label_dim: int. Width of the label embeddings. Defaults to 8.
        tower_units: widths of each task tower. Defaults to (8,).
        successive_weight: float >= 0. δ of the successive regularisation;
            0 turns it off. Defaults to 1e-3 (the paper's value).
        refresh_every: int >= 1. Training steps between refreshes of `θ′`.
            Defaults to 100.
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each layer of every level's MLP.
            Defaults to 0.
        compile: True compiles with per-task defaults, a dict passes arguments
            to `MultiTaskModel.compile`, False leaves the model uncompiled.
        name: model name. Defaults to None: "hierarchy".

    Returns:
        A `MultiTaskModel` with inputs named after the features and a dict of
        outputs keyed by task name.

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> tasks = [Task("click"), Task("segment", "multiclass", num_classes=3)]
    >>> model = build_hierarchy(features, tasks, levels={"segment": 1, "click": 2})
    >>> model.get_layer("level_2_input").output.shape  # x (5) + h_1 (32) + y (8)
    (None, 45)
    >>> type(model.get_layer("level_1_hidden")).__name__  # below the top: regularised
    'SuccessiveRegularization'

    References:
        Hashimoto, Xiong, Tsuruoka, Socher, "A Joint Many-Task Model: Growing a
        Neural Network for Multiple NLP Tasks", EMNLP 2017 (arXiv:1611.01587).
    """
    owner = "build_hierarchy"
    tasks = check_builder_tasks(build_hierarchy, tasks)
    check_dropout(build_hierarchy, dropout=dropout, hidden_dropout=hidden_dropout)
    inputs, x = encode_inputs(features)  # checks the features first
    depths = check_levels(owner, levels, tasks)
    units = check_units(owner, "hidden_units", hidden_units, allow_empty=False)
    label_dim = check_positive_int(owner, "label_dim", label_dim)
    delta = check_non_negative(owner, "successive_weight", successive_weight)
    refresh_every = check_positive_int(owner, "refresh_every", refresh_every)
    top = max(depths.values())

    outputs, label_embeddings, h = {}, [], None
    for level in range(1, top + 1):
        if level == 1:
            level_input = x
        else:
            labels = (
                keras.layers.Add(name=f"level_{level}_labels")(label_embeddings)
                if len(label_embeddings) > 1
                else label_embeddings[0]
            )
            level_input = keras.layers.Concatenate(name=f"level_{level}_input")(
                [x, h, labels]
            )
        if delta and level < top:
            hidden = SuccessiveRegularization(
                MLP(units, dropout=hidden_dropout, name="mlp"),
                delta=delta,
                refresh_every=refresh_every,
                name=f"level_{level}_hidden",
            )
        else:
            hidden = MLP(units, dropout=hidden_dropout, name=f"level_{level}_hidden")
        h = hidden(level_input)
        for task in tasks:
            if depths[task.name] != level:
                continue
            outputs[task.name] = TaskTower(
                tower_units,
                task.type,
                dropout=dropout,
                num_classes=task.num_classes,
                name=f"{task.name}_tower",
            )(h)
            if level < top:
                label_embeddings.append(
                    LabelEmbedding(
                        label_dim,
                        task.type,
                        num_classes=task.num_classes,
                        name=f"{task.name}_label_embedding",
                    )(outputs[task.name])
                )
    outputs = {task.name: outputs[task.name] for task in tasks}
    return make_model(inputs, outputs, tasks, name or "hierarchy", compile)
