"""Which label entries count: shared by the masked losses and metrics."""

from __future__ import annotations

from keras import ops


def label_mask(y_true, mask_value=None):
    """True where a label is present: finite and not equal to `mask_value`.

    Returns `(mask, y_clean)` where `y_clean` has 0 in the masked slots, so that no
    NaN can reach a loss or a gradient.
    """
    y_true = ops.cast(y_true, "float32")
    mask = ops.isfinite(y_true)
    if mask_value is not None:
        mask = ops.logical_and(mask, ops.not_equal(y_true, float(mask_value)))
    return mask, ops.where(mask, y_true, ops.zeros_like(y_true))


def match_rank(y_true, y_pred):
    """Flatten both to `(batch,)` when they hold one value per example."""
    if len(y_true.shape) == 2 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, -1)
    if len(y_pred.shape) == 2 and y_pred.shape[-1] == 1:
        y_pred = ops.squeeze(y_pred, -1)
    return y_true, y_pred


def transform_labels(mask, y_clean, y_pred, transform=None):
    """`(mask, y_clean, y_pred)` on a transform's scale (unchanged without one).

    Labels at or below the transform's `domain_floor` (e.g. <= -1 for log1p)
    are masked out too; `y_clean` keeps 0 in every masked slot.
    """
    if transform is None:
        return mask, y_clean, y_pred
    if transform.domain_floor is not None:
        mask = ops.logical_and(mask, ops.greater(y_clean, transform.domain_floor))
    y_clean = ops.where(mask, transform.forward(y_clean), ops.zeros_like(y_clean))
    return mask, y_clean, transform.forward(y_pred)
