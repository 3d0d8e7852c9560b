"""Every loss-weighting strategy inside plain `model.fit`: the weights move the
way the method says, and the strategy survives save/load."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.weighting import (
    DynamicWeightAverage,
    EpochDecay,
    FixedWeighting,
    GradNorm,
    UncertaintyWeighting,
)
from tests.helpers import to_numpy

FEATURES = [km.DenseFeature("x", dim=4)]


def regression_data(n=2048, noise=(0.1, 1.0), seed=0):
    """Two linear regression tasks on the same inputs with different label noise."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    return {
        "x": x,
        "a": (x @ [1.0, -1.0, 0.5, 0.0] + noise[0] * rng.normal(size=n)).astype(
            "float32"
        ),
        "b": (x @ [0.0, 0.5, 1.0, -1.0] + noise[1] * rng.normal(size=n)).astype(
            "float32"
        ),
    }


TASKS = [km.Task("a", "regression"), km.Task("b", "regression")]


def train(weighting, epochs, data=None, tasks=TASKS, lr=0.02, seed=0, **kwargs):
    keras.utils.set_random_seed(seed)
    data = regression_data() if data is None else data
    model = km.build_shared_bottom(
        FEATURES,
        tasks,
        hidden_units=(16,),
        tower_units=(),
        compile={"loss_weighting": weighting, "learning_rate": lr},
        **kwargs,
    )
    ds = make_dataset(data, FEATURES, tasks, batch_size=128, seed=seed)
    history = model.fit(ds, epochs=epochs, verbose=0)
    return model, history.history


def test_fixed_weights_are_the_loss():
    model, _ = train(FixedWeighting({"a": 2.0, "b": 0.5}), epochs=1)
    ds = make_dataset(regression_data(256, seed=1), FEATURES, TASKS, 256, shuffle=False)
    logs = model.evaluate(ds, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(2.0 * logs["a_loss"] + 0.5 * logs["b_loss"])


def test_task_loss_weight_scales_before_the_strategy():
    tasks = [km.Task("a", "regression", loss_weight=3.0), km.Task("b", "regression")]
    model, history = train("fixed", epochs=1, tasks=tasks)
    ds = make_dataset(regression_data(256, seed=1), FEATURES, tasks, 256, shuffle=False)
    logs = model.evaluate(ds, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(3.0 * logs["a_loss"] + logs["b_loss"])
    assert history["a_weight"] == [1.0]  # the strategy's weight, not λ


def test_uncertainty_combine_hand_computed():
    strategy = UncertaintyWeighting()
    strategy.configure(
        {
            "r": km.losses.MaskedMeanSquaredError(),
            "c": km.losses.MaskedBinaryCrossentropy(),
        }
    )
    assert strategy.task_kinds == ("regression", "classification")
    strategy.log_variance.assign(np.array([np.log(4.0), np.log(2.0)], "float32"))
    total = float(strategy.combine({"r": 8.0, "c": 3.0}))
    # regression: 8 / (2 * 4) + log(4) / 2; classification: 3 / 2 + log(2) / 2
    assert total == pytest.approx(1.0 + np.log(4) / 2 + 1.5 + np.log(2) / 2, rel=1e-6)
    assert strategy.weights_in_force() == pytest.approx({"r": 0.125, "c": 0.5})


def test_uncertainty_learns_each_tasks_noise():
    """For a regression task the optimum of exp(-s) L / 2 + s / 2 is s = log L:
    the noisy task (label noise std 1 vs 0.1) ends with a much smaller weight."""
    model, history = train("uncertainty", epochs=25, lr=0.03)
    s = to_numpy(model.loss_weighting.log_variance)
    losses = np.array([history["a_loss"][-1], history["b_loss"][-1]])
    np.testing.assert_allclose(s, np.log(losses), atol=0.35)
    assert history["a_weight"][-1] > 10 * history["b_weight"][-1]
    assert history["a_weight"][-1] > history["a_weight"][0]  # a's weight grew


def test_dwa_follows_the_loss_ratios():
    model, h = train("dwa", epochs=4)
    assert h["a_weight"][:2] == [1.0, 1.0] and h["b_weight"][:2] == [1.0, 1.0]
    for epoch in (2, 3):  # weights of epoch t come from epochs t-1 and t-2
        r = np.array(
            [h[f"{t}_loss"][epoch - 1] / h[f"{t}_loss"][epoch - 2] for t in "ab"]
        )
        want = 2 * np.exp(r / 2) / np.exp(r / 2).sum()
        np.testing.assert_allclose(
            [h["a_weight"][epoch], h["b_weight"][epoch]], want, rtol=1e-5
        )
    # a (low noise) keeps improving faster, so the slower task b gets more weight.
    assert h["b_weight"][3] > 1.0 > h["a_weight"][3]


def test_dwa_hand_computed():
    dwa = DynamicWeightAverage(temperature=1.0)
    dwa.configure({"a": "mse", "b": "mse"})
    dwa.on_epoch_end(0, {"a": 1.0, "b": 1.0})
    np.testing.assert_allclose(list(dwa.weights_in_force().values()), [1, 1])
    dwa.on_epoch_end(1, {"a": 0.5, "b": 1.0})  # ratios 0.5 and 1
    e = np.exp([0.5, 1.0])
    np.testing.assert_allclose(
        list(dwa.weights_in_force().values()), 2 * e / e.sum(), rtol=1e-6
    )


def test_fit_with_positional_callbacks():
    """Keras's positional `fit(x, y, batch_size, epochs, verbose, callbacks)`
    keeps working, and the strategy's hook runs next to the user's callback."""
    model, _ = train("decay", epochs=1)
    data = regression_data(256)
    seen = []
    log = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: seen.append(logs["a_weight"])
    )
    y = {"a": data["a"], "b": data["b"]}
    model.fit({"x": data["x"]}, y, 64, 2, 0, [log])
    assert seen == pytest.approx([1.0, 0.9])


def test_epoch_decay_schedule():
    _, h = train(EpochDecay({"a": 0.5}, weights={"b": 2.0}), epochs=3)
    np.testing.assert_allclose(h["a_weight"], [1.0, 0.5, 0.25])
    np.testing.assert_allclose(h["b_weight"], [2.0, 2.0, 2.0])


def test_gradnorm_update_hand_computed():
    gn = GradNorm(alpha=1.0, learning_rate=0.025)
    gn.configure({"a": "mse", "b": "mse"})
    # Equal training rates (first step: L = L(0)), gradient norms 10 and 1:
    # G = [10, 1], target = mean(G) = 5.5, step = sign(G - target) * norms.
    gn.update_from_gradients([2.0, 3.0], [10.0, 1.0])
    new = np.array([1 - 0.025 * 10, 1 + 0.025 * 1])
    np.testing.assert_allclose(
        to_numpy(gn.task_weights), 2 * new / new.sum(), rtol=1e-6
    )
    np.testing.assert_allclose(to_numpy(gn.initial_losses), [2.0, 3.0])


def test_gradnorm_balances_a_dominating_task():
    """Task b's loss is scaled by 50: its gradients dominate the shared layer, so
    GradNorm moves weight from b to a (the weights keep summing to 2)."""
    tasks = [km.Task("a", "regression"), km.Task("b", "regression", loss_weight=50.0)]
    data = regression_data(noise=(0.1, 0.1))
    model, h = train(GradNorm(alpha=0.5), epochs=4, data=data, tasks=tasks)
    assert h["b_weight"][-1] < 0.3 < 1.7 < h["a_weight"][-1]
    assert h["a_weight"][-1] + h["b_weight"][-1] == pytest.approx(2.0, abs=1e-4)
    assert model.loss_weighting.shared_weights(model) == list(
        model.get_layer("bottom").trainable_weights
    )
    assert np.isfinite(h["loss"]).all()


def test_gradnorm_uses_the_shared_experts_of_the_last_ple_level():
    model = km.build_ple(FEATURES, TASKS, compile={"loss_weighting": "gradnorm"})
    weights = model.loss_weighting.shared_weights(model)
    assert {w.path.split("/")[-1] for w in weights} == {
        "shared_expert_kernel_0",
        "shared_expert_bias_0",
    }
    assert all(w.path.startswith("level_2/") for w in weights)


def test_single_task_model_has_no_shared_layer_for_gradnorm():
    model = km.build_single_task(
        FEATURES, TASKS, compile={"loss_weighting": "gradnorm"}
    )
    ds = make_dataset(regression_data(64), FEATURES, TASKS, 64)
    with pytest.raises(ValueError, match="no layer with weights is shared"):
        model.fit(ds, verbose=0)


@pytest.mark.parametrize("weighting", ["uncertainty", "dwa", "gradnorm"])
def test_strategy_survives_keras_round_trip(weighting, tmp_path):
    model, _ = train(weighting, epochs=3)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.loss_weighting) is type(model.loss_weighting)
    for a, b in zip(model.loss_weighting.weights, loaded.loss_weighting.weights):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b))
    # and training goes on from there
    ds = make_dataset(regression_data(256), FEATURES, TASKS, 128)
    h = loaded.fit(ds, epochs=1, verbose=0).history
    assert np.isfinite(h["loss"]).all() and "a_weight" in h


