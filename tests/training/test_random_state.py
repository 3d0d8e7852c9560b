"""The seed generators' states (dropout) are saved and restored with the model."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.tasks import Task
from keras_mtl.training import load_random_states, random_states


def dropout_model():
    x = keras.Input((4,), name="x")
    h = keras.layers.Dropout(0.5, seed=1, name="drop_a")(x)
    h = keras.layers.Dropout(0.5, seed=2, name="drop_b")(h)
    out = keras.layers.Dense(1, name="t")(h)
    return km.MultiTaskModel(x, {"t": out}, tasks=[Task("t", type="regression")])


def states(model):
    return [keras.ops.convert_to_numpy(s).tolist() for s in random_states(model)]


def test_states_round_trip_through_save_weights(tmp_path):
    model = dropout_model()
    assert states(model) == [[1, 0], [2, 0]]  # [seed, draws so far] per Dropout
    assert not {id(s) for s in random_states(model)} & {id(w) for w in model.weights}
    path = str(tmp_path / "m.weights.h5")
    for state in random_states(model):
        state.assign(state + np.array([0, 7]))  # seven training steps' draws
    model.save_weights(path)
    saved = states(model)
    for state in random_states(model):
        state.assign(np.array([0, 0]))
    kernel = model.get_layer("t").kernel
    kernel.assign(np.zeros((4, 1)))
    model.load_weights(path)
    assert states(model) == saved == [[1, 7], [2, 7]]
    assert np.any(keras.ops.convert_to_numpy(kernel) != 0)  # the weights too
    # A fresh model gets the states from a .keras file as well.
    model.save(tmp_path / "m.keras")
    assert states(keras.saving.load_model(tmp_path / "m.keras")) == saved


def test_a_store_without_states_leaves_them_and_a_wrong_count_fails():
    model = dropout_model()
    kept = load_random_states(model, {"0": 1.0})  # written before states were
    assert kept == {"0": 1.0} and states(model) == [[1, 0], [2, 0]]
    with pytest.raises(
        ValueError,
        match="has 2 random-seed generators but the weights hold the states of 1",
    ):
        load_random_states(model, {"random_state_0": np.array([3, 3])})
