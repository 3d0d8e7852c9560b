"""build_dupn: the model contract, the serving split and warm starts."""

from __future__ import annotations

import shutil
import subprocess

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.datasets.movielens import load_movielens
from tests.helpers import assert_outputs_close, reload_in_fresh_process
from tests.movielens_fixture import write_movielens

SMALL = dict(units=16, attention_units=8, profile_units=8, head_units=(8,))


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    path = write_movielens(tmp_path_factory.mktemp("ml"), num_users=40, num_items=60)
    return load_movielens(path, max_len=8, list_size=5, item_hash_bins=128)


def build(ml, **kwargs):
    return km.build_dupn(
        ml.history,
        ml.tasks,
        candidates=ml.candidates,
        profile_features=ml.profile,
        query_features=ml.query,
        **{**SMALL, **kwargs},
    )


def batch(ml, rows, n=64):
    data = {k: v[:n] for k, v in rows.items()}
    return next(iter(make_dataset(data, ml.features, None, n, shuffle=False)))


@pytest.fixture(scope="module")
def trained(movielens):
    keras.utils.set_random_seed(0)
    model = build(movielens)
    data = make_dataset(movielens.train, movielens.features, movielens.tasks, 128)
    history = model.fit(data, epochs=4, verbose=0)
    return model, history.history


@pytest.fixture(scope="module")
def exported(trained, tmp_path_factory):
    """The trained model's three SavedModels, version 1."""
    base = tmp_path_factory.mktemp("dupn_export")
    return base, km.export_dupn(trained[0], base)


def test_outputs_per_task(trained, movielens):
    model, _ = trained
    out = model(batch(movielens, movielens.test))
    assert sorted(out) == ["ctr", "genre", "l2r"]
    assert out["ctr"].shape == (64,)
    assert out["l2r"].shape == (64, 5)
    np.testing.assert_allclose(np.sum(out["genre"], axis=1), 1.0, atol=1e-5)
    assert model.get_layer("user_representation").output.shape == (None, 16 + 8)


def test_training_lowers_every_task_loss(trained):
    _, history = trained
    for task in ("ctr", "l2r", "genre"):
        assert history[f"{task}_loss"][-1] < history[f"{task}_loss"][0], task


def test_padded_steps_change_nothing(trained, movielens):
    model, _ = trained
    x = {k: np.asarray(v) for k, v in batch(movielens, movielens.train).items()}
    padded = x["history_item"] == -1
    assert padded.any()
    noisy = dict(x)
    for name in ("history_rating", "history_gap", "history_year"):
        noisy[name] = np.where(padded, 3, x[name])
    noisy["history_genres"] = np.where(padded[..., None], 2, x["history_genres"])
    assert_outputs_close(model(noisy), model(x), atol=1e-6)


def test_keras_round_trip_and_split_after_load(trained, movielens, tmp_path):
    model, _ = trained
    x = batch(movielens, movielens.test)
    model.save(tmp_path / "dupn.keras")
    loaded = keras.saving.load_model(tmp_path / "dupn.keras")
    assert_outputs_close(loaded(x), model(x))
    encoder, scorer = km.dupn_serving_models(loaded)
    user = encoder({k: x[k] for k in encoder.input})
    out = scorer({**{k: x[k] for k in scorer.input if k in x}, **user})
    assert_outputs_close(out, model(x), atol=1e-5)


def test_split_inputs(trained):
    encoder, scorer = km.dupn_serving_models(trained[0])
    assert sorted(encoder.input) == sorted(
        ["age", "gender", "occupation", "hour", "weekday"]
        + [f"history_{f}" for f in ("item", "genres", "year", "rating", "gap")]
    )
    assert sorted(scorer.input) == sorted(
        ["user_representation", "item", "genres", "year"]
        + [f"candidates_{f}" for f in ("item", "genres", "year")]
    )
    assert list(encoder.output) == ["user_representation"]


def test_exported_encoder_then_scorer_equals_full_model(trained, movielens, exported):
    """The serving contract, checked as TF Serving would: plain TensorFlow in a
    fresh process that never imports keras_mtl."""
    model, _ = trained
    base, paths = exported
    assert {k: p.relative_to(base).as_posix() for k, p in paths.items()} == {
        "full": "full/1",
        "user_encoder": "user_encoder/1",
        "scorer": "scorer/1",
    }
    x = {k: np.asarray(v) for k, v in batch(movielens, movielens.test, 32).items()}
    encoder, scorer = km.dupn_serving_models(model)
    full = reload_in_fresh_process(paths["full"], x)
    user = reload_in_fresh_process(
        paths["user_encoder"], {k: x[k] for k in encoder.input}
    )
    scored = reload_in_fresh_process(
        paths["scorer"],
        {**{k: x[k] for k in scorer.input if k in x}, **user},
    )
    for task in ("ctr", "l2r", "genre"):
        np.testing.assert_allclose(scored[task], full[task], atol=1e-5, rtol=0)
    assert_outputs_close(full, model(x), atol=1e-5)


