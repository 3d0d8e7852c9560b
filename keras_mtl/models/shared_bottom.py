"""Shared-bottom multi-task model (hard parameter sharing)."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl.features import Feature
from keras_mtl.layers import MLP
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    check_builder_tasks,
    encode_inputs,
    finish_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


def build_shared_bottom(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    hidden_units: Sequence[int] = (64,),
    tower_units: Sequence[int] = (8,),
    dropout: float = 0.0,
    compile: bool | dict = True,
    name: str = "shared_bottom",
) -> MultiTaskModel:
    """One bottom MLP shared by all tasks, then one tower per task.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); the model outputs
            one prediction per task.
        hidden_units: widths of the shared bottom MLP (named "bottom"; may be
            empty). Defaults to (64,).
        tower_units: widths of each task tower. Defaults to (8,).
        dropout: dropout rate in the bottom and towers. Defaults to 0.
        compile: True compiles with per-task defaults
            (`keras_mtl.compile_model`), a dict passes arguments to it, False
            leaves the model uncompiled. Defaults to True.
        name: model name. Defaults to "shared_bottom".

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
    tasks = check_builder_tasks("build_shared_bottom", tasks, TOWER_TASK_TYPES)
    inputs, x = encode_inputs(features)
    shared = MLP(hidden_units, dropout=dropout, name="bottom")(x)
    return finish_model(
        inputs, [shared] * len(tasks), tasks, tower_units, dropout, name, compile
    )
