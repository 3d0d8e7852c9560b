"""String inputs looked up outside the compiled step (`MultiTaskModel.hosted_lookups`):
the step keeps XLA, the results are those of the lookups inside the graph, and
the model, its `.keras` file and its SavedModel still take raw strings."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.layers import FeatureEncoder
from keras_mtl.models._host_lookups import host_data, rows_of
from tests.helpers import assert_outputs_close, serve_in_fresh_process

# String lookups beside an XLA-compiled step are the subject here.
pytestmark = pytest.mark.xla

FEATURES = [
    km.SparseFeature("city", vocabulary=("paris", "rome", "oslo"), embedding_dim=4),
    km.SparseFeature("tags", hash_bins=64, embedding_dim=4, max_len=3),
    km.SparseFeature("user", vocabulary_size=20, embedding_dim=4),
    km.DenseFeature("age", mean=40.0, std=10.0),
]
TASKS = [km.Task("click"), km.Task("buy")]


def make_data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "rome", "oslo", "lima"], n)  # lima: unknown
    tags = rng.choice(["a", "b", "c", "d", ""], (n, 3))  # "": padding
    return {
        "city": city.astype(object),
        "tags": tags.astype(object),
        "user": rng.integers(0, 20, n),
        "age": rng.normal(40, 10, n).astype("float32"),
        # Labels that depend on the strings, so the string tables must learn.
        "click": (city == "rome").astype("float32"),
        "buy": (tags == "a").any(axis=1).astype("float32"),
    }


def features_of(data: dict) -> dict:
    return {f.name: data[f.name] for f in FEATURES}


def build(**kwargs):
    return km.build_mmoe(
        FEATURES, TASKS, num_experts=2, expert_units=(8,), tower_units=(4,), **kwargs
    )


@pytest.fixture(scope="module")
def data():
    return make_data(512)


@pytest.fixture(scope="module")
def trained(data):
    keras.utils.set_random_seed(1)
    model = build()
    model.fit(make_dataset(data, FEATURES, TASKS, 128, seed=0), epochs=3, verbose=0)
    return model


def test_string_inputs_are_hosted_and_xla_stays_on():
    model = build()
    hosted = model.hosted_lookups.lookups
    assert sorted(hosted) == ["city", "tags"]
    assert type(hosted["city"][1]).__name__ == "StringLookup"
    assert type(hosted["tags"][1]).__name__ == "Hashing"
    assert model.jit_compile is True
    # Keras's own check (StringLookup has no XLA kernel) would have said no.
    plain = keras.Model(model.input, model.output)
    with pytest.warns(UserWarning, match="doesn't support `jit_compile=True`"):
        plain.compile(jit_compile=True)
    assert plain.jit_compile is False


def test_rows_are_the_lookups_of_the_graph():
    model = build()
    raw = {
        "city": np.array(["rome", "lima", "paris"], dtype=object),
        "tags": np.array([["a", "", ""], ["", "", ""], ["b", "a", ""]], dtype=object),
    }
    rows = rows_of(model.hosted_lookups, raw)
    # The OOV row is 0, then the vocabulary in order; padding is -1.
    assert np.asarray(rows["city"]).tolist() == [2, 0, 1]
    tags = np.asarray(rows["tags"])
    assert tags.dtype == np.int32
    assert tags[0, 0] == tags[2, 1] and 0 <= tags[0, 0] < 64  # "a" both times
    assert (tags[0, 1:] == -1).all() and (tags[1] == -1).all()
    # The model reads rows and strings alike.
    x = features_of(make_data(16, seed=3))
    as_rows = host_data(model.hosted_lookups, x)
    assert as_rows["city"].dtype == np.int32 and as_rows["user"] is x["user"]
    assert_outputs_close(model(x), model(as_rows), atol=0)


def test_training_matches_lookups_inside_the_graph(data):
    hosted = build(compile={"learning_rate": 0.03})
    # The same graph as a plain keras.Model: lookups inside the step, no XLA.
    inside = build(compile=False)
    inside = keras.Model(inside.input, inside.output)
    inside.compile(
        keras.optimizers.Adam(0.03),
        jit_compile=km.training.supports_jit(inside),
        **km.training.compile_arguments(TASKS),
    )
    inside.set_weights(hosted.get_weights())
    assert hosted.jit_compile and not inside.jit_compile
    ds = make_dataset(data, FEATURES, TASKS, 128, shuffle=False)
    h1 = hosted.fit(ds, epochs=3, verbose=0).history
    h2 = inside.fit(ds, epochs=3, verbose=0).history
    np.testing.assert_allclose(h1["loss"], h2["loss"], rtol=1e-4)
    for a, b in zip(hosted.get_weights(), inside.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-4)
    # ... and the string tables did learn the labels only strings explain (a
    # scorer without signal stays below 0.62 on 512 rows: chance_auc).
    assert h1["click_auc"][-1] > 0.8 and h1["buy_auc"][-1] > 0.95


def test_every_way_in_takes_raw_strings(trained, data):
    # Every call below takes batches of 128 rows: one XLA compilation of each
    # step (predict, train, test) whatever the way in.
    x, y = features_of(data), {t.name: data[t.name] for t in TASKS}
    first = {k: v[:128] for k, v in x.items()}
    first_y = {k: v[:128] for k, v in y.items()}
    direct = trained(first)
    assert_outputs_close(trained.predict(first, verbose=0, batch_size=128), direct)
    assert_outputs_close(trained.predict_on_batch(first), direct)
    ds = make_dataset({**first}, FEATURES, None, 128, shuffle=False)
    assert_outputs_close(trained.predict(ds, verbose=0), direct)

    model = build()
    model.set_weights(trained.get_weights())
    history = model.fit(
        x, y, batch_size=128, epochs=1, validation_data=(x, y), verbose=0
    ).history
    assert np.isfinite(history["val_loss"][0])
    batches = ((first, first_y) for _ in range(2))
    model.fit(batches, steps_per_epoch=2, epochs=1, verbose=0)
    loss = model.train_on_batch(first, first_y)
    assert np.isfinite(loss).all()
    tested = model.test_on_batch(first, first_y)
    assert np.isfinite(tested).all()
    scores = model.evaluate(x, y, batch_size=128, verbose=0, return_dict=True)
    assert set(scores) >= {"click_auc", "buy_auc", "loss"}


def test_other_inputs_are_refused_clearly_under_xla(trained, data):
    class Batches(keras.utils.PyDataset):
        def __len__(self):
            return 1

        def __getitem__(self, i):  # (Keras takes strings as tf tensors here)
            x = {k: v[:8] for k, v in features_of(data).items()}
            return {k: tf.constant(v) if v.dtype == object else v for k, v in x.items()}

    with pytest.raises(TypeError, match=r"\['city', 'tags'\].*got Batches"):
        trained.predict(Batches(), verbose=0)
    without_xla = build(compile={"jit_compile": False})
    without_xla.set_weights(trained.get_weights())
    got = without_xla.predict(Batches(), verbose=0)  # looked up inside the step
    first = {k: v[:8] for k, v in features_of(data).items()}
    assert_outputs_close(got, trained.predict(first, verbose=0))


def test_keras_file_and_savedmodel_take_raw_strings(trained, data, tmp_path):
    x = {k: v[:32] for k, v in features_of(data).items()}
    want = trained.predict(x, verbose=0)
    trained.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert loaded.jit_compile is True
    assert sorted(loaded.hosted_lookups.lookups) == ["city", "tags"]
    assert_outputs_close(loaded.predict(x, verbose=0), want)

    path = km.export_saved_model(trained, tmp_path / "served")
    served = tf.saved_model.load(str(path)).signatures["serving_default"]
    specs = served.structured_input_signature[1]
    assert specs["city"].dtype == tf.string and specs["tags"].dtype == tf.string
    (result,) = serve_in_fresh_process([{"dir": path, "inputs": x}])
    assert_outputs_close(result["outputs"], want, atol=1e-5)


def test_inputs_read_otherwise_stay_in_the_graph():
    inputs = km.make_inputs(FEATURES)
    agree = FeatureEncoder(FEATURES, name="first")(inputs)
    again = FeatureEncoder(FEATURES, name="second")(inputs)  # the same lookups
    other = FeatureEncoder(  # "city" with another vocabulary
        [km.SparseFeature("city", vocabulary=("rome",), embedding_dim=2)],
        name="other",
    )({"city": inputs["city"]})
    h = keras.layers.Concatenate()([agree, again])
    same = km.MultiTaskModel(
        inputs, {"click": km.layers.TaskTower((), "binary", name="click")(h)}
    )
    assert sorted(same.hosted_lookups.lookups) == ["city", "tags"]
    assert km.training.supports_jit(same)

    h = keras.layers.Concatenate()([h, other])
    mixed = km.MultiTaskModel(
        inputs, {"click": km.layers.TaskTower((), "binary", name="click")(h)}
    )
    assert sorted(mixed.hosted_lookups.lookups) == ["tags"]
    assert not km.training.supports_jit(mixed)  # "city" is looked up inside
    x = features_of(make_data(8))
    rows = host_data(mixed.hosted_lookups, x)
    assert rows["city"].dtype == object and rows["tags"].dtype == np.int32
    assert_outputs_close(mixed(rows), mixed(x), atol=0)


def test_dupn_string_items_are_hosted():
    item = km.SparseFeature("item", vocabulary=tuple("abcdef"), embedding_dim=4)
    genre = km.SparseFeature("genre", hash_bins=16, embedding_dim=2)
    kind = km.SparseFeature("kind", vocabulary=("view", "buy"), embedding_dim=2)
    history = km.SequenceFeature("history", item=[item], properties=[kind], max_len=4)
    model = km.build_dupn(
        [history, item, genre],
        [km.Task("click")],
        item_tasks=["click"],
        units=8,
        attention_units=4,
        profile_units=4,
        tower_units=(4,),
    )
    hosted = sorted(model.hosted_lookups.lookups)
    assert hosted == ["genre", "history_item", "history_kind", "item"]
    assert model.jit_compile is True
    x = {
        "history_item": np.array([["a", "b", "", ""], ["zz", "", "", ""]], object),
        "history_kind": np.array(
            [["view", "buy", "", ""], ["view"] + [""] * 3], object
        ),
        "item": np.array(["c", "a"], object),
        "genre": np.array(["drama", "comedy"], object),
    }
    y = {"click": np.array([1.0, 0.0], "float32")}
    assert np.isfinite(model.train_on_batch(x, y)).all()
    assert_outputs_close(model.predict(x, verbose=0), model(x))
