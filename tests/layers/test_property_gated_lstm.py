import keras
import numpy as np
import pytest

from keras_mtl.layers import PropertyGatedLSTMCell
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)
UNITS, ITEM_DIM, PROP_DIM = 3, 4, 2


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_step(weights, item_dim, x, h, c):
    """One step of the DUPN equations, written out with numpy.

    `weights` maps gate_kernel / cell_kernel / recurrent_kernel / bias to arrays.
    """
    u = h.shape[-1]
    e, p = x[:, :item_dim], x[:, item_dim:]
    w_p, w_e = weights["gate_kernel"], weights["cell_kernel"]
    rec, b = weights["recurrent_kernel"], weights["bias"]
    i = _sigmoid(p @ w_p[:, :u] + h @ rec[:, :u] + b[:u])
    f = _sigmoid(p @ w_p[:, u : 2 * u] + h @ rec[:, u : 2 * u] + b[u : 2 * u])
    o = _sigmoid(p @ w_p[:, 2 * u :] + h @ rec[:, 2 * u : 3 * u] + b[2 * u : 3 * u])
    g = np.tanh(e @ w_e + h @ rec[:, 3 * u :] + b[3 * u :])
    c = f * c + i * g
    return o * np.tanh(c), c


def numpy_rnn(weights, item_dim, x, mask=None):
    """All hidden states `(batch, steps, units)`; masked steps keep the state."""
    batch, steps, _ = x.shape
    u = weights["cell_kernel"].shape[1]
    h, c = np.zeros((batch, u)), np.zeros((batch, u))
    out = []
    for t in range(steps):
        h_new, c_new = numpy_step(weights, item_dim, x[:, t], h, c)
        keep = np.ones((batch, 1), bool) if mask is None else mask[:, t, None]
        h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        out.append(h)
    return np.stack(out, axis=1)


def cell_weights(cell) -> dict:
    return {v.path.split("/")[-1]: to_numpy(v) for v in cell.weights}


def _random_cell():
    cell = PropertyGatedLSTMCell(UNITS, item_dim=ITEM_DIM)
    cell.build((None, ITEM_DIM + PROP_DIM))
    for v in cell.weights:  # non-zero biases and recurrent weights are checked too
        v.assign(RNG.normal(size=v.shape).astype("float32"))
    return cell


def test_weight_shapes_and_forget_bias():
    cell = PropertyGatedLSTMCell(UNITS, item_dim=ITEM_DIM)
    cell.build((None, ITEM_DIM + PROP_DIM))
    shapes = {k: v.shape for k, v in cell_weights(cell).items()}
    assert shapes == {
        "gate_kernel": (PROP_DIM, 3 * UNITS),
        "cell_kernel": (ITEM_DIM, UNITS),
        "recurrent_kernel": (UNITS, 4 * UNITS),
        "bias": (4 * UNITS,),
    }
    np.testing.assert_array_equal(
        cell_weights(cell)["bias"], [0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    )
    plain = PropertyGatedLSTMCell(UNITS, item_dim=ITEM_DIM, unit_forget_bias=False)
    plain.build((None, ITEM_DIM + PROP_DIM))
    assert not to_numpy(plain.bias).any()


def test_one_step_matches_numpy():
    cell = _random_cell()
    x = RNG.normal(size=(5, ITEM_DIM + PROP_DIM)).astype("float32")
    h = RNG.normal(size=(5, UNITS)).astype("float32")
    c = RNG.normal(size=(5, UNITS)).astype("float32")
    out, (h_t, c_t) = cell(x, [h, c])
    want_h, want_c = numpy_step(cell_weights(cell), ITEM_DIM, x, h, c)
    np.testing.assert_allclose(to_numpy(out), want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(h_t), want_h, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_numpy(c_t), want_c, rtol=1e-5, atol=1e-6)


def test_masked_sequence_in_rnn_matches_numpy():
    cell = _random_cell()
    rnn = keras.layers.RNN(cell, return_sequences=True)
    x = RNG.normal(size=(3, 4, ITEM_DIM + PROP_DIM)).astype("float32")
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [1, 0, 0, 0]], bool)
    got = to_numpy(rnn(x, mask=mask))
    want = numpy_rnn(cell_weights(cell), ITEM_DIM, x, mask)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_gates_read_only_the_properties():
    """Cell input pinned to g = 1 (W_e = 0, U = 0, b_g large): two steps give
    c1 = i, c2 = f*i + i and h = o * tanh(c), with i, f, o = sigmoid(W_p p + b),
    a function of the properties alone; the item columns then change nothing."""
    cell = _random_cell()
    cell.cell_kernel.assign(np.zeros((ITEM_DIM, UNITS), "float32"))
    cell.recurrent_kernel.assign(np.zeros((UNITS, 4 * UNITS), "float32"))
    bias = RNG.normal(size=4 * UNITS).astype("float32")
    bias[3 * UNITS :] = 30.0
    cell.bias.assign(bias)
    rnn = keras.layers.RNN(cell, return_sequences=True)

    props = RNG.normal(size=(4, 2, PROP_DIM)).astype("float32")
    items = RNG.normal(size=(4, 2, ITEM_DIM)).astype("float32")
    other_items = 100 * RNG.normal(size=(4, 2, ITEM_DIM)).astype("float32")
    got = to_numpy(rnn(np.concatenate([items, props], -1)))
    same = to_numpy(rnn(np.concatenate([other_items, props], -1)))
    np.testing.assert_array_equal(got, same)

    w_p, u = to_numpy(cell.gate_kernel), UNITS
    gates = _sigmoid(props @ w_p + bias[: 3 * u])
    i, f, o = gates[..., :u], gates[..., u : 2 * u], gates[..., 2 * u :]
    c1 = i[:, 0]
    c2 = f[:, 1] * c1 + i[:, 1]
    want = np.stack([o[:, 0] * np.tanh(c1), o[:, 1] * np.tanh(c2)], axis=1)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    other_props = RNG.normal(size=(4, 2, PROP_DIM)).astype("float32")
    moved = to_numpy(rnn(np.concatenate([items, other_props], -1)))
    assert np.abs(moved - got).min() > 1e-4  # every unit of every step moves


