import keras
import numpy as np
import pytest

from keras_mtl.layers.parallel_dense import ParallelDense
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)
X = RNG.normal(size=(5, 3)).astype("float32")
X2 = RNG.normal(size=(5, 3)).astype("float32")


def _known_weights():
    """Two branches, 3 -> 2, with distinct kernels and biases."""
    kernel = np.stack(
        [
            np.arange(6, dtype="float32").reshape(3, 2) / 10 - 0.2,
            -np.arange(6, dtype="float32").reshape(3, 2) / 5 + 0.3,
        ]
    )
    bias = np.array([[0.1, -0.2], [0.5, 0.0]], "float32")
    return kernel, bias


def test_layer_contract_single_input(tmp_path):
    run_layer_test(
        ParallelDense,
        {"num_branches": 3, "units": 4, "coupling": 0.01},
        X,
        expected_output_shape=[(None, 4)] * 3,
        tmp_path=tmp_path,
    )


def test_layer_contract_list_input(tmp_path):
    run_layer_test(
        ParallelDense,
        {"num_branches": 2, "units": 4, "activation": "tanh"},
        [X, X2],
        expected_output_shape=[(None, 4)] * 2,
        tmp_path=tmp_path,
    )


def test_hand_computed_outputs():
    layer = ParallelDense(2, 2, activation="linear")
    layer.build((None, 3))
    kernel, bias = _known_weights()
    layer.set_weights([kernel, bias])
    a, b = (to_numpy(o) for o in layer(X))
    np.testing.assert_allclose(a, X @ kernel[0] + bias[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, X @ kernel[1] + bias[1], rtol=1e-5, atol=1e-6)
    # List input: branch k reads tensor k.
    a, b = (to_numpy(o) for o in layer([X, X2]))
    np.testing.assert_allclose(a, X @ kernel[0] + bias[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b, X2 @ kernel[1] + bias[1], rtol=1e-5, atol=1e-6)
    # The activation is applied per branch.
    relu = ParallelDense(2, 2)
    relu.build((None, 3))
    relu.set_weights([kernel, bias])
    np.testing.assert_allclose(
        to_numpy(relu(X)[1]), np.maximum(X @ kernel[1] + bias[1], 0), atol=1e-6
    )


def test_single_input_equals_the_same_tensor_per_branch():
    layer = ParallelDense(3, 4)
    single = layer(X)
    listed = layer([X, X, X])
    for s, t in zip(single, listed):
        np.testing.assert_allclose(to_numpy(s), to_numpy(t), atol=1e-6)
    # A list of one tensor is the shared input too, not one branch's.
    one = layer([X])
    assert len(one) == 3
    for s, t in zip(single, one):
        np.testing.assert_allclose(to_numpy(s), to_numpy(t), atol=1e-6)


def test_branches_start_different_and_dense_like():
    layer = ParallelDense(4, 16)
    layer.build((None, 100))
    kernel = to_numpy(layer.kernel)
    for i in range(1, 4):
        assert not np.allclose(kernel[0], kernel[i])
    # Glorot uniform of a 100x16 matrix, not of the 3-D stack: limit sqrt(6/116).
    assert 0.2 < np.abs(kernel).max() <= np.sqrt(6 / 116) + 1e-6
    np.testing.assert_array_equal(to_numpy(layer.bias), 0)


def test_coupling_penalty_value_in_losses():
    kernel, bias = _known_weights()
    expected = np.sum((kernel[0] - kernel[1]) ** 2) + np.sum((bias[0] - bias[1]) ** 2)
    layer = ParallelDense(2, 2, coupling=0.25)
    layer.build((None, 3))
    layer.set_weights([kernel, bias])
    assert float(layer.coupling_penalty()) == pytest.approx(expected, rel=1e-5)
    layer(X)
    assert len(layer.losses) == 1
    assert float(layer.losses[0]) == pytest.approx(0.25 * expected, rel=1e-5)

    # In a model: the term is in model.losses and in the loss that fit minimises.
    inputs = keras.Input((3,))
    model = keras.Model(inputs, layer(inputs))
    model(X)
    assert [float(v) for v in model.losses] == pytest.approx([0.25 * expected])
    model.compile(optimizer="sgd", loss=["mse", "mse"])
    zeros = np.zeros((5, 2), "float32")
    outputs = [to_numpy(o) for o in model(X)]
    data_loss = sum(np.mean(o**2) for o in outputs)
    loss = model.evaluate(X, [zeros, zeros], verbose=0, return_dict=True)["loss"]
    assert loss == pytest.approx(data_loss + 0.25 * expected, rel=1e-4)


def test_penalty_sums_over_all_pairs():
    layer = ParallelDense(3, 2, coupling=1.0)
    layer.build((None, 3))
    kernel = to_numpy(layer.kernel)
    bias = RNG.normal(size=(3, 2)).astype("float32")
    layer.bias.assign(bias)
    expected = sum(
        np.sum((kernel[i] - kernel[j]) ** 2) + np.sum((bias[i] - bias[j]) ** 2)
        for i in range(3)
        for j in range(i + 1, 3)
    )
    assert float(layer.coupling_penalty()) == pytest.approx(expected, rel=1e-5)


def test_no_loss_without_coupling():
    layer = ParallelDense(2, 2)
    layer(X)
    assert layer.losses == []
    assert float(layer.coupling_penalty()) > 0  # the branches do differ


def _distance_after_training(coupling):
    keras.utils.set_random_seed(7)
    inputs = keras.Input((3,))
    layer = ParallelDense(2, 4, activation="linear", coupling=coupling)
    model = keras.Model(inputs, layer(inputs))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(256, 3)).astype("float32")
    # Two different targets pull the branches apart.
    y = [x @ rng.normal(size=(3, 4)).astype("float32") for _ in range(2)]
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=["mse", "mse"])
    start = float(layer.coupling_penalty())
    model.fit(x, y, epochs=30, batch_size=64, verbose=0)
    return start, float(layer.coupling_penalty())


