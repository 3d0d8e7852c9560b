"""DUPN's user encoder: an LSTM over the behaviour sequence, then attention."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_positive_int
from keras_mtl.layers.attention_pooling import AttentionPooling
from keras_mtl.layers.property_gated_lstm import PropertyGatedLSTMCell

CELLS = ("property_gated", "lstm", "none")
POOLINGS = ("attention", "mean")


@keras.saving.register_keras_serializable(package="keras_mtl")
class LSTMAttentionEncoder(keras.layers.Layer):
    """A behaviour sequence and a request, summarised in one vector.

    The steps `[item_t; property_t]` run through an LSTM, and attention
    pooling with the request as query (`AttentionPooling`) weighs its hidden
    states into a fixed-size vector: DUPN's sequence and attention layers.
    Padded steps are masked: the LSTM carries its state over them and the
    attention gives them no weight, so padding changes nothing.

    `cell` and `pooling` are also ablation switches: `cell="none"` replaces
    the LSTM by a per-step dense layer (`tanh`), `pooling="mean"` replaces the
    attention by a masked mean; both together give a bag-of-behaviours encoder.

    Args:
        units: int. Width of the LSTM state and of the output. Defaults to 128.
        cell: "property_gated" (DUPN's property-gated LSTM: the property drives
            the gates, the item is the cell input), "lstm" (a standard LSTM on
            `[item; property]`) or "none". Defaults to "property_gated".
        pooling: "attention" or "mean". Defaults to "attention".
        attention_units: int. Width of the attention MLP. Defaults to 64.

    Call arguments:
        inputs: `[items, properties]` or `[items, properties, query]`: item
            embeddings `(batch, steps, item_dim)`, property embeddings
            `(batch, steps, property_dim)`, query `(batch, query_dim)`.
        mask: bool `(batch, steps)`, True for real steps (Keras passes the mask
            of `keras_mtl.layers.FieldEmbedding` outputs on its own).

    Returns:
        Tensor `(batch, units)`.

    Example:
    >>> enc = LSTMAttentionEncoder(16)
    >>> items, properties = np.ones((2, 5, 8), "float32"), np.ones((2, 5, 4), "float32")
    >>> query = np.ones((2, 3), "float32")
    >>> tuple(enc([items, properties, query]).shape)
    (2, 16)

    References:
        Ni et al., "Perceive Your Users in Depth: Learning Universal User
        Representations from Multiple E-commerce Tasks", KDD 2018
        (arXiv:1805.10727).
    """

    def __init__(
        self,
        units: int = 128,
        cell: str = "property_gated",
        pooling: str = "attention",
        attention_units: int = 64,
        **kwargs,
    ):
        super().__init__(**kwargs)
        check_positive_int("LSTMAttentionEncoder", "units", units)
        if cell not in CELLS:
            raise ValueError(
                f"LSTMAttentionEncoder: cell must be one of {CELLS}, got {cell!r}."
            )
        if pooling not in POOLINGS:
            raise ValueError(
                f"LSTMAttentionEncoder: pooling must be one of {POOLINGS}, got "
                f"{pooling!r}."
            )
        self.units = units
        self.cell = cell
        self.pooling = pooling
        self.attention_units = attention_units
        self.attention = AttentionPooling(
            attention_units if pooling == "attention" else 0,
            name="attention",
            dtype=self.dtype_policy,
        )
        self.supports_masking = True

    def _check(self, shapes):
        if not isinstance(shapes, (list, tuple)) or len(shapes) not in (2, 3):
            raise ValueError(
                "LSTMAttentionEncoder: expected [items, properties] or [items, "
                f"properties, query]; got {shapes!r}."
            )
        items, props = shapes[0], shapes[1]
        if len(items) != 3 or len(props) != 3:
            raise ValueError(
                "LSTMAttentionEncoder: items and properties must be (batch, steps, "
                f"dim); got {tuple(items)} and {tuple(props)}."
            )

    def build(self, input_shape):
        self._check(input_shape)
        items, props = input_shape[0], input_shape[1]
        steps = (items[0], items[1], items[-1] + props[-1])
        policy = self.dtype_policy
        if self.cell == "property_gated":
            self.sequence = keras.layers.RNN(
                PropertyGatedLSTMCell(
                    self.units, item_dim=items[-1], name="cell", dtype=policy
                ),
                return_sequences=True,
                name="lstm",
                dtype=policy,
            )
        elif self.cell == "lstm":
            self.sequence = keras.layers.LSTM(
                self.units, return_sequences=True, name="lstm", dtype=policy
            )
        else:
            self.sequence = keras.layers.Dense(
                self.units, activation="tanh", name="step_dense", dtype=policy
            )
        self.sequence.build(steps)
        hidden = (items[0], items[1], self.units)
        self.attention.build(
            [hidden, input_shape[2]] if len(input_shape) > 2 else hidden
        )

    @staticmethod
    def _step_mask(mask):
        if isinstance(mask, (list, tuple)):
            mask = next((m for m in mask if m is not None), None)
        return mask

    def _hidden(self, inputs, mask):
        x = ops.concatenate([inputs[0], inputs[1]], axis=-1)
        if self.cell == "none":
            return self.sequence(x)
        if self.cell == "property_gated":
            with self.sequence.cell.hoisted_input_kernel():
                return self.sequence(x, mask=mask)
        return self.sequence(x, mask=mask)

    def call(self, inputs, mask=None, return_weights=False):
        self._check([x.shape for x in inputs])
        mask = self._step_mask(mask)
        hidden = self._hidden(inputs, mask)
        query = [inputs[2]] if len(inputs) > 2 else []
        return self.attention(
            [hidden, *query], mask=mask, return_weights=return_weights
        )

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0][0], self.units)

    def compute_output_spec(self, inputs, mask=None, return_weights=False):
        # Symbolic calls (functional models) must honour return_weights too.
        items = inputs[0]
        pooled = keras.KerasTensor(
            (items.shape[0], self.units), dtype=self.compute_dtype
        )
        if not return_weights:
            return pooled
        return pooled, keras.KerasTensor(items.shape[:2], dtype=self.compute_dtype)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "cell": self.cell,
            "pooling": self.pooling,
            "attention_units": self.attention_units,
        }
