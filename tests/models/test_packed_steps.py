"""In-memory datasets gathered inside the compiled step (`keras_mtl.data.packed`):
the same batches, order and results as reading the dataset through `tf.data`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.data.packed import STEP_KEY, is_step_dataset, packed_columns
from keras_mtl.models import _host_lookups

FEATURES = [
    km.SparseFeature("user", vocabulary_size=30, embedding_dim=4),
    km.SparseFeature("tags", vocabulary_size=9, embedding_dim=4, max_len=3),
    km.SparseFeature("city", vocabulary_size=5, embedding_dim=2),
    km.DenseFeature("age", mean=40.0, std=10.0),
    km.DenseFeature("prices", dim=2, allow_missing=True),
]
TASKS = [km.Task("click"), km.Task("buy")]


def make_data(n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    prices = rng.normal(size=(n, 2)).astype("float32")
    prices[rng.random((n, 2)) < 0.2] = np.nan
    buy = (rng.random(n) < 0.4).astype("float32")
    buy[rng.random(n) < 0.3] = np.nan  # missing labels, masked
    return {
        "user": rng.integers(-1, 30, n),
        "tags": rng.integers(-1, 9, (n, 3)),
        "city": rng.integers(0, 5, n),
        "age": rng.normal(40, 10, n).astype("float32"),
        "prices": prices,
        "click": (rng.random(n) < 0.3).astype("float32"),
        "buy": buy,
        "weight": rng.uniform(0.5, 2.0, n).astype("float32"),
    }


def through_tf_data(ds):
    """The same dataset, transformed: it no longer carries its packed columns."""
    return ds.map(lambda *element: element)


def train(make, packed: bool, **compile_args):
    """A fresh MMoE fitted on each of `make()`'s datasets in turn, with its
    validation data; `(weights, histories, model)`. (A shuffled dataset draws
    a new permutation whenever it is read: each run makes its own.)"""
    keras.utils.set_random_seed(7)  # (the permutations depend on TF's seed too)
    datasets, validation = make()
    model = km.build_mmoe(
        FEATURES,
        TASKS,
        num_experts=3,
        expert_units=(6,),
        tower_units=(4,),
        compile=compile_args or True,
    )
    histories = []
    for ds in datasets:
        val = validation
        if not packed:
            ds = through_tf_data(ds)
            val = None if val is None else through_tf_data(val)
        histories.append(
            model.fit(ds, epochs=2, validation_data=val, verbose=0).history
        )
    return [w.numpy() for w in model.weights], histories, model


def assert_same_training(a, b):
    weights_a, histories_a, _ = a
    weights_b, histories_b, _ = b
    for wa, wb in zip(weights_a, weights_b):
        np.testing.assert_allclose(wa, wb, rtol=1e-5, atol=1e-6)
    for ha, hb in zip(histories_a, histories_b):
        assert ha.keys() == hb.keys()
        for key in ha:
            np.testing.assert_allclose(ha[key], hb[key], rtol=1e-5, atol=1e-6)


def test_dataset_carries_its_columns_and_gathers_its_own_batches():
    data = make_data(50, seed=0)
    ds = make_dataset(data, FEATURES, TASKS, batch_size=16, shuffle=False)
    packed = packed_columns(ds)
    assert packed is not None and packed_columns(through_tf_data(ds)) is None
    # int64 ids, float32 numbers and labels: one matrix per dtype.
    assert sorted(packed.dtypes) == ["float32", "int64"]
    step = packed.step_dataset()
    assert is_step_dataset(step) and not is_step_dataset(ds)
    # The step dataset's batches gather to the dataset's own batches.
    for element, (x, y) in zip(step, ds, strict=True):
        ((key, batch),) = element[STEP_KEY].items()
        assert key == packed.key
        gx, gy = packed.gather(batch["index"], tuple(batch["matrices"]))
        for name in x:
            np.testing.assert_array_equal(gx[name].numpy(), x[name].numpy())
        for name in y:
            np.testing.assert_array_equal(gy[name].numpy(), y[name].numpy())
    # Shuffled: every epoch's index batches are a new permutation of the rows.
    shuffled = packed_columns(make_dataset(data, FEATURES, TASKS, 16, seed=1))
    epochs = [np.concatenate(list(shuffled.index.as_numpy_iterator())) for _ in "ab"]
    assert [sorted(e) for e in epochs] == [list(range(50))] * 2
    assert list(epochs[0]) != list(epochs[1])


@pytest.mark.parametrize("loss_weighting", [None, "gradnorm"])
def test_fit_gathering_in_the_step_matches_reading_through_tf_data(loss_weighting):
    # With XLA (the full suite), 256 rows: full batches, one compilation of
    # each step. GradNorm's step (no XLA, a partial batch only retraces) keeps
    # 300 rows: partial last batches of 44, in training and validation.
    data = make_data(256 if loss_weighting is None else 300, seed=0)

    def make():
        return [make_dataset(data, FEATURES, TASKS, batch_size=64, seed=3)], (
            make_dataset(data, FEATURES, TASKS, batch_size=128, shuffle=False)
        )

    # GradNorm's own step without XLA (tests/weighting trains it with XLA):
    # the packed columns through the per-task-gradient step are the subject.
    kwargs = (
        {}
        if loss_weighting is None
        else {"loss_weighting": loss_weighting, "jit_compile": False}
    )
    fast = train(make, packed=True, **kwargs)
    plain = train(make, packed=False, **kwargs)
    assert_same_training(fast, plain)
    assert "val_click_auc" in fast[1][0]
    (ds,), val = make()
    layouts = fast[2].step_data.layouts
    assert set(layouts) == {packed_columns(ds).key, packed_columns(val).key}
    assert not plain[2].step_data.layouts


def test_sample_weights_and_a_second_dataset_of_the_same_layout():
    # Two datasets of one layout share the traced step: the second one's own
    # columns are read (they are passed to the step, not captured by it).
    first, second = make_data(200, seed=1), make_data(200, seed=2)

    def make():
        datasets = [
            make_dataset(d, FEATURES, TASKS, 64, seed=5, sample_weight="weight")
            for d in (first, second)
        ]
        return datasets, None

    datasets, _ = make()
    assert packed_columns(datasets[0]).key == packed_columns(datasets[1]).key
    fast = train(make, packed=True)
    assert_same_training(fast, train(make, packed=False))
    assert fast[1][0]["loss"] != fast[1][1]["loss"]


def test_other_calls_still_read_their_own_data_after_a_packed_fit():
    data = make_data(120, seed=4)
    _, _, model = train(
        lambda: ([make_dataset(data, FEATURES, TASKS, batch_size=40)], None), True
    )
    ds = make_dataset(data, FEATURES, TASKS, batch_size=40, shuffle=False)
    x = {f.name: data[f.name] for f in FEATURES}
    y = {t.name: data[t.name] for t in TASKS}
    # evaluate on the packed dataset, on the same data through tf.data, and on
    # arrays: one result.
    packed_eval = model.evaluate(ds, verbose=0)
    np.testing.assert_allclose(
        packed_eval, model.evaluate(through_tf_data(ds), verbose=0), rtol=1e-5
    )
    np.testing.assert_allclose(
        packed_eval, model.evaluate(x, y, batch_size=40, verbose=0), rtol=1e-5
    )
    predicted = model.predict(ds, verbose=0)
    np.testing.assert_allclose(
        predicted["click"], model.predict(x, batch_size=40, verbose=0)["click"]
    )
    before = model.train_on_batch(x, y)
    assert np.isfinite(before).all()


# String vocabularies, and the same columns as integer codes of the same
# vocabularies (an `IntegerLookup`: the same table rows, OOV row 0).
STRING_FEATURES = [
    km.SparseFeature("city", vocabulary=("paris", "rome", "oslo"), embedding_dim=4),
    km.SparseFeature("tags", vocabulary=("a", "b", "c"), embedding_dim=4, max_len=3),
    km.SparseFeature("genre", hash_bins=16, embedding_dim=2),
    FEATURES[0],
    FEATURES[3],
]
CODED_FEATURES = [
    km.SparseFeature("city", vocabulary=(0, 1, 2), embedding_dim=4),
    km.SparseFeature("tags", vocabulary=(0, 1, 2), embedding_dim=4, max_len=3),
    *STRING_FEATURES[2:],
]


def string_data(n: int, seed: int) -> tuple[dict, dict]:
    """`(strings, codes)`: the same rows with string columns and with the
    vocabulary positions (an unknown value: 7, padding: -1)."""
    rng = np.random.default_rng(seed)
    city = rng.choice(["paris", "rome", "oslo", "lima"], n).astype(object)  # lima: OOV
    tags = rng.choice(["a", "b", "c", "zz", ""], (n, 3)).astype(object)  # "": pad
    strings = {
        "city": city,
        "tags": tags,
        "genre": rng.choice(["drama", "comedy", "noir"], n).astype(object),
        "user": rng.integers(-1, 30, n),
        "age": rng.normal(40, 10, n).astype("float32"),
        "click": (city == "rome").astype("float32"),
        "buy": (tags == "a").any(axis=1).astype("float32"),
    }
    codes = {"paris": 0, "rome": 1, "oslo": 2, "a": 0, "b": 1, "c": 2, "": -1}
    coded = np.vectorize(lambda v: codes.get(v, 7), otypes=["int64"])
    return strings, {**strings, "city": coded(city), "tags": coded(tags)}


def fit_twice(model, data, features):
    """`model` fitted in two `fit` calls on one shuffled in-memory dataset, with
    validation data; `(weights, histories, model)` as `train` gives them."""
    ds = make_dataset(data, features, TASKS, batch_size=64, seed=3)
    val = make_dataset(data, features, TASKS, batch_size=128, shuffle=False)
    histories = [
        model.fit(ds, epochs=2, validation_data=val, verbose=0).history for _ in "ab"
    ]
    return [w.numpy() for w in model.weights], histories, model


def build_for(features):
    keras.utils.set_random_seed(7)
    return km.build_mmoe(
        features,
        TASKS,
        num_experts=3,
        expert_units=(6,),
        tower_units=(4,),
        compile={"learning_rate": 0.03},
    )


@pytest.mark.xla
def test_packed_string_columns_are_looked_up_once_and_gathered_in_the_step(
    monkeypatch,
):
    strings, _ = string_data(64, seed=0)
    model = build_for(STRING_FEATURES)
    hosted = model.hosted_lookups
    ds = make_dataset(strings, STRING_FEATURES, TASKS, batch_size=32, shuffle=False)
    packed = packed_columns(ds)
    assert sorted(packed.dtypes) == ["float32", "int64", "string"]
    # The string matrix becomes the rows a batch of it would get on its way
    # to the step (OOV row 0, padding -1); the other matrices are kept as is.
    rows = _host_lookups.packed_rows(hosted, packed)
    assert sorted(rows.dtypes) == ["float32", "int32", "int64"]
    assert rows.layout == packed.layout and rows.key != packed.key
    x, _ = rows.gather(np.arange(64))
    want = _host_lookups.rows_of(hosted, {k: strings[k] for k in hosted.lookups})
    for name in hosted.lookups:
        assert x[name].dtype == "int32"
        np.testing.assert_array_equal(x[name].numpy(), np.asarray(want[name]))
    city = x["city"].numpy()
    assert (city[strings["city"] == "lima"] == 0).all()
    assert (city[strings["city"] == "rome"] == 2).all()
    assert (x["tags"].numpy()[strings["tags"] == ""] == -1).all()
    # A string column that is not a hosted input keeps the per-batch path.
    assert (
        _host_lookups.packed_rows(_host_lookups.Hosted({}, frozenset()), packed) is None
    )

    # fit and evaluate look each packed dataset up once, whatever the calls.
    calls = []
    original = _host_lookups.packed_rows
    monkeypatch.setattr(
        _host_lookups,
        "packed_rows",
        lambda *args: calls.append(args[1]) or original(*args),
    )
    _, histories, _ = fit_twice(model, strings, STRING_FEATURES)
    model.evaluate(ds, verbose=0)
    model.evaluate(ds, verbose=0)
    assert len(calls) == 3  # the training, the validation, the evaluated data
    assert model.jit_compile and np.isfinite(histories[-1]["loss"]).all()
    # (Three datasets of one layout: one layout, the rows' own.)
    assert list(model.step_data.layouts) == [rows.key]


@pytest.mark.xla
def test_packed_string_columns_train_as_their_integer_codes_and_per_batch_lookups():
    # 256 rows: full batches of 64 and 128, one XLA compilation of each step
    # (a partial batch would compile it twice); partial batches are covered
    # above.
    strings, codes = string_data(256, seed=1)
    first = build_for(STRING_FEATURES)
    initial = [w.numpy() for w in first.weights]
    packed = fit_twice(first, strings, STRING_FEATURES)
    # The same model on the same data through tf.data: looked up batch by batch.
    model = build_for(STRING_FEATURES)
    ds = make_dataset(strings, STRING_FEATURES, TASKS, batch_size=64, seed=3)
    val = make_dataset(strings, STRING_FEATURES, TASKS, 128, shuffle=False)
    per_batch = [
        model.fit(
            through_tf_data(ds),
            epochs=2,
            validation_data=through_tf_data(val),
            verbose=0,
        ).history
        for _ in "ab"
    ]
    assert not model.step_data.layouts
    assert_same_training(packed, ([w.numpy() for w in model.weights], per_batch, model))
    # Integer codes of the same vocabularies: the same tables row for row (an
    # `IntegerLookup` inside a step without XLA), the same training.
    coded = build_for(CODED_FEATURES)
    assert not coded.jit_compile and sorted(coded.hosted_lookups.lookups) == ["genre"]
    coded.set_weights(initial)
    coded_run = fit_twice(coded, codes, CODED_FEATURES)
    assert_same_training(packed, coded_run)
    # ... and the string tables learned what only the strings explain.
    assert packed[1][-1]["click_auc"][-1] > 0.8