def test_recompiling_drops_the_old_strategy():
    model, _ = train("uncertainty", epochs=1)
    count = len(model.trainable_weights)
    model.compile()  # back to Keras's fixed loss weights
    assert model.loss_weighting is None
    assert len(model.trainable_weights) == count - 1  # log_variance is gone
    h = model.fit(make_dataset(regression_data(256), FEATURES, TASKS, 128), verbose=0)
    assert "a_weight" not in h.history


def test_weighting_with_missing_labels_and_metric_only_tasks():
    """ESMM: cvr is metric-only and its labels are NaN off clicks; a weighting
    still trains the ctr and ctcvr losses only."""
    funnel = km.datasets.make_funnel(num_impressions=3072, seed=0)  # 6 batches
    model = km.build_esmm(
        funnel.features, tower_units=(8,), compile={"loss_weighting": "uncertainty"}
    )
    assert model.loss_weighting.task_names == ("ctr", "ctcvr")
    ds = make_dataset(funnel.frame, funnel.features, km.esmm_tasks(), 512)
    h = model.fit(ds, epochs=1, verbose=0).history
    assert np.isfinite(h["loss"]).all() and "cvr_weight" not in h


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"loss_weighting": "softmax"}, ValueError, "Unknown loss weighting"),
        ({"loss_weighting": FixedWeighting({"c": 1.0})}, ValueError, r"\['c'\]"),
        ({"loss_weighting": EpochDecay({"c": 0.5})}, ValueError, r"\['c'\]"),
        ({"loss_weighting": 3}, TypeError, "name, a config dict or a LossWeighting"),
    ],
)
def test_bad_weighting_is_explained(kwargs, error, match):
    with pytest.raises(error, match=match):
        km.build_shared_bottom(FEATURES, TASKS, compile=kwargs)


def test_bad_strategy_arguments():
    with pytest.raises(ValueError, match="alpha"):
        GradNorm(alpha=-1)
    with pytest.raises(ValueError, match="temperature"):
        DynamicWeightAverage(temperature=0)
    with pytest.raises(ValueError, match="decay"):
        EpochDecay(0.0)
    with pytest.raises(ValueError, match="weight of task 'a'"):
        FixedWeighting({"a": -1})
