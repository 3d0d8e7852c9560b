import keras
import numpy as np
import pytest

from keras_mtl import SparseFeature
from keras_mtl.layers import AttentionPooling, FieldEmbedding, LSTMAttentionEncoder
from tests.helpers import run_layer_test, to_numpy
from tests.layers.test_attention_pooling import numpy_attention
from tests.layers.test_property_gated_lstm import cell_weights, numpy_rnn

RNG = np.random.default_rng(0)
BATCH, STEPS, ITEM_DIM, PROP_DIM, QUERY_DIM, UNITS = 3, 4, 5, 2, 3, 6
ITEMS = RNG.normal(size=(BATCH, STEPS, ITEM_DIM)).astype("float32")
PROPS = RNG.normal(size=(BATCH, STEPS, PROP_DIM)).astype("float32")
QUERY = RNG.normal(size=(BATCH, QUERY_DIM)).astype("float32")
LENGTHS = np.array([4, 2, 1])  # real steps first, then padding
MASK = np.arange(STEPS)[None] < LENGTHS[:, None]

CELLS = ["property_gated", "lstm", "none"]
POOLINGS = ["attention", "mean"]


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def numpy_lstm(kernel, recurrent, bias, x, mask):
    """keras.layers.LSTM (gate order i, f, c, o) with masked steps skipped."""
    u = recurrent.shape[0]
    h, c = np.zeros((len(x), u)), np.zeros((len(x), u))
    out = []
    for t in range(x.shape[1]):
        z = x[:, t] @ kernel + h @ recurrent + bias
        i, f = _sigmoid(z[:, :u]), _sigmoid(z[:, u : 2 * u])
        g, o = np.tanh(z[:, 2 * u : 3 * u]), _sigmoid(z[:, 3 * u :])
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        keep = mask[:, t, None]
        h, c = np.where(keep, h_new, h), np.where(keep, c_new, c)
        out.append(h)
    return np.stack(out, axis=1)


def numpy_encoder(encoder, items, props, query, mask):
    x = np.concatenate([items, props], axis=-1)
    seq = encoder.sequence
    if encoder.cell == "property_gated":
        hidden = numpy_rnn(cell_weights(seq.cell), items.shape[-1], x, mask)
    elif encoder.cell == "lstm":
        kernel, recurrent, bias = (to_numpy(w) for w in seq.cell.weights)
        hidden = numpy_lstm(kernel, recurrent, bias, x, mask)
    else:
        hidden = np.tanh(x @ to_numpy(seq.kernel) + to_numpy(seq.bias))
    return numpy_attention(encoder.attention, hidden, query, mask)[0]


def _encoder(cell, pooling, with_query=True):
    encoder = LSTMAttentionEncoder(UNITS, cell=cell, pooling=pooling, attention_units=4)
    encoder([ITEMS, PROPS, QUERY] if with_query else [ITEMS, PROPS])
    for v in encoder.weights:  # random biases too, so every term is checked
        v.assign(RNG.normal(scale=0.7, size=v.shape).astype("float32"))
    return encoder


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", CELLS)
def test_matches_numpy(cell, pooling):
    encoder = _encoder(cell, pooling)
    got = to_numpy(encoder([ITEMS, PROPS, QUERY], mask=MASK))
    want = numpy_encoder(encoder, ITEMS, PROPS, QUERY, MASK)
    assert got.shape == (BATCH, UNITS)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", CELLS)
def test_padded_steps_change_nothing(cell, pooling):
    encoder = _encoder(cell, pooling)
    base = to_numpy(encoder([ITEMS, PROPS, QUERY], mask=MASK))

    # The same sequences padded to 7 steps with zeros ...
    extra = 3
    pad = lambda a: np.pad(a, ((0, 0), (0, extra), (0, 0)))  # noqa: E731
    longer_mask = np.pad(MASK, ((0, 0), (0, extra)))
    longer = encoder([pad(ITEMS), pad(PROPS), QUERY], mask=longer_mask)
    np.testing.assert_allclose(to_numpy(longer), base, rtol=1e-5, atol=1e-6)

    # ... or with garbage at the padded steps.
    items, props = pad(ITEMS), pad(PROPS)
    items[~longer_mask] = 50 * RNG.normal(size=((~longer_mask).sum(), ITEM_DIM))
    props[~longer_mask] = 50 * RNG.normal(size=((~longer_mask).sum(), PROP_DIM))
    garbage = encoder([items, props, QUERY], mask=longer_mask)
    np.testing.assert_allclose(to_numpy(garbage), base, rtol=1e-5, atol=1e-6)

    # The mask is what makes this hold: without it the padding is read.
    unmasked = to_numpy(encoder([items, props, QUERY]))
    assert np.abs(unmasked - base).max() > 1e-3


