"""Every builder: shapes, learning on tf.data, .keras round trip, serving parity."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from tests.helpers import assert_outputs_close, reload_in_fresh_process

FEATURES = [
    km.SparseFeature("occupation", vocabulary_size=50, embedding_dim=4),
    km.SparseFeature("history", vocabulary_size=200, embedding_dim=8, max_len=6),
    km.SparseFeature("city", vocabulary=("paris", "rome", "oslo"), embedding_dim=3),
    km.DenseFeature("age", mean=40.0, std=12.0),
    km.DenseFeature("capital_gains", allow_missing=True),
]
TASKS = [km.Task("income", "binary"), km.Task("spend", "regression", missing_value=-1)]

#: Weight of the L2-constrained model's coupling penalty in these tests.
COUPLING = 1e-3
#: Builders whose models have no gates.
UNGATED = ("shared_bottom", "cross_stitch", "l2_constrained", "single_task")
BUILDERS = {
    "shared_bottom": lambda f, t, **kw: km.build_shared_bottom(
        f, t, bottom_units=(16,), tower_units=(8,), **kw
    ),
    "mmoe": lambda f, t, **kw: km.build_mmoe(
        f, t, num_experts=4, expert_units=(8,), tower_units=(8,), **kw
    ),
    "omoe": lambda f, t, **kw: km.build_omoe(
        f, t, num_experts=4, expert_units=(8,), tower_units=(8,), **kw
    ),
    "cross_stitch": lambda f, t, **kw: km.build_cross_stitch(
        f, t, hidden_units=(16, 8), tower_units=(8,), **kw
    ),
    "l2_constrained": lambda f, t, **kw: km.build_l2_constrained(
        f, t, hidden_units=(16, 8), tower_units=(8,), coupling=COUPLING, **kw
    ),
    "single_task": lambda f, t, **kw: km.build_single_task(
        f, t, hidden_units=(16, 8), tower_units=(8,), **kw
    ),
    "cgc": lambda f, t, **kw: km.build_cgc(
        f, t, num_shared_experts=2, num_task_experts=1, expert_units=(8,), **kw
    ),
    "ple": lambda f, t, **kw: km.build_ple(
        f,
        t,
        num_levels=2,
        num_shared_experts=(2, 1),
        num_task_experts=1,
        expert_units=[(8,), (6,)],
        tower_units=(8,),
        **kw,
    ),
}


def make_data(n=3000, seed=0):
    """Labels that the features explain: income from occupation parity and age,
    spend from the history ids; a third of the spend labels are missing."""
    rng = np.random.default_rng(seed)
    occupation = rng.integers(0, 50, n)
    lengths = rng.integers(0, 7, n)
    history = [rng.integers(0, 200, k).tolist() for k in lengths]
    age = rng.normal(40, 12, n).astype("float32")
    gains = np.where(rng.random(n) < 0.3, np.nan, rng.random(n)).astype("float32")
    income = ((occupation % 2 == 0) | (age > 60)).astype("float32")
    spend = np.array([sum(h) / 200.0 for h in history], "float32")
    spend[rng.random(n) < 0.33] = -1
    return {
        "occupation": occupation,
        "history": history,
        "city": rng.choice(["paris", "rome", "oslo", "lima"], n).astype(object),
        "age": age,
        "capital_gains": gains,
        "income": income,
        "spend": spend,
    }


def features_only(data, rows=slice(None)):
    from keras_mtl.data import make_dataset

    ds = make_dataset(
        {k: data[k][rows] if k != "history" else data[k][rows] for k in data},
        FEATURES,
        None,
        batch_size=10_000,
        shuffle=False,
    )
    return next(iter(ds))


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module", params=sorted(BUILDERS))
def trained(request, data, tmp_path_factory):
    from keras_mtl.data import make_dataset

    keras.utils.set_random_seed(0)
    model = BUILDERS[request.param](FEATURES, TASKS, compile={"learning_rate": 0.01})
    ds = make_dataset(data, FEATURES, TASKS, batch_size=256, seed=0)
    history = model.fit(ds, epochs=12, verbose=0)
    return request.param, model, history


def test_outputs_are_a_dict_keyed_by_task(trained, data):
    _, model, _ = trained
    assert sorted(model.output) == ["income", "spend"]
    assert sorted(i.name for i in model.inputs) == sorted(f.name for f in FEATURES)
    out = model.predict(features_only(data, slice(0, 7)), verbose=0)
    assert {k: v.shape for k, v in out.items()} == {"income": (7,), "spend": (7,)}
    assert ((out["income"] >= 0) & (out["income"] <= 1)).all()


def test_fit_learns_both_tasks(trained):
    _, _, history = trained
    h = history.history
    assert h["income_auc"][-1] > 0.9, h["income_auc"]
    assert h["spend_mse"][-1] < 0.5 * h["spend_mse"][0], h["spend_mse"]
    assert all(np.isfinite(h["loss"]))


def test_keras_round_trip(trained, data, tmp_path):
    name, model, _ = trained
    x = features_only(data, slice(0, 64))
    path = tmp_path / f"{name}.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert_outputs_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # The compile config (masked losses, metrics, loss weights) survives too.
    assert type(loaded.loss["spend"]).__name__ == "MaskedMeanSquaredError"


def test_export_parity_in_fresh_process(trained, data, tmp_path):
    name, model, _ = trained
    x = features_only(data, slice(0, 50))
    path = km.export_saved_model(model, tmp_path / name)
    assert path == tmp_path / name / "1"
    served = reload_in_fresh_process(path, {k: np.asarray(v) for k, v in x.items()})
    expected = model.predict(x, verbose=0)
    assert sorted(served) == ["income", "spend"]
    for task in expected:
        np.testing.assert_allclose(served[task], expected[task], atol=1e-5)


def test_gate_weights(trained, data):
    name, model, _ = trained
    x = features_only(data, slice(0, 500))
    if name in UNGATED:
        with pytest.raises(ValueError, match="no MixtureOfExperts"):
            km.gate_weights(model, x)
        return
    tables = km.gate_weights(model, x)
    expected = {
        "mmoe": {"experts": ["income", "spend"]},
        "omoe": {"experts": ["shared"]},
        "cgc": {"cgc": ["income", "spend"]},
        "ple": {
            "level_1": ["income", "spend", "shared"],
            "level_2": ["income", "spend"],
        },
    }[name]
    assert {k: list(v.columns) for k, v in tables.items()} == expected
    for table in tables.values():
        np.testing.assert_allclose(table.sum(axis=0), 1.0, atol=1e-5)
    if name in ("cgc", "ple"):
        level = tables["cgc" if name == "cgc" else "level_2"]
        # A task gate cannot select another task's experts: exactly 0 there.
        shared = ["shared_0", "shared_1"] if name == "cgc" else ["shared_0"]
        assert list(level.index) == ["income_0", "spend_0", *shared]
        assert level.loc["spend_0", "income"] == 0.0
        assert level.loc["income_0", "spend"] == 0.0
        assert level.loc["income_0", "income"] > 0.0
    else:
        assert list(tables["experts"].index) == [f"expert_{i}" for i in range(4)]


def test_all_missing_batch_trains_without_nan():
    model = km.build_mmoe(FEATURES, TASKS, num_experts=2, expert_units=(4,))
    data = make_data(64)
    data["spend"][:] = -1  # no spend label at all
    data["income"][:] = np.nan  # and no income label
    from keras_mtl.data import make_dataset

    before = [np.array(w) for w in model.trainable_weights]
    logs = model.fit(make_dataset(data, FEATURES, TASKS, batch_size=64), verbose=0)
    assert logs.history["loss"] == [0.0]
    for a, w in zip(before, model.trainable_weights):
        np.testing.assert_array_equal(a, np.array(w))  # zero gradient everywhere


def test_loss_weight_zero_freezes_that_tower():
    tasks = [km.Task("income"), km.Task("spend", "regression", loss_weight=0.0)]
    model = km.build_shared_bottom(FEATURES, tasks, compile={"learning_rate": 0.01})
    from keras_mtl.data import make_dataset

    tower = model.get_layer("spend_tower")
    before = [np.array(w) for w in tower.trainable_weights]
    data = make_data(256)
    model.fit(make_dataset(data, FEATURES, tasks, batch_size=64), verbose=0)
    for a, w in zip(before, tower.trainable_weights):
        np.testing.assert_array_equal(a, np.array(w))
    moved = model.get_layer("income_tower").trainable_weights[0]
    assert not np.allclose(np.array(moved), 0)


def test_xla_is_on_unless_a_lookup_needs_strings():
    with_strings = km.build_mmoe(FEATURES, TASKS)
    ints_only = km.build_mmoe([f for f in FEATURES if f.name != "city"], TASKS)
    assert with_strings.jit_compile is False
    assert ints_only.jit_compile is True


def test_missing_feature_in_predict_is_named():
    model = km.build_shared_bottom(FEATURES, TASKS)
    x = {k: v for k, v in features_only(make_data(8)).items() if k != "age"}
    with pytest.raises(ValueError, match='"age"'):
        model.predict(x, verbose=0)


def test_compile_rejects_unknown_task():
    model = km.build_shared_bottom(FEATURES, TASKS, compile=False)
    with pytest.raises(ValueError, match=r"\['clicks'\]"):
        km.compile_model(model, [km.Task("clicks")])


@pytest.mark.parametrize("name", sorted(BUILDERS))
def test_builders_reject_bad_specs(name):
    with pytest.raises(ValueError, match="unique"):
        BUILDERS[name](FEATURES + [km.DenseFeature("age")], TASKS)
    with pytest.raises(ValueError, match="At least one task"):
        BUILDERS[name](FEATURES, [])
