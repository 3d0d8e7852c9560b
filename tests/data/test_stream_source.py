"""`make_dataset` on a block source: blocks of rows as dicts of numpy columns."""

import math

import numpy as np
import pytest
import tensorflow as tf

from keras_mtl.data import make_dataset, stream_source
from keras_mtl.features import DenseFeature, SequenceFeature, SparseFeature
from keras_mtl.tasks import Task, esmm_tasks

FEATURES = [
    SparseFeature("user", vocabulary_size=2000),  # ids are row numbers here
    SparseFeature("tags", vocabulary_size=2000, max_len=3),
    SparseFeature("city", vocabulary=["paris", "rome"]),
    DenseFeature("price"),
    DenseFeature("pos", dim=2, allow_missing=True),
]
TASKS = esmm_tasks()


def block(start, n, **overrides):
    """Rows start..start+n-1: every value a function of the row number r."""
    r = np.arange(start, start + n)
    columns = {
        "user": r,  # int64 ids
        "tags": np.stack([r, r + 1], axis=1),  # 2 ids per row, padded to max_len 3
        "city": np.array(["paris", "rome"])[r % 2],
        "price": r * 0.5,  # float64, cast to float32
        "pos": np.stack([r, -r], axis=1).astype(np.float32),
        "click": (r % 2 == 0).astype(np.int64),
        "conversion": (r % 4 == 0).astype(np.float32),
        "weight": np.full(n, 2.0),
        "unused": np.zeros(n),  # extra columns are ignored
    }
    return columns | overrides


SIZES = (3, 0, 5, 2)  # blocks of unequal sizes, one empty


def blocks():
    start = 0
    for n in SIZES:
        yield block(start, n)
        start += n


def as_lists(tree):
    return {k: v.numpy().tolist() for k, v in tree.items()}


def same(a, b):
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)
    )


def test_batches_hold_the_rows_in_the_element_format():
    ds = make_dataset(blocks, FEATURES, TASKS, batch_size=4, shuffle=False)
    got = list(ds)
    assert [len(x["user"]) for x, _ in got] == [4, 4, 2]
    x, y = got[1]  # rows 4..7
    assert {k: v.dtype for k, v in x.items()} == {
        "user": tf.int64,
        "tags": tf.int64,
        "city": tf.string,
        "price": tf.float32,
        "pos": tf.float32,
    }
    assert as_lists(x) == {
        "user": [4, 5, 6, 7],
        "tags": [[4, 5, -1], [5, 6, -1], [6, 7, -1], [7, 8, -1]],
        "city": [b"paris", b"rome", b"paris", b"rome"],
        "price": [2.0, 2.5, 3.0, 3.5],
        "pos": [[4.0, -4.0], [5.0, -5.0], [6.0, -6.0], [7.0, -7.0]],
    }
    y = as_lists(y)
    assert y["ctr"] == [1.0, 0.0, 1.0, 0.0]
    assert same(y["cvr"], [1.0, math.nan, 0.0, math.nan])  # masked without a click
    assert y["ctcvr"] == [1.0, 0.0, 0.0, 0.0]
    assert sum((x["user"].numpy().tolist() for x, _ in got), []) == list(range(10))


def test_same_batches_as_the_same_rows_in_memory():
    whole = block(0, 10)
    streamed = make_dataset(
        blocks, FEATURES, TASKS, 4, shuffle=False, sample_weight="weight"
    )
    in_memory = make_dataset(
        whole, FEATURES, TASKS, 4, shuffle=False, sample_weight="weight"
    )
    pairs = list(zip(streamed, in_memory, strict=True))
    assert len(pairs) == 3
    for (x, y, w), (x2, y2, w2) in pairs:
        assert as_lists(x) == as_lists(x2)
        for name in y:
            assert same(y[name].numpy().tolist(), y2[name].numpy().tolist())
        assert w.numpy().tolist() == w2.numpy().tolist() == [2.0] * len(w)


def test_multi_valued_ids_are_truncated_or_padded_to_max_len():
    wide = block(0, 2, tags=np.array([[1, 2, 3, 4], [5, 6, 7, 8]]))
    narrow = block(2, 1, tags=np.array([[9]]))
    x, _ = next(iter(make_dataset([wide, narrow], FEATURES, TASKS, 8, shuffle=False)))
    assert x["tags"].numpy().tolist() == [[1, 2, 3], [5, 6, 7], [9, -1, -1]]


