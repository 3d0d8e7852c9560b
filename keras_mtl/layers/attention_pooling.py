"""Masked attention pooling of a sequence, steered by a query vector."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_int_at_least


def masked_softmax(scores, mask):
    """Softmax over the last axis restricted to `mask`; all-masked rows give 0s.

    No large negative constant stands in for the masked scores (-1e9 is -inf
    in float16): they take the row's lowest score, a value of the scores' own
    dtype that cannot raise the row's maximum, and their exponentials are then
    zeroed. An all-masked row sums to 0 and is divided by 1, not by a tiny
    constant that float16 would round to 0.
    """
    if mask is None:
        return ops.softmax(scores, axis=-1)
    keep = ops.cast(mask, "bool")
    lowest = ops.min(scores, axis=-1, keepdims=True)
    scores = ops.where(keep, scores, lowest)
    weights = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
    weights = ops.where(keep, weights, ops.zeros_like(weights))
    total = ops.sum(weights, axis=-1, keepdims=True)
    return weights / ops.where(total > 0, total, ops.ones_like(total))


@keras.saving.register_keras_serializable(package="keras_mtl")
class AttentionPooling(keras.layers.Layer):
    """Weighted sum of the steps of a sequence, with weights from a query.

    Additive attention: `score_t = v . tanh(W_h h_t + W_q q + b)`, the weights
    are the softmax of the scores over the unmasked steps, and the output is
    `sum_t a_t h_t`. In DUPN the steps are the LSTM's hidden states and the
    query is the request (the search query) with the user profile, so the same
    history is summarised differently for different requests. Without a query
    the scores depend on the steps alone. With `units=0` every unmasked step
    gets the same weight (masked mean pooling). A sequence without any
    unmasked step pools to zeros.

    Args:
        units: int. Width of the attention MLP; 0 for plain masked mean
            pooling. Defaults to 64.

    Call arguments:
        inputs: the steps `(batch, steps, dim)`, or `[steps, query]` with the
            query `(batch, query_dim)`.
        mask: bool `(batch, steps)` or None (a list of masks is accepted; the
            first one counts).
        return_weights: bool. Also return the weights `(batch, steps)`.

    Returns:
        Tensor `(batch, dim)` (and the weights with `return_weights`).

    Example:
    >>> pool = AttentionPooling(8)
    >>> steps, query = np.ones((2, 5, 4), "float32"), np.ones((2, 3), "float32")
    >>> tuple(pool([steps, query]).shape)
    (2, 4)

    With `units=0`, the mean of the unmasked steps, here (1 + 3) / 2:

    >>> steps = np.array([[[1.0], [3.0], [8.0]]], "float32")
    >>> mask = np.array([[True, True, False]])
    >>> keras.ops.convert_to_numpy(AttentionPooling(0)(steps, mask=mask))
    array([[2.]], dtype=float32)
    """

    def __init__(self, units: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.units = check_int_at_least("AttentionPooling", "units", units, 0)
        self.supports_masking = True

    @staticmethod
    def _split(inputs):
        if isinstance(inputs, (list, tuple)):
            return inputs[0], (inputs[1] if len(inputs) > 1 else None)
        return inputs, None

    @staticmethod
    def _split_shape(input_shape):
        # A shape is itself a tuple: `(None, 5, 4)` is the steps alone, not a list.
        if input_shape and isinstance(input_shape[0], (list, tuple)):
            return AttentionPooling._split(input_shape)
        return tuple(input_shape), None

    def build(self, input_shape):
        if self.units == 0:
            return
        steps, query = self._split_shape(input_shape)
        self.step_projection = keras.layers.Dense(
            self.units, name="step_projection", dtype=self.dtype_policy
        )
        self.step_projection.build(steps)
        self.query_projection = None
        if query is not None:
            self.query_projection = keras.layers.Dense(
                self.units,
                use_bias=False,
                name="query_projection",
                dtype=self.dtype_policy,
            )
            self.query_projection.build(query)
        self.score = keras.layers.Dense(
            1, use_bias=False, name="score", dtype=self.dtype_policy
        )
        self.score.build(tuple(steps[:-1]) + (self.units,))

    def attention_weights(self, inputs, mask=None):
        """The weights `(batch, steps)` of each step."""
        steps, query = self._split(inputs)
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.units == 0:
            scores = ops.zeros(ops.shape(steps)[:-1], steps.dtype)
        else:
            hidden = self.step_projection(steps)
            if query is not None:
                hidden = hidden + ops.expand_dims(self.query_projection(query), 1)
            scores = ops.squeeze(self.score(ops.tanh(hidden)), -1)
        return masked_softmax(scores, mask)

    def call(self, inputs, mask=None, return_weights=False):
        steps, _ = self._split(inputs)
        weights = self.attention_weights(inputs, mask)
        pooled = ops.sum(steps * ops.expand_dims(weights, -1), axis=1)
        return (pooled, weights) if return_weights else pooled

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        steps, _ = self._split_shape(input_shape)
        return (steps[0], steps[-1])

    def compute_output_spec(self, inputs, mask=None, return_weights=False):
        # Symbolic calls (functional models) must honour return_weights too.
        steps, _ = self._split(inputs)
        pooled = keras.KerasTensor(
            (steps.shape[0], steps.shape[-1]), dtype=self.compute_dtype
        )
        if not return_weights:
            return pooled
        return pooled, keras.KerasTensor(steps.shape[:2], dtype=self.compute_dtype)

    def get_config(self):
        return {**super().get_config(), "units": self.units}
