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
