"""Per-task feature selection (`feature_selection=True`): each task finds its own
features, `feature_weights` tables them, and every shared-input builder wires it.
The layer is tested in tests/layers/test_feature_selection.py; the builder
battery runs MMoE and SNR with it (test_builders.py VARIANTS)."""

import keras
import numpy as np
import pytest

import keras_mtl as km

#: Eight standard-normal features: task a reads x0-x2, task b x3-x5, none x6-x7.
NAMES = [f"x{i}" for i in range(8)]
FEATURES = [km.DenseFeature(name) for name in NAMES]
TASKS = [km.Task("a", "regression"), km.Task("b", "regression")]


def _data(n, seed=0):
    x = np.random.default_rng(seed).normal(size=(n, len(NAMES))).astype("float32")
    features = {name: x[:, i] for i, name in enumerate(NAMES)}
    return features, {"a": x[:, :3].sum(1), "b": x[:, 3:6].sum(1)}


@pytest.fixture(scope="module")
def trained():
    """An MMoE with feature selection, trained a few epochs (a few seconds).
    (Each task's top three were its own, every other feature below 1, for
    seeds 0-7 of data and weights; 0-3 also compiled with XLA.)"""
    keras.utils.set_random_seed(0)
    model = km.build_mmoe(
        FEATURES,
        TASKS,
        num_experts=4,
        expert_units=(16,),
        feature_selection=True,
        # (no XLA: compiling costs more than these 96 steps)
        compile={"learning_rate": 0.03, "jit_compile": False},
    )
    x, y = _data(2048)
    model.fit(x, y, epochs=6, batch_size=128, verbose=0)
    return model, _data(512, seed=1)[0]


def test_each_task_selects_its_own_three_features(trained):
    model, x = trained
    table = km.feature_weights(model, x)["feature_selection"]
    top = {task: set(table[task].nlargest(3).index) for task in ("a", "b")}
    assert top == {"a": {"x0", "x1", "x2"}, "b": {"x3", "x4", "x5"}}, table
    # Its own features above average, every feature of the other task below.
    assert table.loc[["x0", "x1", "x2"], "a"].min() > 1.0
    assert table.loc[["x3", "x4", "x5"], "a"].max() < 1.0
    assert table.loc[["x3", "x4", "x5"], "b"].min() > 1.0
    assert table.loc[["x0", "x1", "x2"], "b"].max() < 1.0


def test_feature_weights_table(trained):
    model, x = trained
    tables = km.feature_weights(model, x, batch_size=100)
    assert list(tables) == ["feature_selection"]
    table = tables["feature_selection"]
    assert list(table.index) == NAMES and list(table.columns) == ["a", "b"]
    assert (table.to_numpy() >= 0).all()
    # Every example's weights average 1 over the features, so their means do.
    np.testing.assert_allclose(table.mean(axis=0), 1.0, rtol=1e-5)
    # The per-example weights, averaged by hand, are the table.
    layer = model.get_layer("feature_selection")
    encoded = keras.Model(model.inputs, layer.input).predict(x, verbose=0)
    by_hand = np.asarray(layer.field_weights(encoded)).mean(0).T
    np.testing.assert_allclose(table.to_numpy(), by_hand, rtol=1e-5)
    # The experts' gates still read (one view per task).
    gates = km.gate_weights(model, x)["experts"]
    np.testing.assert_allclose(gates.sum(axis=0), 1.0, atol=1e-5)


def test_plot_feature_weights_draws_tasks_by_features(trained):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, x = trained
    tables = km.feature_weights(model, x)
    fig = km.plot_feature_weights(tables, title="MMoE")
    (panel,) = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert panel.get_title() == "feature_selection"
    assert [t.get_text() for t in panel.get_yticklabels()] == ["a", "b"]
    assert [t.get_text() for t in panel.get_xticklabels()] == NAMES
    np.testing.assert_allclose(
        panel.images[0].get_array(), tables["feature_selection"].to_numpy().T
    )
    assert fig._suptitle.get_text() == "MMoE"
    plt.close(fig)


