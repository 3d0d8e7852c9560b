"""build_mrn: where the prior sits, what training updates, the diagnostic, the
errors. The builder battery (shapes, learning, .keras round trip, serving) runs
for it with every flat builder in test_builders.py."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset

FEATURES = [km.DenseFeature("x", dim=3)]
TASKS = [km.Task("a", "regression"), km.Task("b", "regression")]


def _data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    return {"x": x, "a": x[:, 0], "b": x[:, 0] + x[:, 1]}


def test_prior_on_every_task_layer_and_in_the_loss():
    model = km.build_mrn(
        FEATURES, TASKS, shared_units=(4,), task_units=(3, 2), prior_weight=0.1
    )
    layers = [model.get_layer(f"task_layer_{i}") for i in (1, 2)]
    assert [type(layer).__name__ for layer in layers] == ["TensorNormalDense"] * 2
    assert [layer.kernel.shape for layer in layers] == [(2, 4, 3), (2, 3, 2)]
    assert model.get_layer("bottom").trainable  # shared, trained, not frozen
    model({"x": _data(8)["x"]})
    # At the identity start each layer's penalty is prior_weight * ||W||².
    expected = [0.1 * np.sum(layer.kernel.numpy() ** 2) for layer in layers]
    assert [float(t) for t in model.losses] == pytest.approx(expected, rel=1e-5)


def test_training_steps_update_the_covariances():
    model = km.build_mrn(
        FEATURES, TASKS, shared_units=(4,), task_units=(3,), update_every=2
    )
    layer = model.get_layer("task_layer_1")
    before = km.prior_task_correlation(model)
    assert list(before.index) == ["a", "b"] and list(before.columns) == ["a", "b"]
    np.testing.assert_array_equal(before.to_numpy(), np.eye(2))
    model.fit(make_dataset(_data(), FEATURES, TASKS, batch_size=16), verbose=0)
    assert int(layer.step.numpy()) == 4  # one count per training step
    assert not np.allclose(layer.covariance("task").numpy(), np.eye(2))
    after = km.prior_task_correlation(model, "task_layer_1")
    np.testing.assert_allclose(np.diag(after.to_numpy()), 1.0, rtol=1e-5)
    assert -1.0 <= after.loc["a", "b"] <= 1.0
    model.predict({"x": _data(8)["x"]}, verbose=0)  # inference does not count
    assert int(layer.step.numpy()) == 4


def test_prior_task_correlation_needs_a_tensor_normal_layer():
    with pytest.raises(ValueError, match="no TensorNormalDense layer"):
        km.prior_task_correlation(km.build_shared_bottom(FEATURES, TASKS))
    model = km.build_mrn(FEATURES, TASKS, task_units=(2,))
    with pytest.raises(ValueError, match="layer='bottom' is not a TensorNormal"):
        km.prior_task_correlation(model, "bottom")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(task_units=()), "build_mrn: task_units must hold a non-empty"),
        (dict(shared_units=(0,)), "build_mrn: shared_units must hold"),
        (dict(prior_weight=-1.0), "build_mrn: TensorNormalDense: prior_weight"),
        (dict(epsilon=0.0), "build_mrn: TensorNormalDense: epsilon"),
        (dict(update_every=0), "build_mrn: TensorNormalDense: update_every"),
        (dict(hidden_dropout=1.0), "build_mrn: hidden_dropout must be in"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        km.build_mrn(FEATURES, TASKS, **kwargs)


def test_trains_under_mixed_float16():
    # The prior penalty joins the losses in float32, as every other layer's
    # penalty does, so a float16 policy can fit.
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = km.build_mrn(FEATURES, TASKS, shared_units=(4,), task_units=(3,))
        layer = model.get_layer("task_layer_1")
        assert layer.compute_dtype == "float16"
        history = model.fit(
            make_dataset(_data(16), FEATURES, TASKS, batch_size=16), verbose=0
        )
        assert np.isfinite(history.history["loss"][0])
        assert int(layer.step.numpy()) == 1
        model({"x": _data(4)["x"]})
        dtypes = [keras.backend.standardize_dtype(t.dtype) for t in model.losses]
        assert dtypes == ["float32"]
    finally:
        keras.config.set_dtype_policy("float32")
