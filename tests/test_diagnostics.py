import numpy as np
import pytest

from keras_mtl.diagnostics import _auc, _ranks, cvr_against_truth


def test_ranks_average_ties():
    np.testing.assert_array_equal(
        _ranks(np.array([3.0, 1.0, 3.0, 2.0])), [3.5, 1, 3.5, 2]
    )


def test_auc_hand_computed():
    labels = np.array([True, False, True, False])
    # Pairs (pos, neg): (0.8, 0.1) ok, (0.8, 0.4) ok, (0.4, 0.1) ok, (0.4, 0.4) tie.
    assert _auc(labels, np.array([0.8, 0.1, 0.4, 0.4])) == pytest.approx(3.5 / 4)
    assert np.isnan(_auc(np.array([True, True]), np.array([0.1, 0.2])))


def test_cvr_against_truth():
    truth = np.linspace(0.01, 0.5, 20_000)
    perfect = cvr_against_truth(2 * truth, truth)  # right order, twice too high
    assert perfect["spearman"] == pytest.approx(1.0)
    assert perfect["auc"] == pytest.approx(perfect["oracle_auc"])
    assert perfect["calibration"] == pytest.approx(2.0)
    assert perfect["mean_true"] == pytest.approx(truth.mean())
    reversed_ = cvr_against_truth(truth[::-1], truth)
    assert reversed_["spearman"] == pytest.approx(-1.0)
    assert reversed_["auc"] == pytest.approx(1 - perfect["auc"], abs=1e-9)
    assert 0.6 < perfect["oracle_auc"] < 0.8  # Bernoulli noise caps the AUC
    with pytest.raises(ValueError, match="one length"):
        cvr_against_truth(truth[:5], truth)
