"""Per-task metrics that leave out rows whose label is missing."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.masking import label_mask, match_rank, transform_labels
from keras_mtl.transforms import get_transform, serialize_transform


def _mask_weight(mask, sample_weight):
    """Per-entry weight: 0 for a missing label, else the sample weight (or 1).

    A per-row `sample_weight` is broadcast over the entries of vector labels.
    """
    weight = ops.cast(mask, "float32")
    if sample_weight is not None:
        shape = (-1,) + (1,) * (len(mask.shape) - 1)
        weight = weight * ops.reshape(ops.cast(sample_weight, "float32"), shape)
    return weight


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedAUC(keras.metrics.AUC):
    """`keras.metrics.AUC` over the rows that have a label (NaN / `mask_value` skipped).

    With vector labels (a multiclass task) it is the micro-averaged one-vs-rest
    AUC: every (example, class) entry counts, positive where the label is > 0.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
        **kwargs: passed to `keras.metrics.AUC` (e.g. `num_thresholds`, `curve`).

    Example:
    >>> auc = MaskedAUC()
    >>> auc.update_state(np.array([1.0, 0.0, np.nan]), np.array([0.8, 0.3, 0.1]))
    >>> round(float(auc.result()), 4)  # the unlabelled row is not counted
    1.0
    >>> float(MaskedAUC().result())  # nothing seen yet
    nan
    """

    def __init__(self, mask_value=None, name="auc", num_thresholds=1000, **kwargs):
        super().__init__(name=name, num_thresholds=num_thresholds, **kwargs)
        self.mask_value = None if mask_value is None else float(mask_value)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = match_rank(y_true, y_pred)
        mask, y_clean = label_mask(y_true, self.mask_value)
        weight = _mask_weight(mask, sample_weight)
        return super().update_state(y_clean, y_pred, sample_weight=weight)

    def result(self):
        # NaN, not 0, when no labelled row has been seen (e.g. a CVR AUC on data
        # without clicks, or an output whose labels are absent from the data).
        seen = self.true_positives[0] + self.false_negatives[0]
        seen = seen + self.false_positives[0] + self.true_negatives[0]
        return ops.where(seen > 0, super().result(), float("nan"))

    def get_config(self):
        return {**super().get_config(), "mask_value": self.mask_value}


@keras.saving.register_keras_serializable(package="keras_mtl")
class MaskedMSE(keras.metrics.Mean):
    """Mean squared error over the rows that have a label.

    Args:
        mask_value: float or None. Label value meaning "no label" besides NaN.
        transform: `keras_mtl.transforms.Transform`, its name or None. The error
            of `forward(y_pred)` against `forward(y_true)` (labels outside its
            domain left out). Defaults to None.

    Example:
    >>> mse = MaskedMSE(mask_value=-1)
    >>> mse.update_state(np.array([1.0, -1.0, 3.0]), np.array([2.0, 9.0, 3.0]))
    >>> float(mse.result())  # mean of 1 and 0
    0.5
    """

    def __init__(self, mask_value=None, name="mse", transform=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.mask_value = None if mask_value is None else float(mask_value)
        self.transform = get_transform(transform)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true, y_pred = match_rank(y_true, y_pred)
        mask, y_clean = label_mask(y_true, self.mask_value)
        y_pred = ops.cast(y_pred, "float32")
        mask, y_clean, y_pred = transform_labels(mask, y_clean, y_pred, self.transform)
        weight = _mask_weight(mask, sample_weight)
        error = ops.square(y_pred - y_clean)
        return super().update_state(error, sample_weight=weight)

    def get_config(self):
        config = {**super().get_config(), "mask_value": self.mask_value}
        if self.transform is not None:
            config["transform"] = serialize_transform(self.transform)
        return config


def with_missing_outputs(y, y_pred):
    """`y` with a NaN (missing) label for each output of `y_pred` it lacks.

    Keras looks up every compiled output's label in `y` and raises a `KeyError`
    for an absent one; a multi-task model's data often lacks a task's labels
    (ESMM trained on `ctr` and `ctcvr` labels, a task not logged yet). Filled
    with NaN, that output's masked metrics see only missing labels.

    Example:
    >>> y = with_missing_outputs({"ctr": np.ones(2)}, {"ctr": np.ones(2),
    ...                                                "cvr": np.ones(2)})
    >>> sorted(y), keras.ops.convert_to_numpy(y["cvr"])
    (['ctr', 'cvr'], array([nan, nan]))
    """
    if not (isinstance(y, dict) and isinstance(y_pred, dict)):
        return y
    missing = [k for k in y_pred if k not in y]
    if not missing:
        return y
    y = dict(y)
    for k in missing:
        y[k] = ops.full_like(y_pred[k], float("nan"))
    return y
