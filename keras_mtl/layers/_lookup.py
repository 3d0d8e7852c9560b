"""Raw sparse values -> rows of a feature's embedding table (lookups, OOV, padding)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mtl.features import SparseFeature


def make_lookup(feature: SparseFeature):
    """The Keras layer that maps `feature`'s raw values to table rows.

    Args:
        feature: `SparseFeature`.

    Returns:
        An `IntegerHashing` layer (integer `hash_bins`, "int_hash_v1"), a
        `keras.layers.Hashing` ("farmhash64"), a `StringLookup` / `IntegerLookup` with
        one OOV row (`vocabulary`), a `Bucketize` layer (`boundaries`), or None
        for `vocabulary_size` (the integer ids are the rows already).

    Example:
    >>> make_lookup(SparseFeature("city", vocabulary=("paris", "rome")))(
    ...     ["rome", "oslo"]).numpy().tolist()
    [2, 0]
    """
    name = f"lookup_{feature.name}"
    if feature.boundaries is not None:
        return Bucketize(list(feature.boundaries), name=name)
    if feature.hash_function == "int_hash_v1":
        return IntegerHashing(feature.hash_bins, name=name)
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


#: The row of a padded slot in rows computed outside the model (masked).
PAD_ROW = -1


def holds_strings(x) -> bool:
    """Whether `x` (a tensor, KerasTensor, array or list) holds strings."""
    dtype = getattr(x, "dtype", None)
    if dtype is None:
        dtype = np.asarray(x).dtype
    if isinstance(dtype, np.dtype):
        return dtype.kind in "OSU"
    return keras.backend.standardize_dtype(dtype) == "string"


def given_as_rows(feature: SparseFeature, x) -> bool:
    """Whether `x`, fed for string `feature`, holds table rows instead of strings.

    A `MultiTaskModel` computes the rows of its string inputs outside the
    compiled step (`models._host_lookups`); its layers then receive int32 rows,
    with `PAD_ROW` for padding.
    """
    return feature.dtype == "string" and not holds_strings(x)


def pad_mask(feature: SparseFeature, x):
    """True where `x` (raw values, or rows as `given_as_rows` says) is not padding
    (for a float32 bucketised feature: not NaN)."""
    if feature.dtype == "float32":
        return ops.logical_not(ops.isnan(x))
    pad = PAD_ROW if given_as_rows(feature, x) else feature.pad_value
    return ops.not_equal(x, pad)


def row_values(feature: SparseFeature, lookup, raw) -> tuple:
    """`raw` as integers that say both the table rows and the padding.

    Returns `(values, size, oov, pad)`: the row of a value `v` is `v` if
    `0 <= v < size`, else `oov`, and the slot is padding where `v == pad`.
    Integer ids are their own values; looked-up values are their rows, with
    `PAD_ROW` in padded slots. `stacked_rows` turns them into rows and masks,
    for several features at once.
    """
    if lookup is None:  # vocabulary_size: ids are rows, OOV last
        size = feature.vocabulary_size
        return raw, size, size, feature.pad_value
    if given_as_rows(feature, raw):  # looked up already
        return raw, feature.num_rows, 0, PAD_ROW
    rows = ops.cast(lookup(raw), "int32")
    return (
        ops.where(pad_mask(feature, raw), rows, PAD_ROW),
        feature.num_rows,
        0,
        PAD_ROW,
    )


def stacked_rows(parts: list, offsets) -> tuple:
    """Rows and padding masks of several features' `row_values`, side by side.

    Args:
        parts: `(values, size, oov, pad)` of each feature (`row_values`), the
            values of shape `(batch, length)`, or any shape for a single part.
        offsets: each feature's first row in a table it shares with others.

    Returns:
        `(rows, mask)`: int32 rows (plus offsets) and a boolean mask that is
        True where a slot is not padding, the features' columns concatenated.
        The range checks run once over all columns: a fused table costs a
        few element-wise ops per batch, not a few per feature.
    """
    dtypes = {keras.backend.standardize_dtype(values.dtype) for values, *_ in parts}
    dtype = dtypes.pop() if len(dtypes) == 1 else "int64"
    if len(parts) == 1:
        values, size, oov, pad = parts[0]
        offset = offsets[0]
    else:
        values = ops.concatenate([ops.cast(v, dtype) for v, *_ in parts], axis=-1)
        lengths = [int(v.shape[-1]) for v, *_ in parts]

        def column(items, column_dtype=dtype):
            return np.repeat(np.asarray(items, column_dtype), lengths)

        size, oov, pad = (column([p[i] for p in parts]) for i in (1, 2, 3))
        offset = column(offsets, "int32")
    in_range = ops.logical_and(ops.greater_equal(values, 0), ops.less(values, size))
    rows = ops.cast(ops.where(in_range, values, oov), "int32") + offset
    return rows, ops.not_equal(values, pad)


def table_rows(feature: SparseFeature, lookup, raw):
    """Rows of `feature`'s own embedding table for raw values of any shape.

    Args:
        feature: `SparseFeature`.
        lookup: the layer `make_lookup(feature)` returned (or None).
        raw: tensor of raw values (ids or strings), any shape; for a string
            feature, its rows instead (`given_as_rows`).

    Returns:
        `(rows, mask)`: int32 rows, with integer ids outside
        `[0, vocabulary_size)` sent to the OOV row `vocabulary_size` (given
        rows outside the table to row 0, a vocabulary's OOV row), and a boolean
        mask that is True where `raw` is not the padding value.

    Example:
    >>> f = SparseFeature("user", vocabulary_size=3)
    >>> rows, mask = table_rows(f, None, np.array([2, 7, -1]))
    >>> rows.numpy().tolist(), mask.numpy().tolist()
    ([2, 3, 3], [True, True, False])
    """
    return stacked_rows([row_values(feature, lookup, raw)], [0])


_MURMUR_C1, _MURMUR_C2 = 0x85EBCA6B, 0xC2B2AE35
_GOLDEN = 0x9E3779B9


def _u32(value):
    return ops.convert_to_tensor(value, "uint32")


def _wrap32(x):
    """`x` cast to uint32, i.e. its low 32 bits.

    The one place the backends differ: Keras's torch backend has no uint32 and
    stores "uint32" as int64, so a cast keeps negative values and a product
    does not wrap at 2**32; masking the low 32 bits gives uint32's values (an
    int64 product that overflows still has the right low bits). On TensorFlow
    and JAX the cast is uint32 already."""
    x = ops.cast(x, "uint32")
    if keras.backend.backend() == "torch":
        x = ops.bitwise_and(x, ops.convert_to_tensor(0xFFFFFFFF, x.dtype))
    return x


def _fmix32(h):
    """MurmurHash3's 32-bit finalizer (an avalanching bijection of uint32)."""
    h = ops.bitwise_xor(h, ops.right_shift(h, _u32(16)))
    h = _wrap32(ops.multiply(h, _u32(_MURMUR_C1)))
    h = ops.bitwise_xor(h, ops.right_shift(h, _u32(13)))
    h = _wrap32(ops.multiply(h, _u32(_MURMUR_C2)))
    return ops.bitwise_xor(h, ops.right_shift(h, _u32(16)))


