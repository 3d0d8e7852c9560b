"""Learned weights over a network's layer outputs (the sluice network's β)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mtl._checks import check_fraction
from keras_mtl.layers._initializers import add_start_weight
from keras_mtl.layers._shapes import common_width, shape_list


@keras.saving.register_keras_serializable(package="keras_mtl")
class LayerMixture(keras.layers.Layer):
    """`Σ_k β_k h_k`: a learned, unnormalised weighting of K layers' outputs.

    In a sluice network each task's output block reads this mixture of its
    hidden layers (after their α mixing), so a task learns which depths serve
    it: low-level features for one task, high-level ones for another. β starts
    at `last_weight` on the last layer and `(1 - last_weight) / (K - 1)` on the
    others (the sluice authors' 0.9 and 0.1 / (K - 1)).

    Args:
        last_weight: float in [0, 1]. The starting β of the last layer.
            Defaults to 0.9.

    Call arguments:
        inputs: list of K tensors `(batch, units)` of one width, lowest layer
            first.

    Returns:
        Tensor `(batch, units)`.

    Example:
    >>> mix = LayerMixture(last_weight=0.9)
    >>> out = mix([np.ones((1, 2), "float32"), np.full((1, 2), 3.0, "float32")])
    >>> np.round(keras.ops.convert_to_numpy(out), 5)  # 0.1 * 1 + 0.9 * 3
    array([[2.8, 2.8]], dtype=float32)

    References:
        Ruder, Bingel, Augenstein, Søgaard, "Latent Multi-task Architecture
        Learning", AAAI 2019 (arXiv:1705.08142).
    """

    def __init__(self, last_weight: float = 0.9, **kwargs):
        super().__init__(**kwargs)
        self.last_weight = check_fraction("LayerMixture", "last_weight", last_weight)

    def initial_weights(self, num_layers: int) -> np.ndarray:
        """The starting β for `num_layers` layers."""
        if num_layers == 1:
            return np.ones((1,), "float32")
        beta = np.full((num_layers,), (1.0 - self.last_weight) / (num_layers - 1))
        beta[-1] = self.last_weight
        return beta.astype("float32")

    def _shapes(self, input_shape) -> list[tuple]:
        is_list = bool(input_shape) and isinstance(input_shape[0], (list, tuple))
        if not is_list:
            raise ValueError(
                "LayerMixture: inputs must be a list of tensors (batch, units), "
                f"one per layer; got input shape {input_shape!r}."
            )
        shapes = shape_list(input_shape)
        common_width("LayerMixture", shapes)
        return shapes

    def build(self, input_shape):
        start = self.initial_weights(len(self._shapes(input_shape)))
        self.beta = add_start_weight(self, "beta", start)

    @property
    def layer_weights(self) -> np.ndarray:
        """The current β `(K,)`, lowest layer first."""
        if not self.built:
            raise ValueError("LayerMixture: the layer is not built yet; call it.")
        return np.asarray(keras.ops.convert_to_numpy(self.beta))

    def call(self, inputs):
        stacked = ops.stack(list(inputs), axis=1)  # (batch, K, units)
        return ops.einsum("k,bku->bu", self.beta, stacked)

    def compute_output_shape(self, input_shape):
        return self._shapes(input_shape)[0]

    def get_config(self):
        return {**super().get_config(), "last_weight": self.last_weight}
