"""Pareto weighting, PCGrad and CAGrad inside `model.fit`: the step applies the
combination the strategy chose, every task learns on tasks whose gradients
conflict, the weights reach `History`, and the strategies survive save/load."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.training import task_gradients
from keras_mtl.weighting import CAGrad, ParetoWeighting, PCGrad
from tests.helpers import to_numpy

FEATURES = [km.DenseFeature("x", dim=4)]
TASKS = [km.Task("a", "regression"), km.Task("b", "regression")]
NEW = ["pareto", "pcgrad", "cagrad"]
EPOCHS = 3


def conflicting_data(n=512, seed=0):
    """b's target is nearly a's negated: their gradients at a shared layer
    point in opposite directions."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype("float32")
    u, v = np.array([1.0, -1.0, 0.5, 0.0]), np.array([0.0, 0.5, 1.0, -1.0])
    return {
        "x": x,
        "a": (x @ u).astype("float32"),
        "b": (-x @ u + x @ v).astype("float32"),
    }


def model_for(weighting, seed=0, jit_compile=False):
    """(XLA is explicit: a module fixture is set up before conftest's
    per-test `_xla_where_marked`.)"""
    keras.utils.set_random_seed(seed)
    return km.build_shared_bottom(
        FEATURES,
        TASKS,
        hidden_units=(8,),
        tower_units=(4,),
        compile={
            "loss_weighting": weighting,
            "learning_rate": 0.02,
            "jit_compile": jit_compile,
        },
    )


def dataset(n=512):
    return make_dataset(conflicting_data(n), FEATURES, TASKS, batch_size=128, seed=0)


def fit(name, jit_compile=False):
    """The strategy by name (its defaults), trained for a few epochs."""
    model = model_for(name, jit_compile=jit_compile)
    return model, model.fit(dataset(), epochs=EPOCHS, verbose=0).history


@pytest.fixture(scope="module")
def trained():
    """Pareto and CAGrad without XLA (PCGrad trains in `test_pcgrad_with_xla`)."""
    return {name: fit(name) for name in ("pareto", "cagrad")}


def check_learning_and_logs(name, model, history):
    assert model.loss_weighting.needs_task_gradients
    for task in "ab":
        losses = history[f"{task}_loss"]
        assert losses[2] < losses[1] < losses[0], (task, losses)
        assert losses[-1] < 0.75 * losses[0], (task, losses)
        weights = history[f"{task}_weight"]
        assert len(weights) == EPOCHS and np.isfinite(weights).all()
        assert min(weights) >= 0.0
    if name == "pareto":  # sum to the number of tasks
        total = np.add(history["a_weight"], history["b_weight"])
        np.testing.assert_allclose(total, 2.0, rtol=1e-5)
    # The logged weights are the strategy's in force at the epoch's end.
    final = model.loss_weighting.weights_in_force()
    assert final == pytest.approx({t: history[f"{t}_weight"][-1] for t in "ab"})


@pytest.mark.parametrize("name", ["pareto", "cagrad"])
def test_every_task_learns_and_the_weights_are_logged(trained, name):
    assert not trained[name][0].jit_compile
    check_learning_and_logs(name, *trained[name])


#: A model seed whose start has conflicting task gradients, per backend.
CONFLICTING_START = {"tensorflow": 1, "jax": 4, "torch": 1}


@pytest.mark.parametrize(
    "strategy", [ParetoWeighting(), PCGrad(seed=1), CAGrad(iterations=20)], ids=NEW
)
def test_the_step_applies_the_chosen_combination(strategy):
    """Weights every task depends on get Σ_k w_k g_k (w: this step's weights);
    each tower gets its own task's gradient, unweighted."""
    # A start where the gradients conflict (seeds differ by backend: each has
    # its own random streams).
    model = model_for(strategy, seed=CONFLICTING_START[keras.backend.backend()])
    data = conflicting_data(64, seed=3)
    x, y = {"x": data["x"]}, {"a": data["a"], "b": data["b"]}
    common = strategy.common_weights(model)
    assert {w.path.split("/")[0] for w in common} == {"bottom"}
    everything = model.trainable_weights
    plain = task_gradients(model, x, y, None, everything)
    result = task_gradients(
        model, x, y, None, strategy.shared_weights(model), common, step=True
    )
    w = to_numpy(result.step_weights)
    assert not np.allclose(w, 1.0)  # the tasks conflict: the weights move
    ids = {id(v) for v in common}
    for i, variable in enumerate(everything):
        # (On TensorFlow, a tower's gradient of the other task's loss is None.)
        per_task = [
            np.zeros(variable.shape) if g[i] is None else to_numpy(g[i])
            for g in plain.task_gradients
        ]
        if id(variable) in ids:
            want = w[0] * per_task[0] + w[1] * per_task[1]
        else:
            want = per_task[0] + per_task[1]
        np.testing.assert_allclose(
            to_numpy(result.gradients[i]), want, rtol=1e-4, atol=1e-6
        )


