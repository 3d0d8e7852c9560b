"""`adapt_features` and `make_dataset`'s warning about unstandardised dense values."""

import math
import re
import warnings

import keras
import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.data import adapt_features, make_dataset
from keras_mtl.data._scale import MIN_VALUES
from keras_mtl.features import (
    DenseFeature,
    SequenceFeature,
    SparseFeature,
    feature_from_config,
    feature_to_config,
)

NAN = float("nan")


def adapted(features, data, **kwargs):
    """`adapt_features(...)` and the messages of its warnings."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        specs = adapt_features(features, data, **kwargs)
    return specs, [str(w.message) for w in record if "adapt_features" in str(w.message)]


def scale_warnings(*args, **kwargs):
    """The "far from standardised" warnings of `make_dataset(*args, **kwargs)`."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        make_dataset(*args, **kwargs)
    return [str(w.message) for w in record if "far from standardised" in str(w.message)]


# ----------------------------------------------------------------------------- dense


def test_dense_mean_and_std_leave_missing_values_out():
    data = {
        "price": [1.0, 3.0, NAN, 5.0, 7.0, 9.0],
        "pair": [
            [1.0, 3.0],
            [NAN, 5.0],
            [7.0, 9.0],
            [1.0, 3.0],
            [5.0, 7.0],
            [9.0, 5.0],
        ],
        "count": [0.0, math.e - 1, math.exp(2) - 1, 0.0, math.e - 1, math.exp(2) - 1],
        "flat": [4.0] * 6,
    }
    features = [
        DenseFeature("price", allow_missing=True),
        DenseFeature("pair", dim=2, allow_missing=True),
        DenseFeature("count", transform="log1p"),
        DenseFeature("flat"),
    ]
    (price, pair, count, flat), notes = adapted(features, data)
    assert (price.mean, price.std) == (5.0, pytest.approx(math.sqrt(8.0)))
    # dim=2: one mean/std over every component: 1,3,5,7,9,1,3,5,7,9,5
    assert pair.mean == pytest.approx(55 / 11)
    assert pair.std == pytest.approx(math.sqrt(80 / 11))
    # log1p first: 0, 1, 2 twice
    assert count.mean == pytest.approx(1.0)
    assert count.std == pytest.approx(math.sqrt(2 / 3))
    assert (count.transform, price.allow_missing) == ("log1p", True)
    assert (flat.mean, flat.std) == (4.0, 1.0)  # constant: std 1, noted
    assert notes == [
        "adapt_features: DenseFeature 'flat' is constant (4) in the data: std=1."
    ]


def test_dense_data_rules_still_hold():
    with pytest.raises(ValueError, match="DenseFeature 'price': contains NaN"):
        adapt_features([DenseFeature("price")], {"price": [1.0, NAN]})
    with pytest.raises(ValueError, match=r"DenseFeature 'n': values must be > -1"):
        adapt_features([DenseFeature("n", transform="log1p")], {"n": [1.0, -2.0]})
    with pytest.raises(ValueError, match=r"'price' \(column 'price'\) is missing"):
        adapt_features([DenseFeature("price")], {"other": [1.0]})


# ----------------------------------------------------------------------------- sparse


def test_vocabulary_min_count_most_frequent_first_ties_ascending():
    data = {
        "city": ["b", "a", "c", "a", "b", "d", "c", "e", "c", None],
        "tags": [["x", "y"], ["y"], [], ["z", "y", "w"], ["w"], ["x"], [], [], [], []],
    }
    features = [
        SparseFeature("city", embedding_dim=4),
        SparseFeature("tags", max_len=2),  # "w" after position 2 is never seen
    ]
    (city, tags), _ = adapted(features, data)
    assert city.vocabulary == ("c", "a", "b", "d", "e")  # 3, then 2 2, then 1 1
    assert (city.dtype, city.num_rows, city.embedding_dim) == ("string", 6, 4)
    assert (tags.vocabulary, tags.max_len) == (("y", "x", "w", "z"), 2)
    (city, tags), _ = adapted(features, data, min_count=2)
    assert city.vocabulary == ("c", "a", "b")  # d and e go to the OOV row
    assert city.num_rows == 4
    assert tags.vocabulary == ("y", "x")
    (city, tags), _ = adapted(features, data, min_count={"city": 3})
    assert (city.vocabulary, len(tags.vocabulary)) == (("c",), 4)
    with pytest.raises(ValueError, match=r"'city': no value occurs min_count=4"):
        adapt_features(features, data, min_count=4)


