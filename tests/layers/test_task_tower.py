import numpy as np
import pytest

from keras_mtl.layers import TaskTower
from tests.helpers import run_layer_test, to_numpy


def test_binary_output_is_a_probability_per_example():
    tower = TaskTower((), "binary")
    tower.build((None, 2))
    tower.output_unit.kernel.assign([[1.0], [-1.0]])
    tower.output_unit.bias.assign([0.0])
    out = to_numpy(tower(np.array([[2.0, 0.0], [0.0, 0.0]], "float32")))
    np.testing.assert_allclose(out, [1 / (1 + np.exp(-2.0)), 0.5], rtol=1e-6)


def test_regression_output_is_linear():
    tower = TaskTower((), "regression")
    tower.build((None, 1))
    tower.output_unit.kernel.assign([[-3.0]])
    tower.output_unit.bias.assign([1.0])
    np.testing.assert_allclose(to_numpy(tower(np.array([[2.0]], "float32"))), [-5.0])


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


def test_multiclass_output_is_a_distribution_per_example():
    tower = TaskTower((), "multiclass", num_classes=3)
    tower.build((None, 2))
    kernel = np.array([[1.0, 0.0, -1.0], [0.5, 2.0, 0.0]], "float32")
    bias = np.array([0.0, -1.0, 0.5], "float32")
    tower.output_unit.kernel.assign(kernel)
    tower.output_unit.bias.assign(bias)
    x = np.array([[2.0, 0.0], [0.0, 1.0], [-1.0, 3.0]], "float32")
    out = to_numpy(tower(x))
    logits = x @ kernel + bias
    want = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert out.shape == (3, 3)
    np.testing.assert_allclose(out, want, rtol=1e-5)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)


def test_multiclass_rows_sum_to_one_with_hidden_layers():
    tower = TaskTower((8, 4), "multiclass", num_classes=5)
    x = np.random.default_rng(0).normal(size=(6, 7)).astype("float32")
    out = to_numpy(tower(x))
    assert out.shape == (6, 5) and (out > 0).all()
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)
    assert tower.compute_output_shape((None, 7)) == (None, 5)


def test_multiclass_layer_contract(tmp_path):
    layer = run_layer_test(
        TaskTower,
        {"units": (8,), "task_type": "multiclass", "num_classes": 3},
        np.ones((4, 5), "float32"),
        expected_output_shape=(None, 3),
        tmp_path=tmp_path,
    )
    assert layer.get_config()["num_classes"] == 3


@pytest.mark.parametrize(
    "kwargs",
    [
        {"task_type": "multiclass"},
        {"task_type": "multiclass", "num_classes": 1},
        {"task_type": "multiclass", "num_classes": 2.0},
        {"task_type": "binary", "num_classes": 3},
        {"task_type": "regression", "num_classes": 3},
    ],
)
def test_num_classes_only_and_always_for_multiclass(kwargs):
    with pytest.raises(ValueError, match="num_classes"):
        TaskTower((8,), **kwargs)
