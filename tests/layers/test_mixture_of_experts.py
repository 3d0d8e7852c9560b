import numpy as np
import pytest

from keras_mtl.layers import MixtureOfExperts
from tests.helpers import run_layer_test, to_numpy

X = np.array([[1.0, 2.0], [-1.0, 0.5]], "float32")


def _set_experts(moe):
    """Three 1-unit linear-ish experts: e0 = relu(x0), e1 = relu(x1), e2 = relu(x0+x1)."""
    moe.build((None, 2))
    moe.expert_kernels[0].assign(
        np.array([[[1.0], [0.0]], [[0.0], [1.0]], [[1.0], [1.0]]], "float32")
    )
    return np.maximum(np.stack([X[:, 0], X[:, 1], X[:, 0] + X[:, 1]], 1), 0)


def test_zero_gates_average_the_experts():
    moe = MixtureOfExperts(3, (1,), gate_names=("a", "b"))
    experts = _set_experts(moe)
    moe.gate_kernel.assign(np.zeros((2, 2, 3), "float32"))
    out_a, out_b = (to_numpy(o) for o in moe(X))
    np.testing.assert_allclose(out_a[:, 0], experts.mean(1), rtol=1e-6)
    np.testing.assert_allclose(out_b, out_a)
    np.testing.assert_allclose(to_numpy(moe.gate_weights(X)), np.full((2, 2, 3), 1 / 3))


def test_each_gate_selects_its_own_expert():
    moe = MixtureOfExperts(3, (1,), num_gates=2)
    experts = _set_experts(moe)
    kernel = np.zeros((2, 2, 3), "float32")
    # logits = x @ W: gate 0 -> expert 1 when x1 > 0 (both rows);
    kernel[0, 1, 1] = 50.0
    kernel[1, 0, 2] = 50.0  # gate 1 -> expert 2 when x0 > 0
    moe.gate_kernel.assign(kernel)
    out0, out1 = (to_numpy(o)[:, 0] for o in moe(X))
    np.testing.assert_allclose(out0, experts[:, 1], atol=1e-4)
    assert out1[0] == pytest.approx(experts[0, 2], abs=1e-4)
    # Row 1 has x0 < 0: gate 1 puts (almost) no weight on expert 2.
    assert to_numpy(moe.gate_weights(X))[1, 1, 2] < 1e-10


def test_gate_rows_sum_to_one():
    moe = MixtureOfExperts(5, (4, 3), num_gates=3)
    x = np.random.default_rng(0).normal(size=(7, 6)).astype("float32")
    np.testing.assert_allclose(to_numpy(moe.gate_weights(x)).sum(-1), 1.0, rtol=1e-5)


def test_experts_start_different_and_dense_like():
    moe = MixtureOfExperts(8, (16,), num_gates=2)
    moe.build((None, 100))
    kernel = to_numpy(moe.expert_kernels[0])
    assert not np.allclose(kernel[0], kernel[1])
    # Glorot uniform for a 100x16 matrix: limit sqrt(6 / 116) ~ 0.227.
    assert 0.2 < np.abs(kernel).max() <= np.sqrt(6 / 116) + 1e-6


def test_attention_gate_attends_to_the_experts_outputs():
    """Task query `x Q_g`, expert keys `f_e(x) K`: with a large positive query
    the gate picks the expert whose output is largest for this input."""
    moe = MixtureOfExperts(3, (1,), gate_names=("a", "b"), gate="attention")
    experts = _set_experts(moe)  # row 0: (1, 2, 3); row 1: (0, 0.5, 0)
    moe.gate_key_kernel.assign([[1.0]])  # key = the expert's output, d = 1
    query = np.zeros((2, 2, 1), "float32")
    query[0] = 50.0  # gate a: q = 50 (x0 + x1): 150 on row 0, -25 on row 1
    moe.gate_kernel.assign(query)  # gate b: q = 0, uniform weights
    out_a, out_b = (to_numpy(o)[:, 0] for o in moe(X))
    assert out_a[0] == pytest.approx(experts[0, 2], abs=1e-5)  # the largest, 3
    # Row 1: a negative query avoids the one positive expert: ~0.
    assert out_a[1] == pytest.approx(0.0, abs=1e-5)
    np.testing.assert_allclose(out_b, experts.mean(1), rtol=1e-6)