def test_integer_ids_get_a_vocabulary_size_or_an_integer_vocabulary():
    data = {
        "shop": np.array([3, 0, 3, 7, -1, 2]),  # -1: padding
        "user": np.array([5, 1_000_000, 5, 17, 5, 17]),  # spread thinly
        "item": [[1, 2], [0], [], [3, 1], [2], [1]],
    }
    features = [
        SparseFeature("shop"),
        SparseFeature("user"),
        SparseFeature("item", max_len=2),
    ]
    (shop, user, item), notes = adapted(features, data)
    assert (shop.vocabulary_size, shop.dtype, shop.num_rows) == (8, "int64", 9)
    assert (user.vocabulary, user.dtype) == ((5, 17, 1_000_000), "int64")
    assert item.vocabulary_size == 4
    assert notes == [
        "adapt_features: SparseFeature 'user': integer ids spread thinly or "
        "negative get an integer vocabulary (a host lookup, so no XLA)."
    ]
    (shop, _, item), _ = adapted(features, data, min_count={"shop": 2, "item": 2})
    assert (shop.vocabulary, item.vocabulary) == ((3,), (1, 2))
    with pytest.raises(ValueError, match="'price' holds numbers with a fractional"):
        adapt_features([SparseFeature("price")], {"price": [1.5, 2.0]})


def test_quantile_boundaries():
    data = {
        "age": np.arange(1.0, 9.0),  # 1 .. 8
        "gap": np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 2]),
        "stamp": np.array([10, 11, 12, 13, 14, 15, 16, 17]),
        "n": [1.0, NAN, 2.0, 3.0, 4.0, NAN, 5.0, 6.0],
    }
    features = [
        SparseFeature("age"),
        SparseFeature("gap", dtype="float32"),
        SparseFeature("stamp", dtype="int64"),
        SparseFeature("n", dtype="float32"),
    ]
    (age, gap, stamp, n), notes = adapted(
        features, data, num_buckets={"age": 4, "gap": 5, "stamp": 4, "n": 2}
    )
    # linear quantiles at 1/4, 2/4, 3/4 of 1..8
    assert (age.boundaries, age.dtype, age.num_rows) == (
        (2.75, 4.5, 6.25),
        "float32",
        4,
    )
    # 0.2 .. 0.6 quantiles are all 0 (the minimum: an empty bucket), 0.8 is 0.2
    assert gap.boundaries == (pytest.approx(0.2),)
    assert notes == [
        "adapt_features: SparseFeature 'gap': 2 buckets instead of 5 (repeated "
        "values share quantiles)."
    ]
    # int64: 11.75, 13.5, 15.25 rounded up (x >= 11.75 is x >= 12 for integers)
    assert (stamp.boundaries, stamp.dtype) == ((12, 14, 16), "int64")
    assert n.boundaries == (3.5,)  # NaN is "no value"
    # a global int applies to numbers asked to be bucketised, not to ids
    (age_again, gap_again), _ = adapted(
        [SparseFeature("age", dtype="float32"), SparseFeature("gap")],
        data,
        num_buckets=4,
    )
    assert age_again.boundaries == age.boundaries
    assert gap_again.vocabulary_size == 3
    with pytest.raises(ValueError, match=r"give num_buckets=\{'age': n\}"):
        adapt_features([SparseFeature("age", dtype="float32")], data)


def test_sequence_fields_from_every_position_and_shared_tables():
    history = SequenceFeature(
        "history",
        item=[SparseFeature("item"), SparseFeature("genres", max_len=2)],
        properties=[SparseFeature("action", vocabulary_size=4)],
        max_len=3,
    )
    data = {
        "history_item": np.array([["a", "b", ""], ["b", "", ""]], dtype=object),
        "history_genres": np.array([[[1, 2], [2, -1], [-1, -1]]] * 2),
        "history_action": np.array([[0, 1, -1], [2, -1, -1]]),
        "query": ["c", "a"],
        "target": [["b", "d"], ["b"]],  # multi-valued, unlike query
    }
    features = [
        history,
        SparseFeature("query"),
        SparseFeature("target", max_len=2, share_embedding_with="query"),
    ]
    (seq, query, target), _ = adapted(features, data)
    item, genres = seq.item
    assert item.vocabulary == ("b", "a")  # padding left out
    assert genres.vocabulary_size == 3
    assert seq.properties == history.properties  # already filled: unchanged
    assert (seq.name, seq.max_len) == ("history", 3)
    assert query.vocabulary == ("b", "a", "c", "d")  # both columns
    assert (target.vocabulary, target.share_embedding_with) == (
        query.vocabulary,
        "query",
    )
    (seq_again,), _ = adapted([history], data, only=["history_genres"])
    assert seq_again.item[0] == history.item[0]  # not selected: left unfitted
    assert seq_again.item[1] == genres