@pytest.mark.parametrize("cell", CELLS)
def test_masked_steps_inside_a_sequence_are_skipped(cell):
    # With end padding the hidden states of real steps never see the padding;
    # a hole in the middle checks that the LSTM carries its state over it.
    encoder = _encoder(cell, "attention")
    mask = np.array([[1, 0, 1, 1], [0, 1, 1, 0], [1, 0, 0, 1]], bool)
    got = to_numpy(encoder([ITEMS, PROPS, QUERY], mask=mask))
    want = numpy_encoder(encoder, ITEMS, PROPS, QUERY, mask)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    items, props = ITEMS.copy(), PROPS.copy()
    items[~mask] = 50 * RNG.normal(size=((~mask).sum(), ITEM_DIM))
    props[~mask] = 50 * RNG.normal(size=((~mask).sum(), PROP_DIM))
    np.testing.assert_allclose(  # what the holes hold changes nothing
        to_numpy(encoder([items, props, QUERY], mask=mask)),
        got,
        rtol=1e-5,
        atol=1e-6,
    )


def test_standard_lstm_is_keras_lstm_then_attention():
    encoder = _encoder("lstm", "attention")
    lstm = keras.layers.LSTM(UNITS, return_sequences=True)
    x = np.concatenate([ITEMS, PROPS], axis=-1)
    lstm.build(x.shape)
    lstm.set_weights(encoder.sequence.get_weights())
    pool = AttentionPooling(4)
    hidden = lstm(x, mask=MASK)
    pool([hidden, QUERY])
    pool.set_weights(encoder.attention.get_weights())
    np.testing.assert_allclose(
        to_numpy(encoder([ITEMS, PROPS, QUERY], mask=MASK)),
        to_numpy(pool([hidden, QUERY], mask=MASK)),
        rtol=1e-5,
        atol=1e-6,
    )


@pytest.mark.parametrize("cell", ["property_gated", "lstm"])
def test_properties_matter_with_the_items_kept(cell):
    encoder = _encoder(cell, "mean")
    other = RNG.normal(size=PROPS.shape).astype("float32")
    a = to_numpy(encoder([ITEMS, PROPS, QUERY], mask=MASK))
    b = to_numpy(encoder([ITEMS, other, QUERY], mask=MASK))
    assert (np.abs(a - b).max(axis=1) > 1e-3).all()  # every example moves


def test_query_steers_attention_only():
    attention = _encoder("property_gated", "attention")
    other = RNG.normal(size=QUERY.shape).astype("float32")
    a = to_numpy(attention([ITEMS, PROPS, QUERY], mask=MASK))
    b = to_numpy(attention([ITEMS, PROPS, other], mask=MASK))
    # Example 2 has one real step: whatever the query, its weight is 1.
    assert np.abs(a[:2] - b[:2]).max() > 1e-3
    np.testing.assert_allclose(a[2], b[2], rtol=1e-6)
    mean = _encoder("property_gated", "mean")
    np.testing.assert_array_equal(
        to_numpy(mean([ITEMS, PROPS, QUERY], mask=MASK)),
        to_numpy(mean([ITEMS, PROPS, other], mask=MASK)),
    )


def test_without_query_and_return_weights():
    encoder = _encoder("property_gated", "attention", with_query=False)
    pooled, weights = encoder([ITEMS, PROPS], mask=MASK, return_weights=True)
    weights = to_numpy(weights)
    assert to_numpy(pooled).shape == (BATCH, UNITS) and weights.shape == MASK.shape
    assert not weights[~MASK].any()
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(weights[2], [1, 0, 0, 0])
    want = numpy_encoder(encoder, ITEMS, PROPS, None, MASK)
    np.testing.assert_allclose(to_numpy(pooled), want, rtol=1e-4, atol=1e-5)