@keras.saving.register_keras_serializable(package="keras_mtl")
class IntegerHashing(keras.layers.Layer):
    """Integer ids -> `num_bins` buckets with arithmetic XLA compiles ("int_hash_v1").

    `keras.layers.Hashing` turns integer ids into strings and hashes those, which
    no XLA kernel does: one hashed feature kept XLA off for the whole model. This
    hash uses 32-bit integer arithmetic only (`keras.ops` multiply, shift, xor,
    mod), so it compiles, and gives the same buckets on backends without 64-bit
    integers: the id's two 32-bit halves are hashed (`hi` is the sign extension
    for an id that fits in 32 bits, so an int32 and an int64 id of the same value
    agree):

        bucket = fmix32(lo ^ (fmix32(hi ^ 0x9E3779B9) * 0x85EBCA6B)) mod num_bins

    with `fmix32` MurmurHash3's finalizer. Version 1 of this formula is recorded
    as `SparseFeature.hash_function="int_hash_v1"`.

    Args:
        num_bins: int. Number of buckets, at most 2**31 - 1.

    Example:
    >>> h = IntegerHashing(1000)
    >>> keras.ops.convert_to_numpy(h(np.array([0, 1, 2, 10**12]))).tolist()
    [731, 774, 76, 353]
    """

    def __init__(self, num_bins: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(num_bins, int) or not 0 < num_bins < 2**31:
            raise ValueError(
                f"IntegerHashing: num_bins must be an int in [1, 2**31); got "
                f"{num_bins!r}."
            )
        self.num_bins = num_bins
        self.supports_jit = True

    def call(self, ids):
        ids = ops.convert_to_tensor(ids)
        dtype = keras.backend.standardize_dtype(ids.dtype)
        if dtype not in ("int32", "int64"):
            raise ValueError(
                f"IntegerHashing: expected integer ids (int32 or int64); got {dtype}."
            )
        # The high half: bits 32-63, or for int32 ids the sign extension.
        high = ops.right_shift(ids, 32 if dtype == "int64" else 31)
        lo = _wrap32(ids)
        hi = _wrap32(high)
        mixed = _wrap32(
            ops.multiply(_fmix32(ops.bitwise_xor(hi, _u32(_GOLDEN))), _u32(_MURMUR_C1))
        )
        h = _fmix32(ops.bitwise_xor(lo, mixed))
        return ops.cast(ops.mod(h, _u32(self.num_bins)), "int32")

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, ids):
        return keras.KerasTensor(ids.shape, dtype="int32")

    def get_config(self):
        return {**super().get_config(), "num_bins": self.num_bins}


