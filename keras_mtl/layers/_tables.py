"""Embedding tables: created by the layers, marked for row-wise optimizer updates."""

from __future__ import annotations

import keras

#: Attribute set on every embedding table a keras-mtl layer creates;
#: `keras_mtl.optimizers.RowWiseOptimizer` updates those tables row-wise.
TABLE_ATTRIBUTE = "_keras_mtl_table"


def mark_table(variable) -> None:
    """Mark `variable` as an embedding table, updated row-wise by
    `RowWiseOptimizer` (e.g. the `embeddings` of your own `keras.layers.Embedding`)."""
    setattr(variable, TABLE_ATTRIBUTE, True)


def is_table(variable) -> bool:
    """Whether `variable` is marked as an embedding table."""
    return bool(getattr(variable, TABLE_ATTRIBUTE, False))


#: Tables of at least this many elements are initialised in blocks of rows.
BLOCKWISE_ELEMENTS = 1 << 22
_BLOCK_ROWS = 1 << 18


#: Initializers whose values do not depend on the shape drawn (no fan-in).
_ELEMENTWISE = (
    keras.initializers.RandomUniform,
    keras.initializers.RandomNormal,
    keras.initializers.TruncatedNormal,
)


def add_table(layer, name: str, rows: int, dim: int, initializer):
    """`layer.add_weight` for a `(rows, dim)` embedding table, marked as one.

    A random initializer draws the whole table at once, and on TensorFlow its
    temporaries (draw, scale, shift) stay in the process, about two more copies
    of the table (measured in docs/large_vocabularies.md, "Memory"). A large
    table with an element-wise random initializer (uniform, normal, truncated
    normal) is therefore created as zeros and filled in place a block of rows
    at a time, block `i` drawn with seed `seed + i` (the same distribution;
    other values than one draw of the whole table).
    """
    initializer = keras.initializers.get(initializer)
    blockwise = (
        rows * dim >= BLOCKWISE_ELEMENTS
        and isinstance(initializer, _ELEMENTWISE)
        and isinstance(initializer.seed, int)
        and keras.backend.backend() == "tensorflow"
    )
    if blockwise:
        import tensorflow as tf

        blockwise = tf.executing_eagerly() and not tf.distribute.has_strategy()
    table = layer.add_weight(
        name=name,
        shape=(rows, dim),
        initializer="zeros" if blockwise else initializer,
    )
    if blockwise:
        config = initializer.get_config()
        for i, start in enumerate(range(0, rows, _BLOCK_ROWS)):
            stop = min(start + _BLOCK_ROWS, rows)
            draw = type(initializer).from_config(
                {**config, "seed": initializer.seed + i}
            )
            block = draw((stop - start, dim), dtype=table.dtype)
            table.value.scatter_update(tf.IndexedSlices(block, tf.range(start, stop)))
    mark_table(table)
    return table


# ------------------------------------------------------------ row gradients
# A training step that wants a table's gradient as rows (the looked-up rows'
# gradients and their ids, not a table-sized array) captures the lookups:
# `keras_mtl.optimizers.row_wise_step` on JAX, whose autodiff would otherwise
# give a dense gradient of the whole table. Outside such a step `gather_rows`
# is `ops.take`.

_CAPTURE = []  # the active `RowCapture`, innermost last


class RowCapture:
    """The lookups of `tables` during one training step.

    With `deltas` None it records the shape of every lookup (`shapes`: a first,
    abstract pass); with `deltas` (one `(n, dim)` array per recorded lookup,
    in call order, or a function `(n, dim, dtype) -> array` that makes each one
    as it is needed) each lookup returns its rows, the table's gradient
    stopped, plus its delta, and records its row ids (`ids`, flattened) and
    delta (`made`). The gradient of the loss with respect to a delta is then
    the gradient of the looked-up rows.
    """

    def __init__(self, tables, deltas=None):
        self.tables = {id(t): t for t in tables}
        self.deltas = deltas
        self.made = []  # the delta of each lookup (with deltas)
        self.shapes = []  # (table, rows shape) of each lookup
        self.ids = []  # flattened int32 row ids of each lookup (with deltas)

    def __enter__(self):
        _CAPTURE.append(self)
        return self

    def __exit__(self, *exc):
        _CAPTURE.remove(self)

    def gather(self, table, rows):
        self.shapes.append((table, tuple(rows.shape)))
        if self.deltas is None:
            return keras.ops.take(table, rows, axis=0)
        embedded = keras.ops.take(keras.ops.stop_gradient(table), rows, axis=0)
        k = len(self.ids)
        if callable(self.deltas):
            n = 1
            for size in rows.shape:
                n *= int(size)
            self.made.append(self.deltas(n, table.shape[1], table.dtype))
        elif k < len(self.deltas):
            self.made.append(self.deltas[k])
        else:
            raise RuntimeError(
                "RowCapture: more table lookups than in the step's first pass."
            )
        self.ids.append(keras.ops.reshape(keras.ops.cast(rows, "int32"), (-1,)))
        delta = keras.ops.reshape(self.made[k], embedded.shape)
        return embedded + keras.ops.cast(delta, embedded.dtype)


def gather_rows(table, rows):
    """`ops.take(table, rows, axis=0)`: the embeddings of `rows` of `table`,
    seen by a row-wise training step (`RowCapture`) when one captures it."""
    if _CAPTURE and id(table) in _CAPTURE[-1].tables:
        return _CAPTURE[-1].gather(table, rows)
    return keras.ops.take(table, rows, axis=0)
