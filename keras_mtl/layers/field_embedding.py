"""Embeds a group of sparse fields at every position of a list: items of a sequence."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl.features import SparseFeature, feature_from_config, feature_to_config
from keras_mtl.layers._lookup import make_lookup, pad_mask, table_rows
from keras_mtl.layers._tables import add_table, gather_rows


@keras.saving.register_keras_serializable(package="keras_mtl")
class FieldEmbedding(keras.layers.Layer):
    """Concatenated embeddings of sparse fields, for any leading shape.

    DUPN embeds the item of every behaviour step as the concatenation of its id
    and side-information embeddings (shop, brand, category, tags). This layer
    does that for one group of fields, whatever the leading shape: a target
    item `(batch,)`, a behaviour sequence `(batch, steps)` or a candidate list
    `(batch, candidates)`. Calling the same layer on each of them shares the
    tables. A padding value embeds to zeros. A multi-valued field
    (`SparseFeature.max_len`, e.g. a movie's genres) carries one more axis, and
    its embeddings are summed over it (field-wise sum pooling).

    The layer's mask (`compute_mask`, propagated by Keras to the next layer) is
    True where the first field, the item id, is not padding.

    Args:
        fields: list of `SparseFeature` (or their configs), the id first.
        embeddings_initializer: initializer of the tables. Defaults to
            `RandomUniform(-0.05, 0.05)`.

    Call arguments:
        inputs: list of raw tensors in field order, each `(batch, *lead)` or
            `(batch, *lead, field.max_len)`.

    Returns:
        Tensor `(batch, *lead, sum of embedding_dim)`.

    Example:
    >>> emb = FieldEmbedding([SparseFeature("item", vocabulary_size=9,
    ...                       embedding_dim=4), SparseFeature("tags",
    ...                       vocabulary_size=5, embedding_dim=2, max_len=3)])
    >>> items, tags = np.zeros((2, 7), "int64"), np.zeros((2, 7, 3), "int64")
    >>> tuple(emb([items, tags]).shape)  # 4 item dims, then 2 (summed) tag dims
    (2, 7, 6)
    >>> tuple(emb([np.zeros((2,), "int64"), np.zeros((2, 3), "int64")]).shape)
    (2, 6)
    """

    def __init__(
        self,
        fields: Sequence[SparseFeature | dict],
        embeddings_initializer="uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.fields = [feature_from_config(f) for f in fields]
        if not self.fields or not all(
            isinstance(f, SparseFeature) for f in self.fields
        ):
            raise ValueError(
                f"FieldEmbedding: fields must be a non-empty list of SparseFeature; "
                f"got {self.fields!r}."
            )
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.lookups = [make_lookup(f) for f in self.fields]
        self.supports_jit = all(f.supports_jit for f in self.fields)
        #: XLA-compatible once its string fields arrive as rows (a MultiTaskModel
        #: looks strings up outside the compiled step).
        self.supports_jit_beside_strings = all(
            f.supports_jit for f in self.fields if f.dtype != "string"
        )

    @property
    def output_dim(self) -> int:
        return sum(f.embedding_dim for f in self.fields)

    def build(self, input_shape):
        self.tables = [
            add_table(
                self,
                f"embeddings_{f.name}",
                f.num_rows,
                f.embedding_dim,
                self.embeddings_initializer,
            )
            for f in self.fields
        ]

    def _check(self, inputs):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != len(self.fields):
            raise ValueError(
                f"FieldEmbedding: expected a list of {len(self.fields)} tensors "
                f"(fields {[f.name for f in self.fields]}); got {inputs!r}."
            )
        lead = inputs[0].shape
        for f, x in zip(self.fields, inputs):
            want = tuple(lead) + f.shape
            if len(x.shape) != len(want):
                raise ValueError(
                    f"FieldEmbedding: field {f.name!r} expects shape {want} (the id's "
                    f"shape{' plus max_len' if f.max_len else ''}); got {x.shape}."
                )

    def call(self, inputs):
        self._check(inputs)
        parts = []
        for f, lookup, table, raw in zip(
            self.fields, self.lookups, self.tables, inputs
        ):
            rows, mask = table_rows(f, lookup, raw)
            weight = ops.expand_dims(ops.cast(mask, table.dtype), -1)
            embedded = gather_rows(table, rows) * weight
            if f.max_len is not None:
                embedded = ops.sum(embedded, axis=-2)
            parts.append(embedded)
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def string_lookups(self, inputs, **kwargs) -> list:
        """`(tensor, field, lookup)` of each string field in a call on `inputs`."""
        return [
            (x, f, lookup)
            for f, lookup, x in zip(self.fields, self.lookups, inputs)
            if f.dtype == "string"
        ]

    def compute_mask(self, inputs, mask=None):
        return pad_mask(self.fields[0], inputs[0])

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0]) + (self.output_dim,)

    def get_config(self):
        return {
            **super().get_config(),
            "fields": [feature_to_config(f) for f in self.fields],
            "embeddings_initializer": keras.initializers.serialize(
                self.embeddings_initializer
            ),
        }
