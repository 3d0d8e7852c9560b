"""Embedding tables: created by the layers, marked for row-wise optimizer updates."""

from __future__ import annotations

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


def add_table(layer, name: str, rows: int, dim: int, initializer):
    """`layer.add_weight` for a `(rows, dim)` embedding table, marked as one."""
    table = layer.add_weight(name=name, shape=(rows, dim), initializer=initializer)
    mark_table(table)
    return table
