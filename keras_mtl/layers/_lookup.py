"""Raw sparse values -> rows of a feature's embedding table (lookups, OOV, padding)."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.features import SparseFeature


def make_lookup(feature: SparseFeature):
    """The Keras layer that maps `feature`'s raw values to table rows.

    Args:
        feature: `SparseFeature`.

    Returns:
        A `Hashing` layer (`hash_bins`), a `StringLookup` / `IntegerLookup` with
        one OOV row (`vocabulary`), or None for `vocabulary_size` (the integer
        ids are the rows already).

    Example:
    >>> make_lookup(SparseFeature("city", vocabulary=("paris", "rome")))(
    ...     ["rome", "oslo"]).numpy().tolist()
    [2, 0]
    """
    name = f"lookup_{feature.name}"
    if feature.hash_bins is not None:
        return keras.layers.Hashing(feature.hash_bins, name=name)
    if feature.vocabulary is not None:
        cls = (
            keras.layers.StringLookup
            if feature.dtype == "string"
            else keras.layers.IntegerLookup
        )
        return cls(
            vocabulary=list(feature.vocabulary),
            num_oov_indices=1,
            mask_token=None,
            name=name,
        )
    return None  # vocabulary_size: ids are rows already.


def table_rows(feature: SparseFeature, lookup, raw):
    """Rows of `feature`'s own embedding table for raw values of any shape.

    Args:
        feature: `SparseFeature`.
        lookup: the layer `make_lookup(feature)` returned (or None).
        raw: tensor of raw values (ids or strings), any shape.

    Returns:
        `(rows, mask)`: int32 rows, with integer ids outside
        `[0, vocabulary_size)` sent to the OOV row `vocabulary_size`, and a
        boolean mask that is True where `raw` is not the padding value.

    Example:
    >>> f = SparseFeature("user", vocabulary_size=3)
    >>> rows, mask = table_rows(f, None, np.array([2, 7, -1]))
    >>> rows.numpy().tolist(), mask.numpy().tolist()
    ([2, 3, 3], [True, True, False])
    """
    mask = ops.not_equal(raw, feature.pad_value)
    if lookup is None:
        size = feature.vocabulary_size
        in_range = ops.logical_and(ops.greater_equal(raw, 0), ops.less(raw, size))
        rows = ops.where(in_range, raw, size)
    else:
        rows = lookup(raw)
    return ops.cast(rows, "int32"), mask
