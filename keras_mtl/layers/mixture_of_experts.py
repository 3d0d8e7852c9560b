"""Mixture-of-experts block: shared experts, one gate per task (MMoE / OMoE)."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl._checks import check_positive_int, check_units
from keras_mtl.layers._initializers import stacked_initializer
from keras_mtl.layers._mixing import attention_logits, check_gate, gated_sum
from keras_mtl.layers._shapes import common_width, shape_list


@keras.saving.register_keras_serializable(package="keras_mtl")
class MixtureOfExperts(keras.layers.Layer):
    """Experts shared by all tasks, mixed by one softmax gate per task.

    Each expert is an MLP `f_e`; gate `k` is `g^k(x) = softmax(W_k x)` over the
    experts, and its output is `Σ_e g^k_e(x) f_e(x)`. With one gate per task this is
    MMoE; with a single gate shared by all tasks it is OMoE. All experts run as one
    batched matrix product, and all gates as another.

    With `gate="attention"`, gate `k` is an attention over the experts instead:
    the task query `q_k = Q_k x`, the expert keys `k_e = K f_e(x)` and
    `g^k(x) = softmax_e(q_k · k_e / sqrt(d))` (scaled dot product, `d =
    attention_units`), so a task weighs an expert by what the expert computed
    for this input, not only by the input.

    Given one input per gate (a list), gate k and the experts it mixes read
    input k: the experts run once per gate, with the same weights (per-task
    feature selection gives each task its own view of the features).

    Args:
        num_experts: int. Number of experts.
        expert_units: sequence of int. Hidden widths of every expert.
        num_gates: int. Number of gates (one per task for MMoE, 1 for OMoE).
            Defaults to `len(gate_names)` when names are given, else 1.
        gate_names: sequence of str or None. Names of the gates, used by
            `keras_mtl.gate_weights` (builders pass the task names). Defaults to
            `gate_0, gate_1, ...`.
        activation: activation of the expert layers. Defaults to "relu".
        use_gate_bias: bool. Add a bias inside the gate softmax (the paper's gate
            has none). Defaults to False.
        kernel_initializer: initializer of each expert/gate matrix. Defaults to
            "glorot_uniform".
        gate: "softmax" or "attention" (see above). Defaults to "softmax".
        attention_units: int or None. Width `d` of the attention gates' queries
            and keys. Defaults to None: `expert_units[-1]`.

    Call arguments:
        inputs: tensor `(batch, features)`, or a list of `num_gates` such
            tensors, one per gate.

    Returns:
        A list of `num_gates` tensors `(batch, expert_units[-1])`, one per gate.

    Example:
    >>> moe = MixtureOfExperts(4, (16,), gate_names=("ctr", "cvr"))
    >>> x = np.zeros((2, 10), "float32")
    >>> [tuple(t.shape) for t in moe(x)]  # the inputs of the two towers
    [(2, 16), (2, 16)]
    >>> gates = moe.gate_weights(x)
    >>> tuple(gates.shape)  # (batch, gates, experts)
    (2, 2, 4)
    >>> keras.ops.convert_to_numpy(gates[0, 0])  # zero input: uniform weights
    array([0.25, 0.25, 0.25, 0.25], dtype=float32)

    References:
        Ma et al., "Modeling Task Relationships in Multi-task Learning with
        Multi-gate Mixture-of-Experts", KDD 2018.
    """

    def __init__(
        self,
        num_experts: int,
        expert_units: Sequence[int],
        num_gates: int | None = None,
        gate_names: Sequence[str] | None = None,
        activation="relu",
        use_gate_bias: bool = False,
        kernel_initializer="glorot_uniform",
        gate: str = "softmax",
        attention_units: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.attention_units = check_gate("MixtureOfExperts", gate, attention_units)
        self.gate = gate
        self.num_experts = check_positive_int(
            "MixtureOfExperts", "num_experts", num_experts
        )
        self.expert_units = check_units(
            "MixtureOfExperts", "expert_units", expert_units, allow_empty=False
        )
        if gate_names is not None:
            gate_names = tuple(str(n) for n in gate_names)
            if num_gates is not None and num_gates != len(gate_names):
                raise ValueError(
                    f"MixtureOfExperts: num_gates={num_gates} but {len(gate_names)} "
                    f"gate_names {gate_names}."
                )
            num_gates = len(gate_names)
        num_gates = 1 if num_gates is None else num_gates
        num_gates = check_positive_int("MixtureOfExperts", "num_gates", num_gates)
        self.num_gates = num_gates
        self.gate_names = gate_names or tuple(f"gate_{i}" for i in range(num_gates))
        self.activation = keras.activations.get(activation)
        self.use_gate_bias = bool(use_gate_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @property
    def expert_names(self) -> tuple[str, ...]:
        """`expert_0, expert_1, ...`: the experts' names in `gate_weights` order."""
        return tuple(f"expert_{i}" for i in range(self.num_experts))

    def build(self, input_shape):
        shapes = shape_list(input_shape)
        if len(shapes) not in (1, self.num_gates):
            raise ValueError(
                f"MixtureOfExperts: expected one input or a list of "
                f"{self.num_gates} (one per gate), got {len(shapes)}."
            )
        width = common_width("MixtureOfExperts", shapes)
        input_shape = shapes[0]
        init = stacked_initializer(self.kernel_initializer)
        self.expert_kernels, self.expert_biases = [], []
        for i, units in enumerate(self.expert_units):
            self.expert_kernels.append(
                self.add_weight(
                    name=f"expert_kernel_{i}",
                    shape=(self.num_experts, width, units),
                    initializer=init,
                )
            )
            self.expert_biases.append(
                self.add_weight(
                    name=f"expert_bias_{i}",
                    shape=(self.num_experts, units),
                    initializer="zeros",
                )
            )
            width = units
        if self.gate == "attention":
            units = self.attention_units or self.expert_units[-1]
            # Per gate a query projection of the input; one key projection of
            # the experts' outputs.
            self.gate_kernel = self.add_weight(
                name="gate_query_kernel",
                shape=(self.num_gates, input_shape[-1], units),
                initializer=init,
            )
            self.gate_key_kernel = self.add_weight(
                name="gate_key_kernel",
                shape=(self.expert_units[-1], units),
                initializer=self.kernel_initializer,
            )
        else:
            self.gate_kernel = self.add_weight(
                name="gate_kernel",
                shape=(self.num_gates, input_shape[-1], self.num_experts),
                initializer=init,
            )
        self.gate_bias = (
            self.add_weight(
                name="gate_bias",
                shape=(self.num_gates, self.num_experts),
                initializer="zeros",
            )
            if self.use_gate_bias
            else None
        )

    @staticmethod
    def _stacked(inputs):
        """One tensor `(batch, d)`, or the per-gate inputs as `(batch, gates, d)`."""
        if not isinstance(inputs, (list, tuple)):
            return inputs
        return inputs[0] if len(inputs) == 1 else ops.stack(list(inputs), axis=1)

    def expert_outputs(self, inputs):
        """Every expert's output, `(batch, num_experts, expert_units[-1])`
        (`(batch, gates, num_experts, expert_units[-1])` for per-gate inputs)."""
        inputs = self._stacked(inputs)
        if len(inputs.shape) == 3:  # per gate: the gates' rows as more rows
            gates, width = inputs.shape[1], inputs.shape[2]
            h = self.expert_outputs(ops.reshape(inputs, (-1, width)))
            return ops.reshape(h, (-1, gates, *h.shape[1:]))
        h = ops.einsum("bd,edu->beu", inputs, self.expert_kernels[0])
        h = self.activation(h + self.expert_biases[0])
        for kernel, bias in zip(self.expert_kernels[1:], self.expert_biases[1:]):
            h = self.activation(ops.einsum("beu,euv->bev", h, kernel) + bias)
        return h

    def gate_weights(self, inputs):
        """Each gate's weights over the experts, `(batch, gates, experts)`."""
        if not self.built:
            self.build(
                [tuple(ops.shape(x)) for x in inputs]
                if isinstance(inputs, (list, tuple))
                else ops.shape(inputs)
            )
        inputs = self._stacked(inputs)
        experts = self.expert_outputs(inputs) if self.gate == "attention" else None
        return self._gates(inputs, experts)

    def _gate_logits(self, inputs, kernel):
        """Every gate's `inputs @ kernel[g]`, `(batch, gates, x)`, from
        `inputs` (batch, d) or one input per gate (batch, gates, d), and
        `kernel` (gates, d, x). (Per gate, one matmul each: XLA on CPU runs the
        batched einsum "bgd,gdx->bgx" several times slower.)"""
        if len(inputs.shape) == 2:
            return ops.einsum("bd,gdx->bgx", inputs, kernel)
        return ops.stack(
            [ops.matmul(inputs[:, g, :], kernel[g]) for g in range(self.num_gates)],
            axis=1,
        )

    def _gates(self, inputs, experts):
        """The gates' weights; `experts` (batch, experts, units) are the
        attention gates' keys (unused by softmax gates). `inputs` (batch, d),
        or (batch, gates, d) with experts (batch, gates, experts, units)."""
        if self.gate == "attention":
            queries = self._gate_logits(inputs, self.gate_kernel)
            keys = ops.matmul(experts, self.gate_key_kernel)
            if len(keys.shape) == 3:  # the same experts for every gate
                keys = ops.expand_dims(keys, 1)
            logits = attention_logits(queries, keys)
        else:
            logits = self._gate_logits(inputs, self.gate_kernel)
        if self.gate_bias is not None:
            logits = logits + self.gate_bias
        return ops.softmax(logits, axis=-1)

    def call(self, inputs):
        # (batch, gates, experts) x (batch, 1, experts, units) -> (batch, gates, units)
        # (with one input per gate, the experts are (batch, gates, experts, units))
        inputs = self._stacked(inputs)
        experts = self.expert_outputs(inputs)
        gates = self._gates(inputs, experts)
        if len(experts.shape) == 3:
            experts = ops.expand_dims(experts, 1)
        mixed = gated_sum(gates, experts)
        return [mixed[:, k, :] for k in range(self.num_gates)]

    def compute_output_shape(self, input_shape):
        batch = shape_list(input_shape)[0][0]
        return [(batch, self.expert_units[-1])] * self.num_gates

    def get_config(self):
        return {
            **super().get_config(),
            "num_experts": self.num_experts,
            "expert_units": list(self.expert_units),
            "num_gates": self.num_gates,
            "gate_names": list(self.gate_names),
            "activation": keras.activations.serialize(self.activation),
            "use_gate_bias": self.use_gate_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "gate": self.gate,
            "attention_units": self.attention_units,
        }
