"""Scores candidate items for a user: a CTR head or a ranking head."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl.layers.task_tower import TaskTower

_TASK_TYPES = ("binary", "regression", "ranking")


@keras.saving.register_keras_serializable(package="keras_mtl")
class CandidateScorer(keras.layers.Layer):
    """A `TaskTower` on `[user; item]`: one score per candidate item.

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
    >>> user = np.ones((2, 6), "float32")
    >>> tuple(scorer([user, np.ones((2, 10, 4), "float32")]).shape)  # 10 candidates
    (2, 10)
    >>> tuple(scorer([user, np.ones((2, 4), "float32")]).shape)  # one item each
    (2,)
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
        if task_type not in _TASK_TYPES:
            raise ValueError(
                f"CandidateScorer: task_type must be one of {_TASK_TYPES}, got "
                f"{task_type!r}."
            )
        self.task_type = task_type
        # A ranking score is an unbounded value, like a regression output.
        self.tower = TaskTower(
            units,
            "regression" if task_type == "ranking" else task_type,
            activation=activation,
            dropout=dropout,
            name="tower",
            dtype=self.dtype_policy,
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
        self.tower.build(self._pair_shape(input_shape))

    def call(self, inputs, training=None):
        user, items = inputs
        if len(items.shape) == 3:
            user = ops.repeat(ops.expand_dims(user, 1), ops.shape(items)[1], axis=1)
        pair = ops.concatenate([user, ops.cast(items, user.dtype)], axis=-1)
        return self.tower(pair, training=training)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return self._pair_shape(input_shape)[:-1]

    def get_config(self):
        tower = self.tower.get_config()
        return {
            **super().get_config(),
            **{k: tower[k] for k in ("units", "activation", "dropout")},
            "task_type": self.task_type,
        }