def test_feature_weights_needs_a_selection():
    model = km.build_shared_bottom(FEATURES, TASKS, hidden_units=(4,))
    with pytest.raises(ValueError, match="no FeatureSelection layer.*feature_selec"):
        km.feature_weights(model, _data(8)[0])


MIXED = [
    km.SparseFeature("user", vocabulary_size=20, embedding_dim=3),
    km.DenseFeature("age", mean=40.0, std=12.0),
    km.SparseFeature("tags", vocabulary_size=9, embedding_dim=2, max_len=3),
    km.DenseFeature("gain", allow_missing=True),
]
MIXED_X = {
    "user": np.array([1, 5, 19, -1]),
    "age": np.array([20.0, 35.0, 50.0, 65.0], "float32"),
    "tags": np.array([[1, 2, -1], [3, -1, -1], [-1, -1, -1], [8, 8, 8]]),
    "gain": np.array([0.5, np.nan, 2.0, 1.0], "float32"),
}
SMALL = {
    "mmoe": dict(num_experts=2, expert_units=(4,)),
    "omoe": dict(num_experts=2, expert_units=(4,)),
    "cgc": dict(num_task_experts=1, num_shared_experts=1, expert_units=(4,)),
    "ple": dict(num_task_experts=1, num_shared_experts=1, expert_units=(4,)),
    "shared_bottom": dict(hidden_units=(4,)),
    "snr": dict(num_subnetworks=(2, 2), subnetwork_units=(4,)),
}
#: The selections each builder makes: one per task, the OMoE gate's, CGC/PLE's
#: shared experts'.
SELECTIONS = {
    "mmoe": ["a", "b"],
    "omoe": ["shared"],
    "cgc": ["a", "b", "shared"],
    "ple": ["a", "b", "shared"],
    "shared_bottom": ["a", "b"],
    "snr": ["a", "b"],
}


@pytest.mark.parametrize("name", sorted(SMALL))
def test_selection_starts_as_the_model_without_it(name):
    """Every weight starts at 1, so with the other weights copied over, the
    model with selection predicts what the model without it does: the views
    are wired where the one input was."""
    plain = km.models.build_model(name, MIXED, TASKS, compile=False, **SMALL[name])
    select = km.models.build_model(
        name, MIXED, TASKS, compile=False, feature_selection=True, **SMALL[name]
    )
    layer = select.get_layer("feature_selection")
    assert list(layer.selection_names) == SELECTIONS[name]
    # One field per feature, in the encoder's order (by width, then dense).
    assert list(layer.field_names) == ["user", "tags", "age", "gain"]
    assert list(layer.field_dims) == [3, 2, 1, 1]
    for plain_layer in plain.layers:
        select.get_layer(plain_layer.name).set_weights(plain_layer.get_weights())
    x = {k: keras.ops.convert_to_tensor(v) for k, v in MIXED_X.items()}
    want, got = plain(x), select(x)
    for task in ("a", "b"):
        np.testing.assert_allclose(np.asarray(got[task]), np.asarray(want[task]), 1e-5)
    # SNR's routings run once per task, each with l0_weight / T: the same total.
    penalty = [sum(float(v) for v in m.losses) for m in (plain, select)]
    assert penalty[1] == pytest.approx(penalty[0], rel=1e-6)
    assert (penalty[0] > 0) == (name == "snr")
    # Layers for one task's view only: the selection's weights are all it adds.
    extra = sum(int(np.prod(w.shape)) for w in layer.weights)
    assert select.count_params() == plain.count_params() + extra


@pytest.mark.parametrize(
    "builder",
    [
        km.build_mmoe,
        km.build_omoe,
        km.build_ple,
        km.build_cgc,
        km.build_shared_bottom,
        km.build_snr,
    ],
)
def test_feature_selection_must_be_a_bool(builder):
    # "no" or 1 would silently switch selection on (truthy) or off.
    name = builder.__name__
    with pytest.raises(
        ValueError, match=rf"^{name}: feature_selection must be a bool, got 'no'\.$"
    ):
        builder(FEATURES, TASKS, feature_selection="no", compile=False)
