"""Task hierarchy (JMT): one level is the shared bottom, each level reads the
input, the level below and the lower tasks' label embeddings, successive
regularisation on the levels below the top, and the `levels` checks. Its layers
are tested in tests/layers/test_label_embedding.py and
test_successive_regularization.py; the builder battery (learning, .keras round
trip, serving parity, bad specs) runs for it in test_builders.py."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from tests.models.test_builders import BATTERY_TASKS, FEATURES, features_only, make_data

#: income (binary), spend (regression), segment (multiclass, 3 classes).
TASKS = BATTERY_TASKS


@pytest.fixture(scope="module")
def data():
    return make_data(n=128)


@pytest.fixture(scope="module")
def x(data):
    return features_only(data, slice(0, 16))


def _numpy(outputs: dict) -> dict:
    return {k: keras.ops.convert_to_numpy(v) for k, v in outputs.items()}


def test_one_level_is_the_shared_bottom(x):
    """Every task at depth 1: the same layers and weights as
    `build_shared_bottom`, so the same weights give the same outputs."""
    levels = {"income": 1, "spend": 1, "segment": 1}
    hierarchy = km.build_hierarchy(
        FEATURES, TASKS, levels=levels, hidden_units=(16,), compile=False
    )
    bottom = km.build_shared_bottom(FEATURES, TASKS, hidden_units=(16,), compile=False)
    kinds = [type(layer).__name__ for layer in hierarchy.layers]
    assert kinds == [type(layer).__name__ for layer in bottom.layers]
    assert [w.shape for w in hierarchy.weights] == [w.shape for w in bottom.weights]
    before = _numpy(hierarchy(x))
    hierarchy.set_weights(bottom.get_weights())
    got, want = _numpy(hierarchy(x)), _numpy(bottom(x))
    assert sorted(got) == ["income", "segment", "spend"]
    for task in got:
        np.testing.assert_array_equal(got[task], want[task])
    assert not np.allclose(before["spend"], want["spend"])  # the weights mattered
    assert hierarchy.losses == []  # a single level: nothing to regularise


def test_each_level_reads_the_input_the_level_below_and_the_lower_labels(x):
    levels = {"spend": 1, "segment": 2, "income": 3}
    model = km.build_hierarchy(
        FEATURES, TASKS, levels=levels, hidden_units=(6,), label_dim=4, compile=False
    )
    names = [
        "feature_encoder",
        "level_1_hidden",
        "level_2_hidden",
        "spend_tower",
        "segment_tower",
        "level_2_input",
        "level_3_input",
    ]
    probe = keras.Model(model.input, {n: model.get_layer(n).output for n in names})
    v = _numpy(probe(x))
    ell_spend = np.asarray(model.get_layer("spend_label_embedding").embeddings)
    ell_segment = np.asarray(model.get_layer("segment_label_embedding").embeddings)
    assert ell_spend.shape == (1, 4) and ell_segment.shape == (3, 4)
    y_spend = v["spend_tower"][:, None] * ell_spend  # ŷ · ℓ
    y_segment = v["segment_tower"] @ ell_segment  # Σ_j p(j) ℓ(j)
    x_ = v["feature_encoder"]
    np.testing.assert_allclose(
        v["level_2_input"],
        np.concatenate([x_, v["level_1_hidden"], y_spend], axis=1),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        v["level_3_input"],
        np.concatenate([x_, v["level_2_hidden"], y_spend + y_segment], axis=1),
        atol=1e-6,
    )
    assert "income_label_embedding" not in [layer.name for layer in model.layers]


def test_default_levels_follow_the_task_order():
    # What the CLI builds: the registered builder with default arguments.
    model = km.models.build_model("hierarchy", FEATURES, TASKS)
    layers = {layer.name: layer for layer in model.layers}
    for depth, task in enumerate(["income", "spend", "segment"], start=1):
        assert layers[f"{task}_tower"].input is layers[f"level_{depth}_hidden"].output
    assert "level_4_hidden" not in layers
    assert "segment_label_embedding" not in layers  # nothing above the top
    width = layers["feature_encoder"].output.shape[-1]  # 17
    # x, h (hidden_units=(32,)) and the label embeddings (label_dim=8)
    assert layers["level_2_input"].output.shape == (None, width + 32 + 8)


def test_successive_regularisation_pulls_towards_the_first_snapshot(data):
    """refresh_every larger than the steps: the snapshot stays at the initial
    weights, and the penalty is δ ‖θ − θ₀‖² over each level below the top."""
    delta = 0.01
    model = km.build_hierarchy(
        FEATURES,
        TASKS,
        levels={"segment": 1, "income": 2, "spend": 2},
        hidden_units=(8,),
        successive_weight=delta,
        refresh_every=1000,
        compile={"learning_rate": 0.05},
    )
    level = model.get_layer("level_1_hidden")
    assert isinstance(level, km.layers.SuccessiveRegularization)
    assert isinstance(model.get_layer("level_2_hidden"), km.layers.MLP)  # the top
    start = [np.array(w) for w in level.layer.trainable_weights]
    ds = make_dataset(data, FEATURES, TASKS, batch_size=32, shuffle=False)
    model.fit(ds, epochs=1, verbose=0)
    assert int(level.calls) == 4  # one per step
    for w0, anchor in zip(start, level.snapshot):
        np.testing.assert_array_equal(np.array(anchor), w0)
    moved = sum(
        float(np.sum((np.array(w) - w0) ** 2))
        for w, w0 in zip(level.layer.trainable_weights, start)
    )
    assert moved > 0
    model(features_only(data, slice(0, 4)))
    (penalty,) = model.losses
    assert float(penalty) == pytest.approx(delta * moved, rel=1e-5)


def test_zero_successive_weight_adds_nothing(x):
    model = km.build_hierarchy(FEATURES, TASKS, successive_weight=0.0, compile=False)
    assert all(
        isinstance(model.get_layer(f"level_{k}_hidden"), km.layers.MLP)
        for k in (1, 2, 3)
    )
    model(x)
    assert model.losses == []


@pytest.mark.parametrize(
    "levels, match",
    [
        ([1, 2, 3], r"levels must be a dict \{task name: depth\}"),
        (
            {"income": 1, "spend": 1, "segment": 1, "clicks": 2},
            r"levels names unknown task\(s\) \['clicks'\]",
        ),
        (
            {"income": 1, "spend": 2},
            r"levels gives no depth for task\(s\) \['segment'\]",
        ),
        (
            {"income": 0, "spend": 1, "segment": 1},
            r"levels\['income'\] must be a positive int, got 0",
        ),
        (
            {"income": 1, "spend": 1.5, "segment": 1},
            r"levels\['spend'\] must be a positive int, got 1.5",
        ),
        (
            {"income": 1, "spend": 3, "segment": 3},
            r"levels leave depth\(s\) \[2\] without a task",
        ),
    ],
)
def test_bad_levels_are_named(levels, match):
    with pytest.raises(ValueError, match="build_hierarchy: " + match):
        km.build_hierarchy(FEATURES, TASKS, levels=levels)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"hidden_units": ()}, "hidden_units must hold a non-empty"),
        ({"label_dim": 0}, "label_dim must be a positive int"),
        ({"successive_weight": -1.0}, "successive_weight must be a finite number"),
        ({"refresh_every": 0}, "refresh_every must be a positive int"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match="build_hierarchy: " + match):
        km.build_hierarchy(FEATURES, TASKS, **kwargs)
