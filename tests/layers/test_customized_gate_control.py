import numpy as np
import pytest

from keras_mtl.layers import CustomizedGateControl
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)


def _relu(x):
    return np.maximum(x, 0.0)


def _softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference(layer, inputs):
    """The level written out with numpy loops, one expert and one gate at a time."""
    w = {v.path.split("/")[-1]: to_numpy(v) for v in layer.weights}
    tasks, m_t, m_s = layer.num_tasks, layer.num_task_experts, layer.num_shared_experts
    task_x = inputs[:-1] if isinstance(inputs, list) else [inputs] * tasks
    shared_x = inputs[-1] if isinstance(inputs, list) else inputs
    depth = len(layer.expert_units)

    def expert(kind, index, x):
        for i in range(depth):
            x = _relu(
                x @ w[f"{kind}_expert_kernel_{i}"][index]
                + w[f"{kind}_expert_bias_{i}"][index]
            )
        return x

    own = [
        [expert("task", k * m_t + e, task_x[k]) for e in range(m_t)]
        for k in range(tasks)
    ]
    shared = [expert("shared", e, shared_x) for e in range(m_s)]

    def gate(kind, x, candidates, k=None):
        """softmax(x W), or softmax over experts of (x Q) . (expert K) / sqrt(d)."""
        if layer.gate == "softmax":
            kernel = w[f"{kind}_gate_kernel"]
            return _softmax(x @ (kernel if k is None else kernel[k]))
        query = w[f"{kind}_gate_query_kernel"]
        q = x @ (query if k is None else query[k])
        keys = [c @ w["gate_key_kernel"] for c in candidates]
        logits = np.stack([(q * key).sum(-1) for key in keys], axis=-1)
        return _softmax(logits / np.sqrt(q.shape[-1]))

    outputs = []
    for k in range(tasks):
        candidates = own[k] + shared
        g = gate("task", task_x[k], candidates, k)
        outputs.append(sum(g[:, [i]] * c for i, c in enumerate(candidates)))
    if layer.output_shared:
        candidates = [e for k in range(tasks) for e in own[k]] + shared
        g = gate("shared", shared_x, candidates)
        outputs.append(sum(g[:, [i]] * c for i, c in enumerate(candidates)))
    return outputs


@pytest.mark.parametrize("output_shared", [False, True])
@pytest.mark.parametrize("gate", ["softmax", "attention"])
def test_layer_contract(output_shared, gate, tmp_path):
    x = RNG.normal(size=(6, 5)).astype("float32")
    count = 3 if output_shared else 2
    run_layer_test(
        CustomizedGateControl,
        {
            "num_tasks": 2,
            "num_task_experts": 2,
            "num_shared_experts": 3,
            "expert_units": (8, 4),
            "output_shared": output_shared,
            "gate_names": ("ctr", "cvr"),
            "gate": gate,
        },
        x,
        [(None, 4)] * count,
        tmp_path,
    )


@pytest.mark.parametrize("output_shared", [False, True])
@pytest.mark.parametrize("list_input", [False, True])
@pytest.mark.parametrize(
    "gate", [{}, {"gate": "attention"}, {"gate": "attention", "attention_units": 2}]
)
def test_matches_a_loop_over_experts_and_gates(output_shared, list_input, gate):
    layer = CustomizedGateControl(
        3,
        2,
        2,
        (5, 3),
        output_shared=output_shared,
        gate_names=("a", "b", "c"),
        **gate,
    )
    if list_input:  # a higher level: each task and the shared part read their own
        x = [RNG.normal(size=(7, 4)).astype("float32") for _ in range(4)]
    else:
        x = RNG.normal(size=(7, 4)).astype("float32")
    layer(x)
    for v in layer.weights:  # non-zero biases so that they are checked too
        v.assign(RNG.normal(size=v.shape).astype("float32"))
    got = [to_numpy(o) for o in layer(x)]
    want = reference(layer, x)
    assert len(got) == len(want) == 3 + output_shared
    for g, r in zip(got, want):
        np.testing.assert_allclose(g, r, rtol=1e-4, atol=1e-5)
    # gate_weights gives the weights the call mixed with (rows sum to 1).
    for weights in layer.gate_weights(x):
        np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, rtol=1e-5)


def test_gates_select_hand_set_experts():
    """One-unit identity experts: task a's gate picks its own expert, task b's the
    shared one, the shared gate task b's expert."""
    layer = CustomizedGateControl(
        2, 1, 1, (1,), output_shared=True, gate_names=("a", "b")
    )
    x = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], "float32")
    layer(x)
    # experts: a_0 = x0, b_0 = x1, shared_0 = x2 (all positive, so relu is identity)
    layer.task_kernels[0].assign(
        np.array([[[1], [0], [0]], [[0], [1], [0]]], "float32")
    )
    layer.shared_kernels[0].assign(np.array([[[0], [0], [1]]], "float32"))
    gate = np.zeros((2, 3, 2), "float32")
    gate[0, 0, 0] = 100.0  # a: own expert (x0 > 0)
    gate[1, 0, 1] = 100.0  # b: shared expert
    layer.task_gate_kernel.assign(gate)
    shared_gate = np.zeros((3, 3), "float32")
    shared_gate[0, 1] = 100.0  # shared gate: experts ordered a_0, b_0, shared_0
    layer.shared_gate_kernel.assign(shared_gate)
    a, b, s = (to_numpy(o)[:, 0] for o in layer(x))
    np.testing.assert_allclose(a, x[:, 0], rtol=1e-5)
    np.testing.assert_allclose(b, x[:, 2], rtol=1e-5)
    np.testing.assert_allclose(s, x[:, 1], rtol=1e-5)
    assert layer.expert_names == ("a_0", "b_0", "shared_0")
    weights = [to_numpy(w) for w in layer.gate_weights(x)]
    assert [w.shape for w in weights] == [(2, 2), (2, 2), (2, 3)]
    np.testing.assert_allclose(weights[0][:, 0], 1.0, atol=1e-6)


def test_experts_start_different():
    layer = CustomizedGateControl(2, 2, 2, (16,))
    layer.build((None, 30))
    kernels = to_numpy(layer.task_kernels[0])
    assert not np.allclose(kernels[0], kernels[1])
    assert not np.allclose(to_numpy(layer.shared_kernels[0])[0], kernels[0])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_tasks": 0}, "num_tasks"),
        ({"num_tasks": 2, "num_task_experts": 0}, "num_task_experts"),
        ({"num_tasks": 2, "num_shared_experts": 1.5}, "num_shared_experts"),
        ({"num_tasks": 2, "expert_units": ()}, "expert_units"),
        ({"num_tasks": 2, "gate_names": ("a",)}, "gate_names"),
        ({"num_tasks": 2, "gate_names": ("a", "shared")}, "gate_names"),
        ({"num_tasks": 2, "gate": "sigmoid"}, "gate must be one of"),
        ({"num_tasks": 2, "attention_units": 4}, "attention_units=4 is for gate="),
        ({"num_tasks": 2, "gate": "attention", "attention_units": 0}, "attention_u"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CustomizedGateControl(**kwargs)


def test_wrong_number_of_inputs_is_explained():
    layer = CustomizedGateControl(2)
    x = np.zeros((2, 3), "float32")
    with pytest.raises(ValueError, match="one input or a list of 3"):
        layer([x, x])
