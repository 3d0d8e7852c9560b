"""Bucketised numeric features (SparseFeature(boundaries=...)) in the data pipeline.

The pipeline keeps their raw numbers (the model buckets them): float32 with NaN
for no value, or int64 with -1 for none; every source gives the same batches.
"""

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_mtl.data import make_dataset, write_tfrecord
from keras_mtl.features import SequenceFeature, SparseFeature
from keras_mtl.tasks import Task
from tests.data.test_dataset import assert_same, collect, write_csv

NAN = float("nan")
FEATURES = [
    SparseFeature("price", boundaries=[1.0, 10.0, 100.0]),
    SparseFeature("seen_at", boundaries=[1_600_000_000, 1_700_000_000], dtype="int64"),
    SparseFeature("sizes", boundaries=[36.0, 40.0], max_len=3),
    SparseFeature("gaps", boundaries=[60, 3_600], dtype="int64", max_len=2),
]
TASKS = [Task("click")]
ROWS = {
    "price": [0.5, NAN, 10.0, 250.0],
    "seen_at": [1_600_000_001, 1_699_999_999, None, 1_700_000_000],
    "sizes": [[38.5, 41.0, 36.0, 44.0], [], [35.0], [40.0, NAN]],
    "gaps": [[1, 59, 60], [], [7_200], [3_600, 3_599]],
    "click": [1.0, 0.0, 1.0, 0.0],
}
EXPECTED = {
    "price": np.array([0.5, NAN, 10.0, 250.0], np.float32),
    "seen_at": np.array([1_600_000_001, 1_699_999_999, -1, 1_700_000_000]),
    "sizes": np.array(
        [[38.5, 41.0, 36.0], [NAN] * 3, [35.0, NAN, NAN], [40.0, NAN, NAN]],
        np.float32,
    ),
    "gaps": np.array([[1, 59], [-1, -1], [7_200, -1], [3_600, 3_599]]),
}


@pytest.fixture(params=["frame", "dict", "csv", "tfrecord"])
def source(request, tmp_path):
    kind = request.param
    if kind == "frame":
        return pd.DataFrame(ROWS)
    if kind == "dict":
        return {k: np.array(v, dtype=object) for k, v in ROWS.items()}
    if kind == "csv":
        return str(write_csv(tmp_path / "b.csv", ROWS))
    path = str(tmp_path / "b.tfrecord")
    # The in-memory NaN in a list is padding too: written as absent.
    assert write_tfrecord(pd.DataFrame(ROWS), path, FEATURES, TASKS) == 4
    return path


def test_every_source_keeps_the_raw_numbers(source):
    x, _ = collect(make_dataset(source, FEATURES, TASKS, 3, shuffle=False))
    assert_same(x, EXPECTED)


def test_block_source_keeps_the_raw_numbers():
    block = {
        "price": np.array(ROWS["price"], np.float32),
        "seen_at": np.array([1_600_000_001, 1_699_999_999, -1, 1_700_000_000]),
        "sizes": EXPECTED["sizes"][:, :2],  # padded to 3 with NaN
        "gaps": EXPECTED["gaps"],
        "click": np.array(ROWS["click"], np.float32),
    }
    x, _ = collect(make_dataset([block], FEATURES, TASKS, 3, shuffle=False))
    want = dict(EXPECTED, sizes=EXPECTED["sizes"].copy())
    want["sizes"][0, 2] = NAN
    assert_same(x, want)


def test_sequence_fields_may_be_bucketised():
    seq = SequenceFeature(
        "history",
        item=[SparseFeature("item", vocabulary_size=5)],
        properties=[SparseFeature("gap", boundaries=[60, 3_600], dtype="int64")],
        max_len=2,
    )
    data = {
        "history_item": np.array([[1, -1], [2, 3]]),
        "history_gap": np.array([[90, -1], [5, 4_000]]),
    }
    x, _ = collect(make_dataset(data, [seq], shuffle=False))
    assert x["history_gap"].tolist() == [[90, -1], [5, 4_000]]


@pytest.mark.parametrize(
    "column, values, error, match",
    [
        ("price", [1.0, np.inf, 2.0, 3.0], ValueError, r"'price'.*finite numbers"),
        ("price", ["a", "b", "c", "d"], TypeError, r"'price'.*numbers \(float32"),
        ("seen_at", [1.5, 2.0, 3.0, 4.0], TypeError, r"'seen_at'.*fractional"),
    ],
)
def test_bad_values_name_the_feature(column, values, error, match):
    with pytest.raises(error, match=match):
        make_dataset(dict(ROWS, **{column: values}), FEATURES, TASKS)


def test_streamed_inf_fails_naming_the_feature(tmp_path):
    path = write_csv(tmp_path / "inf.csv", dict(ROWS, price=[1.0, 2.0, "inf", 3.0]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="price.*finite numbers"):
        collect(make_dataset(str(path), FEATURES, TASKS, 4, shuffle=False))


def test_a_model_trains_on_raw_numbers_and_reloads(tmp_path):
    import keras

    import keras_mtl as km

    features = [f for f in FEATURES if f.max_len is None] + [
        SparseFeature("sizes", boundaries=[36.0, 40.0], max_len=3, embedding_dim=4)
    ]
    rng = np.random.default_rng(0)
    n = 64
    data = {
        "price": np.where(rng.random(n) < 0.2, NAN, rng.exponential(20, n)),
        "seen_at": rng.integers(1_550_000_000, 1_750_000_000, n),
        "sizes": rng.uniform(30, 45, (n, 3)).astype(np.float32),
        "click": (rng.random(n) < 0.5).astype(np.float32),
    }
    model = km.build_mmoe(features, TASKS, num_experts=2, expert_units=[4])
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    ds = make_dataset(data, features, TASKS, 16, seed=0)
    before = [np.array(w) for w in model.trainable_weights]
    model.fit(ds, epochs=1, verbose=0)
    assert any(
        not np.allclose(a, np.array(w)) for a, w in zip(before, model.trainable_weights)
    )
    x = {k: v for k, v in data.items() if k != "click"}
    x["price"] = x["price"].astype(np.float32)
    predicted = model.predict(make_dataset(x, features, [], 16, shuffle=False), 0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        np.asarray(loaded(x)["click"]), predicted["click"], atol=1e-6
    )
    # A NaN price is "no value" (a zero embedding), not bucket 0.
    missing = dict(x, price=np.full(n, NAN, np.float32))
    lowest = dict(x, price=np.full(n, 0.5, np.float32))
    gap = np.abs(np.asarray(loaded(missing)["click"]) - loaded(lowest)["click"])
    assert gap.min() > 1e-6
