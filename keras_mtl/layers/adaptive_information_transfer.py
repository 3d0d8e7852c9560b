"""AITM's adaptive information transfer between consecutive funnel steps."""

from __future__ import annotations

import math

import keras
from keras import ops

from keras_mtl._checks import check_rate


@keras.saving.register_keras_serializable(package="keras_mtl")
class AdaptiveInformationTransfer(keras.layers.Layer):
    """Attention that mixes a step's tower output with what the previous step passes on.

    The previous step's tower output is projected to `info = relu(W_i q_{t-1})`;
    the two candidates `[q_t, info]` are scored with self-attention
    `a_j = softmax_j(<W_q c_j, W_k c_j> / sqrt(d))` and the output is
    `sum_j a_j W_v c_j`. So each example decides how much of the earlier step's
    knowledge (e.g. click signal for the purchase step) to take.

    Args:
        dropout: float. Dropout on the transferred `info`. Defaults to 0.
        kernel_initializer: initializer of the Q, K, V matrices. Defaults to
            N(0, 0.01), as in the authors' code.

    Call arguments:
        inputs: list `[current, previous]`, tensors `(batch, d)` (tower outputs
            of this step and of the step before).
        training: bool, enables dropout.

    Returns:
        Tensor `(batch, d)`. `attention_weights(inputs)` gives `(batch, 2)`: the
        weight on the current tower and on the transferred information.

    Example:
    >>> ait = AdaptiveInformationTransfer()
    >>> current, previous = np.ones((2, 8), "float32"), np.ones((2, 8), "float32")
    >>> tuple(ait([current, previous]).shape)
    (2, 8)

    Zero Q and K matrices score both candidates alike:

    >>> even = AdaptiveInformationTransfer(kernel_initializer="zeros")
    >>> _ = even([current, previous])  # builds the layer
    >>> keras.ops.convert_to_numpy(even.attention_weights([current, previous]))
    array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float32)

    References:
        Xi et al., "Modeling the Sequential Dependence among Audience
        Multi-step Conversions with Multi-task Learning in Targeted Display
        Advertising", KDD 2021 (arXiv:2105.08489).
    """

    def __init__(self, dropout: float = 0.0, kernel_initializer=None, **kwargs):
        super().__init__(**kwargs)
        self.dropout = check_rate("AdaptiveInformationTransfer", "dropout", dropout)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or keras.initializers.RandomNormal(stddev=0.01)
        )
        self.drop = keras.layers.Dropout(
            self.dropout, name="dropout", dtype=self.dtype_policy
        )

    def build(self, input_shape):
        current, previous = input_shape
        if current[-1] is None or current[-1] != previous[-1]:
            raise ValueError(
                "AdaptiveInformationTransfer: the current and previous tower "
                f"outputs need one known width; got {current} and {previous}."
            )
        d = int(current[-1])
        self.info = keras.layers.Dense(
            d, activation="relu", name="info", dtype=self.dtype_policy
        )
        self.info.build(previous)
        self.qkv = self.add_weight(
            shape=(3, d, d), initializer=self.kernel_initializer, name="qkv"
        )

    def _candidates(self, inputs, training=None):
        current, previous = inputs
        info = self.drop(self.info(previous), training=training)
        # (Cast: `attention_weights` runs outside `call`, where Keras casts
        # neither the inputs nor the weights to the compute dtype.)
        current, info = (ops.cast(t, self.compute_dtype) for t in (current, info))
        return ops.stack([current, info], axis=1)  # (batch, 2, d)

    def _attend(self, candidates):
        qkv = ops.cast(self.qkv, candidates.dtype)
        q, k, v = (ops.matmul(candidates, qkv[i]) for i in range(3))
        # A Python float takes the scores' dtype (float16 / bfloat16 under a
        # mixed policy); `ops.sqrt` of one would be a float32 tensor.
        scores = ops.sum(q * k, axis=-1) * (1.0 / math.sqrt(candidates.shape[-1]))
        return ops.softmax(scores, axis=-1), v

    def call(self, inputs, training=None):
        weights, v = self._attend(self._candidates(inputs, training))
        return ops.sum(weights[..., None] * v, axis=1)

    def attention_weights(self, inputs):
        """`(batch, 2)` softmax weights on [current tower, transferred info]."""
        return self._attend(self._candidates(inputs))[0]

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        return {
            **super().get_config(),
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }
