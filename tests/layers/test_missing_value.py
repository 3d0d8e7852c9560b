import keras
import numpy as np

from keras_mtl.layers import MissingValueLayer
from tests.helpers import run_layer_test, to_numpy

X = np.array([[1.0, np.nan], [np.nan, 3.0]], "float32")


def test_learned_fill_replaces_nan_only():
    layer = MissingValueLayer()
    layer.build((None, 2))
    layer.fill.assign([5.0, -2.0])
    np.testing.assert_array_equal(to_numpy(layer(X)), [[1.0, -2.0], [5.0, 3.0]])


def test_explicit_missing_mask():
    layer = MissingValueLayer(fill_initializer=keras.initializers.Constant(7.0))
    x = np.array([[1.0, 2.0]], "float32")
    out = layer(x, missing=np.array([[False, True]]))
    np.testing.assert_array_equal(to_numpy(out), [[1.0, 7.0]])


def test_fill_learns_the_value_that_fits():
    # Target equals 4 wherever column 0 is missing: the fill must move to 4.
    inputs = keras.Input((1,))
    model = keras.Model(inputs, MissingValueLayer(name="mv")(inputs))
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x = np.array([[np.nan], [np.nan], [1.0]], "float32")
    y = np.array([[4.0], [4.0], [1.0]], "float32")
    model.fit(x, y, epochs=60, batch_size=3, verbose=0)
    np.testing.assert_allclose(to_numpy(model.get_layer("mv").fill), [4.0], atol=1e-3)
    assert not np.isnan(model.predict(x, verbose=0)).any()


def test_layer_contract(tmp_path):
    run_layer_test(
        MissingValueLayer,
        {},
        X,
        expected_output_shape=(None, 2),
        tmp_path=tmp_path,
        expected_output=np.array([[1.0, 0.0], [0.0, 3.0]], "float32"),
    )
