"""A stack of dense layers."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl._checks import check_rate, check_units


@keras.saving.register_keras_serializable(package="keras_mtl")
class MLP(keras.layers.Layer):
    """Dense layers of the given widths, each followed by the activation and dropout.

    Args:
        units: sequence of int. Width of each hidden layer; empty means identity.
        activation: str or callable. Defaults to "relu".
        dropout: float. Dropout rate after each layer, in [0, 1). Defaults to 0.
        kernel_initializer: initializer. Defaults to "glorot_uniform".
        kernel_regularizer: regularizer or None. Defaults to None.

    Call arguments:
        inputs: tensor `(batch, features)`.
        training: bool, enables dropout.

    Returns:
        Tensor `(batch, units[-1])` (or the input when `units` is empty).

    Example:
    >>> tuple(MLP((16, 8))(np.zeros((4, 3))).shape)
    (4, 8)
    >>> mlp = MLP((2,), kernel_initializer="ones")  # zero bias: relu(x @ ones)
    >>> keras.ops.convert_to_numpy(mlp(np.array([[1.0, 2.0], [-1.0, -2.0]])))
    array([[3., 3.],
           [0., 0.]], dtype=float32)
    """

    def __init__(
        self,
        units: Sequence[int],
        activation="relu",
        dropout: float = 0.0,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_units("MLP", "units", units)
        self.dropout = check_rate("MLP", "dropout", dropout)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        self.dense_layers = [
            keras.layers.Dense(
                u,
                activation=self.activation,
                kernel_initializer=self.kernel_initializer,
                kernel_regularizer=self.kernel_regularizer,
                name=f"dense_{i}",
                dtype=self.dtype_policy,
            )
            for i, u in enumerate(self.units)
        ]
        self.dropout_layers = [
            keras.layers.Dropout(
                self.dropout, name=f"dropout_{i}", dtype=self.dtype_policy
            )
            for i in range(len(self.units) if self.dropout else 0)
        ]

    def build(self, input_shape):
        shape = input_shape
        for layer in self.dense_layers:
            layer.build(shape)
            shape = layer.compute_output_shape(shape)

    def call(self, inputs, training=None):
        x = inputs
        for i, layer in enumerate(self.dense_layers):
            x = layer(x)
            if self.dropout_layers:
                x = self.dropout_layers[i](x, training=training)
        return x

    def compute_output_shape(self, input_shape):
        if not self.units:
            return input_shape
        return (*input_shape[:-1], self.units[-1])

    def get_config(self):
        return {
            **super().get_config(),
            "units": list(self.units),
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "kernel_regularizer": keras.regularizers.serialize(self.kernel_regularizer),
        }
