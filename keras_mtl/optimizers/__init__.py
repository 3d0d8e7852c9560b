"""Optimizers: row-wise updates for embedding tables."""

from keras_mtl.layers._tables import is_table, mark_table
from keras_mtl.optimizers.row_wise import (
    AUTO_MIN_TABLE_SIZE,
    ROW_WISE_OPTIMIZERS,
    RowWiseOptimizer,
    row_wise_for_tables,
)

__all__ = [
    "AUTO_MIN_TABLE_SIZE",
    "ROW_WISE_OPTIMIZERS",
    "RowWiseOptimizer",
    "is_table",
    "mark_table",
    "row_wise_for_tables",
]
