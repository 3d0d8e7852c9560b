import keras
import numpy as np
import pytest

from keras_mtl.layers import AttentionPooling
from keras_mtl.layers.attention_pooling import masked_softmax
from tests.helpers import run_layer_test, to_numpy, value_and_gradients

RNG = np.random.default_rng(0)
STEPS = RNG.normal(size=(3, 4, 5)).astype("float32")
QUERY = RNG.normal(size=(3, 2)).astype("float32")
MASK = np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1]], bool)


def numpy_attention(layer, steps, query=None, mask=None):
    """`(pooled, weights)` of additive attention, written out with numpy."""
    if layer.units == 0:
        scores = np.zeros(steps.shape[:2])
    else:
        hidden = steps @ to_numpy(layer.step_projection.kernel) + to_numpy(
            layer.step_projection.bias
        )
        if query is not None:
            hidden = hidden + (query @ to_numpy(layer.query_projection.kernel))[:, None]
        scores = (np.tanh(hidden) @ to_numpy(layer.score.kernel))[..., 0]
    if mask is None:
        mask = np.ones(scores.shape, bool)
    weights = np.zeros(scores.shape)
    for b in range(len(scores)):
        s = scores[b][mask[b]]
        if s.size:
            weights[b][mask[b]] = np.exp(s - s.max()) / np.exp(s - s.max()).sum()
    return (steps * weights[..., None]).sum(axis=1), weights


def _random_layer(units, with_query=True):
    layer = AttentionPooling(units)
    layer([STEPS, QUERY] if with_query else STEPS)
    for v in layer.weights:  # a non-zero bias is checked too
        v.assign(RNG.normal(size=v.shape).astype("float32"))
    return layer


@pytest.mark.parametrize("with_query", [True, False])
@pytest.mark.parametrize("mask", [MASK, None], ids=["masked", "unmasked"])
def test_matches_numpy(with_query, mask):
    layer = _random_layer(6, with_query)
    inputs = [STEPS, QUERY] if with_query else STEPS
    pooled, weights = layer(inputs, mask=mask, return_weights=True)
    want_pooled, want_weights = numpy_attention(
        layer, STEPS, QUERY if with_query else None, mask
    )
    np.testing.assert_allclose(to_numpy(weights), want_weights, atol=1e-6)
    np.testing.assert_allclose(to_numpy(pooled), want_pooled, atol=1e-5)
    np.testing.assert_allclose(to_numpy(weights).sum(-1), 1.0, rtol=1e-6)
    if mask is not None:
        assert not to_numpy(weights)[~mask].any()  # exactly 0, not just small
    # The weights alone, from the public helper, are the same.
    np.testing.assert_allclose(
        to_numpy(layer.attention_weights(inputs, mask)), want_weights, atol=1e-6
    )


def test_query_steers_the_weights():
    layer = _random_layer(6)
    a = to_numpy(layer.attention_weights([STEPS, QUERY]))
    b = to_numpy(layer.attention_weights([STEPS, -3 * QUERY]))
    assert np.abs(a - b).max() > 1e-2


def test_masked_steps_change_nothing():
    layer = _random_layer(6)
    garbage = STEPS.copy()
    garbage[~MASK] = 1e3 * RNG.normal(size=((~MASK).sum(), 5))
    np.testing.assert_allclose(
        to_numpy(layer([garbage, QUERY], mask=MASK)),
        to_numpy(layer([STEPS, QUERY], mask=MASK)),
        atol=1e-6,
    )
    # A list of masks is accepted; the first one (the steps') counts.
    np.testing.assert_allclose(
        to_numpy(layer([STEPS, QUERY], mask=[MASK, None])),
        to_numpy(layer([STEPS, QUERY], mask=MASK)),
    )


@pytest.mark.parametrize("units", [0, 6])
def test_all_masked_row_pools_to_zeros(units):
    layer = _random_layer(units)
    mask = MASK.copy()
    mask[1] = False
    steps = STEPS.copy()
    steps[1] = 1e4  # huge values at masked steps must not leak either
    pooled, weights = layer([steps, QUERY], mask=mask, return_weights=True)
    pooled, weights = to_numpy(pooled), to_numpy(weights)
    assert np.isfinite(pooled).all() and np.isfinite(weights).all()
    assert not pooled[1].any() and not weights[1].any()
    np.testing.assert_allclose(weights[[0, 2]].sum(-1), 1.0, rtol=1e-6)


def test_zero_units_is_the_masked_mean():
    layer = AttentionPooling(0)
    out = to_numpy(layer([STEPS, QUERY], mask=MASK))
    want = (STEPS * MASK[..., None]).sum(1) / MASK.sum(1, keepdims=True)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        to_numpy(layer(STEPS)), STEPS.mean(1), rtol=1e-5, atol=1e-6
    )
    assert layer.weights == []


def test_gradient_is_finite_with_an_all_masked_row():
    layer = _random_layer(6)
    mask = MASK.copy()
    mask[0] = False
    _, grads = value_and_gradients(
        lambda steps: keras.ops.sum(layer([steps, QUERY], mask=mask)),
        [STEPS],
        layer.trainable_variables,
    )
    assert all(np.isfinite(g).all() for g in grads)
    assert not grads[0][~mask].any()  # masked steps get no gradient


def test_masked_softmax():
    scores = np.array([[1.0, 2.0, 3.0], [5.0, -1.0, 0.0]], "float32")
    np.testing.assert_allclose(
        to_numpy(masked_softmax(scores, None)),
        np.exp(scores) / np.exp(scores).sum(-1, keepdims=True),
        rtol=1e-6,
    )
    mask = np.array([[True, False, True], [False, False, False]])
    got = to_numpy(masked_softmax(scores, mask))
    e = np.exp([1.0, 3.0])
    np.testing.assert_allclose(got[0], [e[0] / e.sum(), 0.0, e[1] / e.sum()], rtol=1e-6)
    np.testing.assert_array_equal(got[1], [0.0, 0.0, 0.0])


@pytest.mark.parametrize("with_query", [True, False])
def test_layer_contract(with_query, tmp_path):
    layer = run_layer_test(
        AttentionPooling,
        {"units": 4},
        [STEPS, QUERY] if with_query else STEPS,
        expected_output_shape=(None, 5),
        tmp_path=tmp_path,
    )
    names = sorted(v.path.split("/")[-2] for v in layer.weights)
    assert names == sorted(
        ["step_projection", "step_projection", "score"]
        + (["query_projection"] if with_query else [])
    )


def test_layer_contract_mean_pooling(tmp_path):
    run_layer_test(
        AttentionPooling,
        {"units": 0},
        [STEPS, QUERY],
        expected_output_shape=(None, 5),
        tmp_path=tmp_path,
        expected_output=STEPS.mean(1),
    )


@pytest.mark.parametrize("units", [-1, 2.5, "8"])
def test_bad_units(units):
    with pytest.raises(ValueError, match="units must be an int >= 0"):
        AttentionPooling(units)


def test_layer_contract_returning_weights(tmp_path):
    # In a functional model too, return_weights gives the pooled vector and the
    # weights (batch, steps).
    run_layer_test(
        AttentionPooling,
        {"units": 4},
        [STEPS, QUERY],
        expected_output_shape=[(None, 5), (None, 4)],
        tmp_path=tmp_path,
        call_kwargs={"return_weights": True},
    )
