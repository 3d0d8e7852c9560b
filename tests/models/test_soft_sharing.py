"""Cross-stitch, L2-constrained and single-task builders: what each one shares.
The builder battery (shapes, learning, .keras round trip, serving parity, bad
specs) runs for them with every flat builder in test_builders.py."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.models.cross_stitch import build_cross_stitch
from keras_mtl.models.l2_constrained import build_l2_constrained
from tests.helpers import value_and_gradients
from tests.models.test_builders import (
    COUPLING,
    FEATURES,
    TASKS,
    build,
    features_only,
    make_data,
)

SOFT_SHARING = ("cross_stitch", "l2_constrained", "single_task")


@pytest.fixture(scope="module")
def data():
    return make_data()


def _task_of(path):
    owners = [t.name for t in TASKS if path.startswith(f"{t.name}_")]
    assert len(owners) == 1, path
    return owners[0]


def test_single_task_shares_no_variable(data):
    model = build("single_task", FEATURES, TASKS)
    variables = model.trainable_variables
    owner = {v.path: _task_of(v.path) for v in variables}
    for task in TASKS:  # each task has its own embeddings, hidden layers and tower
        assert any(p.startswith(f"{task.name}_feature_encoder/") for p in owner)
        assert any(p.startswith(f"{task.name}_hidden/") for p in owner)
        assert any(p.startswith(f"{task.name}_tower/") for p in owner)
    # One task's output does not depend on any variable of another task.
    x = features_only(data, slice(0, 32))
    for task in TASKS:
        # Unconnected gradients are None on TensorFlow, zeros on JAX: not zero
        # is what depends.
        _, grads = value_and_gradients(
            lambda name=task.name: keras.ops.sum(model(x)[name]), variables=variables
        )
        grads = dict(zip(owner, grads))
        foreign = [p for p, g in grads.items() if owner[p] != task.name and np.any(g)]
        assert foreign == [], (task.name, foreign)
        own = [p for p, g in grads.items() if owner[p] == task.name and np.any(g)]
        assert any(p.startswith(f"{task.name}_feature_encoder/") for p in own)
        assert any(p.startswith(f"{task.name}_hidden/") for p in own)


def test_l2_penalty_is_in_the_loss(data):
    model = build("l2_constrained", FEATURES, TASKS)
    x = features_only(data, slice(0, 16))
    model(x)  # model.losses holds the terms of the last call
    penalty = sum(
        float(model.get_layer(f"hidden_{i}").coupling_penalty()) for i in (1, 2)
    )
    assert penalty > 0
    # One term per hidden layer; the towers are not coupled.
    assert len(model.losses) == 2
    assert sum(float(t) for t in model.losses) == pytest.approx(
        COUPLING * penalty, rel=1e-5
    )
    ds = make_dataset(make_data(512, seed=3), FEATURES, TASKS, batch_size=512)
    logs = model.evaluate(ds, verbose=0, return_dict=True)
    extra = logs["loss"] - logs["income_loss"] - logs["spend_loss"]
    assert extra == pytest.approx(COUPLING * penalty, rel=1e-3)


def test_l2_coupling_is_per_task_hidden_layers():
    model = build_l2_constrained(
        FEATURES, TASKS + [km.Task("third")], hidden_units=(6,), coupling=0.5
    )
    layer = model.get_layer("hidden_1")
    assert (layer.num_branches, layer.units, layer.coupling) == (3, 6, 0.5)
    assert tuple(layer.kernel.shape)[::2] == (3, 6)


def test_cross_stitch_alpha_is_learned(data):
    keras.utils.set_random_seed(0)
    model = build("cross_stitch", FEATURES, TASKS, compile={"learning_rate": 0.01})
    model.fit(make_dataset(data, FEATURES, TASKS, 256, seed=0), epochs=8, verbose=0)
    for i in (1, 2):
        layer = model.get_layer(f"cross_stitch_{i}")
        start = layer.initial_matrix(2)
        np.testing.assert_allclose(start, [[0.9, 0.1], [0.1, 0.9]], rtol=1e-6)
        assert np.abs(layer.weights_matrix - start).max() > 0.01, layer.weights_matrix


@pytest.mark.parametrize("name", SOFT_SHARING)
def test_one_task_builds(name):
    model = build(name, FEATURES, TASKS[:1], compile=False)
    out = model(features_only(make_data(5)))
    assert list(out) == ["income"] and tuple(out["income"].shape) == (5,)


@pytest.mark.parametrize("builder", [build_cross_stitch, build_l2_constrained])
def test_hidden_units_must_not_be_empty(builder):
    with pytest.raises(ValueError, match=f"{builder.__name__}: hidden_units"):
        builder(FEATURES, TASKS, hidden_units=())


def test_dropout_layers_follow_hidden_layers():
    model = build_cross_stitch(FEATURES, TASKS, hidden_units=(4,), hidden_dropout=0.5)
    assert model.get_layer("dropout_1").rate == 0.5
    with pytest.raises(ValueError, match="build_l2_constrained: hidden_dropout"):
        build_l2_constrained(FEATURES, TASKS, hidden_dropout=1.0)
