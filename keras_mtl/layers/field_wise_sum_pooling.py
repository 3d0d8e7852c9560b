"""Field-wise sum pooling of embedded id lists (ESMM's embedding layer)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl._checks import check_units


@keras.saving.register_keras_serializable(package="keras_mtl")
class FieldWiseSumPooling(keras.layers.Layer):
    """Sums the embeddings of all ids inside each field, then concatenates the fields.

    The input holds the embeddings of several fields laid side by side along the
    id axis: field `i` occupies `field_lengths[i]` consecutive slots. Padded slots
    (where `mask` is False) contribute nothing, so an all-padding field pools to
    zeros. This is the field-wise pooling of ESMM's embedding layer: a multi-hot
    field (a user's behaviour history, say) becomes one vector of the embedding
    width, and a single-valued field is passed through.

    Args:
        field_lengths: sequence of int. Number of id slots of each field, in order.

    Call arguments:
        inputs: float tensor `(batch, sum(field_lengths), dim)`.
        mask: optional bool tensor `(batch, sum(field_lengths))`; False = padding.

    Returns:
        Tensor `(batch, len(field_lengths) * dim)`: field 0's sum, then field 1's, ...

    Example:
    >>> pool = FieldWiseSumPooling(field_lengths=(1, 3))
    >>> emb = np.ones((2, 4, 5), "float32")
    >>> tuple(pool(emb).shape)  # two fields of width 5
    (2, 10)

    Field 0 is slot 0; field 1 sums slots 1 to 3, where slot 3 is padding:

    >>> emb = np.array([[[1.0], [2.0], [3.0], [100.0]]], "float32")
    >>> mask = np.array([[True, True, True, False]])
    >>> keras.ops.convert_to_numpy(pool(emb, mask=mask))
    array([[1., 5.]], dtype=float32)

    References:
        Ma et al., "Entire Space Multi-Task Model", SIGIR 2018 (arXiv:1804.07931).
    """

    def __init__(self, field_lengths: Sequence[int], **kwargs):
        super().__init__(**kwargs)
        self.field_lengths = check_units(
            "FieldWiseSumPooling", "field_lengths", field_lengths, allow_empty=False
        )
        self.supports_masking = True

    def build(self, input_shape):
        total = input_shape[1]
        if total is not None and total != sum(self.field_lengths):
            raise ValueError(
                f"FieldWiseSumPooling: input has {total} id slots but field_lengths "
                f"{self.field_lengths} add up to {sum(self.field_lengths)}."
            )

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs * ops.expand_dims(ops.cast(mask, inputs.dtype), -1)
        dim = ops.shape(inputs)[-1]
        if max(self.field_lengths) == 1:
            return ops.reshape(inputs, (-1, len(self.field_lengths) * dim))
        pooled = []
        start = 0
        for length in self.field_lengths:
            pooled.append(ops.sum(inputs[:, start : start + length, :], axis=1))
            start += length
        return ops.concatenate(pooled, axis=-1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], len(self.field_lengths) * input_shape[-1])

    def get_config(self):
        return {**super().get_config(), "field_lengths": list(self.field_lengths)}
