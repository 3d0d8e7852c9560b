"""SubNetworkRouting: hard-concrete coding variables between sub-networks (SNR)."""

import math

import numpy as np
import pytest

from keras_mtl.layers import SubNetworkRouting
from tests.helpers import run_layer_test, to_numpy

BETA, GAMMA, ZETA = 2 / 3, -0.1, 1.1
X = [
    np.array([[1.0, 2.0], [3.0, -1.0]], "float32"),
    np.array([[0.5, 0.5], [2.0, 1.0]], "float32"),
]


def _sigmoid(v):
    return 1.0 / (1.0 + math.exp(-v))


def test_inference_gate_and_l0_penalty_follow_the_formulas():
    layer = SubNetworkRouting(2, variant="aver", l0_weight=0.5)
    layer(X)
    log_alpha = np.array([[-3.0, 0.0], [1.5, 10.0]], "float32")
    layer.log_alpha.assign(log_alpha)
    want = [
        [min(1.0, max(0.0, _sigmoid(a) * (ZETA - GAMMA) + GAMMA)) for a in row]
        for row in log_alpha.tolist()
    ]
    np.testing.assert_allclose(layer.gate_values(), want, atol=1e-6)
    assert layer.gate_values()[0, 0] == 0.0 and layer.gate_values()[1, 1] == 1.0
    shift = BETA * math.log(-GAMMA / ZETA)
    penalty = sum(_sigmoid(a - shift) for a in log_alpha.ravel().tolist())
    assert float(layer.l0_penalty()) == pytest.approx(penalty, rel=1e-5)
    layer(X)
    assert float(layer.losses[-1]) == pytest.approx(0.5 * penalty, rel=1e-5)


def test_training_samples_are_hard_concrete():
    """At log α = 0, P(z = 0) = 1 - sigmoid(-β log(-γ/ζ)) (what the L0 penalty
    counts), the same mass at z = 1 by symmetry, and z in [0, 1] always."""
    layer = SubNetworkRouting(200, variant="aver", seed=3)
    layer([np.zeros((1, 1), "float32")] * 100)
    z = to_numpy(layer.gates(training=True))  # 20,000 draws
    assert z.min() == 0.0 and z.max() == 1.0
    closed = 1.0 - _sigmoid(-BETA * math.log(-GAMMA / ZETA))  # 0.168
    assert (z == 0).mean() == pytest.approx(closed, abs=0.01)
    assert (z == 1).mean() == pytest.approx(closed, abs=0.01)
    assert not np.array_equal(z, to_numpy(layer.gates(training=True)))


@pytest.mark.parametrize("variant", ["aver", "trans"])
def test_open_and_closed_connections_by_hand(variant):
    """log α = ±10: z is exactly 1 or 0 at inference."""
    layer = SubNetworkRouting(
        2, variant=variant, units=2 if variant == "trans" else None
    )
    layer(X)
    layer.log_alpha.assign([[10.0, -10.0], [10.0, 10.0]])  # input 0 -> output 1 closed
    if variant == "trans":
        # W_00 = I, W_01 = 5 I, W_10 = 2 I, W_11 = -I (stored (i, j)-major).
        eye = np.eye(2, dtype="float32")
        layer.kernel.assign(np.stack([eye, 5 * eye, 2 * eye, -eye]))
        want = [X[0] + 2 * X[1], -X[1]]
    else:
        want = [X[0] + X[1], X[1]]
    for got, w in zip(layer(X), want):
        np.testing.assert_allclose(to_numpy(got), w, rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs", [{"variant": "trans", "units": 3, "l0_weight": 0.01}, {"variant": "aver"}]
)
def test_layer_contract(kwargs, tmp_path):
    data = [
        np.random.default_rng(i).normal(size=(4, 2)).astype("float32") for i in range(3)
    ]
    width = kwargs.get("units", 2)
    run_layer_test(
        SubNetworkRouting,
        {"num_outputs": 2, "seed": 1, **kwargs},
        data,
        [(None, width)] * 2,
        tmp_path,
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_outputs": 0}, "num_outputs"),
        ({"num_outputs": 2, "variant": "sum"}, "variant must be one of"),
        (
            {"num_outputs": 2, "variant": "aver", "units": 3},
            "units=3 is for variant='trans'",
        ),
        ({"num_outputs": 2, "gamma": 0.1}, "gamma < 0"),
        ({"num_outputs": 2, "zeta": 0.9}, "zeta > 1"),
        ({"num_outputs": 2, "l0_weight": -1}, "l0_weight"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SubNetworkRouting(**kwargs)
