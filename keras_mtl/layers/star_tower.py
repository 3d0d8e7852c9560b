"""STAR's per-task head: star-topology layers, plus the auxiliary network's logit."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl._checks import check_head_task, check_rate, check_units
from keras_mtl.layers._domains import check_num_domains
from keras_mtl.layers.mlp import MLP
from keras_mtl.layers.star_dense import StarDense


@keras.saving.register_keras_serializable(package="keras_mtl")
class StarTower(keras.layers.Layer):
    """A task's STAR head: `StarDense` layers and a star output unit, whose
    logit the auxiliary network's logit joins before the output activation.

    The main logit `s_m` is the last `StarDense` (linear, `W ⊙ W_p`, `b +
    b_p`) of the tower; the auxiliary network, a small MLP (`aux_units`) and a
    linear unit on its own input (in `build_star`: the embeddings of the domain
    indicator and of any `aux_features`), gives `s_a`, and the prediction is

    - "binary": `sigmoid(s_m + s_a)` (the paper's),
    - "regression": `s_m + s_a` (the auxiliary output added to the value),
    - "multiclass": `softmax(s_m + s_a)`, with `num_classes` logits each.

    With `aux_units=None` there is no auxiliary network (`s_a = 0`).

    Args:
        num_domains: int. Number of known domains (see `StarDense`).
        units: sequence of int. Hidden widths of the tower (`StarDense` with
            `activation`), may be empty. Defaults to ().
        task_type: "binary", "regression" or "multiclass". Defaults to
            "binary".
        num_classes: int >= 2. Classes of a "multiclass" tower, and only of
            it. Defaults to None.
        aux_units: sequence of int, or None. Hidden widths of the auxiliary
            network (empty: a linear unit on its input); None for no
            auxiliary network. Defaults to None.
        activation: activation of the hidden layers (tower and auxiliary).
            Defaults to "relu".
        dropout: float. Dropout after each hidden layer of the tower. Defaults
            to 0.

    Call arguments:
        inputs: `[x, domain]`, or `[x, domain, aux]` with an auxiliary
            network: `x` `(batch, features)`, the domain indices `(batch,)`
            and the auxiliary network's input `(batch, aux_features)`.
        training: bool, enables dropout.

    Returns:
        Tensor `(batch,)`; `(batch, num_classes)` probabilities for
        "multiclass".

    Example:
    >>> tower = StarTower(3, units=(4,), aux_units=(2,))
    >>> x, aux = np.zeros((5, 6), "float32"), np.zeros((5, 2), "float32")
    >>> p = tower([x, np.array([0, 1, 2, -1, 1]), aux])
    >>> keras.ops.convert_to_numpy(p)  # zero inputs, zero biases: sigmoid(0)
    array([0.5, 0.5, 0.5, 0.5, 0.5], dtype=float32)

    References:
        Sheng et al., "One Model to Serve All: Star Topology Adaptive
        Recommender for Multi-Domain CTR Prediction", CIKM 2021
        (arXiv:2101.11427).
    """

    def __init__(
        self,
        num_domains: int,
        units: Sequence[int] = (),
        task_type: str = "binary",
        num_classes: int | None = None,
        aux_units: Sequence[int] | None = None,
        activation="relu",
        dropout: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "StarTower"
        self.num_domains = check_num_domains(owner, num_domains)
        self.units = check_units(owner, "units", units)
        self.task_type, self.num_classes = check_head_task(
            owner, task_type, num_classes
        )
        self.aux_units = (
            None if aux_units is None else check_units(owner, "aux_units", aux_units)
        )
        self.activation = keras.activations.get(activation)
        self.dropout = check_rate(owner, "dropout", dropout)
        policy = self.dtype_policy
        self.hidden = [
            StarDense(
                width,
                self.num_domains,
                activation=self.activation,
                name=f"star_{i}",
                dtype=policy,
            )
            for i, width in enumerate(self.units, start=1)
        ]
        self.dropouts = [
            keras.layers.Dropout(self.dropout, name=f"dropout_{i}", dtype=policy)
            for i in range(1, len(self.units) + 1 if self.dropout else 1)
        ]
        outputs = self.num_classes or 1
        self.logit = StarDense(outputs, self.num_domains, name="logit", dtype=policy)
        if self.aux_units is not None:
            self.aux_hidden = MLP(
                self.aux_units,
                activation=self.activation,
                name="aux_hidden",
                dtype=policy,
            )
            self.aux_logit = keras.layers.Dense(outputs, name="aux_logit", dtype=policy)

    def _split(self, inputs):
        want = 2 if self.aux_units is None else 3
        if not isinstance(inputs, (list, tuple)) or len(inputs) != want:
            parts = "[x, domain]" if want == 2 else "[x, domain, aux]"
            raise ValueError(
                f"StarTower: inputs must be {parts} (aux_units="
                f"{self.aux_units!r}); got {inputs!r}."
            )
        return list(inputs) + [None] * (3 - want)

    def build(self, input_shape):
        x, domain, aux = self._split(input_shape)
        shape = tuple(x)
        for layer in self.hidden:
            layer.build([shape, tuple(domain)])
            shape = layer.compute_output_shape([shape, tuple(domain)])
        self.logit.build([shape, tuple(domain)])
        if aux is not None:
            self.aux_hidden.build(tuple(aux))
            self.aux_logit.build(self.aux_hidden.compute_output_shape(tuple(aux)))

    def call(self, inputs, training=None):
        x, domain, aux = self._split(inputs)
        h = x
        for i, layer in enumerate(self.hidden):
            h = layer([h, domain])
            if self.dropout:
                h = self.dropouts[i](h, training=training)
        logits = self.logit([h, domain])
        if aux is not None:
            logits = logits + self.aux_logit(self.aux_hidden(aux, training=training))
        if self.task_type == "multiclass":
            return ops.softmax(logits, axis=-1)
        logits = ops.squeeze(logits, -1)
        return ops.sigmoid(logits) if self.task_type == "binary" else logits

    def compute_output_shape(self, input_shape):
        x = tuple(self._split(input_shape)[0])
        return x[:-1] + ((self.num_classes,) if self.num_classes else ())

    def get_config(self):
        return {
            **super().get_config(),
            "num_domains": self.num_domains,
            "units": list(self.units),
            "task_type": self.task_type,
            "num_classes": self.num_classes,
            "aux_units": None if self.aux_units is None else list(self.aux_units),
            "activation": keras.activations.serialize(self.activation),
            "dropout": self.dropout,
        }
