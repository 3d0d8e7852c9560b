"""build_dupn through the builder battery, its feature roles, the serving
split and warm starts."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.datasets.movielens import load_movielens
from tests.helpers import BuilderBattery, assert_outputs_close, assert_signature_shows
from tests.movielens_fixture import write_movielens

SMALL = dict(units=16, attention_units=8, profile_units=8, tower_units=(8,))


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    path = write_movielens(tmp_path_factory.mktemp("ml"), num_users=40, num_items=60)
    return load_movielens(path, max_len=8, list_size=5, item_hash_bins=128)


def build(ml, **kwargs):
    """DUPN on MovieLens's one feature list; hour and weekday are the query."""
    return km.build_dupn(ml.features, ml.tasks, query=ml.query, **{**SMALL, **kwargs})


def batch(ml, rows, n=64):
    data = {k: v[:n] for k, v in rows.items()}
    return next(iter(make_dataset(data, ml.features, None, n, shuffle=False)))


@pytest.fixture(scope="module")
def battery(movielens, tmp_path_factory):
    case = dict(
        build=lambda **kw: build(movielens, **kw),
        features=movielens.features,
        tasks=movielens.tasks,
        data=movielens.train,
        batch_size=128,
        epochs=4,
        # 4 epochs on this 40-user fixture lower the loss by 9.5-10% depending on
        # the hash function and optimizer (measured); weights that do not move
        # keep it flat.
        min_loss_drop=0.08,
    )
    return BuilderBattery({"dupn": case}, tmp_path_factory.mktemp("dupn"))


@pytest.fixture(scope="module")
def trained(battery):
    return battery.run("dupn").model


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The trained model's three SavedModels, version 1."""
    base = tmp_path_factory.mktemp("dupn_export")
    return base, km.export_dupn(trained, base)


@pytest.mark.xla
def test_battery_and_outputs_per_task(battery, movielens):
    model = battery.run("dupn").model  # ctr (64,), l2r (64, 5), genre sums to 1
    assert sorted(model.output) == ["ctr", "genre", "l2r"]
    assert model.get_layer("user_representation").output.shape == (None, 16 + 8)
    assert isinstance(model.get_layer("ctr_head"), km.layers.CandidateScorer)
    assert isinstance(model.get_layer("genre_head"), km.layers.TaskTower)
    # The hashed movie ids take the integer-hash path: XLA on; the item tables
    # are marked for row-wise updates, which "auto" leaves to tables of at
    # least AUTO_MIN_TABLE_SIZE elements (these 128 rows keep exact Adam).
    assert model.jit_compile
    assert type(model.optimizer) is keras.optimizers.Adam
    item_tables = model.get_layer("item_embedding").tables
    assert item_tables and all(km.optimizers.is_table(t) for t in item_tables)


def test_feature_roles_follow_the_rule(trained, movielens):
    """No keyword but query=: the sequence with properties is the history, the
    one without is the candidate list, the item fields are the target item, the
    remaining flat features are the profile."""
    for layer, names in [
        ("profile_encoder", ["gender", "age", "occupation"]),
        ("query_encoder", ["hour", "weekday"]),
    ]:
        assert [f.name for f in trained.get_layer(layer).features] == names
    explicit = km.build_dupn(
        movielens.features,
        movielens.tasks,
        history="history",
        candidates=movielens.candidates,
        query=["hour", "weekday"],
        compile=False,
        **SMALL,
    )
    assert sorted(explicit.input) == sorted(trained.input)
    assert [layer.name for layer in explicit.layers] == [
        layer.name for layer in trained.layers
    ]


def test_padded_steps_change_nothing(trained, movielens):
    model = trained
    x = {k: np.asarray(v) for k, v in batch(movielens, movielens.train).items()}
    padded = x["history_item"] == -1
    assert padded.any()
    noisy = dict(x)
    for name in ("history_rating", "history_gap", "history_year"):
        noisy[name] = np.where(padded, 3, x[name])
    noisy["history_genres"] = np.where(padded[..., None], 2, x["history_genres"])
    assert_outputs_close(model(noisy), model(x), atol=1e-6)


