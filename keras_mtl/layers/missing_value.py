"""Learned fill values for missing numeric inputs (Meituan's Missing Value Layer)."""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_mtl")
class MissingValueLayer(keras.layers.Layer):
    """Replaces each missing entry by a fill value learned for its column.

    `y_j = x_j` where `x_j` is observed, else `w_j`, with one trainable `w_j` per
    column. A value is missing when it is NaN, or where the optional `missing`
    tensor is True. Training moves `w_j` to the value that serves the loss best,
    instead of a fixed 0 or mean fill.

    Args:
        fill_initializer: initializer of the fill values. Defaults to "zeros".

    Call arguments:
        inputs: float tensor `(batch, columns)`.
        missing: optional bool tensor of the same shape; True marks a missing entry.

    Returns:
        Tensor like `inputs`, with no NaN in it.

    Example:
    >>> layer = MissingValueLayer(fill_initializer=keras.initializers.Constant(7.0))
    >>> x = np.array([[1.0, np.nan], [np.nan, 4.0]], "float32")
    >>> keras.ops.convert_to_numpy(layer(x))  # NaN -> the column's fill (7 here)
    array([[1., 7.],
           [7., 4.]], dtype=float32)
    >>> missing = np.array([[True, False], [False, False]])
    >>> keras.ops.convert_to_numpy(layer(x, missing=missing))  # and where marked
    array([[7., 7.],
           [7., 4.]], dtype=float32)

    References:
        Meituan tech blog, "美团'猜你喜欢'深度学习排序模型实践" (2018), Missing Value Layer.
    """

    def __init__(self, fill_initializer="zeros", **kwargs):
        super().__init__(**kwargs)
        self.fill_initializer = keras.initializers.get(fill_initializer)

    def build(self, input_shape):
        if input_shape[-1] is None:
            raise ValueError("MissingValueLayer: the last dimension must be known.")
        self.fill = self.add_weight(
            name="fill",
            shape=(input_shape[-1],),
            initializer=self.fill_initializer,
        )

    def call(self, inputs, missing=None):
        is_missing = ops.isnan(inputs)
        if missing is not None:
            is_missing = ops.logical_or(is_missing, ops.cast(missing, "bool"))
        fill = ops.broadcast_to(ops.cast(self.fill, inputs.dtype), ops.shape(inputs))
        return ops.where(is_missing, fill, inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "fill_initializer": keras.initializers.serialize(self.fill_initializer),
        }