def test_pareto_weights_are_the_closed_form_of_the_shared_gradients():
    strategy = ParetoWeighting()
    model = model_for(strategy)
    data = conflicting_data(64, seed=3)
    x, y = {"x": data["x"]}, {"a": data["a"], "b": data["b"]}
    shared = strategy.shared_weights(model)
    result = task_gradients(
        model, x, y, None, shared, strategy.common_weights(model), step=True
    )
    g1, g2 = (
        np.concatenate([np.ravel(to_numpy(g)) for g in grads])
        for grads in result.task_gradients
    )
    gamma = np.clip((g2 @ g2 - g1 @ g2) / ((g1 - g2) @ (g1 - g2)), 0.001, 0.999)
    np.testing.assert_allclose(
        to_numpy(result.step_weights), [2 * gamma, 2 - 2 * gamma], rtol=1e-4
    )


def test_a_task_without_labels_in_the_batch():
    """b absent from the labels, or all its labels missing: b gets weight 0
    and a the whole shared gradient."""
    strategy = ParetoWeighting()
    model = model_for(strategy)
    data = conflicting_data(64)
    x = {"x": data["x"]}
    shared, common = strategy.shared_weights(model), strategy.common_weights(model)
    for y in ({"a": data["a"]}, {"a": data["a"], "b": np.full(64, np.nan, "float32")}):
        result = task_gradients(model, x, y, None, shared, common, step=True)
        np.testing.assert_allclose(to_numpy(result.step_weights), [1.0, 0.0])


@pytest.mark.xla
def test_pcgrad_with_xla(tmp_path):
    """PCGrad (random orders inside the compiled step) learns under XLA."""
    model, history = fit("pcgrad", jit_compile=True)
    assert model.jit_compile
    check_learning_and_logs("pcgrad", model, history)
    check_round_trip("pcgrad", model, tmp_path)


@pytest.mark.parametrize("name", ["pareto", "cagrad"])
def test_strategy_survives_keras_round_trip(trained, name, tmp_path):
    check_round_trip(name, trained[name][0], tmp_path)


def check_round_trip(name, model, tmp_path):
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.loss_weighting) is type(model.loss_weighting)
    assert loaded.loss_weighting.get_config() == model.loss_weighting.get_config()
    np.testing.assert_allclose(
        to_numpy(loaded.loss_weighting.task_weights),
        to_numpy(model.loss_weighting.task_weights),
    )
    if name != "pcgrad":  # (PCGrad's are 1 after a step without conflict)
        assert loaded.loss_weighting.weights_in_force() != {"a": 1.0, "b": 1.0}


def test_configs_round_trip():
    for strategy in [
        ParetoWeighting(bounds={"a": 0.2}, iterations=50, shared_layer="bottom"),
        PCGrad(seed=3),
        CAGrad(c=0.3, rescale=False, iterations=40),
    ]:
        config = keras.saving.serialize_keras_object(strategy)
        again = keras.saving.deserialize_keras_object(config)
        assert type(again) is type(strategy)
        assert again.get_config() == strategy.get_config()


def test_pcgrad_at_all_shared_weights_embeddings_included():
    """`shared_layer="all"`: the gradients are taken at every weight the tasks
    share, an embedding table's (sparse on TensorFlow) included."""

    def _dense(g):
        if keras.backend.backend() == "tensorflow":  # IndexedSlices
            import tensorflow as tf

            g = tf.convert_to_tensor(g)
        return to_numpy(g)

    features = [*FEATURES, km.SparseFeature("c", vocabulary_size=20, embedding_dim=2)]
    strategy = PCGrad(shared_layer="all")
    keras.utils.set_random_seed(3)
    model = km.build_shared_bottom(
        features,
        TASKS,
        hidden_units=(8,),
        tower_units=(),
        compile={"loss_weighting": strategy},
    )
    data = conflicting_data(64, seed=3)
    x = {"x": data["x"], "c": np.arange(64) % 20}
    y = {"a": data["a"], "b": data["b"]}
    shared = strategy.shared_weights(model)
    assert [w.path.split("/")[0] for w in shared] == [
        "feature_encoder",
        "bottom",
        "bottom",
    ]
    result = task_gradients(
        model, x, y, None, shared, strategy.common_weights(model), step=True
    )
    g1, g2 = (
        np.concatenate([np.ravel(_dense(g)) for g in grads])
        for grads in result.task_gradients
    )
    dot = g1 @ g2
    assert dot < 0  # (the start was chosen so that they conflict)
    want = [1 - dot / (g1 @ g1), 1 - dot / (g2 @ g2)]
    np.testing.assert_allclose(to_numpy(result.step_weights), want, rtol=1e-4)


def test_a_strategy_needing_gradients_must_say_where_they_are_taken():
    class Homemade(km.weighting.LossWeighting):
        needs_task_gradients = True

    with pytest.raises(TypeError, match="Homemade sets needs_task_gradients"):
        model_for(Homemade())
