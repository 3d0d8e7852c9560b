"""Per-task tower: an MLP and the task's prediction unit."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl._checks import check_head_task
from keras_mtl.layers.mlp import MLP

_OUTPUT_ACTIVATION = {
    "binary": "sigmoid",
    "regression": "linear",
    "multiclass": "softmax",
}


@keras.saving.register_keras_serializable(package="keras_mtl")
class TaskTower(keras.layers.Layer):
    """Hidden layers, then the task's output: a probability, a value or classes.

    Args:
        units: sequence of int. Hidden widths of the tower (may be empty).
        task_type: "binary" (sigmoid output), "regression" (linear output) or
            "multiclass" (softmax over `num_classes`). Defaults to "binary".
        activation: activation of the hidden layers. Defaults to "relu".
        dropout: float. Dropout after each hidden layer. Defaults to 0.
        num_classes: int. Classes of a "multiclass" tower. Defaults to None.

    Call arguments:
        inputs: tensor `(batch, features)` (or `(batch, ..., features)`: the
            tower applies to the last axis).
        training: bool, enables dropout.

    Returns:
        Tensor `(batch,)`: the prediction of each example; `(batch,
        num_classes)` probabilities for "multiclass".

    Example:
    >>> tuple(TaskTower((8,), "binary")(np.zeros((3, 16), "float32")).shape)
    (3,)
    >>> tower = TaskTower((), "multiclass", num_classes=4)
    >>> probabilities = tower(np.zeros((3, 16), "float32"))
    >>> keras.ops.convert_to_numpy(probabilities[0])  # zero input, zero bias
    array([0.25, 0.25, 0.25, 0.25], dtype=float32)
    """

    def __init__(
        self,
        units: Sequence[int] = (),
        task_type: str = "binary",
        activation="relu",
        dropout: float = 0.0,
        num_classes: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.task_type, self.num_classes = check_head_task(
            "TaskTower", task_type, num_classes
        )
        self.hidden = MLP(
            units,
            activation=activation,
            dropout=dropout,
            name="hidden",
            dtype=self.dtype_policy,
        )
        self.output_unit = keras.layers.Dense(
            self.num_classes or 1,
            activation=_OUTPUT_ACTIVATION[task_type],
            name="output",
            dtype=self.dtype_policy,
        )

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.output_unit.build(self.hidden.compute_output_shape(input_shape))

    def call(self, inputs, training=None):
        out = self.output_unit(self.hidden(inputs, training=training))
        return out if self.num_classes else ops.squeeze(out, -1)

    def compute_output_shape(self, input_shape):
        lead = tuple(input_shape[:-1])
        return lead + ((self.num_classes,) if self.num_classes else ())

    def get_config(self):
        hidden = self.hidden.get_config()
        return {
            **super().get_config(),
            "units": hidden["units"],
            "task_type": self.task_type,
            "activation": hidden["activation"],
            "dropout": hidden["dropout"],
            "num_classes": self.num_classes,
        }
