"""Per-task metrics that leave out rows whose label is missing."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.masking import label_mask, match_rank


def _masked_update(metric_cls, self, y_true, y_pred, sample_weight):
    y_true, y_pred = match_rank(y_true, y_pred)
    mask, y_clean = label_mask(y_true, self.mask_value)
    weight = ops.cast(mask, "float32")
    if sample_weight is not None:
        weight = weight * ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
    return metric_cls.update_state(self, y_clean, y_pred, sample_weight=weight)


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedAUC(keras.metrics.AUC):
    """`keras.metrics.AUC` over the rows that have a label (NaN / `mask_value` skipped).

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
        **kwargs: passed to `keras.metrics.AUC` (e.g. `num_thresholds`, `curve`).
    """

    def __init__(self, mask_value=None, name="auc", num_thresholds=1000, **kwargs):
        super().__init__(name=name, num_thresholds=num_thresholds, **kwargs)
        self.mask_value = None if mask_value is None else float(mask_value)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return _masked_update(keras.metrics.AUC, self, y_true, y_pred, sample_weight)

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedMSE(keras.metrics.MeanSquaredError):
    """Mean squared error over the rows that have a label.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
    """

    def __init__(self, mask_value=None, name="mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.mask_value = None if mask_value is None else float(mask_value)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return _masked_update(
            keras.metrics.MeanSquaredError, self, y_true, y_pred, sample_weight
        )

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}