def test_features_only_for_predict_and_drop_remainder():
    only_x = [{k: v for k, v in b.items() if k not in ("click", "conversion")}
              for b in blocks()]  # fmt: skip
    for tasks in (None, []):
        got = list(make_dataset(only_x, FEATURES, tasks, 4, shuffle=False))
        assert [sorted(x) for x in got] == [sorted(f.name for f in FEATURES)] * 3
        assert got[2]["user"].numpy().tolist() == [8, 9]
    dropped = make_dataset(blocks, FEATURES, TASKS, 4, False, drop_remainder=True)
    assert [len(x["user"]) for x, _ in dropped] == [4, 4]


def test_a_callable_is_called_once_per_epoch_and_once_up_front():
    calls = []

    def counted():
        calls.append(1)
        return blocks()

    ds = make_dataset(counted, FEATURES, TASKS, 4, shuffle=False)
    assert len(calls) == 1  # the first block is read by make_dataset
    for _ in range(2):
        assert sum(len(x["user"]) for x, _ in ds) == 10
    assert len(calls) == 3

    class ReIterable:
        def __iter__(self):
            return blocks()

    ds = make_dataset(ReIterable(), FEATURES, TASKS, 4, shuffle=False)
    assert [len(x["user"]) for x, _ in ds] == [4, 4, 2]


def many_blocks(total=300, size=7):
    def source():
        for start in range(0, total, size):
            yield block(start, min(size, total - start))

    return source


@pytest.mark.parametrize("chunk_rows, buffer", [(16, 50), (1000, 1000)])
def test_shuffle_is_reproducible_and_new_each_epoch(monkeypatch, chunk_rows, buffer):
    """A permutation of the rows with each row's columns kept together; the same
    sequence of orders for the same seed, another order every epoch."""
    monkeypatch.setattr(stream_source, "_ROWS_PER_YIELD", chunk_rows)

    def epochs(seed, count=2):
        ds = make_dataset(
            many_blocks(), FEATURES, TASKS, 32, shuffle=True, seed=seed,
            shuffle_buffer_size=buffer,
        )  # fmt: skip
        out = []
        for _ in range(count):
            users = []
            for x, y in ds:
                ids = x["user"].numpy()
                assert (x["tags"].numpy()[:, 1] == ids + 1).all()
                assert (x["price"].numpy() == ids * 0.5).all()
                assert (y["ctr"].numpy() == (ids % 2 == 0)).all()
                users += ids.tolist()
            out.append(users)
        return out

    first, second = epochs(seed=1)
    assert sorted(first) == sorted(second) == list(range(300))
    assert first != list(range(300)) and second != first
    assert epochs(seed=1) == [first, second]
    assert epochs(seed=2)[0] != first


def test_unshuffled_epochs_repeat():
    ds = make_dataset(many_blocks(), FEATURES, TASKS, 64, shuffle=False)
    epochs = [sum((x["user"].numpy().tolist() for x, _ in ds), []) for _ in range(2)]
    assert epochs == [list(range(300))] * 2


def named(name, *parts):
    source = lambda: iter(parts)  # noqa: E731
    return type("Source", (), {"name": name, "__call__": lambda self: source()})()


