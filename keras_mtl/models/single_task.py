"""Single-task baseline: one independent network per task, in one model."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl.features import Feature, check_features, make_inputs
from keras_mtl.layers.feature_encoder import FeatureEncoder
from keras_mtl.layers.mlp import MLP
from keras_mtl.models._common import (
    TOWER_TASK_TYPES,
    builds,
    check_builder_tasks,
    check_dropout,
    finish_model,
)
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.tasks import Task


@builds(TOWER_TASK_TYPES)
def build_single_task(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    hidden_units: Sequence[int] = (32, 16),
    tower_units: Sequence[int] = (8,),
    dropout: float = 0.0,
    hidden_dropout: float = 0.0,
    compile: bool | dict = True,
    name: str | None = None,
) -> MultiTaskModel:
    """The no-sharing baseline: every task has its own embeddings and layers.

    Task `k` gets its own `FeatureEncoder` (`{task}_feature_encoder`, its own
    embedding tables), its own hidden MLP (`{task}_hidden`) and its own tower
    (`{task}_tower`); only the raw `keras.Input`s are common. No variable is
    read by two tasks, so the gradient of `Σ_k w_k L_k` with respect to task
    `k`'s variables is the gradient of `w_k L_k` alone. With an optimizer that
    updates each parameter from its own gradient (Adam, SGD; no
    `global_clipnorm`), training this model is therefore the same as training
    one network per task (a loss weight `w_k` only rescales that task's
    gradients, which Adam's update all but ignores). What the tasks do share
    is the schedule: the same batches, epochs and early stopping (on the total
    or on one monitored task). It gives the single-task baseline of a
    multi-task comparison in one `fit`.

    Args:
        features: the input feature specs.
        tasks: the `Task`s (binary, regression or multiclass); the model outputs
            one prediction per task.
        hidden_units: widths of each task's hidden MLP (may be empty).
            Defaults to (32, 16).
        tower_units: widths of each task tower. Defaults to (8,).
        dropout: float. Tower dropout (see `keras_mtl.models`). Defaults to 0.
        hidden_dropout: float. Dropout after each layer of every task's hidden
            MLP. Defaults to 0.
        compile: True compiles with per-task defaults
            (`MultiTaskModel.compile`), a dict passes arguments to it, False
            leaves the model uncompiled. Defaults to True.
        name: model name. Defaults to None: "single_task".

    Returns:
        A `MultiTaskModel`: inputs named after the features, outputs a dict keyed
        by task name, each of shape `(batch,)` (`(batch, num_classes)` for a
        multiclass task).

    Example:
    >>> features = [km.SparseFeature("user", vocabulary_size=100, embedding_dim=4),
    ...             km.DenseFeature("age", mean=40.0, std=12.0)]
    >>> model = build_single_task(features, [Task("income"), Task("marital")])
    >>> [l.name for l in model.layers if l.name.endswith("feature_encoder")]
    ['income_feature_encoder', 'marital_feature_encoder']
    """
    tasks = check_builder_tasks(build_single_task, tasks)
    check_dropout(build_single_task, dropout=dropout, hidden_dropout=hidden_dropout)
    features = check_features(features)
    inputs = make_inputs(features)
    task_inputs = []
    for task in tasks:
        encoded = FeatureEncoder(features, name=f"{task.name}_feature_encoder")(inputs)
        task_inputs.append(
            MLP(hidden_units, dropout=hidden_dropout, name=f"{task.name}_hidden")(
                encoded
            )
        )
    name = name or "single_task"
    return finish_model(inputs, task_inputs, tasks, tower_units, dropout, name, compile)