def test_idempotent_and_refit_keeps_the_kind():
    rng = np.random.default_rng(0)
    data = pd.DataFrame(
        {
            "x": rng.normal(50, 5, 40),
            "c": rng.choice(["p", "q", "r"], 40),
            "age": rng.uniform(0, 90, 40),
            "u": rng.integers(0, 6, 40),
        }
    )
    features = [
        DenseFeature("x"),
        SparseFeature("c"),
        SparseFeature("age", dtype="float32"),
        SparseFeature("u"),
        SparseFeature("h", hash_bins=8),
    ]
    once, _ = adapted(features, data, num_buckets=4, min_count={"c": 2})
    assert adapted(once, data, num_buckets=4, min_count={"c": 2})[0] == once
    assert adapted(once, data, refit=True, min_count={"c": 2})[0] == once
    assert once[4] == features[4]  # hashing: nothing to fit
    assert len(once[2].boundaries) == 3
    # Filled specs stay unless refit; refit keeps the kind (size stays a size).
    shifted = data.assign(x=data["x"] + 100, u=data["u"] + 10)
    again, _ = adapted(once, shifted)
    assert again == once
    refit, _ = adapted(once, shifted, refit=True, only=["x", "u"])
    assert refit[0].mean == pytest.approx(once[0].mean + 100)
    assert refit[0].std == pytest.approx(once[0].std)
    assert refit[3].vocabulary_size == once[3].vocabulary_size + 10
    assert refit[1:3] == once[1:3]
    with pytest.raises(ValueError, match=r"only= names no feature: \['nope'\]"):
        adapt_features(features, data, only=["nope"])
    with pytest.raises(ValueError, match=r"num_buckets\['age'\] must be an int >= 2"):
        adapt_features(features, data, num_buckets={"age": 1})
    with pytest.raises(ValueError, match=r"num_buckets is for sparse.*\['x'\]"):
        adapt_features(features, data, num_buckets={"x": 4})
    with pytest.raises(TypeError, match="refit must be a bool"):
        adapt_features(features, data, refit="yes")


def test_a_spec_not_fitted_is_refused_where_it_is_used():
    with pytest.raises(ValueError, match=r"SparseFeature 'c' has no vocabulary_size"):
        make_dataset({"c": ["a"]}, [SparseFeature("c")])
    with pytest.raises(ValueError, match=r"'item' \(field of SequenceFeature 'h'\)"):
        km.make_inputs([SequenceFeature("h", item=[SparseFeature("item")])])
    with pytest.raises(ValueError, match="adapt_features"):
        _ = SparseFeature("c").num_rows


def test_a_tf_data_dataset_gives_the_same_specs():
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "x": rng.normal(3, 2, 50).astype("float32"),
            "c": rng.choice(["p", "q"], 50),
            "y": rng.integers(0, 2, 50).astype("float32"),
        }
    )
    features = [DenseFeature("x"), SparseFeature("c", dtype="string")]
    frame.loc[3, "c"] = ""  # padding ("no value"): left out, as bytes too
    expected, _ = adapted(features, frame)
    assert expected[1].vocabulary in (("p", "q"), ("q", "p"))
    unbatched = tf.data.Dataset.from_tensor_slices(dict(frame[["x", "c"]]))
    assert adapted(features, unbatched)[0] == expected
    # make_dataset's batches, with labels; the filled vocabulary is kept
    fitted = [features[0], expected[1]]
    ds = make_dataset(frame, fitted, [km.Task("y")], batch_size=16, seed=0)
    specs, _ = adapted(fitted, ds)
    assert specs[1] == expected[1]
    assert (specs[0].mean, specs[0].std) == (
        pytest.approx(expected[0].mean, rel=1e-6),
        pytest.approx(expected[0].std, rel=1e-6),
    )


