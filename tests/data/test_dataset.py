import math
import re
import warnings

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.data import make_dataset, write_tfrecord
from keras_mtl.features import DenseFeature, SequenceFeature, SparseFeature
from keras_mtl.tasks import Task
from tests.helpers import write_text

NAN = float("nan")

FEATURES = [
    SparseFeature("user", vocabulary_size=10),
    SparseFeature("city", vocabulary=("paris", "rome")),
    SparseFeature("items", vocabulary_size=100, max_len=3),
    SparseFeature("tags", hash_bins=50, max_len=2),
    DenseFeature("price", allow_missing=True),
    DenseFeature("vec", dim=2),
]
TASKS = [
    Task("click", "binary"),
    Task("stay", "regression", missing_value=-1.0),
    Task("ctr", "binary", label="click"),
]

# One row per list entry; lists are multi-valued cells, NaN/None empty cells.
ROWS = {
    "user": [3, 1, 9, 0, 5],
    "city": ["paris", "rome", None, "lyon", "paris"],
    "items": [[11, 12, 13, 14], [5], [], [0, 99], [7, 8, 9]],
    "tags": [["a"], ["b", "c", "d"], [], ["e", "f"], ["g"]],
    "price": [1.5, NAN, 0.0, -2.25, 1e3],
    "vec": [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0]],
    "click": [1.0, 0.0, NAN, 1.0, 0.0],
    "stay": [2.5, -1.0, NAN, 0.0, 7.0],
    "extra": ["x", "y", "z", "u", "v"],
}
# The element format every source must produce for ROWS (shuffle off).
EXPECTED = {
    "user": np.array([3, 1, 9, 0, 5]),
    "city": np.array([b"paris", b"rome", b"", b"lyon", b"paris"]),
    "items": np.array(
        [[11, 12, 13], [5, -1, -1], [-1, -1, -1], [0, 99, -1], [7, 8, 9]]
    ),
    "tags": np.array(
        [[b"a", b""], [b"b", b"c"], [b"", b""], [b"e", b"f"], [b"g", b""]]
    ),
    "price": np.array([1.5, NAN, 0.0, -2.25, 1e3], dtype=np.float32),
    "vec": np.array(ROWS["vec"], dtype=np.float32),
}
EXPECTED_LABELS = {
    "click": np.array([1.0, 0.0, NAN, 1.0, 0.0], dtype=np.float32),
    "stay": np.array([2.5, -1.0, NAN, 0.0, 7.0], dtype=np.float32),
    "ctr": np.array([1.0, 0.0, NAN, 1.0, 0.0], dtype=np.float32),
}


def _cell(value) -> str:
    if isinstance(value, list):
        return "|".join(str(v) for v in value)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def write_csv(path, rows=ROWS, blank_line=True):
    columns = list(rows)
    lines = [",".join(columns)]
    for i in range(len(rows[columns[0]])):
        lines.append(",".join(_cell(rows[c][i]) for c in columns))
        if blank_line and i == 1:
            lines.append("")  # blank lines are skipped
    return write_text(path, "\n".join(lines) + "\n")