def test_next_export_is_one_version_for_all_three(trained, tmp_path):
    (tmp_path / "scorer" / "4").mkdir(parents=True)
    paths = km.export_dupn(trained[0], tmp_path)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in paths.values()) == [
        "full/5",
        "scorer/5",
        "user_encoder/5",
    ]


def test_one_representation_scores_many_candidates(trained, movielens):
    """The deployment trick: encode the user once, tile the representation."""
    model, _ = trained
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


def test_saved_model_cli_shows_the_signatures(exported):
    cli = shutil.which("saved_model_cli")
    if cli is None:
        pytest.skip("saved_model_cli not on PATH")
    _, paths = exported

    def show(path):
        return subprocess.run(
            [cli, "show", "--dir", str(path), "--tag_set", "serve"]
            + ["--signature_def", "serving_default"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout

    encoder = show(paths["user_encoder"])
    for expected in [
        "inputs['history_item'] tensor_info:\n      dtype: DT_INT64\n      shape: "
        "(-1, 8)",
        "inputs['history_genres'] tensor_info:\n      dtype: DT_INT64\n      shape: "
        "(-1, 8, 4)",
        "outputs['user_representation'] tensor_info:\n      dtype: DT_FLOAT\n"
        "      shape: (-1, 24)",
    ]:
        assert expected in encoder, encoder
    scorer = show(paths["scorer"])
    for expected in [
        "inputs['user_representation'] tensor_info:\n      dtype: DT_FLOAT\n"
        "      shape: (-1, 24)",
        "outputs['l2r'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 5)",
        "outputs['genre'] tensor_info:\n      dtype: DT_FLOAT\n      shape: (-1, 19)",
    ]:
        assert expected in scorer, scorer
    assert "history_item" not in scorer


def test_warm_start_uses_the_exported_weights(trained, movielens, exported):
    model, _ = trained
    x = batch(movielens, movielens.test)
    fresh = build(movielens)
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
    model, _ = trained
    x = batch(movielens, movielens.test)
    model.save(tmp_path / "day1.keras")
    fresh = build(movielens)
    km.warm_start(fresh, tmp_path / "day1.keras")
    assert_outputs_close(fresh(x), model(x), atol=1e-6)


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
    model = build(movielens, cell=cell, pooling=pooling, compile={"loss": listwise})
    assert isinstance(model.loss["l2r"], keras_rs.losses.ListMLELoss)
    data = make_dataset(movielens.val, movielens.features, movielens.tasks, 256)
    logs = model.fit(data, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"][0]) and 0 <= logs["l2r_ndcg_at_10"][0] <= 1


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
        movielens.history,
        genre + [likes],
        profile_features=movielens.profile,
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
    with pytest.raises(ValueError, match="need candidates="):
        km.build_dupn(ml.history, ml.tasks)
    with pytest.raises(ValueError, match="item_tasks \\['genre'\\] must be binary"):
        km.build_dupn(
            ml.history, ml.tasks, candidates=ml.candidates, item_tasks=["genre"]
        )
    with pytest.raises(ValueError, match="item_tasks \\['click'\\] are not tasks"):
        km.build_dupn(
            ml.history, ml.tasks, candidates=ml.candidates, item_tasks=["click"]
        )
    short = km.SequenceFeature("candidates", item=ml.history.item, max_len=3)
    with pytest.raises(ValueError, match="list_size != candidates.max_len=3"):
        km.build_dupn(ml.history, ml.tasks, candidates=short)
    bare = km.SequenceFeature("history", item=ml.history.item, max_len=8)
    with pytest.raises(ValueError, match="no behaviour properties"):
        km.build_dupn(bare, ml.tasks[:1])
    with pytest.raises(ValueError, match="heads \\['cvr'\\] name no task"):
        km.build_dupn(ml.history, ml.tasks[:1], heads={"cvr": DotGenreHead()})
    with pytest.raises(ValueError, match="SequenceFeature.*need a sequence model"):
        km.build_mmoe([ml.history], ml.tasks[:1])
