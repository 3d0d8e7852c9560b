"""Optimizers: row-wise updates for embedding tables, loss scaling."""

from keras_mtl.layers._tables import is_table, mark_table
from keras_mtl.optimizers.loss_scale_optimizer import LossScaleOptimizer, loss_scaled
from keras_mtl.optimizers.row_wise import (
    AUTO_MIN_TABLE_SIZE,
    ROW_WISE_OPTIMIZERS,
    RowWiseOptimizer,
    row_wise_for_tables,
)

__all__ = [
    "AUTO_MIN_TABLE_SIZE",
    "LossScaleOptimizer",
    "ROW_WISE_OPTIMIZERS",
    "RowWiseOptimizer",
    "is_table",
    "loss_scaled",
    "mark_table",
    "row_wise_for_tables",
]
