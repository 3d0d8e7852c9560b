"""StackedInitializer: each slice drawn as its own 2-D kernel; serializable."""

import keras
import numpy as np

from keras_mtl.layers._initializers import StackedInitializer, stacked_initializer
from tests.helpers import to_numpy


def test_each_slice_is_a_plain_glorot_draw_with_its_own_seed():
    init = stacked_initializer(keras.initializers.GlorotUniform(seed=7))
    stack = to_numpy(init((3, 40, 10)))
    assert stack.shape == (3, 40, 10)
    for i in range(3):  # slice i == a 2-D GlorotUniform draw with seed 7 + i
        expected = keras.initializers.GlorotUniform(seed=7 + i)((40, 10))
        np.testing.assert_allclose(stack[i], to_numpy(expected))
    limit = np.sqrt(6 / (40 + 10))  # the 2-D fan, not a convolution's
    assert np.abs(stack).max() <= limit and np.abs(stack).max() > 0.9 * limit
    assert not np.allclose(stack[0], stack[1])


def test_other_axis_and_round_trip():
    init = StackedInitializer(keras.initializers.Constant(2.0), axis=1)
    np.testing.assert_array_equal(to_numpy(init((4, 2, 3))), np.full((4, 2, 3), 2.0))
    seeded = StackedInitializer(keras.initializers.GlorotUniform(seed=1))
    clone = keras.initializers.deserialize(keras.initializers.serialize(seeded))
    assert (
        isinstance(clone, StackedInitializer)
        and clone.get_config() == seeded.get_config()
    )
    np.testing.assert_array_equal(
        to_numpy(clone((2, 3, 4))), to_numpy(seeded((2, 3, 4)))
    )