@pytest.mark.parametrize(
    "bad, error, match",
    [
        (
            block(0, 2, user=7),
            ValueError,
            r"Columns of block 1 of data.bin have different numbers of rows \(None: "
            r"a scalar\): \{'user': None, 'tags': 2,",
        ),
        (
            {k: v for k, v in block(0, 2).items() if k not in ("city", "click")},
            ValueError,
            r"Missing from block 1 of data.bin: SparseFeature `city` \(column 'city'\), "
            r"label of task `ctr`, `cvr`, `ctcvr` \(column 'click'\). Available "
            r"columns: \['conversion', 'pos',",
        ),
        (
            block(0, 2, user=np.array([1.0, 2.0])),
            TypeError,
            r"SparseFeature `user` \(column 'user', block 1 of data.bin\): expected "
            r"integer ids \(int64, -1 for none\); received dtype float64",
        ),
        (
            block(0, 2, city=np.array([1, 2])),
            TypeError,
            r"SparseFeature `city` .*expected strings; received dtype int64",
        ),
        (
            block(0, 2, city=np.array(["rome", None], dtype=object)),
            TypeError,
            r"SparseFeature `city` .*received a value of type NoneType",
        ),
        (
            block(0, 2, price=np.array(["1", "2"])),
            TypeError,
            r"DenseFeature `price` .*expected numbers; received dtype <U1",
        ),
        (
            block(0, 2, pos=np.zeros((2, 3))),
            ValueError,
            r"DenseFeature `pos` \(column 'pos', block 1 of data.bin\): expected 2 "
            r"values per row, shape \(2, 2\); received shape \(2, 3\)",
        ),
        (
            block(0, 2, tags=np.array([1, 2])),
            ValueError,
            r"SparseFeature `tags` .*expected 3 values per row, shape \(2, 3\)",
        ),
        (
            block(0, 2, price=np.zeros((2, 2))),
            ValueError,
            r"DenseFeature `price` .*expected one value per row, shape \(2,\); "
            r"received shape \(2, 2\)",
        ),
        (
            block(0, 2, click=np.zeros(3)),
            ValueError,
            r"Columns of block 1 of data.bin have different numbers of rows .*: "
            r"\{'user': 2, .*'click': 3",
        ),
        ([1, 2], TypeError, r"block 1 of data.bin is list; expected a dict"),
    ],
)
def test_a_bad_first_block_fails_in_make_dataset(bad, error, match):
    with pytest.raises(error, match=match):
        make_dataset(named("data.bin", bad), FEATURES, TASKS, 4)


def test_a_bad_later_block_stops_the_pipeline_naming_the_block():
    bad = {k: v for k, v in block(3, 2).items() if k != "price"}
    ds = make_dataset(named("data.bin", block(0, 3), bad), FEATURES, TASKS, 2, False)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Missing from block 2 of data.bin: DenseFeature `price`",
    ):
        list(ds)


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"click": np.array([1.0, 2.0])},
            r"Task `ctr` \(data.bin, label column `click`\): binary labels must be 0 "
            r"or 1.*received\] \[2\]",
        ),
        (
            {"click": np.array([0.0, 1.0]), "conversion": np.array([1.0, 0.0])},
            r"conversion=1 where click!=1",
        ),
        (
            {"price": np.array([1.0, np.nan])},
            r"DenseFeature `price` \(data.bin, column `price`\): contains NaN but allow_missing=False",
        ),
        (
            {"weight": np.array([1.0, -1.0])},
            r"sample_weight \(data.bin, column `weight`\): weights must be finite and >= 0; received\] \[-1\]",
        ),
    ],
)
def test_values_are_checked_in_the_pipeline(overrides, match):
    ds = make_dataset(
        named("data.bin", block(0, 2, **overrides)),
        FEATURES,
        TASKS,
        4,
        sample_weight="weight",
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match=match):
        list(ds)


def test_bad_sources():
    with pytest.raises(TypeError, match=r"generator is an iterator .* read only once"):
        make_dataset(blocks(), FEATURES, TASKS)
    with pytest.raises(TypeError, match=r"block source one\(\) returned dict"):

        def one():
            return block(0, 2)

        make_dataset(one, FEATURES, TASKS)
    with pytest.raises(ValueError, match=r"block source empty\(\) yielded no rows"):

        def empty():
            yield block(0, 0)

        make_dataset(empty, FEATURES, TASKS)
    with pytest.raises(ValueError, match=r"format='csv' applies to file paths"):
        make_dataset(blocks, FEATURES, TASKS, format="csv")
    sequence = SequenceFeature(
        "history", item=[SparseFeature("item", vocabulary_size=5)], max_len=2
    )
    genre = Task("genre", type="multiclass", num_classes=3)
    with pytest.raises(
        ValueError,
        match=r"SequenceFeature 'history', multiclass task 'genre': supported for "
        "in-memory data .* not for a block source",
    ):
        make_dataset(blocks, [sequence], [genre])