def test_large_coupling_pulls_branches_together():
    start_free, free = _distance_after_training(0.0)
    start_tied, tied = _distance_after_training(10.0)
    assert start_free == pytest.approx(start_tied)  # same seed, same start
    assert free > 1.0  # uncoupled branches fit their own targets
    assert tied < 0.05 * free
    assert tied < start_tied


@pytest.mark.parametrize(
    "kwargs, arg",
    [
        ({"num_branches": 0, "units": 2}, "num_branches"),
        ({"num_branches": 2.0, "units": 2}, "num_branches"),
        ({"num_branches": 2, "units": 0}, "units"),
        ({"num_branches": 2, "units": "4"}, "units"),
        ({"num_branches": 2, "units": 2, "coupling": -0.1}, "coupling"),
        ({"num_branches": 2, "units": 2, "coupling": float("nan")}, "coupling"),
        ({"num_branches": 2, "units": 2, "coupling": "big"}, "coupling"),
    ],
)
def test_bad_arguments(kwargs, arg):
    with pytest.raises(ValueError, match=f"ParallelDense: {arg}"):
        ParallelDense(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="num_branches=3"):
        ParallelDense(3, 2)([X, X2])
    with pytest.raises(ValueError, match="same known last dimension"):
        ParallelDense(2, 2)([X, np.zeros((5, 4), "float32")])


def test_orthogonality_penalty_by_hand():
    """Branch kernel [G_1 G_2] (halves of the units): ||G_1ᵀ G_2||²_F, the
    squared dot products between the two halves' weight vectors."""
    layer = ParallelDense(2, 2, orthogonality=0.5, kernel_initializer="zeros")
    layer(np.zeros((1, 2), "float32"))
    kernel = np.zeros((2, 2, 2), "float32")
    kernel[0] = [[1.0, 2.0], [3.0, 4.0]]  # G_1 = (1, 3)ᵀ, G_2 = (2, 4)ᵀ: 14
    kernel[1] = [[1.0, 0.0], [0.0, 1.0]]  # G_1 = e1, G_2 = e2: orthogonal, 0
    layer.kernel.assign(kernel)
    assert float(layer.orthogonality_penalty()) == pytest.approx(14.0**2)
    layer(np.zeros((1, 2), "float32"))
    assert float(layer.losses[-1]) == pytest.approx(0.5 * 196.0)
    with pytest.raises(ValueError, match="units=3 is odd"):
        ParallelDense(2, 3, orthogonality=0.1)
