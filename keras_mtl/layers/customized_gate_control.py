"""Customized gate control: task-specific and shared experts, one gate per task."""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

from keras_mtl._checks import check_positive_int, check_units
from keras_mtl.layers._initializers import stacked_initializer
from keras_mtl.layers._mixing import attention_logits, check_gate, gated_sum
from keras_mtl.layers._shapes import common_width, shape_list


@keras.saving.register_keras_serializable(package="keras_mtl")
class CustomizedGateControl(keras.layers.Layer):
    """One extraction level of PLE: task experts, shared experts, per-task gates.

    Every task k has `num_task_experts` experts of its own and all tasks see
    `num_shared_experts` shared experts. Task k's gate mixes its own and the
    shared experts, `g^k(x) = softmax(W^k x_k) · [E_k(x_k); E_s(x_s)]`. With
    `output_shared=True` (every PLE level but the last) a shared gate also mixes
    *all* experts of the level, `g^s(x) = softmax(W^s x_s) · [E_1; ...; E_T; E_s]`,
    and becomes the shared input of the next level. A single level without the
    shared output is CGC.

    Experts are MLPs with `expert_units` hidden widths. All experts of a kind run
    as one batched matrix product; so do all gates.

    With `gate="attention"` every gate is an attention over the experts it
    mixes: its query `Q x` (the gate's input), each expert's key `K E_e(x)`
    (one key projection for the level) and weights `softmax(q · k / sqrt(d))`.

    Args:
        num_tasks: int. Number of tasks T.
        num_task_experts: int. Experts owned by each task. Defaults to 1.
        num_shared_experts: int. Experts shared by all tasks. Defaults to 1.
        expert_units: sequence of int. Hidden widths of every expert.
            Defaults to (16,).
        output_shared: bool. Also output the shared gate's mixture (the shared
            input of the next PLE level). Defaults to False.
        gate_names: sequence of str or None. Names of the T task gates (builders
            pass the task names); the shared gate is "shared". Defaults to
            `task_0, task_1, ...`.
        activation: activation of the expert layers. Defaults to "relu".
        use_gate_bias: bool. Add a bias inside the gate softmax. Defaults to False.
        kernel_initializer: initializer of each expert/gate matrix. Defaults to
            "glorot_uniform".
        gate: "softmax" or "attention" (see above). Defaults to "softmax".
        attention_units: int or None. Width `d` of the attention gates' queries
            and keys. Defaults to None: `expert_units[-1]`.

    Call arguments:
        inputs: one tensor `(batch, d)` read by every expert and gate (the first
            level), or a list of T + 1 tensors `(batch, d)`: task k's experts and
            gate read tensor k, the shared experts and gate read the last one (a
            lower PLE level's outputs).

    Returns:
        A list of T tensors `(batch, expert_units[-1])`, one per task, followed
        by the shared mixture when `output_shared`.

    Example:
    >>> cgc = CustomizedGateControl(2, 2, 1, (16,), gate_names=("ctr", "cvr"))
    >>> x = np.zeros((4, 10), "float32")
    >>> [tuple(t.shape) for t in cgc(x)]  # the inputs of the two towers
    [(4, 16), (4, 16)]
    >>> cgc.expert_names
    ('ctr_0', 'ctr_1', 'cvr_0', 'cvr_1', 'shared_0')
    >>> ctr_gate, cvr_gate = cgc.gate_weights(x)  # over ctr_0, ctr_1, shared_0
    >>> np.round(keras.ops.convert_to_numpy(ctr_gate[0]), 3)  # zero input: uniform
    array([0.333, 0.333, 0.333], dtype=float32)

    References:
        Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
        Learning (MTL) Model for Personalized Recommendations", RecSys 2020.
    """

    def __init__(
        self,
        num_tasks: int,
        num_task_experts: int = 1,
        num_shared_experts: int = 1,
        expert_units: Sequence[int] = (16,),
        output_shared: bool = False,
        gate_names: Sequence[str] | None = None,
        activation="relu",
        use_gate_bias: bool = False,
        kernel_initializer="glorot_uniform",
        gate: str = "softmax",
        attention_units: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "CustomizedGateControl"
        self.attention_units = check_gate(owner, gate, attention_units)
        self.gate = gate
        self.num_tasks = check_positive_int(owner, "num_tasks", num_tasks)
        self.num_task_experts = check_positive_int(
            owner, "num_task_experts", num_task_experts
        )
        self.num_shared_experts = check_positive_int(
            owner, "num_shared_experts", num_shared_experts
        )
        self.expert_units = check_units(
            "CustomizedGateControl", "expert_units", expert_units, allow_empty=False
        )
        self.output_shared = bool(output_shared)
        if gate_names is None:
            gate_names = tuple(f"task_{k}" for k in range(num_tasks))
        gate_names = tuple(str(n) for n in gate_names)
        if len(gate_names) != num_tasks or "shared" in gate_names:
            raise ValueError(
                f"CustomizedGateControl: gate_names must name the {num_tasks} task "
                f'gates ("shared" is the shared gate\'s), got {gate_names}.'
            )
        self.gate_names = gate_names
        self.activation = keras.activations.get(activation)
        self.use_gate_bias = bool(use_gate_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    @property
    def expert_names(self) -> tuple[str, ...]:
        """Every expert of the level: each task's (`{task}_{i}`), then `shared_{i}`."""
        return tuple(
            f"{name}_{i}"
            for name in self.gate_names
            for i in range(self.num_task_experts)
        ) + tuple(f"shared_{i}" for i in range(self.num_shared_experts))

    @property
    def shared_expert_weights(self) -> list:
        """The shared experts' weights (what GradNorm takes gradient norms at)."""
        return [*self.shared_kernels, *self.shared_biases]

    def _input_width(self, input_shape) -> int:
        shapes = shape_list(input_shape)
        if len(shapes) not in (1, self.num_tasks + 1):
            raise ValueError(
                f"CustomizedGateControl: expected one input or a list of "
                f"{self.num_tasks + 1} (one per task, then the shared one), got "
                f"{len(shapes)}."
            )
        return common_width("CustomizedGateControl", shapes)

    def build(self, input_shape):
        width = self._input_width(input_shape)
        init = stacked_initializer(self.kernel_initializer)
        tasks, per_task, shared = (
            self.num_tasks,
            self.num_task_experts,
            self.num_shared_experts,
        )
        self.task_kernels, self.task_biases = [], []
        self.shared_kernels, self.shared_biases = [], []
        d = width
        for i, units in enumerate(self.expert_units):
            self.task_kernels.append(
                self.add_weight(
                    name=f"task_expert_kernel_{i}",
                    # One stack of all tasks' experts: (T * m_t, d, units).
                    shape=(tasks * per_task, d, units),
                    initializer=init,
                )
            )
            self.task_biases.append(
                self.add_weight(
                    name=f"task_expert_bias_{i}",
                    shape=(tasks * per_task, units),
                    initializer="zeros",
                )
            )
            self.shared_kernels.append(
                self.add_weight(
                    name=f"shared_expert_kernel_{i}",
                    shape=(shared, d, units),
                    initializer=init,
                )
            )
            self.shared_biases.append(
                self.add_weight(
                    name=f"shared_expert_bias_{i}",
                    shape=(shared, units),
                    initializer="zeros",
                )
            )
            d = units
        attention = self.gate == "attention"
        # Softmax gates: logits from the input. Attention gates: a query from
        # the input, matched against the experts' keys.
        gate_width = self.attention_units or self.expert_units[-1]
        every = tasks * per_task + shared
        self.task_gate_kernel = self.add_weight(
            name="task_gate_query_kernel" if attention else "task_gate_kernel",
            shape=(tasks, width, gate_width if attention else per_task + shared),
            initializer=init,
        )
        self.gate_key_kernel = None
        if attention:
            self.gate_key_kernel = self.add_weight(
                name="gate_key_kernel",
                shape=(self.expert_units[-1], gate_width),
                initializer=self.kernel_initializer,
            )
        self.task_gate_bias = (
            self.add_weight(
                name="task_gate_bias",
                shape=(tasks, per_task + shared),
                initializer="zeros",
            )
            if self.use_gate_bias
            else None
        )
        self.shared_gate_kernel, self.shared_gate_bias = None, None
        if self.output_shared:
            self.shared_gate_kernel = self.add_weight(
                name="shared_gate_query_kernel" if attention else "shared_gate_kernel",
                shape=(width, gate_width if attention else every),
                initializer=self.kernel_initializer,
            )
            if self.use_gate_bias:
                self.shared_gate_bias = self.add_weight(
                    name="shared_gate_bias",
                    shape=(every,),
                    initializer="zeros",
                )

    def _split_inputs(self, inputs):
        """`(task_inputs, shared_input)`: task_inputs is `(batch, d)` when one
        tensor feeds every task, else `(batch, T, d)`."""
        if not isinstance(inputs, (list, tuple)):
            return inputs, inputs
        if len(inputs) == 1:
            return inputs[0], inputs[0]
        return ops.stack(list(inputs[:-1]), axis=1), inputs[-1]

    def _experts(self, task_x, shared_x):
        """`(task experts (batch, T, m_t, u), shared experts (batch, m_s, u))`."""
        tasks, per_task = self.num_tasks, self.num_task_experts
        h_t, h_s = None, shared_x
        for i, (kt, bt, ks, bs) in enumerate(
            zip(
                self.task_kernels,
                self.task_biases,
                self.shared_kernels,
                self.shared_biases,
            )
        ):
            if i == 0:
                kernel = ops.reshape(kt, (tasks, per_task, *kt.shape[1:]))
                if len(task_x.shape) == 2:
                    h_t = ops.einsum("bd,tedu->bteu", task_x, kernel)
                else:
                    h_t = ops.einsum("btd,tedu->bteu", task_x, kernel)
                h_s = ops.einsum("bd,edu->beu", shared_x, ks)
            else:
                kernel = ops.reshape(kt, (tasks, per_task, *kt.shape[1:]))
                h_t = ops.einsum("bteu,teuv->btev", h_t, kernel)
                h_s = ops.einsum("beu,euv->bev", h_s, ks)
            h_t = self.activation(h_t + ops.reshape(bt, (tasks, per_task, -1)))
            h_s = self.activation(h_s + bs)
        return h_t, h_s

    def _task_gates(self, task_x, task_experts, shared_experts):
        """`(batch, T, m_t + m_s)`: task k's weights over its own experts, then
        the shared ones (the experts are the attention gates' keys)."""
        if len(task_x.shape) == 2:
            logits = ops.einsum("bd,tde->bte", task_x, self.task_gate_kernel)
        else:
            logits = ops.einsum("btd,tde->bte", task_x, self.task_gate_kernel)
        if self.gate == "attention":
            queries = logits  # (batch, T, d): the einsum above gave queries
            own = ops.einsum("bteu,ua->btea", task_experts, self.gate_key_kernel)
            common = ops.einsum("beu,ua->bea", shared_experts, self.gate_key_kernel)
            logits = ops.concatenate(
                [
                    attention_logits(queries, own),
                    attention_logits(queries, ops.expand_dims(common, 1)),
                ],
                axis=-1,
            )
        if self.task_gate_bias is not None:
            logits = logits + self.task_gate_bias
        return ops.softmax(logits, axis=-1)

    def _shared_gate(self, shared_x, every_expert):
        """`(batch, T * m_t + m_s)`: the shared gate's weights over every expert."""
        logits = ops.matmul(shared_x, self.shared_gate_kernel)
        if self.gate == "attention":
            keys = ops.einsum("beu,ua->bea", every_expert, self.gate_key_kernel)
            logits = attention_logits(logits, keys)
        if self.shared_gate_bias is not None:
            logits = logits + self.shared_gate_bias
        return ops.softmax(logits, axis=-1)

    def _every_expert(self, task_experts, shared_experts):
        """All experts of the level in `expert_names` order, `(batch, E, units)`."""
        flat = (-1, self.num_tasks * self.num_task_experts, self.expert_units[-1])
        return ops.concatenate(
            [ops.reshape(task_experts, flat), shared_experts], axis=1
        )

    def gate_weights(self, inputs) -> list:
        """Each gate's softmax weights: T tensors `(batch, m_t + m_s)` over the
        task's own then the shared experts, then (with `output_shared`) one
        `(batch, T * m_t + m_s)` over every expert in `expert_names` order."""
        if not self.built:
            self.build(
                [tuple(ops.shape(x)) for x in inputs]
                if isinstance(inputs, (list, tuple))
                else tuple(ops.shape(inputs))
            )
        task_x, shared_x = self._split_inputs(inputs)
        experts = (None, None)
        if self.gate == "attention":
            experts = self._experts(task_x, shared_x)
        task_gates = self._task_gates(task_x, *experts)
        weights = [task_gates[:, k, :] for k in range(self.num_tasks)]
        if self.output_shared:
            every = self._every_expert(*experts) if experts[0] is not None else None
            weights.append(self._shared_gate(shared_x, every))
        return weights

    def call(self, inputs):
        task_x, shared_x = self._split_inputs(inputs)
        task_experts, shared_experts = self._experts(task_x, shared_x)
        per_task = self.num_task_experts
        gates = self._task_gates(task_x, task_experts, shared_experts)
        task_out = gated_sum(gates[:, :, :per_task], task_experts) + gated_sum(
            gates[:, :, per_task:], ops.expand_dims(shared_experts, 1)
        )
        outputs = [task_out[:, k, :] for k in range(self.num_tasks)]
        if self.output_shared:
            every_expert = self._every_expert(task_experts, shared_experts)
            gate = self._shared_gate(shared_x, every_expert)
            outputs.append(gated_sum(gate, every_expert))
        return outputs

    def compute_output_shape(self, input_shape):
        batch = shape_list(input_shape)[0][0]
        count = self.num_tasks + int(self.output_shared)
        return [(batch, self.expert_units[-1])] * count

    def get_config(self):
        return {
            **super().get_config(),
            "num_tasks": self.num_tasks,
            "num_task_experts": self.num_task_experts,
            "num_shared_experts": self.num_shared_experts,
            "expert_units": list(self.expert_units),
            "output_shared": self.output_shared,
            "gate_names": list(self.gate_names),
            "activation": keras.activations.serialize(self.activation),
            "use_gate_bias": self.use_gate_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "gate": self.gate,
            "attention_units": self.attention_units,
        }
