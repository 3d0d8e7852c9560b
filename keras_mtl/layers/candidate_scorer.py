"""Scores candidate items for a user: a CTR head or a ranking head."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl.layers.mlp import MLP

_OUTPUT_ACTIVATION = {"binary": "sigmoid", "regression": "linear", "ranking": "linear"}


@keras.saving.register_keras_serializable(package="keras_mtl")
class CandidateScorer(keras.layers.Layer):
    """An MLP on `[user; item]`: one score per candidate item.

    The user vector is paired with one item `(batch, item_dim)` (e.g. DUPN's
    CTR head: does the user click this item?) or with each item of a list
    `(batch, candidates, item_dim)` (the L2R head: one score per candidate,
    ranked by a pairwise or listwise loss). The user side never depends on the
    candidates, so a server can compute it once per request and score many
    items (`keras_mtl.dupn_serving_models`).

    Args:
        units: sequence of int. Hidden widths. Defaults to (64,).
        task_type: "binary" (probability), "regression" (value) or "ranking"
            (raw score). Defaults to "binary".
        activation: activation of the hidden layers. Defaults to "relu".
        dropout: float. Dropout after each hidden layer. Defaults to 0.

    Call arguments:
        inputs: `[user (batch, user_dim), items (batch, item_dim) or
            (batch, candidates, item_dim)]`.
        training: bool, enables dropout.

    Returns:
        Tensor `(batch,)` or `(batch, candidates)`.

    Example:
    >>> scorer = CandidateScorer((8,), "ranking")
    >>> scorer([np.ones((2, 6), "float32"), np.ones((2, 10, 4), "float32")]).shape
    (2, 10)
    """

    def __init__(
        self,
        units: Sequence[int] = (64,),
        task_type: str = "binary",
        activation="relu",
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if task_type not in _OUTPUT_ACTIVATION:
            raise ValueError(
                f"CandidateScorer: task_type must be one of "
                f"{tuple(_OUTPUT_ACTIVATION)}, got {task_type!r}."
            )
        self.task_type = task_type
        self.hidden = MLP(units, activation=activation, dropout=dropout, name="hidden")
        self.output_unit = keras.layers.Dense(
            1, activation=_OUTPUT_ACTIVATION[task_type], name="output"
        )
        self.supports_masking = True

    def _pair_shape(self, input_shape):
        user, items = input_shape
        if len(user) != 2 or len(items) not in (2, 3):
            raise ValueError(
                "CandidateScorer: expected [user (batch, dim), items (batch, dim) or "
                f"(batch, candidates, dim)]; got {tuple(user)} and {tuple(items)}."
            )
        return tuple(items[:-1]) + (user[-1] + items[-1],)

    def build(self, input_shape):
        pair = self._pair_shape(input_shape)
        self.hidden.build(pair)
        self.output_unit.build(self.hidden.compute_output_shape(pair))

    def call(self, inputs, training=None):
        user, items = inputs
        if len(items.shape) == 3:
            user = ops.repeat(ops.expand_dims(user, 1), ops.shape(items)[1], axis=1)
        pair = ops.concatenate([user, ops.cast(items, user.dtype)], axis=-1)
        return ops.squeeze(self.output_unit(self.hidden(pair, training=training)), -1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return self._pair_shape(input_shape)[:-1]

    def get_config(self):
        hidden = self.hidden.get_config()
        return {
            **super().get_config(),
            "units": hidden["units"],
            "task_type": self.task_type,
            "activation": hidden["activation"],
            "dropout": hidden["dropout"],
        }
