import keras
import numpy as np
import pytest

from keras_mtl.losses import MaskedBinaryCrossentropy, MaskedMeanSquaredError
from tests.helpers import value_and_gradients

NAN = np.nan


def test_bce_ignores_missing_labels():
    loss = MaskedBinaryCrossentropy()
    y = np.array([1.0, NAN, 0.0], "float32")
    p = np.array([0.5, 0.9, 0.2], "float32")
    expected = (np.log(2.0) - np.log(0.8)) / 2  # mean over the 2 labelled rows
    assert float(loss(y, p)) == pytest.approx(expected, rel=1e-6)


def test_sentinel_is_masked_like_nan():
    loss = MaskedBinaryCrossentropy(mask_value=-1)
    a = loss(np.array([1.0, -1.0]), np.array([0.5, 0.9]))
    b = loss(np.array([1.0, NAN]), np.array([0.5, 0.9]))
    assert float(a) == pytest.approx(np.log(2.0), rel=1e-6) and float(a) == float(b)


def test_mse_hand_computed_and_column_labels():
    loss = MaskedMeanSquaredError(mask_value=-999)
    y = np.array([[1.0], [-999.0], [3.0]], "float32")  # (batch, 1) labels work too
    p = np.array([2.0, 100.0, 1.0], "float32")
    assert float(loss(y, p)) == pytest.approx((1 + 4) / 2)


@pytest.mark.parametrize("cls", [MaskedBinaryCrossentropy, MaskedMeanSquaredError])
def test_all_missing_batch_is_zero_with_finite_gradient(cls):
    value, (grad,) = value_and_gradients(
        lambda pred: cls()(np.array([NAN, NAN], "float32"), pred), [[0.3, 0.7]]
    )
    assert value == 0.0
    assert np.isfinite(grad).all() and not grad.any()


def test_bce_is_finite_at_certain_predictions():
    value = MaskedBinaryCrossentropy()(np.array([1.0, 0.0]), np.array([0.0, 1.0]))
    assert np.isfinite(float(value)) and float(value) > 10


@pytest.mark.parametrize("cls", [MaskedBinaryCrossentropy, MaskedMeanSquaredError])
def test_config_round_trip(cls):
    loss = cls(mask_value=-1, name="x")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is cls and clone.get_config() == loss.get_config()
    assert clone.mask_value == -1.0


def _bernoulli_kl(p, q):
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def test_kl_bound_is_the_symmetric_bernoulli_kl():
    from keras_mtl.losses import KLDivergenceBound

    p = np.array([0.1, 0.5, 0.9, 0.3], "float64")
    q = np.array([0.2, 0.5, 0.6, 0.01], "float64")
    expected = (_bernoulli_kl(p, q) + _bernoulli_kl(q, p)).mean()
    loss = KLDivergenceBound()
    assert float(loss(p, q)) == pytest.approx(expected, rel=1e-5)
    assert float(loss(q, p)) == pytest.approx(expected, rel=1e-5)  # symmetric
    assert float(loss(p, p)) == pytest.approx(0.0, abs=1e-7)  # zero iff equal


def test_kl_bound_is_finite_with_finite_gradients_at_0_and_1():
    from keras_mtl.losses import KLDivergenceBound

    p = np.array([0.0, 1.0, 0.0, 1.0, 0.0], "float32")
    loss = KLDivergenceBound(epsilon=1e-6)
    value, (grad,) = value_and_gradients(
        lambda q: loss(p, q), [[0.0, 1.0, 1.0, 0.0, 0.5]]
    )
    assert np.isfinite(value) and np.isfinite(grad).all()
    # Opposite certainties are maximally far apart; equal certainties cost 0.
    worst = (1 - 2e-6) * 2 * np.log((1 - 1e-6) / 1e-6)
    per_row = [0.0, 0.0, worst, worst, (0.5 - 1e-6) * np.log((1 - 1e-6) / 1e-6)]
    assert float(value) == pytest.approx(np.mean(per_row), rel=1e-3)  # float32
    with pytest.raises(ValueError, match="epsilon"):
        KLDivergenceBound(epsilon=0.0)


