"""What every builder shares: the model class, inputs, encoder, towers, compile."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl.features import (
    Feature,
    Task,
    check_features,
    make_inputs,
)
from keras_mtl.layers import FeatureEncoder, TaskTower
from keras_mtl.training import compile_model


@keras.saving.register_keras_serializable(package="keras_mtl")
class MultiTaskModel(keras.Model):
    """A functional model whose dict outputs may outnumber the labels of a batch.

    Every builder returns one. It behaves exactly like the functional
    `keras.Model` it is built as (`MultiTaskModel(inputs, outputs)`), except that
    `fit` and `evaluate` accept label dicts without a key for some outputs: that
    output's metrics see only missing (NaN) labels. Plain Keras raises a
    `KeyError` instead, which would forbid e.g. training ESMM (outputs `ctr`,
    `cvr`, `ctcvr`) on data labelled for `ctr` and `ctcvr` only.
    """

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        if isinstance(y, dict) and isinstance(y_pred, dict):
            missing = [k for k in y_pred if k not in y]
            if missing:
                y = dict(y)
                for k in missing:
                    y[k] = ops.full_like(y_pred[k], float("nan"))
        return super().compute_metrics(x, y, y_pred, sample_weight)


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