def test_keras_round_trip_and_split_after_load(trained, movielens, tmp_path):
    model = trained
    x = batch(movielens, movielens.test)
    model.save(tmp_path / "dupn.keras")
    loaded = keras.saving.load_model(tmp_path / "dupn.keras")
    assert_outputs_close(loaded(x), model(x))
    encoder, scorer = km.dupn_serving_models(loaded)
    user = encoder({k: x[k] for k in encoder.input})
    out = scorer({**{k: x[k] for k in scorer.input if k in x}, **user})
    assert_outputs_close(out, model(x), atol=1e-5)
    # Splitting leaves every part savable, the full model included.
    values = {**x, **user}
    for part, m in (("full", loaded), ("scorer", scorer), ("encoder", encoder)):
        m.save(tmp_path / f"{part}.keras")
        again = keras.saving.load_model(tmp_path / f"{part}.keras")
        given = {k: values[k] for k in m.input}
        assert_outputs_close(again(given), m(given), atol=1e-6)


def test_split_inputs(trained):
    encoder, scorer = km.dupn_serving_models(trained)
    assert sorted(encoder.input) == sorted(
        ["age", "gender", "occupation", "hour", "weekday"]
        + [f"history_{f}" for f in ("item", "genres", "year", "rating", "gap")]
    )
    assert sorted(scorer.input) == sorted(
        ["user_representation", "item", "genres", "year"]
        + [f"candidates_{f}" for f in ("item", "genres", "year")]
    )
    assert list(encoder.output) == ["user_representation"]


@pytest.mark.slow  # a fresh Python that imports TensorFlow again
def test_serving_parity_in_fresh_process(battery, exported):
    """The serving contract, checked as TF Serving would, in ONE fresh process
    of plain TensorFlow that never imports keras_mtl: the battery's export
    equals predict, and the user encoder's output fed to the scorer gives the
    full model's outputs; saved_model_cli shows the three signatures."""
    built = battery.run("dupn")
    base, paths = exported
    assert {k: p.relative_to(base).as_posix() for k, p in paths.items()} == {
        "full": "full/1",
        "user_encoder": "user_encoder/1",
        "scorer": "scorer/1",
    }
    x = built.x
    encoder, scorer = km.dupn_serving_models(built.model)
    served = battery.check_serving(
        extra_calls=[
            {"dir": paths["full"], "inputs": x},
            {"dir": paths["user_encoder"], "inputs": {k: x[k] for k in encoder.input}},
            {
                "dir": paths["scorer"],
                "inputs": {k: x[k] for k in scorer.input if k in x},
                "refs": {"user_representation": (2, "user_representation")},
            },
        ]
    )
    own, full, user, scored = served
    for task in ("ctr", "l2r", "genre"):
        np.testing.assert_allclose(
            scored["outputs"][task], own["outputs"][task], atol=1e-5, rtol=0
        )
        np.testing.assert_allclose(
            full["outputs"][task], built.predicted[task], atol=1e-5, rtol=0
        )
    assert_signature_shows(full["signature"], built.model)
    assert_signature_shows(user["signature"], encoder)
    assert_signature_shows(scored["signature"], scorer)
    for expected in [
        # Histories of any length up to 8 steps (padded inside the graph).
        "inputs['history_item'] tensor_info:\n      dtype: DT_INT64\n      shape: "
        "(-1, -1)",
        "inputs['history_genres'] tensor_info:\n      dtype: DT_INT64\n      shape: "
        "(-1, -1, -1)",
        "outputs['user_representation'] tensor_info:\n      dtype: DT_FLOAT\n"
        "      shape: (-1, 24)",
    ]:
        assert expected in user["signature"], user["signature"]
    for expected in [
        "inputs['user_representation'] tensor_info:\n      dtype: DT_FLOAT\n"
        "      shape: (-1, -1)",
        "outputs['l2r'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 5)",
        "outputs['genre'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 19)",
    ]:
        assert expected in scored["signature"], scored["signature"]
    assert "history_item" not in scored["signature"]


