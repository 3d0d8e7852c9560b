"""Sluice unit: learned linear mixing of the task networks' subspaces."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mtl._checks import check_fraction, check_positive_int
from keras_mtl.layers._initializers import add_start_weight
from keras_mtl.layers._shapes import task_shapes
from keras_mtl.layers.cross_stitch import stitch_matrix


@keras.saving.register_keras_serializable(package="keras_mtl")
class SubspaceStitch(keras.layers.Layer):
    """Mixes the subspaces of T task activations with a learned matrix α.

    Each task's activation `h_t` (`units` wide) is cut into `num_subspaces`
    contiguous parts of `units / num_subspaces` (M = 2: its two halves), giving
    `T·M` subspaces `x_1 ... x_{TM}` (task-major). Output subspace `i` is
    `Σ_j α[i, j] x_j` with one learned, unnormalised `(T·M) x (T·M)` matrix α,
    and each task's output joins its M subspaces again. The sluice network's
    α layer: it learns what to share, between which tasks, in which subspace;
    with `num_subspaces=1` it is a `CrossStitch` unit.

    α starts uniform at `1 / (T·M)` (the sluice authors' code), or, given
    `self_weight`, at `self_weight` on the diagonal and `(1 - self_weight) /
    (T·M - 1)` elsewhere (`CrossStitch`'s start).

    Args:
        num_subspaces: int. Subspaces per task activation, M (the paper uses 1
            or 2); `units` must be a multiple. Defaults to 2.
        self_weight: float in [0, 1] or None. See above. Defaults to None
            (uniform).

    Call arguments:
        inputs: list of T tensors `(batch, units)` of one width.

    Returns:
        A list of T tensors `(batch, units)`, task `t` at position `t`.

    Example:
    >>> stitch = SubspaceStitch(num_subspaces=2)
    >>> a, b = stitch([np.ones((1, 4), "float32"), np.zeros((1, 4), "float32")])
    >>> stitch.weights_matrix.shape, float(stitch.weights_matrix[0, 0])
    ((4, 4), 0.25)
    >>> keras.ops.convert_to_numpy(a)  # every subspace: 0.25 * (1 + 1 + 0 + 0)
    array([[0.5, 0.5, 0.5, 0.5]], dtype=float32)

    References:
        Ruder, Bingel, Augenstein, Søgaard, "Latent Multi-task Architecture
        Learning", AAAI 2019 (arXiv:1705.08142).
    """

    def __init__(
        self, num_subspaces: int = 2, self_weight: float | None = None, **kwargs
    ):
        super().__init__(**kwargs)
        self.num_subspaces = check_positive_int(
            "SubspaceStitch", "num_subspaces", num_subspaces
        )
        if self_weight is not None:
            self_weight = check_fraction("SubspaceStitch", "self_weight", self_weight)
        self.self_weight = self_weight

    def initial_matrix(self, num_tasks: int) -> np.ndarray:
        """The starting α for `num_tasks` tasks, `(T·M, T·M)`."""
        n = num_tasks * self.num_subspaces
        if self.self_weight is None:
            return np.full((n, n), 1.0 / n, "float32")
        return stitch_matrix(n, self.self_weight)

    def build(self, input_shape):
        shapes = task_shapes("SubspaceStitch", input_shape)
        units = shapes[0][-1]
        if units is None or units % self.num_subspaces:
            raise ValueError(
                f"SubspaceStitch: the width {units} must split into "
                f"num_subspaces={self.num_subspaces} equal parts."
            )
        self.num_tasks = len(shapes)
        start = self.initial_matrix(self.num_tasks)
        self.alpha = add_start_weight(self, "alpha", start)

    @property
    def weights_matrix(self) -> np.ndarray:
        """The current α `(T·M, T·M)`; row `i` mixes into subspace `i`
        (task `i // M`, part `i % M`)."""
        if not self.built:
            raise ValueError("SubspaceStitch: the layer is not built yet; call it.")
        return np.asarray(keras.ops.convert_to_numpy(self.alpha))

    def call(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != self.num_tasks:
            raise ValueError(
                f"SubspaceStitch: built for a list of {self.num_tasks} task "
                f"tensors; called on {type(inputs).__name__}."
            )
        stacked = ops.stack(list(inputs), axis=1)  # (batch, T, units)
        units = stacked.shape[-1]
        parts = ops.reshape(
            stacked,
            (-1, self.num_tasks * self.num_subspaces, units // self.num_subspaces),
        )
        mixed = ops.einsum("ij,bjs->bis", self.alpha, parts)
        mixed = ops.reshape(mixed, (-1, self.num_tasks, units))
        return [mixed[:, t, :] for t in range(self.num_tasks)]

    def compute_output_shape(self, input_shape):
        return list(task_shapes("SubspaceStitch", input_shape))

    def get_config(self):
        return {
            **super().get_config(),
            "num_subspaces": self.num_subspaces,
            "self_weight": self.self_weight,
        }