def test_losses_survive_serialization():
    from keras_mtl.losses import FunnelCalibration, KLDivergenceBound

    for loss in (KLDivergenceBound(epsilon=1e-4), FunnelCalibration()):
        clone = keras.losses.deserialize(keras.losses.serialize(loss))
        assert type(clone) is type(loss) and clone.get_config() == loss.get_config()


def test_funnel_calibration_penalises_only_inversions():
    from keras_mtl.losses import FunnelCalibration

    earlier = np.array([0.5, 0.2, 0.3], "float32")
    later = np.array([0.1, 0.6, 0.3], "float32")
    assert float(FunnelCalibration()(earlier, later)) == pytest.approx(0.4 / 3)


# ----------------------------------------------------------------------------- multiclass


def test_cce_hand_value_leaves_out_unlabelled_rows():
    from keras_mtl.losses import MaskedCategoricalCrossentropy

    y = np.array(
        [[1.0, 0.0, 0.0], [0.0, 0.5, 0.5], [NAN, NAN, NAN], [0.0, NAN, 1.0]],
        "float32",
    )
    p = np.array(
        [[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.01, 0.01, 0.98], [0.5, 0.25, 0.25]],
        "float32",
    )
    # Rows 2 (all NaN) and 3 (one NaN) have no label: mean over rows 0 and 1.
    expected = (-np.log(0.7) - 0.5 * np.log(0.3) - 0.5 * np.log(0.6)) / 2
    assert float(MaskedCategoricalCrossentropy()(y, p)) == pytest.approx(
        expected, rel=1e-6
    )


def test_cce_mask_value_and_zero_probabilities():
    from keras_mtl.losses import MaskedCategoricalCrossentropy

    loss = MaskedCategoricalCrossentropy(mask_value=-1)
    y = np.array([[0.0, 1.0], [-1.0, -1.0]], "float32")
    p = np.array([[0.5, 0.5], [1.0, 0.0]], "float32")
    assert float(loss(y, p)) == pytest.approx(np.log(2.0), rel=1e-6)
    # A certain wrong prediction is clipped at epsilon: large but finite.
    value = float(MaskedCategoricalCrossentropy()(y[:1], np.array([[1.0, 0.0]])))
    assert value == pytest.approx(-np.log(1e-7), rel=1e-4)


def test_cce_all_missing_batch_is_zero_with_finite_gradient():
    from keras_mtl.losses import MaskedCategoricalCrossentropy

    value, (grad,) = value_and_gradients(
        lambda pred: MaskedCategoricalCrossentropy()(
            np.full((2, 2), NAN, "float32"), pred
        ),
        [[[0.3, 0.7], [0.0, 1.0]]],
    )
    assert value == 0.0
    assert np.isfinite(grad).all() and not grad.any()


def test_cce_gradient_skips_unlabelled_rows():
    from keras_mtl.losses import MaskedCategoricalCrossentropy

    _, (grad,) = value_and_gradients(
        lambda pred: MaskedCategoricalCrossentropy()(
            np.array([[1.0, 0.0], [NAN, NAN]]), pred
        ),
        [[[0.25, 0.75], [0.5, 0.5]]],
    )
    np.testing.assert_allclose(grad, [[-4.0, 0.0], [0.0, 0.0]], rtol=1e-5)


def test_cce_config_round_trip_and_default_for_multiclass_tasks():
    from keras_mtl import Task
    from keras_mtl.losses import MaskedCategoricalCrossentropy
    from keras_mtl.training import METRIC_NAMES, task_loss

    loss = MaskedCategoricalCrossentropy(mask_value=-1, epsilon=1e-5, name="x")
    clone = keras.losses.deserialize(keras.losses.serialize(loss))
    assert type(clone) is MaskedCategoricalCrossentropy
    assert clone.get_config() == loss.get_config()
    assert (clone.mask_value, clone.epsilon) == (-1.0, 1e-5)
    default = task_loss(Task("genre", "multiclass", num_classes=3, missing_value=-1))
    assert type(default) is MaskedCategoricalCrossentropy
    assert default.name == "genre_loss" and default.mask_value == -1.0
    assert METRIC_NAMES["multiclass"] == "auc"
