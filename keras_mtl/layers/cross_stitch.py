"""Cross-stitch unit: learned linear mixing of the task networks' activations."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mtl._checks import check_fraction
from keras_mtl.layers._initializers import add_start_weight
from keras_mtl.layers._shapes import task_shapes


def stitch_matrix(size: int, self_weight: float) -> np.ndarray:
    """`(size, size)`: `self_weight` on the diagonal, the rest of each row
    spread evenly over the others (`[[1]]` for size 1), float32."""
    if size == 1:
        return np.ones((1, 1), "float32")
    alpha = np.full((size, size), (1.0 - self_weight) / (size - 1), "float32")
    np.fill_diagonal(alpha, self_weight)
    return alpha


@keras.saving.register_keras_serializable(package="keras_mtl")
class CrossStitch(keras.layers.Layer):
    """Mixes T task activations with a learned T x T matrix.

    With inputs `x_1 ... x_T` (one per task network, at the same depth), output
    `s` is `y_s = Σ_t α[s, t] x_t`. The matrix `α` is trained with the networks:
    a diagonal near 1 keeps the tasks apart, uniform rows share everything. As in
    the paper, `α` starts with `self_weight` on the diagonal and
    `(1 - self_weight) / (T - 1)` elsewhere, so each row sums to 1 (for one task,
    `α = [[1]]`). One scalar per task pair mixes every unit (the paper's basic
    unit, not its per-channel variant).

    Args:
        self_weight: float in [0, 1]. Initial diagonal of `α`: the share of its
            own activations each task keeps. Defaults to 0.9 (the paper's
            `α_S`).

    Call arguments:
        inputs: list of T tensors `(batch, units)` of one width.

    Returns:
        A list of T tensors `(batch, units)`: the mixed activations, task `s` at
        position `s`.

    Example:
    >>> ones, zeros = np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")
    >>> stitch = CrossStitch(self_weight=0.9)
    >>> a, b = stitch([ones, zeros])
    >>> stitch.weights_matrix
    array([[0.9, 0.1],
           [0.1, 0.9]], dtype=float32)
    >>> keras.ops.convert_to_numpy(a[0]), keras.ops.convert_to_numpy(b[0])
    (array([0.9, 0.9, 0.9], dtype=float32), array([0.1, 0.1, 0.1], dtype=float32))

    References:
        Misra et al., "Cross-stitch Networks for Multi-task Learning", CVPR 2016
        (arXiv:1604.03539).
    """

    def __init__(self, self_weight: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.self_weight = check_fraction("CrossStitch", "self_weight", self_weight)

    def initial_matrix(self, num_tasks: int) -> np.ndarray:
        """The starting `α` for `num_tasks` tasks, as a numpy array."""
        return stitch_matrix(num_tasks, self.self_weight)

    def build(self, input_shape):
        shapes = task_shapes("CrossStitch", input_shape)
        self.num_tasks = len(shapes)
        start = self.initial_matrix(self.num_tasks)
        self.alpha = add_start_weight(self, "alpha", start)

    @property
    def weights_matrix(self) -> np.ndarray:
        """The current `α` as a numpy array `(T, T)`; row `s` mixes into task `s`."""
        if not self.built:
            raise ValueError("CrossStitch: the layer is not built yet; call it first.")
        return np.asarray(keras.ops.convert_to_numpy(self.alpha))

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)):
            raise ValueError(
                "CrossStitch: inputs must be a list of tensors (batch, units), one "
                f"per task; got a single tensor of shape {ops.shape(inputs)}."
            )
        if len(inputs) != self.num_tasks:
            raise ValueError(
                f"CrossStitch: built for {self.num_tasks} inputs, called on "
                f"{len(inputs)}."
            )
        stacked = ops.stack(list(inputs), axis=1)
        mixed = ops.einsum("st,btu->bsu", self.alpha, stacked)
        return [mixed[:, s, :] for s in range(self.num_tasks)]

    def compute_output_shape(self, input_shape):
        shapes = task_shapes("CrossStitch", input_shape)
        return list(shapes)

    def get_config(self):
        return {**super().get_config(), "self_weight": self.self_weight}
