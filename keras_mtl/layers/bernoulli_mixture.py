"""Total probability over a binary intermediate event."""

from __future__ import annotations

import keras


@keras.saving.register_keras_serializable(package="keras_mtl")
class BernoulliMixture(keras.layers.Layer):
    """`p * a + (1 - p) * b`: P(event) summed over whether a binary step happened.

    ESM² uses it for pCVR = p(action | click) p(buy | action)
    + (1 - p(action | click)) p(buy | no action).

    Call arguments:
        inputs: list `[p, a, b]` of probability tensors of one shape.

    Returns:
        A tensor of that shape.

    Example:
    >>> p, a, b = np.array([0.25]), np.array([0.8]), np.array([0.4])
    >>> keras.ops.convert_to_numpy(BernoulliMixture()([p, a, b]))  # .2 + .3
    array([0.5], dtype=float32)

    References:
        Wen et al., "Entire Space Multi-Task Modeling via Post-Click Behavior
        Decomposition for Conversion Rate Prediction", SIGIR 2020
        (arXiv:1910.07099).
    """

    def call(self, inputs):
        p, a, b = inputs
        return p * a + (1.0 - p) * b

    def compute_output_shape(self, input_shape):
        return input_shape[0]
