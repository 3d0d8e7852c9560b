"""Sluice networks: what the builder reduces to, what it learns, its errors.
Its layers are tested in tests/layers (test_subspace_stitch, test_layer_mixture,
test_parallel_dense's orthogonality); the builder battery (learning, .keras
round trip, serving parity, bad specs) runs for it with every flat builder in
test_builders.py."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from tests.helpers import value_and_gradients
from tests.models.test_builders import FEATURES, TASKS, features_only, make_data


@pytest.fixture(scope="module")
def data():
    return make_data(n=512)


def test_identity_alpha_and_last_layer_beta_are_separate_networks(data):
    """α = I and β one-hot on the last layer: each task's output is its own
    stack of layers, untouched by the other tasks' weights."""
    model = km.build_sluice(FEATURES, TASKS, hidden_units=(8, 8), compile=False)
    for k in (1, 2):
        model.get_layer(f"sluice_{k}").alpha.assign(np.eye(4, dtype="float32"))
    for task in TASKS:
        model.get_layer(f"layer_weights_{task.name}").beta.assign([0.0, 1.0])
    x = features_only(data, slice(0, 16))
    got = model(x)
    encoded = model.get_layer("feature_encoder")(x)
    h1 = model.get_layer("hidden_1")(encoded)
    h2 = model.get_layer("hidden_2")(h1)  # branch t reads branch t
    for t, task in enumerate(TASKS):
        want = model.get_layer(f"{task.name}_tower")(h2[t])
        np.testing.assert_allclose(np.asarray(got[task.name]), np.asarray(want), 1e-5)
    # No gradient from task 0's output reaches task 1's branch.
    kernel = model.get_layer("hidden_2").kernel
    _, (grad,) = value_and_gradients(
        lambda: keras.ops.sum(model(x)[TASKS[0].name]), variables=[kernel]
    )
    assert np.abs(grad[0]).sum() > 0 and np.abs(grad[1]).sum() == 0


def test_alpha_beta_learn_and_the_penalty_is_in_the_loss(data):
    model = km.build_sluice(FEATURES, TASKS, hidden_units=(8, 8), orthogonality=0.1)
    alpha = model.get_layer("sluice_1").weights_matrix.copy()
    beta = model.get_layer("layer_weights_spend").layer_weights.copy()
    x = features_only(data)
    y = {"income": data["income"], "spend": data["spend"]}
    model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    assert not np.allclose(model.get_layer("sluice_1").weights_matrix, alpha)
    assert not np.allclose(model.get_layer("layer_weights_spend").layer_weights, beta)
    penalties = [model.get_layer(f"hidden_{k}").orthogonality_penalty() for k in (1, 2)]
    model(features_only(data, slice(0, 4)))
    assert float(sum(model.losses)) == pytest.approx(
        0.1 * float(sum(penalties)), rel=1e-5
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_units": (8, 4)}, "hidden_units must be equal widths"),
        ({"hidden_units": (9,), "num_subspaces": 2}, "multiple of num_subspaces=2"),
        ({"num_subspaces": 1, "orthogonality": 0.1}, "needs num_subspaces=2"),
        ({"orthogonality": -1.0}, "orthogonality"),
        ({"self_weight": 2.0}, "build_sluice: self_weight must be a float in"),
        ({"last_layer_weight": -1}, "build_sluice: last_layer_weight"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        km.build_sluice(FEATURES, TASKS, **kwargs)
