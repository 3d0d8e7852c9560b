import keras
import numpy as np
import pytest

from keras_mtl.layers.cross_stitch import CrossStitch
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)
XS = [RNG.normal(size=(4, 3)).astype("float32") for _ in range(3)]


def test_layer_contract(tmp_path):
    run_layer_test(
        CrossStitch,
        {"self_weight": 0.8},
        XS,
        expected_output_shape=[(None, 3)] * 3,
        tmp_path=tmp_path,
    )


def test_hand_computed_mixing():
    layer = CrossStitch()
    layer.build([(None, 3)] * 3)
    alpha = np.array([[1.0, 2.0, 0.0], [0.5, -1.0, 3.0], [0.0, 0.0, 1.0]], "float32")
    layer.set_weights([alpha])
    out = [to_numpy(o) for o in layer(XS)]
    np.testing.assert_allclose(out[0], XS[0] + 2 * XS[1], atol=1e-6)
    np.testing.assert_allclose(out[1], 0.5 * XS[0] - XS[1] + 3 * XS[2], atol=1e-6)
    np.testing.assert_allclose(out[2], XS[2], atol=1e-6)
    np.testing.assert_array_equal(layer.weights_matrix, alpha)


@pytest.mark.parametrize("num_tasks, self_weight", [(2, 0.9), (3, 0.9), (4, 0.4)])
def test_initial_alpha(num_tasks, self_weight):
    layer = CrossStitch(self_weight)
    out = layer(XS[:1] * num_tasks)
    alpha = layer.weights_matrix
    off = (1 - self_weight) / (num_tasks - 1)
    expected = np.full((num_tasks, num_tasks), off)
    np.fill_diagonal(expected, self_weight)
    np.testing.assert_allclose(alpha, expected, rtol=1e-6)
    np.testing.assert_allclose(alpha.sum(1), 1.0, rtol=1e-6)
    # Equal inputs with rows summing to one come out unchanged.
    for o in out:
        np.testing.assert_allclose(to_numpy(o), XS[0], atol=1e-6)


def test_two_tasks_start_as_in_the_paper():
    layer = CrossStitch()
    a, b = layer([np.ones((2, 3), "float32"), np.zeros((2, 3), "float32")])
    np.testing.assert_allclose(to_numpy(a), 0.9, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(b), 0.1, rtol=1e-6)


def test_one_task_is_identity():
    layer = CrossStitch(self_weight=0.3)
    (out,) = layer(XS[:1])
    np.testing.assert_array_equal(layer.weights_matrix, [[1.0]])
    np.testing.assert_allclose(to_numpy(out), XS[0], atol=1e-7)
    inputs = keras.Input((3,))
    outputs = CrossStitch()([inputs])
    assert [tuple(t.shape) for t in outputs] == [(None, 3)]


def test_alpha_is_trained():
    inputs = [keras.Input((3,)) for _ in range(2)]
    layer = CrossStitch()
    model = keras.Model(inputs, layer(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss=["mse", "mse"])
    # Targets that swap the tasks: the off-diagonal must grow.
    model.fit(XS[:2], XS[:2][::-1], epochs=20, batch_size=4, verbose=0)
    alpha = layer.weights_matrix
    assert alpha[0, 1] > 0.5 and alpha[1, 0] > 0.5
    assert alpha[0, 0] < 0.5 and alpha[1, 1] < 0.5


def test_mismatched_widths_raise():
    with pytest.raises(
        ValueError, match=r"same known last dimension.*\(4, 3\), \(4, 5\)"
    ):
        CrossStitch()([XS[0], np.zeros((4, 5), "float32")])


def test_single_tensor_or_empty_list_raises():
    with pytest.raises(ValueError, match="CrossStitch: inputs must be a non-empty"):
        CrossStitch()(XS[0])
    with pytest.raises(ValueError, match="CrossStitch: inputs must be a non-empty"):
        CrossStitch().build([])


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan"), "high"])
def test_bad_self_weight(value):
    with pytest.raises(ValueError, match="CrossStitch: self_weight"):
        CrossStitch(self_weight=value)
