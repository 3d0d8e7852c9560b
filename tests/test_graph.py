"""`keras_mtl._graph`: the walks over a functional model's layer calls."""

import keras
import pytest

from keras_mtl._graph import calls_reading, inputs_behind


def test_calls_reading_stops_at_the_calls_that_read_the_inputs():
    a, b = keras.Input((2,), name="a"), keras.Input((2,), name="b")
    h = keras.layers.Dense(2, name="d")(a)
    e = keras.layers.Dense(2, name="e")(b)
    out = keras.layers.Dense(1, name="top")(keras.layers.Add(name="mix")([h, e]))
    assert {id(t) for t in calls_reading(out, [a, b])} == {id(h), id(e)}
    assert calls_reading(out, [a]) == [h] and inputs_behind({"a": a, "b": b}, h) == {
        "a"
    }


def test_a_call_reading_an_input_and_another_tensor_is_named():
    a = keras.Input((2,), name="a")
    h = keras.layers.Dense(2, name="d")(a)
    mixed = keras.layers.Add(name="bad")([a, h])
    with pytest.raises(ValueError, match="Layer 'bad' reads model inputs together"):
        calls_reading(mixed, [a])