def test_csv_files_and_block_sources_give_the_same_specs(tmp_path):
    csv = tmp_path / "train.csv"
    csv.write_text(
        "city,shop,price,tags,age\n"
        "rome,3,1.0,a|b,18\n"
        "paris,0,,b,25\n"
        "rome,3,5.0,,31\n"
        ",7,9.0,c|b|a,40\n"
    )
    data = {
        "city": ["rome", "paris", "rome", None],
        "shop": [3, 0, 3, 7],
        "price": [1.0, NAN, 5.0, 9.0],
        "tags": [["a", "b"], ["b"], [], ["c", "b", "a"]],
        "age": [18.0, 25.0, 31.0, 40.0],
    }
    features = [
        SparseFeature("city", dtype="string"),
        SparseFeature("shop", dtype="int64"),
        DenseFeature("price", allow_missing=True),
        SparseFeature("tags", dtype="string", max_len=2),
        SparseFeature("age", dtype="float32"),
    ]
    expected, _ = adapted(features, data, num_buckets=2)
    assert expected[0].vocabulary == ("rome", "paris")
    assert (expected[2].mean, expected[3].vocabulary) == (5.0, ("b", "a", "c"))
    assert expected[4].boundaries == (28.0,)
    assert adapted(features, str(csv), num_buckets=2)[0] == expected
    blocks = [{k: np.asarray(v[:2]) for k, v in data.items() if k != "tags"}]
    blocks.append({k: np.asarray(v[2:]) for k, v in data.items() if k != "tags"})
    blocks[0]["city"] = np.array(["rome", "paris"])
    blocks[1]["city"] = np.array(["rome", ""])
    blocks[0]["tags"] = np.array([["a", "b"], ["b", ""]])
    blocks[1]["tags"] = np.array([["", ""], ["c", "b"]])
    assert adapted(features, blocks, num_buckets=2)[0] == expected
    with pytest.raises(ValueError, match="'city' needs a dtype"):
        adapt_features([SparseFeature("city")], str(csv))


# ----------------------------------------------------------------------------- warning


def test_make_dataset_warns_once_about_unstandardised_values_until_adapted():
    rng = np.random.default_rng(2)
    n = 64
    data = {
        "gains": rng.normal(1_000, 300, n),
        "age": rng.normal(0, 1, n),
        "small": rng.normal(5, 1, n),  # mean 5: also far
    }
    features = [DenseFeature("gains"), DenseFeature("age"), DenseFeature("small")]
    (message,) = scale_warnings(data, features)  # one warning for the dataset
    assert message.startswith("DenseFeature 'gains' (mean 1")
    assert "'small' (mean 4.9" in message and "'age'" not in message
    assert "keras_mtl.adapt_features(features, train_data)" in message
    specs = adapt_features(features, data)
    assert scale_warnings(data, specs) == []
    # A handful of rows (a prediction request) is not judged.
    few = {k: v[: MIN_VALUES - 1] for k, v in data.items()}
    assert scale_warnings(few, features) == []
    # The spread counts too: centred values with std 100.
    wide = rng.normal(0, 1, n)
    wide = {"gains": (wide - wide.mean()) / wide.std() * 100}
    (message,) = scale_warnings(wide, features[:1])
    mean, std = re.match(
        r"DenseFeature 'gains' \(mean (\S+), std (\S+)\)", message
    ).groups()
    assert abs(float(mean)) < 1e-5 and std == "100"
    assert scale_warnings({"gains": wide["gains"] / 11}, features[:1]) == []


# ----------------------------------------------------------------------------- a model


def test_a_model_trains_on_adapted_specs_and_saves_them(tmp_path):
    rng = np.random.default_rng(3)
    n = 256
    gains = rng.exponential(1_000, n)
    gains[rng.random(n) < 0.1] = np.nan
    city = rng.choice(["rome", "paris", "oslo", "lima"], n, p=[0.5, 0.3, 0.15, 0.05])
    data = {
        "gains": gains,
        "city": city,
        "age": rng.uniform(18, 80, n),
        "y": (np.nan_to_num(gains) > 700).astype("float32"),
    }
    features = [
        DenseFeature("gains", allow_missing=True),
        SparseFeature("city", embedding_dim=2),
        SparseFeature("age", embedding_dim=2),
    ]
    specs = km.adapt_features(features, data, min_count=20, num_buckets={"age": 4})
    assert specs[1].vocabulary == ("rome", "paris", "oslo")
    for spec in specs:
        assert feature_from_config(feature_to_config(spec)) == spec
    tasks = [km.Task("y")]
    model = km.build_shared_bottom(specs, tasks, hidden_units=(8,), tower_units=(4,))
    model.compile(optimizer=keras.optimizers.Adam(0.02))
    ds = make_dataset(data, specs, tasks, batch_size=64, seed=0)
    history = model.fit(ds, epochs=4, verbose=0).history["loss"]
    assert history[-1] < 0.8 * history[0]
    x = {k: v for k, v in data.items() if k != "y"}
    predicted = model.predict(make_dataset(x, specs, batch_size=64, shuffle=False), 0)
    path = str(tmp_path / "adapted.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    again = loaded.predict(make_dataset(x, specs, batch_size=64, shuffle=False), 0)
    np.testing.assert_allclose(again["y"], predicted["y"], atol=1e-6)
