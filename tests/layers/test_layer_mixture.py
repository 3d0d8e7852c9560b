"""LayerMixture: the sluice network's β over a task's layer outputs."""

import numpy as np
import pytest

from keras_mtl.layers import LayerMixture
from tests.helpers import run_layer_test


def test_layer_mixture_starts_on_the_last_layer():
    assert LayerMixture(0.9).initial_weights(3).tolist() == pytest.approx(
        [0.05, 0.05, 0.9]
    )
    assert LayerMixture(0.9).initial_weights(1).tolist() == [1.0]
    with pytest.raises(ValueError, match="last_weight"):
        LayerMixture(1.5)


def test_layer_contract(tmp_path):
    data = np.random.default_rng(0).normal(size=(3, 5)).astype("float32")
    run_layer_test(
        LayerMixture,
        {"last_weight": 0.6},
        [data, 2 * data, 3 * data],
        (None, 5),
        tmp_path,
        expected_output=(0.2 * 1 + 0.2 * 2 + 0.6 * 3) * data,  # β = 0.2, 0.2, 0.6
    )
