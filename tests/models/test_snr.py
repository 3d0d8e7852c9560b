"""SNR: routing tables, and the L0 penalty closing connections. Its layer is
tested in tests/layers/test_sub_network_routing.py; the builder battery
(learning, .keras round trip, serving parity, bad specs) runs for it with every
flat builder in test_builders.py."""

import numpy as np
import pytest

import keras_mtl as km
from tests.models.test_builders import FEATURES, TASKS, features_only, make_data


@pytest.fixture(scope="module")
def data():
    return make_data(n=512)


def _fit(model, data, epochs=8):
    x = features_only(data)
    y = {"income": data["income"], "spend": data["spend"]}
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


def _closed(model) -> int:
    return sum(int((t.values == 0).sum()) for t in km.routing_weights(model).values())


@pytest.mark.parametrize("variant", ["trans", "aver"])
def test_a_strong_l0_penalty_closes_connections_and_the_tables_say_which(data, variant):
    # From log α = 0 (half open) rather than the builder's open start, with a
    # learning rate at which log α moves ~0.05 per step.
    kwargs = dict(num_subnetworks=(3, 2), variant=variant, initial_log_alpha=0.0)
    fast = {"learning_rate": 0.05}
    strong = _fit(
        km.build_snr(FEATURES, TASKS, l0_weight=1.0, compile=fast, **kwargs), data
    )
    tables = km.routing_weights(strong)
    assert list(tables) == ["routing_1", "task_routing"]
    assert list(tables["routing_1"].index) == ["level_1_0", "level_1_1", "level_1_2"]
    assert list(tables["routing_1"].columns) == ["level_2_0", "level_2_1"]
    assert list(tables["task_routing"].columns) == ["income", "spend"]
    assert _closed(strong) > 0
    free = _fit(
        km.build_snr(FEATURES, TASKS, l0_weight=0.0, compile=fast, **kwargs), data
    )
    assert _closed(free) == 0
    out = strong.predict(features_only(data, slice(0, 8)), verbose=0)
    assert all(np.isfinite(v).all() for v in out.values())


def test_routing_weights_needs_snr_layers():
    with pytest.raises(ValueError, match="no SubNetworkRouting layer"):
        km.routing_weights(km.build_mmoe(FEATURES, TASKS, num_experts=2))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"variant": "sum"}, "build_snr: variant must be one of"),
        ({"num_subnetworks": ()}, "num_subnetworks"),
        ({"l0_weight": -0.1}, "l0_weight"),
        ({"gamma": 0.2}, "build_snr: the hard-concrete stretch needs"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        km.build_snr(FEATURES, TASKS, **kwargs)
