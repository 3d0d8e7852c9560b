"""SuccessiveRegularization: δ‖θ − θ′‖² against a snapshot refreshed on schedule."""

import keras
import numpy as np
import pytest

from keras_mtl.layers import MLP, SuccessiveRegularization
from tests.helpers import run_layer_test

X = np.array([[1.0, 2.0]], "float32")


def _wrapped(delta=0.5, refresh_every=2):
    dense = keras.layers.Dense(2, kernel_initializer="ones", bias_initializer="zeros")
    return SuccessiveRegularization(dense, delta=delta, refresh_every=refresh_every)


def test_penalty_by_hand_and_refresh_schedule():
    layer = _wrapped(delta=0.5, refresh_every=2)
    layer(X)  # build: the snapshot starts at the initial weights
    assert float(layer.losses[-1]) == 0.0
    dense = layer.layer
    dense.kernel.assign([[3.0, 1.0], [1.0, -1.0]])  # moved by (2, 0, 0, −2)
    dense.bias.assign([0.0, 1.0])  # moved by (0, 1)
    layer(X)  # inference: against the stored snapshot, nothing changes
    assert float(layer.losses[-1]) == pytest.approx(0.5 * (4 + 4 + 1))
    assert int(layer.calls) == 0
    layer(X, training=True)  # call 0: refresh first, so no penalty
    assert float(layer.losses[-1]) == 0.0
    np.testing.assert_array_equal(layer.snapshot[0], [[3.0, 1.0], [1.0, -1.0]])
    dense.kernel.assign([[3.0, 1.0], [1.0, 2.0]])  # moved by 3 from the snapshot
    layer(X, training=True)  # call 1: no refresh
    assert float(layer.losses[-1]) == pytest.approx(0.5 * 9)
    np.testing.assert_array_equal(layer.snapshot[0], [[3.0, 1.0], [1.0, -1.0]])
    layer(X, training=True)  # call 2: refresh
    assert float(layer.losses[-1]) == 0.0
    np.testing.assert_array_equal(layer.snapshot[0], [[3.0, 1.0], [1.0, 2.0]])
    assert int(layer.calls) == 3


def test_gradient_pulls_towards_the_snapshot():
    """d/dw δ‖w − w′‖² = 2δ(w − w′): an SGD step on the penalty alone moves the
    weights that far back towards the snapshot, the snapshot held constant."""
    layer = _wrapped(delta=0.25, refresh_every=10)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, layer(inputs))
    model.compile(keras.optimizers.SGD(1.0), loss=lambda y, p: 0.0 * p)
    model.train_on_batch(X, np.zeros((1, 2)))  # call 0: refresh (at ones)
    layer.layer.kernel.assign([[3.0, 1.0], [1.0, 1.0]])
    model.train_on_batch(X, np.zeros((1, 2)))  # penalty 0.25 · 4 = 1
    # w − lr · 2δ(w − w′) = 3 − 0.5 · 2 = 2
    np.testing.assert_allclose(layer.layer.kernel, [[2.0, 1.0], [1.0, 1.0]], atol=1e-6)
    np.testing.assert_array_equal(layer.snapshot[0], np.ones((2, 2)))


def test_zero_delta_keeps_no_snapshot():
    layer = _wrapped(delta=0.0)
    layer(X, training=True)
    assert layer.snapshot == [] and layer.losses == []
    assert len(layer.weights) == 2  # the dense layer's own


def test_layer_contract(tmp_path):
    run_layer_test(
        SuccessiveRegularization,
        {
            "layer": MLP((2,), kernel_initializer="ones", name="hidden"),
            "delta": 1e-3,
            "refresh_every": 3,
        },
        X,
        (None, 2),
        tmp_path,
        expected_output=np.array([[3.0, 3.0]], "float32"),  # relu(x @ ones)
    )


def test_snapshot_and_counter_survive_saving(tmp_path):
    layer = _wrapped(delta=0.5, refresh_every=5)
    inputs = keras.Input((2,))
    model = keras.Model(inputs, layer(inputs))
    layer(X, training=True)
    layer.layer.kernel.assign(np.zeros((2, 2)))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    restored = loaded.layers[-1]
    assert int(restored.calls) == 1
    np.testing.assert_array_equal(restored.snapshot[0], np.ones((2, 2)))
    restored(X)
    assert float(restored.losses[-1]) == pytest.approx(0.5 * 4)


def test_bad_arguments_are_named():
    dense = keras.layers.Dense(1)
    with pytest.raises(ValueError, match="delta must be a finite number >= 0"):
        SuccessiveRegularization(dense, delta=-1.0)
    with pytest.raises(ValueError, match="refresh_every must be a positive int"):
        SuccessiveRegularization(dense, refresh_every=0)
