"""add_table: marked tables; large ones are initialised block by block."""

import keras
import numpy as np
import pytest

from keras_mtl.layers import _tables
from keras_mtl.optimizers import is_table


class _Holder(keras.layers.Layer):
    def __init__(self, rows, initializer, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.initializer = rows, initializer

    def build(self, input_shape):
        self.table = _tables.add_table(self, "t", self.rows, 4, self.initializer)


def _table(rows, initializer):
    layer = _Holder(rows, initializer)
    layer.build(None)
    return layer.table


@pytest.fixture
def small_blocks(monkeypatch):
    monkeypatch.setattr(_tables, "BLOCKWISE_ELEMENTS", 400)
    monkeypatch.setattr(_tables, "_BLOCK_ROWS", 100)


def test_tables_are_marked():
    assert is_table(_table(10, "uniform"))


def test_large_tables_are_drawn_block_by_block(small_blocks):
    init = keras.initializers.RandomUniform(-0.05, 0.05, seed=3)
    values = keras.ops.convert_to_numpy(_table(1050, init))  # 11 blocks, the last of 50
    assert values.shape == (1050, 4)
    assert np.abs(values).max() <= 0.05
    assert values.std() == pytest.approx(0.1 / np.sqrt(12), rel=0.05)
    blocks = values[:1000].reshape(10, 100, 4)
    assert len({b.tobytes() for b in blocks}) == 10  # no block repeats another
    assert (values[1000:] != 0).all()  # the short last block is filled too
    # The same seed gives the same table.
    init_again = keras.initializers.RandomUniform(-0.05, 0.05, seed=3)
    again = keras.ops.convert_to_numpy(_table(1050, init_again))
    assert again.tobytes() == values.tobytes()


def test_shape_dependent_initializers_draw_the_whole_table(small_blocks):
    init = keras.initializers.GlorotUniform(seed=1)
    want = keras.ops.convert_to_numpy(init((1050, 4)))
    got = keras.ops.convert_to_numpy(_table(1050, keras.initializers.GlorotUniform(1)))
    np.testing.assert_array_equal(got, want)
