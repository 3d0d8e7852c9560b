"""In-memory columns packed by dtype: a batch is one gather per dtype.

`make_dataset` keeps in-memory data as a few matrices (the columns of one dtype
side by side) and gathers each batch from them by a batch of row indices. The
dataset it returns carries those matrices (`packed_columns(dataset)`), so that
a `MultiTaskModel` can run the gather inside its compiled training step:
`tf.data` then hands the step one index vector per batch instead of a tensor
per column, and a reshuffle costs one permutation per epoch and nothing per
batch (`MultiTaskModel.fit` says when it does this).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np
import tensorflow as tf

from keras_mtl.data import _tensors

#: Key of the element a packed dataset's step dataset yields.
STEP_KEY = "__keras_mtl_packed_batch__"


@dataclasses.dataclass(frozen=True, eq=False)
class PackedColumns:
    """In-memory columns as matrices, and the batches of row indices to read.

    Attributes:
        matrices: one `(rows, width)` tensor per dtype, the columns side by side.
        layout: per matrix, `((part, name), per-example shape)` of each column
            block in order; `part` is "x" (feature), "y" (label) or "w"
            (sample weight).
        features: feature names in element order; `labels` likewise.
        index: batches of row indices, a fresh permutation each epoch when
            shuffled (`_index_batches`).
        dtypes: the matrices' dtype names.
        key: a name for the layout: equal layouts gather batches the same way.
    """

    matrices: tuple
    layout: tuple
    features: tuple
    labels: tuple
    index: tf.data.Dataset | None
    dtypes: tuple
    key: str

    @classmethod
    def pack(cls, entries, features, labels, index) -> PackedColumns:
        """Packs `[((part, name), array)]` (arrays of equal length) by dtype."""
        groups: dict[str, list] = {}
        for key, array in entries:
            groups.setdefault(array.dtype.name, []).append((key, array))
        matrices, layout = [], []
        for items in groups.values():
            n = len(items[0][1])
            matrices.append(
                tf.constant(np.concatenate([a.reshape(n, -1) for _, a in items], 1))
            )
            layout.append(tuple((key, tuple(a.shape[1:])) for key, a in items))
        dtypes = tuple(m.dtype.name for m in matrices)
        # A name for the layout: equal layouts gather batches the same way.
        text = repr((layout, tuple(features), tuple(labels), dtypes))
        key = hashlib.sha1(text.encode()).hexdigest()[:16]
        return cls(
            tuple(matrices),
            tuple(layout),
            tuple(features),
            tuple(labels),
            index,
            dtypes,
            key,
        )

    def layout_only(self) -> PackedColumns:
        """These columns without their data: enough to gather from matrices
        passed in (`unpack_step_element`), without keeping the data alive."""
        return dataclasses.replace(self, matrices=(), index=None)

    def gather(self, index, matrices=None):
        """The element of rows `index`: features, `(features, labels)` or
        `(features, labels, weights)`, as `make_dataset` yields them."""
        out = {}
        for matrix, keys in zip(matrices or self.matrices, self.layout):
            rows = tf.gather(matrix, index)
            widths = [int(np.prod(shape, dtype=int)) for _, shape in keys]
            parts = tf.split(rows, widths, axis=1) if len(keys) > 1 else [rows]
            for (key, shape), part in zip(keys, parts):
                out[key] = tf.reshape(part, [-1, *shape])
        x = {k: out[("x", k)] for k in self.features}
        y = {k: out[("y", k)] for k in self.labels} or None
        return _tensors.assemble(x, y, out.get(("w", "")))

    def dataset(self, cache: bool) -> tf.data.Dataset:
        """The gathered batches, in `tf.data` (`cache`: gather once, replay)."""
        ds = self.index.map(self.gather, num_parallel_calls=tf.data.AUTOTUNE)
        if cache:
            ds = ds.cache()
        return ds.prefetch(tf.data.AUTOTUNE)

    def step_dataset(self) -> tf.data.Dataset:
        """Index batches with the matrices, for a step that gathers itself
        (`unpack_step_element`). The matrices are passed, not copied."""
        key, matrices = self.key, self.matrices

        def element(index):
            return {STEP_KEY: {key: {"index": index, "matrices": matrices}}}

        return self.index.map(element).prefetch(tf.data.AUTOTUNE)


def packed_columns(dataset) -> PackedColumns | None:
    """The packed columns of a dataset `make_dataset` built from memory, as it
    returned it (None for any other dataset, or one transformed since)."""
    return getattr(dataset, "_keras_mtl_packed", None)


def is_step_dataset(data) -> bool:
    """Whether `data` is a `PackedColumns.step_dataset`."""
    spec = getattr(data, "element_spec", None)
    return isinstance(spec, dict) and STEP_KEY in spec


def attach(dataset: tf.data.Dataset, packed: PackedColumns) -> tf.data.Dataset:
    dataset._keras_mtl_packed = packed
    return dataset


def unpack_step_element(element, layouts: dict):
    """A step dataset's element as the batch it stands for (other elements as
    they are); `layouts` maps `PackedColumns.key` to the `PackedColumns`."""
    if not (isinstance(element, dict) and STEP_KEY in element):
        return element
    ((key, batch),) = element[STEP_KEY].items()
    return layouts[key].gather(batch["index"], tuple(batch["matrices"]))