@keras.saving.register_keras_serializable(package="keras_mtl")
class Bucketize(keras.layers.Layer):
    """Raw numbers -> bucket ids of sorted `boundaries`, inside the model.

    Bucket `i` holds `boundaries[i - 1] <= x < boundaries[i]`; bucket 0 is
    everything below the first boundary and `len(boundaries)` everything from
    the last one on, as `np.searchsorted(boundaries, x, side="right")` gives.
    The bucket is the number of boundaries at or below `x`, counted with one
    broadcast comparison (`keras.ops` only: every backend, compiled by XLA),
    exact in the input's dtype (integer inputs compare with the boundaries
    rounded up), so int64 timestamps lose nothing to a float cast
    (`keras.ops.digitize` casts the boundaries to float32). It costs
    `len(boundaries)` comparisons per value, fine for the tens of buckets a
    feature has. NaN compares false everywhere and lands in bucket 0; a
    `SparseFeature` masks it as padding.

    Args:
        boundaries: list of numbers, strictly increasing (`SparseFeature(
            boundaries=...)` checks them and builds this layer).

    Call arguments:
        x: tensor of raw numbers, any shape.

    Returns:
        int32 tensor of bucket ids, the shape of `x`.

    Example:
    >>> b = Bucketize([18, 25, 35])
    >>> keras.ops.convert_to_numpy(b(np.array([7.0, 18.0, 24.9, 35.0, 90.0]))).tolist()
    [0, 1, 1, 3, 3]
    """

    def __init__(self, boundaries: list, **kwargs):
        super().__init__(**kwargs)
        self.boundaries = list(boundaries)
        if not self.boundaries or any(
            b >= c for b, c in zip(self.boundaries, self.boundaries[1:])
        ):
            raise ValueError(
                "Bucketize: boundaries must be a non-empty, strictly increasing list; "
                f"got {boundaries!r}."
            )
        self.supports_jit = True
        self.autocast = False

    def call(self, x):
        x = ops.convert_to_tensor(x)
        dtype = keras.backend.standardize_dtype(x.dtype)
        boundaries = np.asarray(self.boundaries)
        if "int" in dtype and boundaries.dtype.kind == "f":
            boundaries = np.ceil(boundaries)  # x >= b for an integer x: x >= ceil(b)
        boundaries = boundaries.astype(dtype)
        at_or_above = ops.greater_equal(ops.expand_dims(x, -1), boundaries)
        return ops.sum(ops.cast(at_or_above, "int32"), axis=-1)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, x):
        return keras.KerasTensor(x.shape, dtype="int32")

    def get_config(self):
        return {**super().get_config(), "boundaries": list(self.boundaries)}