def test_attention_gate_matches_its_formula():
    moe = MixtureOfExperts(
        4, (5, 3), gate_names=("a", "b"), gate="attention", attention_units=2
    )
    x = np.random.default_rng(2).normal(size=(6, 7)).astype("float32")
    got = to_numpy(moe.gate_weights(x))
    f = to_numpy(moe.expert_outputs(x))  # (batch, experts, units)
    q = np.einsum("bd,gda->bga", x, to_numpy(moe.gate_kernel))
    k = f @ to_numpy(moe.gate_key_kernel)  # (batch, experts, 2)
    logits = np.einsum("bga,bea->bge", q, k) / np.sqrt(2.0)
    want = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    mixed = [to_numpy(o) for o in moe(x)]
    np.testing.assert_allclose(
        mixed[1], np.einsum("be,beu->bu", want[:, 1], f), atol=1e-5
    )


@pytest.mark.parametrize("gate", ["softmax", "attention"])
def test_layer_contract(gate, tmp_path):
    run_layer_test(
        MixtureOfExperts,
        {
            "num_experts": 4,
            "expert_units": (6, 5),
            "gate_names": ("x", "y"),
            "gate": gate,
        },
        np.random.default_rng(1).normal(size=(3, 7)).astype("float32"),
        expected_output_shape=[(None, 5), (None, 5)],
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_experts": 0, "expert_units": (4,)},
        {"num_experts": 2, "expert_units": ()},
        {"num_experts": 2, "expert_units": (4,), "num_gates": 3, "gate_names": ("a",)},
        {"num_experts": 2, "expert_units": (4,), "gate": "sigmoid"},
        {"num_experts": 2, "expert_units": (4,), "attention_units": 3},
        {
            "num_experts": 2,
            "expert_units": (4,),
            "gate": "attention",
            "attention_units": -1,
        },
    ],
)
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="MixtureOfExperts"):
        MixtureOfExperts(**kwargs)


def test_gates_and_seeded_experts_differ():
    import keras

    init = keras.initializers.GlorotUniform(seed=3)
    moe = MixtureOfExperts(4, (8,), num_gates=2, kernel_initializer=init)
    moe.build((None, 10))
    experts = to_numpy(moe.expert_kernels[0])
    gates = to_numpy(moe.gate_kernel)
    assert not np.allclose(experts[0], experts[1])
    assert not np.allclose(gates[0], gates[1])


@pytest.mark.parametrize("gate", ["softmax", "attention"])
def test_one_input_per_gate_is_each_gate_on_its_own_input(gate):
    """Given [x_a, x_b], gate k and the experts it mixes read x_k: output k is
    what the layer gives gate k on x_k alone (the same weights)."""
    moe = MixtureOfExperts(3, (4, 2), gate_names=("a", "b"), gate=gate)
    rng = np.random.default_rng(2)
    x_a, x_b = (rng.normal(size=(5, 6)).astype("float32") for _ in range(2))
    out_a, out_b = (to_numpy(o) for o in moe([x_a, x_b]))
    np.testing.assert_allclose(out_a, to_numpy(moe(x_a)[0]), atol=1e-6)
    np.testing.assert_allclose(out_b, to_numpy(moe(x_b)[1]), atol=1e-6)
    gates = to_numpy(moe.gate_weights([x_a, x_b]))
    np.testing.assert_allclose(
        gates[:, 0], to_numpy(moe.gate_weights(x_a))[:, 0], atol=1e-6
    )
    np.testing.assert_allclose(
        gates[:, 1], to_numpy(moe.gate_weights(x_b))[:, 1], atol=1e-6
    )
    with pytest.raises(ValueError, match="a list of 2 \\(one per gate\\), got 3"):
        MixtureOfExperts(3, (4,), num_gates=2)([x_a, x_b, x_a])