def test_one_representation_scores_many_candidates(trained, movielens):
    """The deployment trick: encode the user once, tile the representation."""
    model = trained
    x = {k: np.asarray(v) for k, v in batch(movielens, movielens.test, 1).items()}
    encoder, scorer = km.dupn_serving_models(model)
    user = np.asarray(encoder({k: x[k] for k in encoder.input})["user_representation"])
    items = np.asarray(movielens.test["candidates_item"][0])
    genres = np.asarray(movielens.test["candidates_genres"][0])
    years = np.asarray(movielens.test["candidates_year"][0])
    n = len(items)
    tiled = {k: np.repeat(x[k], n, axis=0) for k in scorer.input if k in x}
    tiled.update(item=items, genres=genres, year=years)
    tiled["user_representation"] = np.repeat(user, n, axis=0)
    one_by_one = np.asarray(scorer(tiled)["ctr"])
    assert one_by_one.shape == (n,)
    # The ctr head on candidate j equals the full model asked about item j.
    for j in range(n):
        single = dict(x)
        single.update(item=items[j : j + 1], genres=genres[j : j + 1])
        single["year"] = years[j : j + 1]
        np.testing.assert_allclose(
            np.asarray(model(single)["ctr"]), one_by_one[j : j + 1], atol=1e-5
        )


@pytest.mark.slow  # export_dupn: three SavedModels
def test_warm_start_uses_the_exported_weights(trained, movielens, exported):
    model = trained
    x = batch(movielens, movielens.test)
    # Without XLA: compiling its train step for the one epoch below cost more
    # than the rest of the test; the battery trains DUPN with XLA.
    fresh = build(movielens, compile={"jit_compile": False})
    assert not np.allclose(fresh(x)["ctr"], model(x)["ctr"], atol=1e-3)
    report = km.warm_start(fresh, exported[0])  # the export directory: full/<latest>
    assert report == {"loaded": len(model.variables), "missing": 0}
    assert_outputs_close(fresh(x), model(x), atol=1e-6)
    # Training goes on from there, and unseen movie ids (hashed) are scored.
    data = make_dataset(movielens.val, movielens.features, movielens.tasks, 128)
    fresh.fit(data, epochs=1, verbose=0)
    unseen = {k: np.asarray(v) for k, v in x.items()}
    unseen["item"] = np.full_like(unseen["item"], 10**9)
    assert np.isfinite(np.asarray(fresh(unseen)["ctr"])).all()


def test_warm_start_from_keras_file(trained, movielens, tmp_path):
    model = trained
    x = batch(movielens, movielens.test)
    model.save(tmp_path / "day1.keras")
    fresh = build(movielens)
    km.warm_start(fresh, tmp_path / "day1.keras")
    assert_outputs_close(fresh(x), model(x), atol=1e-6)


@pytest.mark.slow  # export_dupn: three SavedModels
def test_warm_start_rejects_other_specs(movielens, exported):
    base, _ = exported
    wider = build(movielens, units=32)
    with pytest.raises(ValueError, match="shapes differ.*sequence_encoder"):
        km.warm_start(wider, base)
    with pytest.raises(FileNotFoundError, match="no SavedModel"):
        km.warm_start(wider, base / "user_encoder" / "1" / "variables")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        km.warm_start(wider, base / "yesterday")


@pytest.mark.filterwarnings("ignore:Gradients do not exist")  # mean: query unused
@pytest.mark.parametrize("cell, pooling", [("lstm", "attention"), ("none", "mean")])
def test_encoder_variants_train_with_a_listwise_loss(movielens, cell, pooling):
    import keras_rs

    listwise = {"l2r": keras_rs.losses.ListMLELoss(name="l2r_loss")}
    model = build(
        movielens,
        cell=cell,
        pooling=pooling,
        compile={"loss": listwise, "learning_rate": 0.01},
    )
    assert isinstance(model.loss["l2r"], keras_rs.losses.ListMLELoss)
    data = make_dataset(movielens.val, movielens.features, movielens.tasks, 256)
    logs = model.fit(data, epochs=3, verbose=0).history
    assert np.isfinite(logs["loss"]).all(), logs["loss"]
    # The listwise loss trains the scores: it falls every epoch (an untrained
    # or detached l2r head would keep it flat).
    curve = logs["l2r_loss"]
    assert curve[2] < curve[1] < curve[0] and curve[2] < 0.99 * curve[0], curve


@keras.saving.register_keras_serializable(package="tests")
class DotGenreHead(keras.layers.Layer):
    """A custom head: softmax of a linear map, no hidden layer."""

    def build(self, input_shape):
        self.dense = keras.layers.Dense(19, activation="softmax", name="dense")
        self.dense.build(input_shape)

    def call(self, user):
        return self.dense(user)


