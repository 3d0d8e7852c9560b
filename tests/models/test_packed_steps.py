"""In-memory datasets gathered inside the compiled step (`keras_mtl.data.packed`):
the same batches, order and results as reading the dataset through `tf.data`."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.data.packed import STEP_KEY, is_step_dataset, packed_columns

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
    data = make_data(300, seed=0)

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


@pytest.mark.xla
def test_string_columns_take_the_hosted_lookup_path():
    # A string matrix cannot enter the XLA step: such data is read through
    # tf.data, where the hosted string lookups turn it into rows.
    features = [km.SparseFeature("city", vocabulary=("paris", "rome")), FEATURES[3]]
    rng = np.random.default_rng(0)
    data = {
        "city": rng.choice(["paris", "rome", "oslo"], 64).astype(object),
        "age": rng.normal(40, 10, 64).astype("float32"),
        "click": (rng.random(64) < 0.5).astype("float32"),
    }
    ds = make_dataset(data, features, [km.Task("click")], batch_size=32)
    assert "string" in packed_columns(ds).dtypes
    model = km.build_shared_bottom(features, [km.Task("click")])
    history = model.fit(ds, epochs=1, verbose=0).history
    assert model.jit_compile and np.isfinite(history["loss"]).all()
    assert not model.step_data.layouts
