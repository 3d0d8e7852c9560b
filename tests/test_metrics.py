import keras
import numpy as np
import pytest

from keras_mtl.metrics import MaskedAUC, MaskedMSE


def test_masked_auc_equals_auc_on_labelled_rows():
    rng = np.random.default_rng(0)
    y = (rng.random(200) < 0.4).astype("float32")
    p = np.clip(y * 0.3 + rng.random(200) * 0.7, 0, 1).astype("float32")
    y_missing = y.copy()
    y_missing[::3] = np.nan
    y_missing[1::7] = -1
    keep = np.isfinite(y_missing) & (y_missing != -1)

    masked = MaskedAUC(mask_value=-1)
    masked.update_state(y_missing, p)
    plain = keras.metrics.AUC(num_thresholds=1000)
    plain.update_state(y[keep], p[keep])
    assert float(masked.result()) == pytest.approx(float(plain.result()), abs=1e-6)
    assert 0.6 < float(masked.result()) < 1.0


def test_masked_mse_hand_computed_with_sample_weight():
    metric = MaskedMSE()
    metric.update_state(
        np.array([1.0, np.nan, 2.0]),
        np.array([3.0, 0.0, 2.0]),
        sample_weight=np.array([1.0, 1.0, 3.0]),
    )
    assert float(metric.result()) == pytest.approx(4.0 / 4.0)


def test_all_missing_batch_leaves_auc_untouched():
    metric = MaskedAUC()
    metric.update_state(np.array([1.0, 0.0]), np.array([0.9, 0.1]))
    metric.update_state(np.array([np.nan, np.nan]), np.array([0.0, 1.0]))
    assert float(metric.result()) == pytest.approx(1.0)


@pytest.mark.parametrize("cls", [MaskedAUC, MaskedMSE])
def test_config_round_trip(cls):
    metric = cls(mask_value=-1)
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert type(clone) is cls and clone.mask_value == -1.0


def test_auc_without_any_labelled_row_is_nan_not_zero():
    metric = MaskedAUC()
    metric.update_state(np.array([np.nan, np.nan]), np.array([0.3, 0.8]))
    assert np.isnan(float(metric.result()))
    metric.update_state(np.array([0.0, 1.0]), np.array([0.3, 0.8]))
    assert float(metric.result()) == pytest.approx(1.0)
