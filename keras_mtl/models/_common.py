"""What every builder shares: inputs, encoder, towers, compile."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl.features import (
    Feature,
    Task,
    check_features,
    make_inputs,
)
from keras_mtl.layers import FeatureEncoder, TaskTower
from keras_mtl.training import compile_model


def encode_inputs(features: Sequence[Feature]):
    """`(inputs dict, encoded vector)` for a list of feature specs."""
    features = check_features(features)
    inputs = make_inputs(features)
    return inputs, FeatureEncoder(features, name="feature_encoder")(inputs)


def finish_model(
    inputs: dict,
    task_inputs: Sequence,
    tasks: Sequence[Task],
    tower_units: Sequence[int],
    tower_dropout: float,
    name: str,
    compile: bool | dict,
) -> keras.Model:
    """One `TaskTower` per task on its own input, a dict output, default compile.

    `compile` is True (defaults), False (leave uncompiled) or a dict of
    `keras_mtl.compile_model` arguments.
    """
    outputs = {
        task.name: TaskTower(
            tower_units, task.type, dropout=tower_dropout, name=f"{task.name}_tower"
        )(x)
        for task, x in zip(tasks, task_inputs)
    }
    model = keras.Model(inputs, outputs, name=name)
    if compile:
        compile_model(model, tasks, **(compile if isinstance(compile, dict) else {}))
    return model
