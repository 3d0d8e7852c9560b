import numpy as np
import pytest

from keras_mtl.layers import MLP
from tests.helpers import run_layer_test, to_numpy


def test_hand_computed_relu_stack():
    mlp = MLP((2, 1))
    mlp.build((None, 2))
    first, second = mlp.dense_layers
    first.kernel.assign([[1.0, -1.0], [2.0, 1.0]])
    first.bias.assign([0.0, 0.5])
    second.kernel.assign([[1.0], [3.0]])
    second.bias.assign([-1.0])
    x = np.array([[1.0, 1.0], [1.0, -2.0]], "float32")
    # h = relu([[3, 0.5], [-3, -2.5]]) = [[3, .5], [0, 0]]; out = relu(h @ [1,3] - 1)
    np.testing.assert_allclose(to_numpy(mlp(x)), [[3.5], [0.0]])


def test_empty_units_is_identity():
    x = np.ones((2, 3), "float32")
    np.testing.assert_array_equal(to_numpy(MLP(())(x)), x)


def test_layer_contract(tmp_path):
    run_layer_test(
        MLP,
        {"units": (4, 3), "dropout": 0.1},
        np.random.default_rng(0).normal(size=(5, 6)).astype("float32"),
        expected_output_shape=(None, 3),
        tmp_path=tmp_path,
    )


@pytest.mark.parametrize("kwargs", [{"units": (0,)}, {"units": (4,), "dropout": 1.0}])
def test_bad_arguments(kwargs):
    with pytest.raises(ValueError, match="MLP"):
        MLP(**kwargs)
