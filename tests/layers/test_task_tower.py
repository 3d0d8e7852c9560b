import numpy as np
import pytest

from keras_mtl.layers import TaskTower
from tests.helpers import run_layer_test


def test_binary_output_is_a_probability_per_example():
    tower = TaskTower((), "binary")
    tower.build((None, 2))
    tower.output_unit.kernel.assign([[1.0], [-1.0]])
    tower.output_unit.bias.assign([0.0])
    out = np.asarray(tower(np.array([[2.0, 0.0], [0.0, 0.0]], "float32")))
    np.testing.assert_allclose(out, [1 / (1 + np.exp(-2.0)), 0.5], rtol=1e-6)


def test_regression_output_is_linear():
    tower = TaskTower((), "regression")
    tower.build((None, 1))
    tower.output_unit.kernel.assign([[-3.0]])
    tower.output_unit.bias.assign([1.0])
    np.testing.assert_allclose(np.asarray(tower(np.array([[2.0]], "float32"))), [-5.0])


def test_layer_contract(tmp_path):
    run_layer_test(
        TaskTower,
        {"units": (8,), "task_type": "regression"},
        np.ones((4, 5), "float32"),
        expected_output_shape=(None,),
        tmp_path=tmp_path,
    )


def test_bad_task_type():
    with pytest.raises(ValueError, match="task_type"):
        TaskTower((8,), "multiclass")
