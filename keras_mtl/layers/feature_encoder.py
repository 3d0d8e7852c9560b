"""Turns the raw feature dict into one vector: lookups, fused embeddings, dense inputs."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import ops

from keras_mtl.features import (
    DenseFeature,
    Feature,
    SparseFeature,
    check_features,
    feature_from_config,
    feature_to_config,
)
from keras_mtl.layers._lookup import make_lookup, row_values, stacked_rows
from keras_mtl.layers._tables import add_table, gather_rows
from keras_mtl.layers.field_wise_sum_pooling import FieldWiseSumPooling
from keras_mtl.layers.missing_value import MissingValueLayer


@keras.saving.register_keras_serializable(package="keras_mtl")
class FeatureEncoder(keras.layers.Layer):
    """The embedding stack of a list of feature specs.

    - Sparse features: raw values become table rows (integer ids in range as they
      are, anything else to the out-of-vocabulary row; vocabularies and hashing
      through Keras lookup layers), padded slots are masked, and each field's
      embeddings are summed (`FieldWiseSumPooling`). All tables of one embedding
      width live in a single fused variable, so every width costs one gather per
      batch instead of one per feature. Shared tables
      (`SparseFeature.share_embedding_with`) are the same rows.
    - Dense features: transformed (`DenseFeature.transform`, e.g. a log) and
      standardised with their spec's mean and std; NaN entries of
      `allow_missing` features are replaced by learned fill values
      (`MissingValueLayer`).

    The output is the concatenation of the pooled sparse fields (grouped by
    embedding width, in feature order within a width) and the dense columns.

    Args:
        features: list of `SparseFeature` / `DenseFeature` (or their configs).
        embeddings_initializer: initializer of the embedding tables. Defaults to
            `RandomUniform(-0.05, 0.05)`, as `keras.layers.Embedding`.

    Call arguments:
        inputs: dict from feature name to its raw tensor (`keras_mtl.make_inputs`).

    Returns:
        Tensor `(batch, output_dim)`.

    Example:
    >>> enc = FeatureEncoder([SparseFeature("city", vocabulary_size=10,
    ...                       embedding_dim=4), DenseFeature("age", mean=40, std=2)],
    ...                      embeddings_initializer="ones")
    >>> out = enc({"city": np.array([3, -1]), "age": np.array([41.0, 36.0])})
    >>> keras.ops.convert_to_numpy(out)  # city's 4 dims, then (age - 40) / 2
    array([[ 1. ,  1. ,  1. ,  1. ,  0.5],
           [ 0. ,  0. ,  0. ,  0. , -2. ]], dtype=float32)

    The padding id -1 embeds to zeros.
    """

    def __init__(
        self,
        features: Sequence[Feature | dict],
        embeddings_initializer="uniform",
        **kwargs,
    ):
        # Raw dense values reach `call` as given, not cast to a mixed policy's
        # compute dtype first: float16 cannot hold an amount above 65504 that
        # standardises to a small number (`_standardized`).
        kwargs.setdefault("autocast", False)
        super().__init__(**kwargs)
        self.features = check_features(features)
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)
        self.sparse = [f for f in self.features if isinstance(f, SparseFeature)]
        self.dense = [f for f in self.features if isinstance(f, DenseFeature)]
        self.supports_jit = all(f.supports_jit for f in self.features)
        #: XLA-compatible once its string features arrive as rows (a
        #: MultiTaskModel looks strings up outside the compiled step).
        self.supports_jit_beside_strings = all(
            f.supports_jit for f in self.sparse if f.dtype != "string"
        )

        # Layout of the fused tables: one per embedding width; each table owner gets
        # a block of rows at an offset inside its width's table.
        # (Keys are strings: Keras tracks dict attributes and saving needs str keys.)
        self._width_fields: dict[str, list[SparseFeature]] = {}
        self._row_offset: dict[str, int] = {}
        self._table_rows: dict[str, int] = {}
        for f in self.sparse:
            width = str(f.embedding_dim)
            self._width_fields.setdefault(width, []).append(f)
            if f.share_embedding_with is None:
                self._row_offset[f.name] = self._table_rows.get(width, 0)
                self._table_rows[width] = self._row_offset[f.name] + f.num_rows
        for f in self.sparse:
            if f.share_embedding_with is not None:
                self._row_offset[f.name] = self._row_offset[f.share_embedding_with]

        self.lookups = {f.name: make_lookup(f) for f in self.sparse}
        self.poolings = {
            width: FieldWiseSumPooling(
                [f.length for f in fields],
                name=f"field_wise_sum_pooling_{width}",
                dtype=self.dtype_policy,
            )
            for width, fields in self._width_fields.items()
        }
        self.missing_value = (
            MissingValueLayer(name="missing_value", dtype=self.dtype_policy)
            if any(f.allow_missing for f in self.dense)
            else None
        )

    def string_lookups(self, inputs, **kwargs) -> list:
        """`(tensor, feature, lookup)` of each string feature in a call on `inputs`."""
        return [
            (inputs[f.name], f, self.lookups[f.name])
            for f in self.sparse
            if f.dtype == "string" and isinstance(inputs, dict) and f.name in inputs
        ]

    @property
    def output_dim(self) -> int:
        sparse = sum(f.embedding_dim for f in self.sparse)
        return sparse + sum(f.dim for f in self.dense)

    @property
    def output_fields(self) -> list[tuple[str, int]]:
        """`(feature name, width)` of every field of the output, in output order:
        the pooled sparse fields grouped by embedding width, then the dense
        features without missing values, then those with."""
        sparse = [
            (f.name, f.embedding_dim)
            for fields in self._width_fields.values()
            for f in fields
        ]
        complete = [(f.name, f.dim) for f in self.dense if not f.allow_missing]
        gaps = [(f.name, f.dim) for f in self.dense if f.allow_missing]
        return sparse + complete + gaps

    def build(self, input_shape):
        self.tables = {
            width: add_table(
                self,
                f"embeddings_{width}",
                rows,
                int(width),
                self.embeddings_initializer,
            )
            for width, rows in self._table_rows.items()
        }
        for width, fields in self._width_fields.items():
            self.poolings[width].build(
                (None, sum(f.length for f in fields), int(width))
            )
        if self.missing_value is not None:
            self.missing_value.build(
                (None, sum(f.dim for f in self.dense if f.allow_missing))
            )

    def call(self, inputs):
        missing = [f.name for f in self.features if f.name not in inputs]
        if missing:
            raise ValueError(
                f"FeatureEncoder: no input for feature(s) {missing}; got keys "
                f"{sorted(inputs)}."
            )
        parts = []
        for width, fields in self._width_fields.items():
            rows, mask = stacked_rows(
                [
                    row_values(
                        f,
                        self.lookups[f.name],
                        ops.reshape(inputs[f.name], (-1, f.length)),
                    )
                    for f in fields
                ],
                [self._row_offset[f.name] for f in fields],
            )
            embedded = gather_rows(self.tables[width], rows)
            parts.append(self.poolings[width](embedded, mask=mask))
        complete = [f for f in self.dense if not f.allow_missing]
        if complete:
            parts.append(self._standardized(inputs, complete))
        if self.missing_value is not None:
            gaps = [f for f in self.dense if f.allow_missing]
            parts.append(self.missing_value(self._standardized(inputs, gaps)))
        parts = [ops.cast(part, self.compute_dtype) for part in parts]
        return ops.concatenate(parts, axis=-1) if len(parts) > 1 else parts[0]

    def _standardized(self, inputs, dense):
        """`(f(x) - mean) / std` of the `dense` features, side by side (one op
        each for all of them but the transforms `f`), in the compute dtype.

        Computed in float32 first, whatever the policy: a raw value (an amount,
        a timestamp) can exceed float16's largest number (65504) although its
        standardised value is small."""
        transforms = {"log": ops.log, "log1p": ops.log1p, None: lambda v: v}
        x = [
            transforms[f.transform](
                ops.reshape(ops.cast(inputs[f.name], "float32"), (-1, f.dim))
            )
            for f in dense
        ]
        x = ops.concatenate(x, axis=-1) if len(x) > 1 else x[0]
        mean = np.repeat([f.mean for f in dense], [f.dim for f in dense])
        std = np.repeat([f.std for f in dense], [f.dim for f in dense])
        x = (x - mean.astype("float32")) / std.astype("float32")
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return (None, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "features": [feature_to_config(f) for f in self.features],
            "embeddings_initializer": keras.initializers.serialize(
                self.embeddings_initializer
            ),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["features"] = [feature_from_config(f) for f in config["features"]]
        return cls(**config)
