"""Layers of the conversion-funnel builders: AIT, AuxiliaryLoss, BernoulliMixture."""

import keras
import numpy as np
import pytest

from keras_mtl.layers import (
    AdaptiveInformationTransfer,
    AuxiliaryLoss,
    BernoulliMixture,
)
from keras_mtl.losses import FunnelCalibration, KLDivergenceBound
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)


def test_ait_hand_computed():
    layer = AdaptiveInformationTransfer()
    current = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
    previous = np.array([[3.0, -1.0], [0.0, 0.0]], "float32")
    layer.build([(None, 2), (None, 2)])
    layer.info.kernel.assign(np.eye(2))
    layer.info.bias.assign(np.zeros(2))
    q, k, v = np.eye(2), 2 * np.eye(2), np.array([[0.0, 1.0], [1.0, 0.0]])
    layer.qkv.assign(np.stack([q, k, v]).astype("float32"))
    info = np.maximum(previous, 0)  # relu(I x + 0)
    expected, weights = [], []
    for c, i in zip(current, info):
        cands = np.stack([c, i])
        scores = (cands @ q * (cands @ k)).sum(-1) / np.sqrt(2)
        a = np.exp(scores) / np.exp(scores).sum()
        weights.append(a)
        expected.append((a[:, None] * (cands @ v)).sum(0))
    out = to_numpy(layer([current, previous]))
    np.testing.assert_allclose(out, expected, rtol=1e-5)
    np.testing.assert_allclose(
        to_numpy(layer.attention_weights([current, previous])), weights, rtol=1e-5
    )
    # Row 0: the info [3, 0] scores 18/sqrt(2), the current tower [1, 0] only
    # 2/sqrt(2), so the transferred information dominates.
    assert weights[0][1] > 0.99


def test_ait_layer_contract(tmp_path):
    run_layer_test(
        AdaptiveInformationTransfer,
        {"dropout": 0.1},
        [RNG.normal(size=(4, 6)).astype("float32")] * 2,
        expected_output_shape=(None, 6),
        tmp_path=tmp_path,
    )


def test_ait_rejects_mismatched_widths():
    with pytest.raises(ValueError, match="one known width"):
        AdaptiveInformationTransfer()([keras.Input((4,)), keras.Input((3,))])
    with pytest.raises(ValueError, match="dropout"):
        AdaptiveInformationTransfer(dropout=1.0)


def test_bernoulli_mixture(tmp_path):
    p, a, b = (np.array([0.25, 1.0, 0.0], "float32") for _ in range(3))
    a = np.array([0.8, 0.3, 0.3], "float32")
    b = np.array([0.4, 0.9, 0.9], "float32")
    run_layer_test(
        BernoulliMixture,
        {},
        [p, a, b],
        expected_output_shape=(None,),
        tmp_path=tmp_path,
        expected_output=np.array([0.5, 0.3, 0.9]),
    )


@pytest.mark.parametrize(
    "loss, weight, expected",
    [
        # 0.6 * mean(relu([0.5 - 0.2, 0.1 - 0.4])) = 0.6 * 0.15
        (FunnelCalibration(), 0.6, 0.09),
        # KL bound of (0.2, 0.5) is 0.3 * log(4); of (0.4, 0.1) 0.3 * log(6)
        (KLDivergenceBound(), 2.0, 0.3 * (np.log(4) + np.log(6))),
        # By name: Keras's mean squared error, (0.3² + 0.3²) / 2, and Huber
        # (delta 1: half the squares), and keras-mtl's calibrator
        ("mse", 1.0, 0.09),
        ("mean_squared_error", 2.0, 0.18),
        ("Huber", 1.0, 0.045),
        ("FunnelCalibration", 0.6, 0.09),
    ],
)
def test_auxiliary_loss_adds_the_weighted_term(loss, weight, expected, tmp_path):
    reference = np.array([0.2, 0.4], "float32")
    value = np.array([0.5, 0.1], "float32")
    layer = run_layer_test(
        AuxiliaryLoss,
        {"loss": loss, "weight": weight},
        [reference, value],
        expected_output_shape=(None,),
        tmp_path=tmp_path,
        expected_output=value,
        fit=False,
    )
    layer([reference, value])
    assert float(layer.losses[-1]) == pytest.approx(expected, rel=1e-5)


def test_auxiliary_loss_checks_arguments():
    with pytest.raises(ValueError, match="keras.losses.Loss"):
        AuxiliaryLoss(lambda a, b: a)
    with pytest.raises(ValueError, match="AuxiliaryLoss: loss must be.*'msee'"):
        AuxiliaryLoss("msee")
    with pytest.raises(ValueError, match="weight"):
        AuxiliaryLoss(FunnelCalibration(), -1.0)
