"""Per-task losses that leave out rows whose label is missing."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.masking import label_mask, match_rank


class _MaskedLoss(keras.losses.Loss):
    """Mean of the elementwise loss over the rows that have a label.

    Rows whose label is NaN, infinite or equal to `mask_value` are excluded; the
    mean divides by the number of labelled rows, so a task with few labels in a
    batch is not diluted by the others, and a batch without any label for this
    task contributes exactly 0 (never NaN).
    """

    def __init__(self, mask_value=None, name=None, reduction="sum", dtype=None):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.mask_value = None if mask_value is None else float(mask_value)

    def elementwise(self, y_true, y_pred):
        raise NotImplementedError

    def call(self, y_true, y_pred):
        y_true, y_pred = match_rank(y_true, y_pred)
        mask, y_clean = label_mask(y_true, self.mask_value)
        y_pred = ops.cast(y_pred, "float32")
        values = ops.where(mask, self.elementwise(y_clean, y_pred), 0.0)
        count = ops.maximum(ops.sum(ops.cast(mask, "float32")), 1.0)
        return values / count

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedBinaryCrossentropy(_MaskedLoss):
    """Binary cross-entropy on probabilities, averaged over labelled rows only.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
        epsilon: float. Probabilities are clipped to [epsilon, 1 - epsilon].
            Defaults to 1e-7.

    Example:
    >>> MaskedBinaryCrossentropy()(np.array([1.0, np.nan]), np.array([0.5, 0.9]))
    0.6931  # log 2: the NaN row is left out
    """

    def __init__(self, mask_value=None, epsilon: float = 1e-7, name=None, **kwargs):
        super().__init__(mask_value=mask_value, name=name or "masked_bce", **kwargs)
        self.epsilon = float(epsilon)

    def elementwise(self, y_true, y_pred):
        p = ops.clip(y_pred, self.epsilon, 1.0 - self.epsilon)
        return -(y_true * ops.log(p) + (1.0 - y_true) * ops.log(1.0 - p))

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon}


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedMeanSquaredError(_MaskedLoss):
    """Mean squared error over labelled rows only.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
    """

    def __init__(self, mask_value=None, name=None, **kwargs):
        super().__init__(mask_value=mask_value, name=name or "masked_mse", **kwargs)

    def elementwise(self, y_true, y_pred):
        return ops.square(y_pred - y_true)