def collect(ds):
    """Concatenate all batches of a dataset into numpy arrays."""
    xs, ys = [], []
    for element in ds:
        x, y = element if isinstance(element, tuple) else (element, {})
        xs.append({k: v.numpy() for k, v in x.items()})
        ys.append({k: v.numpy() for k, v in y.items()})
    cat = lambda parts: {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # noqa: E731
    return cat(xs), (cat(ys) if ys[0] else {})


def assert_same(actual: dict, expected: dict):
    assert set(actual) == set(expected)
    for key, value in expected.items():
        got = actual[key]
        if value.dtype.kind == "S":  # tf.string comes back as an object array
            assert got.dtype == object, key
        else:
            assert got.dtype == value.dtype, key
        if value.dtype.kind == "f":
            np.testing.assert_array_equal(got, value, err_msg=key)  # NaN == NaN here
        else:
            assert got.tolist() == value.tolist(), key


@pytest.fixture(params=["frame", "dict", "csv", "csv.gz", "tfrecord", "tfrecord.gz"])
def source(request, tmp_path):
    kind = request.param
    if kind == "frame":
        return pd.DataFrame(ROWS)
    if kind == "dict":
        data = {k: list(v) for k, v in ROWS.items()}
        data["user"] = np.array(ROWS["user"])
        data["vec"] = np.array(ROWS["vec"])  # 2-D array for dim=2
        return data
    if kind.startswith("csv"):
        return str(write_csv(tmp_path / f"data.{kind}"))
    path = tmp_path / f"data.{kind}"
    assert write_tfrecord(pd.DataFrame(ROWS), path, FEATURES, TASKS) == 5
    return str(path)


def test_every_source_gives_the_same_batches(source):
    ds = make_dataset(source, FEATURES, TASKS, batch_size=2, shuffle=False)
    spec_x, spec_y = ds.element_spec
    assert spec_x["items"].shape.as_list() == [None, 3]
    assert spec_x["city"].dtype == tf.string and spec_x["user"].dtype == tf.int64
    assert spec_x["price"].shape.as_list() == [None]
    assert spec_x["vec"].shape.as_list() == [None, 2]
    assert all(s.dtype == tf.float32 for s in spec_y.values())
    sizes = [int(x["user"].shape[0]) for x, _ in ds]
    assert sizes == [2, 2, 1]
    x, y = collect(ds)
    assert_same(x, EXPECTED)
    assert_same(y, EXPECTED_LABELS)


def test_without_tasks_yields_feature_dicts(source):
    ds = make_dataset(source, FEATURES, None, batch_size=5, shuffle=False)
    element = next(iter(ds))
    assert isinstance(element, dict)
    assert element["user"].numpy().tolist() == [3, 1, 9, 0, 5]


def test_two_dimensional_arrays_are_padded_and_truncated():
    features = [
        SparseFeature("long", vocabulary_size=10, max_len=2),
        SparseFeature("short", vocabulary_size=10, max_len=4),
    ]
    data = {
        "long": np.array([[1, 2, 3], [4, 5, 6]]),
        "short": np.array([[7, 8], [9, 0]]),
    }
    x, _ = collect(make_dataset(data, features, shuffle=False))
    assert x["long"].tolist() == [[1, 2], [4, 5]]
    assert x["short"].tolist() == [[7, 8, -1, -1], [9, 0, -1, -1]]


def test_labels_pass_through_nan_and_sentinel():
    data = {"f": [0, 1, 2, 3], "y": [NAN, -1.0, 1.0, 0.0], "r": [-1.0, NAN, 3.5, 0.0]}
    tasks = [Task("y", missing_value=-1.0), Task("r", "regression", missing_value=-1.0)]
    _, y = collect(
        make_dataset(
            data, [SparseFeature("f", vocabulary_size=4)], tasks, shuffle=False
        )
    )
    np.testing.assert_array_equal(y["y"], [NAN, -1.0, 1.0, 0.0])
    np.testing.assert_array_equal(y["r"], [-1.0, NAN, 3.5, 0.0])


def make_warned(*args, **kwargs):
    """`make_dataset(*args, **kwargs)`, and the tasks named by its "no label in
    any row" warnings (in order) with their messages."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        ds = make_dataset(*args, **kwargs)
    messages = [
        str(w.message)
        for w in record
        if issubclass(w.category, UserWarning) and "has no label" in str(w.message)
    ]
    warned = [re.match(r"Task '(\w+)'", m).group(1) for m in messages]
    return ds, warned, messages


def test_a_task_without_any_label_is_warned_about():
    data = {
        "f": [0, 1, 2, 3],
        "y": [NAN] * 4,
        "r": [-1.0, NAN, -1.0, -1.0],
        "z": [NAN, NAN, NAN, 0.0],  # one label: enough
    }
    tasks = [
        Task("y"),
        Task("r", "regression", missing_value=-1.0),
        Task("seen", label="z"),
    ]
    features = [SparseFeature("f", vocabulary_size=4)]
    with pytest.warns(
        UserWarning,
        match=r"Task 'r' \(label column 'r'\) has no label in any of the 4 rows "
        r"\(every one is NaN or missing_value=-1.0\): it adds nothing to the loss",
    ):
        make_dataset(data, features, tasks[1:], shuffle=False)
    ds, warned, _ = make_warned(data, features, tasks, shuffle=False)
    assert warned == ["y", "r"]  # once per task and call; not the labelled one
    _, y = collect(ds)  # the data is still served as it is
    np.testing.assert_array_equal(y["y"], [NAN] * 4)
    np.testing.assert_array_equal(y["seen"], [NAN, NAN, NAN, 0.0])


def test_no_warning_when_a_label_is_present():
    data = {"f": [0, 1, 2, 3], "y": [NAN, -1.0, NAN, 1.0], "r": [NAN, NAN, 0.0, NAN]}
    tasks = [Task("y", missing_value=-1.0), Task("r", "regression")]
    _, warned, _ = make_warned(data, [SparseFeature("f", vocabulary_size=4)], tasks)
    assert warned == []
    _, warned, _ = make_warned(ROWS, FEATURES, TASKS)
    assert warned == []


def test_a_given_task_whose_event_never_occurs_is_warned_about():
    rows = dict(FUNNEL, click=[0.0] * 4, conversion=[0.0] * 4)
    with pytest.warns(
        UserWarning,
        match=r"Task 'cvr' \(label column 'conversion'\) has no label .*every one "
        r"is NaN or masked where 'click' is not 1",
    ):
        make_dataset(rows, FEATURES[:1], FUNNEL_TASKS)
    _, warned, _ = make_warned(rows, FEATURES[:1], FUNNEL_TASKS)
    assert warned == ["cvr"]  # ctr and ctcvr are labelled: 0 everywhere
    _, warned, _ = make_warned(FUNNEL, FEATURES[:1], FUNNEL_TASKS)
    assert warned == []


def test_streamed_labels_are_not_checked_for_emptiness(tmp_path):
    # Knowing needs a full pass over the files before training: not done.
    rows = {"user": [1, 2], "click": [NAN, NAN]}
    path = str(write_csv(tmp_path / "unlabelled.csv", rows, blank_line=False))
    ds, warned, _ = make_warned(path, FEATURES[:1], [Task("click")], shuffle=False)
    assert warned == []
    np.testing.assert_array_equal(collect(ds)[1]["click"], [NAN, NAN])


def test_label_read_from_another_column():
    data = pd.DataFrame({"f": [0, 1, 2], "is_click": [1, 0, 1]})
    ds = make_dataset(
        data,
        [SparseFeature("f", vocabulary_size=3)],
        [Task("ctr", label="is_click")],
        shuffle=False,
    )
    _, y = collect(ds)
    assert list(y) == ["ctr"]
    assert y["ctr"].tolist() == [1.0, 0.0, 1.0]


def test_sample_weight_and_drop_remainder():
    data = {"f": np.arange(10), "y": np.ones(10), "w": np.linspace(0, 1, 10)}
    ds = make_dataset(
        data,
        [SparseFeature("f", vocabulary_size=10)],
        [Task("y")],
        batch_size=4,
        shuffle=False,
        drop_remainder=True,
        sample_weight="w",
    )
    assert ds.element_spec[2].shape.as_list() == [4]
    batches = list(ds)
    assert len(batches) == 2
    np.testing.assert_allclose(batches[1][2].numpy(), np.linspace(0, 1, 10)[4:8])


# ----------------------------------------------------------------------------- shuffling


def _epoch_orders(ds, epochs=3):
    return [
        np.concatenate([x["f"].numpy() for x, _ in ds]).tolist() for _ in range(epochs)
    ]


@pytest.mark.parametrize("kind", ["memory", "csv"])
def test_shuffle_reshuffles_each_epoch_and_is_seeded(kind, tmp_path):
    n = 100
    rows = {"f": list(range(n)), "y": [i % 2 for i in range(n)]}
    if kind == "csv":
        data = str(write_csv(tmp_path / "s.csv", rows, blank_line=False))
    else:
        data = rows
    args = ([SparseFeature("f", vocabulary_size=n)], [Task("y")])

    def orders(seed):
        return _epoch_orders(
            make_dataset(data, *args, batch_size=16, seed=seed, shuffle_buffer_size=n)
        )

    first = orders(7)
    for order in first:
        assert sorted(order) == list(range(n))  # every row exactly once
        assert order != list(range(n))
    assert first[0] != first[1] and first[1] != first[2]
    assert orders(7) == first
    assert orders(8) != first
    unshuffled = make_dataset(data, *args, batch_size=16, shuffle=False)
    assert _epoch_orders(unshuffled, 2) == [list(range(n))] * 2


@pytest.mark.parametrize("shuffle", [True, False])
@pytest.mark.parametrize("drop_remainder, batches", [(False, 7), (True, 6)])
def test_in_memory_length_is_known(shuffle, drop_remainder, batches):
    rows = {"f": list(range(100)), "y": [0] * 100}
    ds = make_dataset(
        rows,
        [SparseFeature("f", vocabulary_size=100)],
        [Task("y")],
        batch_size=16,
        shuffle=shuffle,
        drop_remainder=drop_remainder,
    )
    assert int(ds.cardinality()) == batches == sum(1 for _ in ds)


def test_shuffled_rows_stay_aligned():
    n = 50
    data = {"f": np.arange(n), "d": np.arange(n) * 2.0, "y": np.arange(n) % 2}
    ds = make_dataset(
        data,
        [SparseFeature("f", vocabulary_size=n), DenseFeature("d")],
        [Task("y")],
        batch_size=8,
        seed=1,
    )
    x, y = collect(ds)
    np.testing.assert_array_equal(x["d"], x["f"] * 2.0)
    np.testing.assert_array_equal(y["y"], x["f"] % 2)


# ----------------------------------------------------------------------------- bad input

GOOD = {"user": [1, 2], "price": [1.0, 2.0], "click": [0, 1]}
BASIC_FEATURES = [SparseFeature("user", vocabulary_size=10), DenseFeature("price")]


def _with(**changes):
    data = dict(GOOD)
    data.update(changes)
    return data


@pytest.mark.parametrize(
    "data, features, tasks, error, match",
    [
        (
            {"price": [1.0], "click": [1]},
            BASIC_FEATURES,
            [Task("click")],
            ValueError,
            r"feature 'user'.*Available columns: \['price', 'click'\]",
        ),
        (
            _with(),
            BASIC_FEATURES,
            [Task("ctr", label="is_click")],
            ValueError,
            r"task 'ctr' \(column 'is_click'\).*Available columns",
        ),
        (
            _with(price=["1.0", "2.0"]),
            BASIC_FEATURES,
            None,
            TypeError,
            r"DenseFeature 'price': expected numbers \(float32\); received (dtype <U3|"
            r"Python objects of type str)",
        ),
        (
            _with(user=["a", "b"]),
            BASIC_FEATURES,
            None,
            TypeError,
            r"SparseFeature 'user': expected integer ids.*received strings",
        ),
        (
            _with(user=[1.0, 2.5]),
            BASIC_FEATURES,
            None,
            TypeError,
            r"SparseFeature 'user': expected integer ids.*fractional part, e.g. 2.5",
        ),
        (
            _with(user=[1, 10]),
            BASIC_FEATURES,
            None,
            ValueError,
            r"'user'.*vocabulary_size=10.*from 1 to 10",
        ),
        (
            _with(user=[-3, 4]),
            BASIC_FEATURES,
            None,
            ValueError,
            r"'user'.*vocabulary_size=10.*from -3 to 4",
        ),
        (
            _with(price=[1.0, NAN]),
            BASIC_FEATURES,
            None,
            ValueError,
            r"DenseFeature 'price': contains NaN but allow_missing=False.*in 1 row\(s\)",
        ),
        (
            _with(price=[1.0, 0.0]),
            [BASIC_FEATURES[0], DenseFeature("price", transform="log")],
            None,
            ValueError,
            r"DenseFeature 'price': values must be > 0 \(the model takes their log\)"
            r"; received \[0\.0\] in 1 ",
        ),
        (
            _with(price=[1.0, np.inf]),
            [BASIC_FEATURES[0], DenseFeature("price", allow_missing=True)],
            None,
            ValueError,
            r"DenseFeature 'price': contains inf",
        ),
        (
            {"user": [], "price": [], "click": []},
            BASIC_FEATURES,
            None,
            ValueError,
            r"no rows",
        ),
        (
            _with(click=[0, 2]),
            BASIC_FEATURES,
            [Task("click")],
            ValueError,
            r"Task 'click'.*must be 0 or 1.*received \[2.0\]",
        ),
        (
            _with(click=["yes", "no"]),
            BASIC_FEATURES,
            [Task("click")],
            TypeError,
            r"Task 'click' \(label column 'click'\): expected numeric labels",
        ),
        (
            _with(price=np.ones((2, 3))),
            [BASIC_FEATURES[0], DenseFeature("price", dim=2)],
            None,
            ValueError,
            r"DenseFeature 'price': expected (shape \(N, 2\)|vectors of length 2)",
        ),
        (
            _with(user=[1, 2]),
            [SparseFeature("user", vocabulary=("a", "b"))],
            None,
            TypeError,
            r"SparseFeature 'user': expected strings.*received dtype int64",
        ),
        (
            _with(user=[[1, 2], [3]]),
            BASIC_FEATURES,
            None,
            ValueError,
            r"SparseFeature 'user': expected one value per row.*max_len",
        ),
    ],
)
def test_bad_in_memory_input_raises_naming_the_column(
    data, features, tasks, error, match
):
    strict = {"unseen_ids": "error"}  # ids outside the vocabulary too
    with pytest.raises(error, match=match):
        make_dataset(data, features, tasks, **strict)
    with pytest.raises(error, match=match):  # the same checks for DataFrames
        make_dataset(
            pd.DataFrame({k: list(v) for k, v in data.items()}),
            features,
            tasks,
            **strict,
        )


def test_missing_label_is_fine_for_binary_and_float_ids_are_accepted():
    data = _with(user=[1.0, NAN], click=[NAN, 1])
    x, y = collect(make_dataset(data, BASIC_FEATURES, [Task("click")], shuffle=False))
    assert x["user"].tolist() == [1, -1]  # a missing id is the pad value
    np.testing.assert_array_equal(y["click"], [NAN, 1.0])


def test_bad_arguments():
    with pytest.raises(ValueError, match="different numbers of rows"):
        make_dataset(_with(price=[1.0]), BASIC_FEATURES)
    with pytest.raises(ValueError, match="batch_size"):
        make_dataset(GOOD, BASIC_FEATURES, batch_size=0)
    with pytest.raises(ValueError, match="sample_weight needs tasks"):
        make_dataset(GOOD, BASIC_FEATURES, sample_weight="price")
    with pytest.raises(ValueError, match="would give no batch"):
        make_dataset(GOOD, BASIC_FEATURES, batch_size=4, drop_remainder=True)
    with pytest.raises(TypeError, match="DataFrame or a dict"):
        make_dataset(np.zeros(3), BASIC_FEATURES)


# ----------------------------------------------------------------------------- files


def test_csv_missing_column_is_named_with_the_header(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text("user,click\n1,0\n")
    with pytest.raises(ValueError, match=r"feature 'price'.*\['user', 'click'\]"):
        make_dataset(str(path), BASIC_FEATURES, [Task("click")])


@pytest.mark.parametrize("text", ["", "user,price,click\n", "user,price,click\n\n\n"])
def test_csv_without_rows_raises(tmp_path, text):
    path = tmp_path / "empty.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="empty|no data rows"):
        make_dataset(str(path), BASIC_FEATURES, [Task("click")])


@pytest.mark.parametrize(
    "rows, match",
    [
        ("1,,0\n", r"DenseFeature `price`.*contains NaN but allow_missing=False"),
        ("1,abc,0\n", r"DenseFeature `price`.*expected numbers.*\[abc\]"),
        ("x7,1.0,0\n", r"SparseFeature `user`.*expected integers.*\[x7\]"),
        ("1.5,1.0,0\n", r"SparseFeature `user`.*expected integers.*\[1.5\]"),
        ("1,1.0,3\n", r"Task `click`.*binary labels must be 0 or 1.*\[3\]"),
        ("1,1.0,yes\n", r"Task `click`.*expected numbers.*\[yes\]"),
    ],
)
def test_csv_bad_values_fail_naming_the_feature(tmp_path, rows, match):
    path = tmp_path / "bad.csv"
    path.write_text("user,price,click\n2,2.0,1\n" + rows)
    ds = make_dataset(str(path), BASIC_FEATURES, [Task("click")], shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        list(ds)


def test_csv_values_outside_a_transform_domain_fail_naming_the_feature(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text("user,price,click\n2,2.0,1\n1,-1.0,0\n")
    features = [BASIC_FEATURES[0], DenseFeature("price", transform="log1p")]
    ds = make_dataset(str(path), features, [Task("click")], shuffle=False)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"DenseFeature `price`.*must be > -1"
    ):
        list(ds)


@pytest.mark.parametrize("weight", ["-1.0", "inf"])
def test_streamed_sample_weights_must_be_finite_and_non_negative(tmp_path, weight):
    path = tmp_path / "w.csv"
    path.write_text(f"user,price,click,w\n2,2.0,1,1.0\n1,1.0,0,{weight}\n")
    ds = make_dataset(
        str(path), BASIC_FEATURES, [Task("click")], shuffle=False, sample_weight="w"
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"sample_weight.*`w`"):
        list(ds)


def test_csv_several_files_glob_and_float_formatted_ids(tmp_path):
    (tmp_path / "p1.csv").write_text("click,user,price\n1,3.0,1e2\n")
    (tmp_path / "p2.csv").write_text("click,user,price\n0, 4 ,-inf\n")
    features = [
        SparseFeature("user", vocabulary_size=10),
        DenseFeature("price", allow_missing=True),
    ]
    with pytest.raises(tf.errors.InvalidArgumentError, match="contains inf"):
        list(make_dataset(str(tmp_path / "p*.csv"), features, shuffle=False))
    (tmp_path / "p2.csv").write_text("click,user,price\n0, 4 ,\n")
    x, y = collect(
        make_dataset(str(tmp_path / "p*.csv"), features, [Task("click")], shuffle=False)
    )
    assert x["user"].tolist() == [3, 4]
    np.testing.assert_array_equal(x["price"], [100.0, NAN])
    assert y["click"].tolist() == [1.0, 0.0]
    (tmp_path / "p3.csv").write_text("user,price,click\n1,1,1\n")
    with pytest.raises(ValueError, match="different headers"):
        make_dataset(str(tmp_path / "p*.csv"), features)


def test_file_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.csv"):
        make_dataset(str(tmp_path / "nothing.csv"), BASIC_FEATURES)
    with pytest.raises(FileNotFoundError, match="matches"):
        make_dataset(str(tmp_path / "*.tfrecord"), BASIC_FEATURES)
    with pytest.raises(ValueError, match="format must be one of"):
        path = write_csv(tmp_path / "ok.csv")
        make_dataset(str(path), BASIC_FEATURES, format="parquet")


def test_tfrecord_format_argument_absent_keys_and_int_labels(tmp_path):
    path = tmp_path / "data.bin"  # no telling extension: format= decides
    with tf.io.TFRecordWriter(str(path)) as writer:
        for user, click in [(1, 1), (None, 0)]:
            feature = {
                "click": tf.train.Feature(int64_list=tf.train.Int64List(value=[click]))
            }
            if user is not None:
                feature["user"] = tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[user])
                )
            writer.write(
                tf.train.Example(
                    features=tf.train.Features(feature=feature)
                ).SerializeToString()
            )
    features = [
        SparseFeature("user", vocabulary_size=10),
        SparseFeature("hist", vocabulary_size=10, max_len=2),
        DenseFeature("price", allow_missing=True),
    ]
    ds = make_dataset(
        str(path), features, [Task("click")], shuffle=False, format="tfrecord"
    )
    x, y = collect(ds)
    assert x["user"].tolist() == [1, -1]
    assert x["hist"].tolist() == [[-1, -1], [-1, -1]]
    np.testing.assert_array_equal(x["price"], [NAN, NAN])
    assert y["click"].tolist() == [1.0, 0.0]


def test_tfrecord_errors(tmp_path):
    path = tmp_path / "bad.tfrecord"
    write_tfrecord({"user": ["a", "b"]}, path, [SparseFeature("user", hash_bins=4)])
    with pytest.raises(
        TypeError, match=r"SparseFeature 'user'.*int64_list.*bytes_list"
    ):
        make_dataset(str(path), BASIC_FEATURES[:1])
    empty = tmp_path / "empty.tfrecord"
    with tf.io.TFRecordWriter(str(empty)):
        pass
    with pytest.raises(ValueError, match="contain no records"):
        make_dataset(str(empty), BASIC_FEATURES)
    nan_path = tmp_path / "nan.tfrecord"
    write_tfrecord(
        {"price": [NAN, 1.0]}, nan_path, [DenseFeature("price", allow_missing=True)]
    )
    ds = make_dataset(str(nan_path), [DenseFeature("price")], shuffle=False)
    with pytest.raises(tf.errors.InvalidArgumentError, match="DenseFeature `price`"):
        list(ds)


FUNNEL = {
    "user": [1, 2, 3, 4],
    "click": [1.0, 0.0, 1.0, 0.0],
    "conversion": [1.0, 0.0, 0.0, 0.0],
}
FUNNEL_TASKS = [
    Task("ctr", label="click"),
    Task("cvr", label="conversion", given="click", metric_only=True),
    Task("ctcvr", label="conversion", requires="click"),
]


def _funnel_source(kind, rows, tmp_path):
    if kind == "frame":
        return pd.DataFrame(rows)
    if kind == "csv":
        return str(write_csv(tmp_path / "funnel.csv", rows, blank_line=False))
    path = tmp_path / "funnel.tfrecord"
    plain = [Task("click"), Task("conversion")]  # write the rows as they are
    write_tfrecord(rows, path, FEATURES[:1], plain)
    return str(path)


@pytest.mark.parametrize("kind", ["frame", "csv", "tfrecord"])
def test_given_masks_unclicked_rows_and_requires_only_checks(kind, tmp_path):
    data = _funnel_source(kind, FUNNEL, tmp_path)
    ds = make_dataset(data, FEATURES[:1], FUNNEL_TASKS, batch_size=4, shuffle=False)
    _, y = collect(ds)
    np.testing.assert_array_equal(y["ctr"], [1, 0, 1, 0])
    np.testing.assert_array_equal(y["cvr"], [1, NAN, 0, NAN])  # clicked rows only
    np.testing.assert_array_equal(y["ctcvr"], [1, 0, 0, 0])  # every impression


@pytest.mark.parametrize("kind", ["frame", "csv", "tfrecord"])
@pytest.mark.parametrize("task", FUNNEL_TASKS[1:], ids=["given", "requires"])
def test_conversion_without_click_is_reported(kind, task, tmp_path):
    rows = dict(FUNNEL, conversion=[1.0, 1.0, 0.0, 1.0])  # rows 1 and 3: no click
    data = _funnel_source(kind, rows, tmp_path)
    if kind == "frame":
        with pytest.raises(
            ValueError,
            match=r"conversion=1 where click!=1 .*found in 2 row\(s\) "
            r"\(first rows \[1, 3\]\)",
        ):
            make_dataset(data, FEATURES[:1], [task])
        return
    ds = make_dataset(data, FEATURES[:1], [task], batch_size=4, shuffle=False)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"conversion=1 where click!=1[\s\S]*\[1 3\]",
    ):
        collect(ds)


def test_write_tfrecord_keeps_the_raw_label_columns(tmp_path):
    path = tmp_path / "funnel.tfrecord"
    write_tfrecord(FUNNEL, path, FEATURES[:1], FUNNEL_TASKS)
    _, y = collect(
        make_dataset(str(path), FEATURES[:1], FUNNEL_TASKS, batch_size=4, shuffle=False)
    )
    np.testing.assert_array_equal(y["cvr"], [1, NAN, 0, NAN])
    np.testing.assert_array_equal(y["ctcvr"], [1, 0, 0, 0])
    bad = dict(FUNNEL, conversion=[0.0, 1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="conversion needs a click"):
        write_tfrecord(bad, tmp_path / "bad.tfrecord", FEATURES[:1], FUNNEL_TASKS)


def test_funnel_task_arguments_are_checked():
    with pytest.raises(ValueError, match="not both"):
        Task("cvr", label="conversion", given="click", requires="click")
    with pytest.raises(ValueError, match="needs a binary task"):
        Task("gmv", "regression", given="click")
    with pytest.raises(ValueError, match="names its own label column"):
        Task("click", given="click")
    with pytest.raises(
        ValueError, match=r"given column of task 'cvr' \(column 'click'\)"
    ):
        no_click = {k: v for k, v in FUNNEL.items() if k != "click"}
        make_dataset(no_click, FEATURES[:1], FUNNEL_TASKS[1:2])
    bad_click = dict(FUNNEL, click=[2.0, 0.0, 1.0, 0.0])
    with pytest.raises(ValueError, match=r"'cvr \(given\)' \(label column 'click'\)"):
        make_dataset(bad_click, FEATURES[:1], FUNNEL_TASKS[1:2])


# ----------------------------------------------------------------------------- sequences


HISTORY = SequenceFeature(
    "history",
    item=[
        SparseFeature("item", vocabulary_size=10),
        SparseFeature("tags", vocabulary_size=5, max_len=2),
    ],
    properties=[SparseFeature("action", vocabulary=("click", "buy"))],
    max_len=3,
)
SEQUENCE_FEATURES = [SparseFeature("user", vocabulary_size=10), HISTORY]
SEQUENCE_TASKS = [
    Task("genre", "multiclass", num_classes=3),
    Task("genres", "multiclass", num_classes=3, label="genre_weights"),
    Task("rank", "ranking", list_size=2),
]
SEQUENCE_ROWS = {
    "user": np.array([1, 2, 3]),
    "history_item": np.array([[4, 5, -1], [9, -1, -1], [-1, -1, -1]]),
    "history_tags": np.array(
        [[[1, 2], [3, -1], [-1, -1]], [[0, 0], [-1, -1], [-1, -1]], [[-1, -1]] * 3]
    ),
    "history_action": np.array(
        [["click", "buy", ""], ["buy", "", ""], ["", "", ""]], dtype=object
    ),
    "genre": np.array([0.0, 2.0, NAN]),  # class indices; NaN: no label
    "genre_weights": [[1, 1, 0], [0, 0, 3], None],  # multi-hot / weights
    "rank": np.array([[2.0, 0.0], [1.0, NAN], [0.0, -1.0]]),
}


def test_sequences_and_vector_labels_in_memory():
    ds = make_dataset(
        SEQUENCE_ROWS, SEQUENCE_FEATURES, SEQUENCE_TASKS, batch_size=2, shuffle=False
    )
    spec_x, spec_y = ds.element_spec
    shapes = {k: (s.shape.as_list(), s.dtype) for k, s in spec_x.items()}
    assert shapes == {
        "user": ([None], tf.int64),
        "history_item": ([None, 3], tf.int64),
        "history_tags": ([None, 3, 2], tf.int64),
        "history_action": ([None, 3], tf.string),
    }
    assert {k: s.shape.as_list() for k, s in spec_y.items()} == {
        "genre": [None, 3],
        "genres": [None, 3],
        "rank": [None, 2],
    }
    assert [int(x["user"].shape[0]) for x, _ in ds] == [2, 1]
    x, y = collect(ds)
    assert x["history_item"].tolist() == SEQUENCE_ROWS["history_item"].tolist()
    assert x["history_tags"].tolist() == SEQUENCE_ROWS["history_tags"].tolist()
    assert x["history_action"].tolist() == [
        [b"click", b"buy", b""],
        [b"buy", b"", b""],
        [b"", b"", b""],
    ]
    np.testing.assert_array_equal(  # class index -> one-hot, NaN -> NaN row
        y["genre"], [[1, 0, 0], [0, 0, 1], [NAN, NAN, NAN]]
    )
    np.testing.assert_array_equal(  # weights -> normalised, None -> NaN row
        y["genres"], [[0.5, 0.5, 0], [0, 0, 1], [NAN, NAN, NAN]]
    )
    np.testing.assert_array_equal(y["rank"], [[2, 0], [1, -1], [0, -1]])  # NaN -> -1
    assert all(v.dtype == np.float32 for v in y.values())


def test_vector_labels_missing_everywhere_are_warned_about():
    _, warned, _ = make_warned(SEQUENCE_ROWS, SEQUENCE_FEATURES, SEQUENCE_TASKS)
    assert warned == []  # one unlabelled row of three is fine
    rows = dict(
        SEQUENCE_ROWS,
        genre=np.full(3, NAN),
        rank=np.array([[-1.0, NAN], [NAN, NAN], [-1.0, -1.0]]),
    )
    _, warned, messages = make_warned(rows, SEQUENCE_FEATURES, SEQUENCE_TASKS)
    assert warned == ["genre", "rank"]
    assert "of the 3 rows (every one is NaN)" in messages[0]
    assert "(every one is -1 / NaN (padded candidates only))" in messages[1]


def test_sequences_from_a_dataframe_of_arrays():
    frame = pd.DataFrame(
        {k: list(v) for k, v in SEQUENCE_ROWS.items() if not k.startswith("genre")}
    )
    x, y = collect(
        make_dataset(frame, SEQUENCE_FEATURES, [SEQUENCE_TASKS[2]], shuffle=False)
    )
    assert x["history_tags"].tolist() == SEQUENCE_ROWS["history_tags"].tolist()
    assert x["history_action"][0].tolist() == [b"click", b"buy", b""]
    np.testing.assert_array_equal(y["rank"], [[2, 0], [1, -1], [0, -1]])


def _sequence_rows(**changes):
    return {**SEQUENCE_ROWS, **changes}


@pytest.mark.parametrize(
    "changes, error, match",
    [
        (
            {"history_item": np.zeros((3, 4), "int64")},
            ValueError,
            r"Sequence input 'history_item': expected a padded array of shape "
            r"\(N, 3\) \(pad with -1\); received \(3, 4\)",
        ),
        (
            {"history_tags": np.zeros((3, 3), "int64")},
            ValueError,
            r"'history_tags': expected a padded array of shape \(N, 3, 2\)",
        ),
        (
            {"history_item": [[4, 5, -1], [9], []]},
            ValueError,
            r"'history_item'.*received rows of different lengths",
        ),
        (
            {"history_item": np.array([[4, 10, -1]] * 3)},
            ValueError,
            r"'history_item': ids must lie in \[0, vocabulary_size=10\)",
        ),
        (
            {"history_action": np.array([[1, 2, 3]] * 3)},
            TypeError,
            r"'history_action': expected strings",
        ),
        (
            {"genre": np.array([0.0, 3.0, 1.0])},
            ValueError,
            r"'genre'.*class indices must be integers in \[0, num_classes=3\)",
        ),
        (
            {"genre": np.array([0.0, 1.5, 1.0])},
            ValueError,
            r"'genre'.*received \[1.5\]",
        ),
        (
            {"genre_weights": [[1, -1, 1], [0, 0, 1], None]},
            ValueError,
            r"'genres'.*non-negative weights with a positive sum",
        ),
        (
            {"genre_weights": [[0, 0, 0], [0, 0, 1], None]},
            ValueError,
            r"'genres'.*non-negative weights with a positive sum",
        ),
        (
            {"genre_weights": [[1, 0], [0, 1], None]},
            ValueError,
            r"'genres'.*vector of 3 values per row",
        ),
        (
            {"rank": np.array([[2.0, -2.0], [1.0, 0.0], [0.0, 0.0]])},
            ValueError,
            r"'rank'.*relevance grades must be >= 0.*received \[-2.0\]",
        ),
        (
            {"rank": np.array([1.0, 2.0, 3.0])},
            ValueError,
            r"'rank'.*shape \(N, 2\)\); received shape \(3,\)",
        ),
    ],
)
def test_bad_sequences_and_vector_labels_are_explained(changes, error, match):
    with pytest.raises(error, match=match):
        make_dataset(
            _sequence_rows(**changes),
            SEQUENCE_FEATURES,
            SEQUENCE_TASKS,
            unseen_ids="error",  # ids outside the vocabulary too
        )


def test_missing_sequence_input_is_named():
    rows = {k: v for k, v in SEQUENCE_ROWS.items() if k != "history_action"}
    with pytest.raises(
        ValueError,
        match=r"input 'history_action' of SequenceFeature 'history' "
        r"\(column 'history_action'\)",
    ):
        make_dataset(rows, SEQUENCE_FEATURES)


@pytest.mark.parametrize(
    "features, tasks, match",
    [
        (SEQUENCE_FEATURES, None, r"SequenceFeature 'history'.*in-memory data"),
        (BASIC_FEATURES, [SEQUENCE_TASKS[0]], r"multiclass task 'genre'.*in-memory"),
        (BASIC_FEATURES, [SEQUENCE_TASKS[2]], r"ranking task 'rank'.*not for CSV"),
    ],
)
def test_sequences_and_vector_labels_need_in_memory_data(
    features, tasks, match, tmp_path
):
    path = write_text(tmp_path / "d.csv", "user,price,click\n1,2.0,1\n")
    with pytest.raises(ValueError, match=match):
        make_dataset(str(path), features, tasks)


@pytest.mark.backends("jax", reason="JAX's int32 truncation of int64 values")
def test_ids_beyond_int32_are_refused_on_jax_without_x64():
    import jax

    if jax.config.read("jax_enable_x64"):
        pytest.skip("JAX_ENABLE_X64=1: int64 values are kept")
    spec = SparseFeature("item", hash_bins=64, dtype="int64")
    with pytest.raises(ValueError, match="'item' has int64 values beyond int32"):
        make_dataset({"item": np.array([3, 2**31])}, [spec], [], batch_size=2)
    make_dataset({"item": np.array([3, 2**31 - 1])}, [spec], [], batch_size=2)
    # Arrays given to the model itself are checked too.
    model = km.build_single_task([spec], [km.Task("click")])
    with pytest.raises(ValueError, match="'item' has int64 values beyond int32"):
        model.predict({"item": np.array([3, 2**31])}, verbose=0)
