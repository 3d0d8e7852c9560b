"""Shared-bottom multi-task model (hard parameter sharing)."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl._checks import check_bool
from keras_mtl.features import Feature
from keras_mtl.layers import MLP
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    encode_inputs,
    encode_selected_inputs,
    finish_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


@builds(TOWER_TASK_TYPES)
def build_shared_bottom(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    hidden_units: Sequence[int] = (64,),
    tower_units: Sequence[int] = (8,),
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    feature_selection: bool = False,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """One bottom MLP shared by all tasks, then one tower per task.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); the model outputs
            one prediction per task.
        hidden_units: widths of the shared bottom MLP (named "bottom"; may be
            empty). Defaults to (64,).
        tower_units: widths of each task tower. Defaults to (8,).
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each layer of the shared bottom.
            Defaults to 0.
        feature_selection: bool. Per-task feature selection: a
            `keras_mtl.layers.FeatureSelection` (named "feature_selection")
            re-weights the feature fields once per task and the shared bottom
            runs on each task's view (the same weights, T times the bottom's
            compute), so what a task's tower sees depends only on the fields
            its selection keeps. `keras_mtl.feature_weights(model, data)`
            tables the weights. Defaults to False.
        compile: True compiles with per-task defaults
            (`MultiTaskModel.compile`), a dict passes arguments to it, False
            leaves the model uncompiled. Defaults to True.
        name: model name. Defaults to None: "shared_bottom".

    Returns:
        A `MultiTaskModel`: inputs named after the features, outputs a dict
        keyed by task name, each of shape `(batch,)` (`(batch, num_classes)`
        for a multiclass task).

    Example:
    >>> model = build_shared_bottom([km.DenseFeature("x", dim=10)],
    ...                             [Task("a"), Task("b", "regression")])
    >>> p = model.predict({"x": np.zeros((3, 10), "float32")}, verbose=0)
    >>> p["a"].shape, bool(((p["a"] > 0) & (p["a"] < 1)).all())  # probabilities
    ((3,), True)

    References:
        Caruana, "Multitask Learning", Machine Learning 28 (1997).
    """
    tasks = check_builder_tasks(build_shared_bottom, tasks)
    check_dropout(build_shared_bottom, dropout=dropout, hidden_dropout=hidden_dropout)
    check_bool("build_shared_bottom", "feature_selection", feature_selection)
    if feature_selection:
        inputs, views = encode_selected_inputs(features, [t.name for t in tasks])
        bottom = MLP(hidden_units, dropout=hidden_dropout, name="bottom")
        task_inputs = [bottom(view) for view in views]
    else:
        inputs, x = encode_inputs(features)
        shared = MLP(hidden_units, dropout=hidden_dropout, name="bottom")(x)
        task_inputs = [shared] * len(tasks)
    name = name or "shared_bottom"
    return finish_model(inputs, task_inputs, tasks, tower_units, dropout, name, compile)
