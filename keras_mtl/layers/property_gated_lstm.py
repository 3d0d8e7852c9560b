"""DUPN's property-gated LSTM cell: the behaviour property drives the gates."""

from __future__ import annotations

import contextlib

import keras
from keras import ops

from keras_mtl._checks import check_positive_int


@keras.saving.register_keras_serializable(package="keras_mtl")
class PropertyGatedLSTMCell(keras.layers.Layer):
    """An LSTM cell whose gates read the behaviour property, not the item.

    Each step's input is `[e_t; p_t]`: the item embedding `e_t` (the first
    `item_dim` columns) and the property embedding `p_t` (the rest: behaviour
    type, scenario, time gap...). As in DUPN, the property decides how much of
    the step enters the memory and the item is what enters:

        i, f, o = sigmoid(W_p p_t + U h_{t-1} + b)      (input, forget, output)
        g       = tanh(W_e e_t + U_g h_{t-1} + b_g)      (cell input)
        c_t = f * c_{t-1} + i * g,    h_t = o * tanh(c_t)

    Use it inside `keras.layers.RNN`, which carries the state over masked
    (padded) steps.

    Args:
        units: int. Width of the hidden and cell states.
        item_dim: int. Number of leading input columns that are the item
            embedding; the remaining columns are the property embedding.
        kernel_initializer: initializer of `W_p` and `W_e`. Defaults to
            "glorot_uniform".
        recurrent_initializer: initializer of `U`. Defaults to "orthogonal".
        unit_forget_bias: bool. Start the forget-gate bias at 1. Defaults to True.

    Call arguments:
        inputs: tensor `(batch, item_dim + property_dim)`.
        states: `[h, c]`, each `(batch, units)`.

    Returns:
        `(h_t, [h_t, c_t])`.

    Example:
    >>> rnn = keras.layers.RNN(PropertyGatedLSTMCell(16, item_dim=8),
    ...                        return_sequences=True)
    >>> tuple(rnn(np.zeros((2, 5, 12), "float32")).shape)  # 8 item + 4 property
    (2, 5, 16)

    References:
        Ni et al., "Perceive Your Users in Depth: Learning Universal User
        Representations from Multiple E-commerce Tasks", KDD 2018
        (arXiv:1805.10727).
    """

    def __init__(
        self,
        units: int,
        item_dim: int,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        unit_forget_bias: bool = True,
        **kwargs,
    ):
        super().__init__(**kwargs)
        units = check_positive_int("PropertyGatedLSTMCell", "units", units)
        self.units = units
        self.item_dim = check_positive_int(
            "PropertyGatedLSTMCell", "item_dim", item_dim
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(recurrent_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.state_size = [units, units]
        self.output_size = units

    def build(self, input_shape):
        property_dim = input_shape[-1] - self.item_dim
        if property_dim < 1:
            raise ValueError(
                f"PropertyGatedLSTMCell: inputs of width {input_shape[-1]} leave no "
                f"property columns after item_dim={self.item_dim}."
            )
        u = self.units
        self.gate_kernel = self.add_weight(
            name="gate_kernel",
            shape=(property_dim, 3 * u),
            initializer=self.kernel_initializer,
        )
        self.cell_kernel = self.add_weight(
            name="cell_kernel",
            shape=(self.item_dim, u),
            initializer=self.kernel_initializer,
        )
        self.recurrent_kernel = self.add_weight(
            name="recurrent_kernel",
            shape=(u, 4 * u),
            initializer=self.recurrent_initializer,
        )
        forget = 1.0 if self.unit_forget_bias else 0.0
        self.bias = self.add_weight(
            name="bias",
            shape=(4 * u,),
            initializer=keras.initializers.Constant(
                [0.0] * u + [forget] * u + [0.0] * (2 * u)
            ),
        )

    def _input_kernel(self):
        """`W_p` and `W_e` as one `(item_dim + property_dim, 4 * units)` kernel:
        the item rows feed only the cell input `g`, the property rows only the
        gates (the other blocks are zeros, not weights). One product with the
        whole step input then costs what a standard LSTM's does; two products of
        column slices of it cost twice as long on CPU."""
        u = self.units
        dtype = self.cell_kernel.dtype
        item_rows = ops.concatenate(
            [ops.zeros((self.item_dim, 3 * u), dtype), self.cell_kernel], axis=1
        )
        property_dim = self.gate_kernel.shape[0]
        property_rows = ops.concatenate(
            [self.gate_kernel, ops.zeros((property_dim, u), dtype)], axis=1
        )
        return ops.concatenate([item_rows, property_rows], axis=0)

    @contextlib.contextmanager
    def hoisted_input_kernel(self):
        """Within this block, every step reuses one `_input_kernel()`, built
        once: wrap `keras.layers.RNN(cell)(sequence)` in it (as
        `LSTMAttentionEncoder` does) so that the kernel is not rebuilt at every
        step (XLA hoists it by itself; TensorFlow's loop does not)."""
        object.__setattr__(self, "_hoisted", self._input_kernel())
        try:
            yield
        finally:
            object.__setattr__(self, "_hoisted", None)

    def call(self, inputs, states, training=False):
        h, c = states[0], states[1]
        u = self.units
        kernel = getattr(self, "_hoisted", None)
        if kernel is None:
            kernel = self._input_kernel()
        z = (
            ops.matmul(inputs, kernel)
            + ops.matmul(h, self.recurrent_kernel)
            + self.bias
        )
        gates = ops.sigmoid(z[:, : 3 * u])
        i, f, o = gates[:, :u], gates[:, u : 2 * u], gates[:, 2 * u :]
        c = f * c + i * ops.tanh(z[:, 3 * u :])
        h = o * ops.tanh(c)
        return h, [h, c]

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "item_dim": self.item_dim,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "recurrent_initializer": keras.initializers.serialize(
                self.recurrent_initializer
            ),
            "unit_forget_bias": self.unit_forget_bias,
        }