def test_item_is_the_only_cell_input():
    """Gates fixed at 1/2 (W_p = 0, U = 0, b = 0): one step gives
    h = tanh(tanh(W_e e) / 2) / 2, whatever the properties."""
    cell = _random_cell()
    cell.gate_kernel.assign(np.zeros((PROP_DIM, 3 * UNITS), "float32"))
    cell.recurrent_kernel.assign(np.zeros((UNITS, 4 * UNITS), "float32"))
    cell.bias.assign(np.zeros(4 * UNITS, "float32"))
    items = RNG.normal(size=(4, ITEM_DIM)).astype("float32")
    zero = [np.zeros((4, UNITS), "float32")] * 2
    outs = [
        to_numpy(cell(np.concatenate([items, p], -1), zero)[0])
        for p in (
            RNG.normal(size=(4, PROP_DIM)).astype("float32"),
            50 * RNG.normal(size=(4, PROP_DIM)).astype("float32"),
        )
    ]
    want = 0.5 * np.tanh(0.5 * np.tanh(items @ to_numpy(cell.cell_kernel)))
    np.testing.assert_allclose(outs[0], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(outs[0], outs[1])


@keras.saving.register_keras_serializable(package="tests")
class _RNN(keras.layers.RNN):
    """keras.layers.RNN, whose `from_config` pops "cell" out of the caller's dict."""

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return super().from_config(dict(config), custom_objects)


def test_layer_contract_inside_rnn(tmp_path):
    run_layer_test(
        _RNN,
        {
            "cell": PropertyGatedLSTMCell(UNITS, item_dim=ITEM_DIM),
            "return_sequences": True,
        },
        RNG.normal(size=(4, 5, ITEM_DIM + PROP_DIM)).astype("float32"),
        expected_output_shape=(None, 5, UNITS),
        tmp_path=tmp_path,
    )


def test_config_round_trip():
    cell = PropertyGatedLSTMCell(
        5, item_dim=2, kernel_initializer="zeros", unit_forget_bias=False
    )
    clone = PropertyGatedLSTMCell.from_config(cell.get_config())
    assert clone.get_config() == cell.get_config()
    assert (clone.units, clone.item_dim, clone.unit_forget_bias) == (5, 2, False)
    assert clone.state_size == [5, 5] and clone.output_size == 5


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0, "item_dim": 2}, "units"),
        ({"units": 2.0, "item_dim": 2}, "units"),
        ({"units": 2, "item_dim": 0}, "item_dim"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PropertyGatedLSTMCell(**kwargs)


def test_input_without_property_columns_is_rejected():
    cell = PropertyGatedLSTMCell(2, item_dim=4)
    with pytest.raises(ValueError, match="no property columns after item_dim=4"):
        cell.build((None, 4))