def test_custom_head_and_user_level_heads(movielens):
    """PPP / FIFP-style heads read the representation alone: no item inputs."""
    genre = [t for t in movielens.tasks if t.name == "genre"]
    likes = km.Task("likes_next", label="like")  # a binary user-level task
    model = km.build_dupn(
        [movielens.history, *movielens.profile],
        genre + [likes],
        heads={"genre": DotGenreHead(name="genre_head")},
        item_tasks=[],
        **SMALL,
    )
    assert list(model.output) == ["genre", "likes_next"]
    assert "item" not in model.input and "candidates_item" not in model.input
    assert isinstance(model.get_layer("likes_next_head"), km.layers.TaskTower)
    x = batch(movielens, movielens.test)
    out = model({k: x[k] for k in model.input})
    np.testing.assert_allclose(np.sum(out["genre"], axis=1), 1.0, atol=1e-5)
    assert out["likes_next"].shape == (64,)


def test_builder_errors(movielens):
    ml = movielens
    user = [ml.history, *ml.profile]
    with pytest.raises(ValueError, match="need a candidate list"):
        km.build_dupn([*user, *ml.item], ml.tasks)
    with pytest.raises(ValueError, match="item_tasks \\['genre'\\] must be binary"):
        km.build_dupn(ml.features, ml.tasks, item_tasks=["genre"])
    with pytest.raises(ValueError, match="item_tasks \\['click'\\] are not tasks"):
        km.build_dupn(ml.features, ml.tasks, item_tasks=["click"])
    short = km.SequenceFeature("candidates", item=ml.history.item, max_len=3)
    with pytest.raises(ValueError, match="list_size != candidates.max_len=3"):
        km.build_dupn([*user, *ml.item, short], ml.tasks)
    bare = km.SequenceFeature("history", item=ml.history.item, max_len=8)
    with pytest.raises(ValueError, match="no behaviour properties"):
        km.build_dupn([bare, *ml.item], ml.tasks[:1])
    with pytest.raises(ValueError, match="'candidates' has no behaviour properties"):
        km.build_dupn(ml.features, ml.tasks, history="candidates")
    with pytest.raises(ValueError, match="heads \\['cvr'\\] name no task"):
        km.build_dupn(
            [ml.history, *ml.item], ml.tasks[:1], heads={"cvr": DotGenreHead()}
        )
    with pytest.raises(ValueError, match="SequenceFeature.*need a sequence model"):
        km.build_mmoe([ml.history], ml.tasks[:1])


def test_ambiguous_or_unused_features_are_named(movielens):
    ml = movielens
    ctr, _, genre = ml.tasks
    clicks = km.SequenceFeature(
        "clicks", item=ml.history.item, properties=ml.history.properties, max_len=4
    )
    with pytest.raises(
        ValueError,
        match=r"\['history', 'clicks'\] could each be the history \(with "
        r"behaviour properties\); name one with history=",
    ):
        km.build_dupn([ml.history, clicks, *ml.item], [ctr])
    with pytest.raises(ValueError, match=r"\['clicks'\] are neither the history"):
        km.build_dupn([ml.history, clicks, *ml.item], [ctr], history="history")
    with pytest.raises(ValueError, match="history='views' is no SequenceFeature"):
        km.build_dupn(ml.features, ml.tasks, history="views")
    with pytest.raises(ValueError, match="'candidates' but no task is 'ranking'"):
        km.build_dupn(ml.features, [ctr, genre])
    with pytest.raises(
        ValueError,
        match=r"\['item', 'genres', 'year'\] are the target "
        "item .* no task scores it",
    ):
        km.build_dupn([ml.history, *ml.item, *ml.profile], [genre])
    with pytest.raises(
        ValueError,
        match=r"fields \['item', 'genres', 'year'\] are "
        "missing from features",
    ):
        km.build_dupn([ml.history, ml.candidates, *ml.profile], ml.tasks)
    year = km.SparseFeature("year", vocabulary_size=3)  # a profile "year" clashes
    with pytest.raises(ValueError, match=r"\['year'\] are named like item fields"):
        km.build_dupn([ml.history, year], [genre])
    with pytest.raises(ValueError, match=r"query \['nope'\] names no flat feature"):
        km.build_dupn([ml.history, *ml.profile], [genre], query=["nope"])
    other = km.SequenceFeature("candidates", item=ml.history.item[:1], max_len=5)
    with pytest.raises(ValueError, match="same item fields as history"):
        km.build_dupn([ml.history, *ml.item, other], ml.tasks)
