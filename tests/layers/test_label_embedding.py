"""LabelEmbedding: a task's prediction as the expected label embedding (JMT)."""

import keras
import numpy as np
import pytest

from keras_mtl.layers import LabelEmbedding
from tests.helpers import run_layer_test, to_numpy

#: ℓ(j) of a 3-class task, one row per class.
TABLE = np.array([[1.0, 0.0], [0.0, 2.0], [-1.0, 3.0]], "float32")


def _with_table(layer, inputs, table):
    layer(inputs)
    layer.embeddings.assign(table)
    return to_numpy(layer(inputs))


def test_multiclass_is_the_expected_label_embedding():
    p = np.array([[0.2, 0.3, 0.5], [1.0, 0.0, 0.0]], "float32")
    got = _with_table(LabelEmbedding(2, "multiclass", num_classes=3), p, TABLE)
    # Σ_j p_j ℓ(j): 0.2·(1, 0) + 0.3·(0, 2) + 0.5·(−1, 3) = (−0.3, 2.1)
    np.testing.assert_allclose(got, [[-0.3, 2.1], [1.0, 0.0]], atol=1e-6)


@pytest.mark.parametrize("task_type", ["binary", "regression"])
def test_binary_and_regression_scale_one_vector(task_type):
    y = np.array([0.25, 0.0, -2.0], "float32")
    got = _with_table(LabelEmbedding(3, task_type), y, [[2.0, -1.0, 4.0]])
    # y · ℓ with ℓ = (2, −1, 4)
    want = [[0.5, -0.25, 1.0], [0.0, 0.0, 0.0], [-4.0, 2.0, -8.0]]
    np.testing.assert_allclose(got, want, atol=1e-6)


def test_layer_contract(tmp_path):
    p = np.array([[0.2, 0.3, 0.5], [0.0, 1.0, 0.0]], "float32")
    run_layer_test(
        LabelEmbedding,
        {
            "output_dim": 2,
            "task_type": "multiclass",
            "num_classes": 3,
            "embeddings_initializer": keras.initializers.Constant(2.0),
        },
        p,
        (None, 2),
        tmp_path,
        expected_output=np.full((2, 2), 2.0, "float32"),  # Σ_j p_j · 2
    )


def test_bad_arguments_and_inputs_are_named():
    with pytest.raises(ValueError, match="task_type must be one of"):
        LabelEmbedding(2, "ranking")
    with pytest.raises(ValueError, match="num_classes .* required for"):
        LabelEmbedding(2, "multiclass")
    with pytest.raises(ValueError, match="num_classes .* required for"):
        LabelEmbedding(2, "binary", num_classes=3)
    with pytest.raises(ValueError, match="output_dim must be a positive int"):
        LabelEmbedding(0)
    with pytest.raises(ValueError, match=r"shape \(batch, 3\); got \(2, 4\)"):
        LabelEmbedding(2, "multiclass", num_classes=3)(np.zeros((2, 4), "float32"))
    with pytest.raises(ValueError, match=r"shape \(batch,\); got \(2, 1\)"):
        LabelEmbedding(2, "binary")(np.zeros((2, 1), "float32"))