def test_mask_comes_from_the_item_embedding():
    item_fields = [SparseFeature("item", vocabulary_size=9, embedding_dim=ITEM_DIM)]
    prop_fields = [SparseFeature("action", vocabulary_size=3, embedding_dim=PROP_DIM)]
    ids = keras.Input((STEPS,), dtype="int64")
    actions = keras.Input((STEPS,), dtype="int64")
    query = keras.Input((QUERY_DIM,))
    item_emb, prop_emb = FieldEmbedding(item_fields), FieldEmbedding(prop_fields)
    encoder = LSTMAttentionEncoder(UNITS, attention_units=4)
    e, p = item_emb([ids]), prop_emb([actions])
    model = keras.Model([ids, actions, query], encoder([e, p, query]))

    item_ids = np.where(MASK, RNG.integers(0, 9, size=MASK.shape), -1)
    # Property ids present at padded steps: the item id alone decides the mask.
    action_ids = RNG.integers(0, 3, size=MASK.shape)
    got = to_numpy(model([item_ids, action_ids, QUERY]))
    # numpy copies carry no mask: it has to be given, and without it the
    # padded steps count.
    e, p = to_numpy(item_emb([item_ids])), to_numpy(prop_emb([action_ids]))
    want = to_numpy(encoder([e, p, QUERY], mask=MASK))
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.abs(got - to_numpy(encoder([e, p, QUERY]))).max() > 1e-4
    # Eager calls carry the mask along in the same way.
    eager = encoder([item_emb([item_ids]), prop_emb([action_ids]), QUERY])
    np.testing.assert_allclose(to_numpy(eager), want, rtol=1e-6)


@pytest.mark.parametrize(
    "cell, pooling, with_query",
    [
        ("property_gated", "attention", True),
        ("lstm", "attention", False),
        ("none", "mean", True),
    ],
)
def test_layer_contract(cell, pooling, with_query, tmp_path):
    run_layer_test(
        LSTMAttentionEncoder,
        {"units": 4, "cell": cell, "pooling": pooling, "attention_units": 3},
        [ITEMS, PROPS, QUERY] if with_query else [ITEMS, PROPS],
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
    )


def test_layer_contract_returning_weights(tmp_path):
    run_layer_test(
        LSTMAttentionEncoder,
        {"units": 4, "attention_units": 3},
        [ITEMS, PROPS, QUERY],
        expected_output_shape=[(None, 4), (None, STEPS)],
        tmp_path=tmp_path,
        call_kwargs={"return_weights": True},
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0}, "units must be a positive int"),
        ({"cell": "gru"}, "cell must be one of"),
        ({"pooling": "max"}, "pooling must be one of"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LSTMAttentionEncoder(**kwargs)


def test_bad_inputs_are_explained():
    encoder = LSTMAttentionEncoder(4)
    with pytest.raises(ValueError, match=r"expected \[items, properties\]"):
        encoder([ITEMS])
    with pytest.raises(ValueError, match=r"must be \(batch, steps, dim\)"):
        encoder([ITEMS, PROPS[:, 0]])


@pytest.mark.parametrize("cell", CELLS)
def test_empty_history_pools_to_zeros(cell):
    encoder = _encoder(cell, "attention")
    mask = MASK.copy()
    mask[1] = False
    out = to_numpy(encoder([ITEMS, PROPS, QUERY], mask=mask))
    assert np.isfinite(out).all() and not out[1].any()
    np.testing.assert_allclose(
        out[[0, 2]],
        to_numpy(encoder([ITEMS, PROPS, QUERY], mask=MASK))[[0, 2]],
        rtol=1e-6,
    )


def test_property_gated_weights_keep_their_paths():
    """The cell's four weights, under the paths warm starts match by."""
    enc = LSTMAttentionEncoder(units=4, attention_units=3, name="encoder")
    enc([ITEMS, PROPS])
    lstm = sorted(v.path for v in enc.weights if "/lstm/" in v.path)
    assert lstm == [
        "encoder/lstm/cell/bias",
        "encoder/lstm/cell/cell_kernel",
        "encoder/lstm/cell/gate_kernel",
        "encoder/lstm/cell/recurrent_kernel",
    ]
    assert len(enc.weights) == len({v.path for v in enc.weights})
