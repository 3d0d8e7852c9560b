"""What every builder shares: inputs, encoder, towers, the model, compile."""

from __future__ import annotations

from collections.abc import Sequence

from keras_mtl.features import (
    Feature,
    Task,
    check_features,
    make_inputs,
)
from keras_mtl.layers import FeatureEncoder, TaskTower
from keras_mtl.models.multi_task_model import MultiTaskModel
from keras_mtl.training import compile_model


def encode_inputs(features: Sequence[Feature]):
    """`(inputs dict, encoded vector)` for a list of feature specs."""
    features = check_features(features)
    inputs = make_inputs(features)
    return inputs, FeatureEncoder(features, name="feature_encoder")(inputs)


def make_model(
    inputs: dict,
    outputs: dict,
    tasks: Sequence[Task],
    name: str,
    compile: bool | dict,
) -> MultiTaskModel:
    """The `MultiTaskModel`, compiled for `tasks` unless `compile` is False.

    `compile` is True (defaults), False (leave uncompiled) or a dict of
    `keras_mtl.compile_model` arguments.
    """
    model = MultiTaskModel(inputs, outputs, name=name)
    if compile:
        compile_model(model, tasks, **(compile if isinstance(compile, dict) else {}))
    return model


def finish_model(
    inputs: dict,
    task_inputs: Sequence,
    tasks: Sequence[Task],
    tower_units: Sequence[int],
    tower_dropout: float,
    name: str,
    compile: bool | dict,
) -> MultiTaskModel:
    """One `TaskTower` per task on its own input, then `make_model`."""
    outputs = {
        task.name: TaskTower(
            tower_units, task.type, dropout=tower_dropout, name=f"{task.name}_tower"
        )(x)
        for task, x in zip(tasks, task_inputs)
    }
    return make_model(inputs, outputs, tasks, name, compile)
