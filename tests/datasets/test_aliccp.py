import math

import numpy as np
import pytest
import tensorflow as tf

import keras_mtl
from keras_mtl.datasets.aliccp import (
    AITM_FIELDS,
    ALICCP_FIELDS,
    aliccp_features,
    aliccp_tasks,
    load_aliccp,
    loader,
    parser,
)
from keras_mtl.datasets.aliccp.fields import BY_NAME
from keras_mtl.features import SparseFeature
from keras_mtl.tasks import Task
from tests.helpers import write_text

NAN = float("nan")
U1, U2, U3 = "a1b2c3d4e5f60718", "ffff000011112222", "0123456789abcdef"


def feature_list(features):
    """`(field, id)` or `(field, id, value)` tuples -> the raw `\\x01\\x02\\x03` list."""
    tokens = []
    for field, fid, *value in features:
        tokens.append(f"{field}\x02{fid}\x03{value[0] if value else 1.0}")
    return "\x01".join(tokens)


def skeleton_line(sample_id, click, buy, index, features, num_features=None):
    count = len(features) if num_features is None else num_features
    return f"{sample_id},{click},{buy},{index},{count},{feature_list(features)}"


def common_line(index, features):
    return f"{index},{len(features)},{feature_list(features)}"


COMMON = [
    # User 1: the category actions interleaved with other fields; 7 shop actions.
    common_line(
        U1,
        [
            ("101", 1001),
            ("109_14", 501, 0.69315),
            ("121", 11),
            ("109_14", 502, 1.0986),
            ("124", 1),
            ("109_14", 503, 2.3979),
            *[("110_14", 600 + k, 0.5) for k in range(1, 8)],
        ],
    ),
    common_line(U2, [("101", 1002), ("124", 2), ("109_14", 504)]),
    common_line(U3, [("101", 1003)]),
]
SKELETON = [
    skeleton_line(
        1,
        1,
        0,
        U1,
        [
            ("205", 2001),
            ("206", 31),
            ("210", 71),
            ("210", 72),
            ("508", 8001, 2.3979),
            ("301", 1),
        ],
    ),
    skeleton_line(2, 0, 0, U2, [("206", 32), ("210", 73), ("301", 2)]),
    skeleton_line(
        3, 1, 1, U1, [("205", 2003), ("210", 74), ("210", 75), ("210", 76), ("301", 1)]
    ),
    # An unknown field is ignored; a user field in the skeleton line wins.
    skeleton_line(4, 0, 0, U2, [("205", 2004), ("999", 5), ("101", 1999), ("301", 3)]),
    skeleton_line(5, 1, 0, U1, []),  # no impression features at all
]

FEATURES = aliccp_features(
    [
        "user_id",
        "user_gender",
        "user_category_actions",
        "user_shop_actions",
        "user_intention_actions",
        "item_id",
        "item_category",
        "item_intention",
        "user_item_category",
        "scenario",
    ],
    embedding_dim=4,
    hash_bins=100,
    max_len={
        "user_category_actions": 4,
        "user_shop_actions": 5,
        "user_intention_actions": 3,
        "item_intention": 2,
    },
)
EXPECTED_X = {
    "user_id": [1001, 1002, 1001, 1999, 1001],
    "user_gender": [1, 2, 1, 2, 1],
    "user_category_actions": [[501, 502, 503, -1], [504, -1, -1, -1]] * 2
    + [[501, 502, 503, -1]],
    "user_shop_actions": [
        [601, 602, 603, 604, 605],  # 7 values truncated to max_len 5
        [-1] * 5,
        [601, 602, 603, 604, 605],
        [-1] * 5,
        [601, 602, 603, 604, 605],
    ],
    "user_intention_actions": [[-1] * 3] * 5,  # the field never occurs
    "item_id": [2001, -1, 2003, 2004, -1],
    "item_category": [31, 32, -1, -1, -1],
    "item_intention": [[71, 72], [73, -1], [74, 75], [-1, -1], [-1, -1]],
    "user_item_category": [8001, -1, -1, -1, -1],
    "scenario": [1, 2, 1, 3, -1],
}
EXPECTED_Y = {
    "ctr": [1, 0, 1, 0, 1],
    "cvr": [0, NAN, 1, NAN, 0],  # masked where there is no click
    "ctcvr": [0, 0, 1, 0, 0],
}


def write_split(root, split="train", skeleton=SKELETON, common=COMMON, gz=False):
    root.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    for name, lines in (
        (f"sample_skeleton_{split}.csv{suffix}", skeleton),
        (f"common_features_{split}.csv{suffix}", common),
    ):
        write_text(root / name, "".join(line + "\n" for line in lines))
    return root


def batches(ds):
    return [
        (
            {k: v.numpy().tolist() for k, v in x.items()},
            {k: v.numpy().tolist() for k, v in y.items()},
        )
        for x, y in ds
    ]


def same(a, b):
    return len(a) == len(b) and all(
        x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a, b)
    )


@pytest.mark.parametrize("gz", [False, True])
def test_parses_and_joins_the_raw_format(tmp_path, gz):
    root = write_split(tmp_path, gz=gz)
    ds = load_aliccp(root, features=FEATURES, batch_size=8)
    x, y = next(iter(ds))
    assert set(x) == set(EXPECTED_X)
    for name, values in EXPECTED_X.items():
        assert x[name].dtype == tf.int64, name
        assert x[name].numpy().tolist() == values, name
    assert set(y) == set(EXPECTED_Y)
    for name, values in EXPECTED_Y.items():
        assert y[name].dtype == tf.float32
        assert same(y[name].numpy().tolist(), values), name
    assert len(list(ds)) == 1


def test_batches_max_rows_split_subdirectory_and_blank_lines(tmp_path):
    write_split(tmp_path / "test", "test", SKELETON[:2] + [""] + SKELETON[2:])
    ds = load_aliccp(tmp_path, "test", FEATURES, batch_size=2)
    got = batches(ds)
    assert [len(x["item_id"]) for x, _ in got] == [2, 2, 1]
    assert sum((x["item_id"] for x, _ in got), []) == EXPECTED_X["item_id"]
    again = batches(ds)  # a second epoch re-reads the same rows
    assert [x for x, _ in again] == [x for x, _ in got]
    assert [y["ctr"] for _, y in again] == [y["ctr"] for _, y in got]

    few = batches(load_aliccp(tmp_path, "test", FEATURES, batch_size=10, max_rows=2))
    assert few[0][0]["user_id"] == [1001, 1002]
    assert same(few[0][1]["cvr"], [0, NAN])

    write_split(tmp_path / "bad", skeleton=["", SKELETON[0], "", BAD_TOKEN])
    with pytest.raises(ValueError, match="line 4: feature"):  # blank lines count
        load_aliccp(tmp_path / "bad", features=FEATURES)


def test_crlf_no_final_newline_and_lines_longer_than_a_block(tmp_path, monkeypatch):
    monkeypatch.setattr(parser, "BLOCK_BYTES", 7)
    monkeypatch.setattr(parser, "COMMON_BLOCK_BYTES", 5)
    write_text(tmp_path / "sample_skeleton_train.csv", "\r\n".join(SKELETON))
    write_text(tmp_path / "common_features_train.csv", "\r\n".join(COMMON))
    x, y = next(iter(load_aliccp(tmp_path, features=FEATURES)))
    for name, values in EXPECTED_X.items():
        assert x[name].numpy().tolist() == values, name
    assert same(y["cvr"].numpy().tolist(), EXPECTED_Y["cvr"])


def test_random_lines_match_a_line_by_line_reading(tmp_path, monkeypatch):
    """The vectorised parser against a plain per-line reading of random data:
    repeated, interleaved, unknown and absent fields, empty lists, odd blocks."""
    monkeypatch.setattr(parser, "BLOCK_BYTES", 997)
    monkeypatch.setattr(parser, "COMMON_BLOCK_BYTES", 389)
    rng = np.random.default_rng(7)
    fields = ["101", "124", "109_14", "110_14", "205", "210", "301", "9", "1101_14_99"]

    def random_features(pool):
        picks = rng.choice(pool, size=rng.integers(0, 12))
        return [(str(f), int(rng.integers(0, 10**12))) for f in picks]

    users = {f"u{k}": random_features(fields[:4] + fields[7:]) for k in range(20)}
    impressions = [
        (f"u{rng.integers(20)}", random_features(fields[2:])) for _ in range(300)
    ]
    write_split(
        tmp_path,
        skeleton=[
            skeleton_line(i, 1, 0, user, feats)
            for i, (user, feats) in enumerate(impressions)
        ],
        common=[common_line(user, feats) for user, feats in users.items()],
    )
    x = {k: [] for k in EXPECTED_X}
    for batch, _ in load_aliccp(tmp_path, features=FEATURES, batch_size=64):
        for name, values in batch.items():
            x[name] += values.numpy().tolist()

    for i, (user, feats) in enumerate(impressions):
        for feature in FEATURES:
            field = BY_NAME[feature.name].field
            ids = [v for f, v in feats if f == field] or [
                v for f, v in users[user] if f == field
            ]
            want = (ids + [-1] * feature.length)[: feature.length]
            got = x[feature.name][i]
            assert (got if feature.max_len else [got]) == want, (i, feature.name)


def test_max_rows_keeps_only_the_users_it_needs(tmp_path):
    root = write_split(tmp_path)
    common = loader._CommonTable.read(
        root / "common_features_train.csv",
        parser.Layout(FEATURES),
        loader._skeleton_indices(tmp_path / "sample_skeleton_train.csv", 2),
    )
    assert sorted(common.index) == sorted([U1.encode(), U2.encode()])
    # Only the user-side fields present in the file take room in the table.
    assert common.matrix.shape == (2, 1 + 1 + 4 + 5)
    assert common.matrix.dtype == np.int32


def test_default_features_tasks_and_a_forward_pass(tmp_path):
    features = aliccp_features()
    assert [f.name for f in features] == [f.name for f in ALICCP_FIELDS.values()]
    assert all(f.dtype == "int64" and f.embedding_dim == 18 for f in features)
    for f, field in zip(features, ALICCP_FIELDS.values()):
        assert f.hash_bins >= max(field.vocabulary_size or 0, 1000), f.name
    lists = {f.name: f.max_len for f in features if f.max_len}
    assert lists == {
        "user_category_actions": 50,
        "user_shop_actions": 50,
        "user_brand_actions": 50,
        "user_intention_actions": 50,
        "item_intention": 10,
    }
    assert [(t.name, t.label_column, t.given, t.requires, t.metric_only) for t in
            aliccp_tasks()] == [
        ("ctr", "click", None, None, False),
        ("cvr", "conversion", "click", None, True),
        ("ctcvr", "conversion", None, "click", False),
    ]  # fmt: skip

    small = aliccp_features(embedding_dim=3, hash_bins=1000)
    x, y = next(iter(load_aliccp(write_split(tmp_path), features=small)))
    assert x["user_shop_actions"].shape == (5, 50)
    assert x["user_shop_actions"][0, :8].numpy().tolist() == [
        *range(601, 608),
        -1,
    ]
    assert x["item_intention"].shape == (5, 10)
    encoder = keras_mtl.layers.FeatureEncoder(small)
    assert encoder(x).shape == (5, 3 * len(small))
    assert set(y) == {"ctr", "cvr", "ctcvr"}


def test_feature_selection_options():
    aitm = aliccp_features(AITM_FIELDS)
    assert len(aitm) == 18 and all(f.max_len is None for f in aitm)
    assert aitm[0].name == "user_id" and aitm[-1].name == "scenario"
    custom = aliccp_features(
        ["205", "user_brand_actions"],
        hash_bins={"item_id": 7, "127_14": 9},
        max_len={"127_14": 3},
    )
    assert [(f.name, f.hash_bins, f.max_len) for f in custom] == [
        ("item_id", 7, None),
        ("user_brand_actions", 9, 3),
    ]
    with pytest.raises(ValueError, match=r"'999' is no Ali-CCP field"):
        aliccp_features(["999"])


# Keras warns once at the end of a first epoch of unknown length.
@pytest.mark.filterwarnings("ignore:Your input ran out of data")
@pytest.mark.xla
def test_one_fit_step(tmp_path):
    """Shared-bottom on the loaded data, without the metric_only `cvr` task."""
    tasks = [t for t in aliccp_tasks() if not t.metric_only]
    ds = load_aliccp(write_split(tmp_path), features=FEATURES, tasks=tasks)
    model = keras_mtl.build_shared_bottom(FEATURES, tasks, hidden_units=(8,))
    # The hashed id fields take the integer-hash path: XLA on, and (asked for:
    # "auto" leaves these small fixture tables on exact Adam) row-wise tables.
    assert {f.hash_function for f in FEATURES} == {"int_hash_v1"}
    assert model.jit_compile
    model.compile(
        optimizer="adam", loss=dict(model.loss), row_wise_updates=True, jit_compile=True
    )
    assert isinstance(model.optimizer, keras_mtl.optimizers.RowWiseOptimizer)
    before = [np.array(w) for w in model.trainable_weights]
    history = model.fit(ds, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(
        not np.allclose(a, np.array(w)) for a, w in zip(before, model.trainable_weights)
    )


def test_features_only_for_predict(tmp_path):
    x = next(iter(load_aliccp(write_split(tmp_path), features=FEATURES, tasks=[])))
    assert x["item_id"].numpy().tolist() == EXPECTED_X["item_id"]


def many_rows(n):
    return [
        skeleton_line(i, i % 2, 0, U1 if i % 3 else U2, [("205", i)]) for i in range(n)
    ]


def test_shuffle_is_a_reproducible_permutation(tmp_path):
    root = write_split(tmp_path, skeleton=many_rows(300))
    features = aliccp_features(["item_id", "user_id"], hash_bins=10)

    def epochs(seed, count=2, buffer=64):
        ds = load_aliccp(
            root,
            features=features,
            batch_size=32,
            shuffle=True,
            seed=seed,
            shuffle_buffer_size=buffer,
        )
        return [
            sum((x["item_id"].numpy().tolist() for x, _ in ds), [])
            for _ in range(count)
        ]

    first, second = epochs(seed=1)
    assert sorted(first) == list(range(300)) and sorted(second) == list(range(300))
    assert first != list(range(300)) and first != second
    assert epochs(seed=1) == [first, second]
    assert epochs(seed=2)[0] != first
    assert sorted(epochs(seed=3, count=1, buffer=1000)[0]) == list(range(300))
    # Labels and user features stay with their rows.
    x, y = next(iter(load_aliccp(root, features=features, shuffle=True, seed=0)))
    ids = x["item_id"].numpy()
    assert (y["ctr"].numpy() == ids % 2).all()
    assert (x["user_id"].numpy() == np.where(ids % 3, 1001, 1002)).all()


def test_missing_directory_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"not found.*tianchi.aliyun.com"):
        load_aliccp(tmp_path / "nowhere")
    write_split(tmp_path)
    (tmp_path / "common_features_train.csv").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"No common_features_train.csv\[.gz\].*tianchi"
    ):
        load_aliccp(tmp_path)
    with pytest.raises(FileNotFoundError, match="sample_skeleton_test"):
        load_aliccp(tmp_path, "test")
    with pytest.raises(ValueError, match="split must be one of"):
        load_aliccp(tmp_path, "valid")


BAD_TOKEN = "1,0,0," + U1 + ",2,205\x022001\x031.0\x01206\x0231"


@pytest.mark.parametrize(
    "line, match",
    [
        ("1,0,0," + U1 + ",0", r"line 2 has 5 comma-separated columns, expected 6"),
        ("  ", r"line 2 has 1 comma-separated columns, expected 6"),
        (BAD_TOKEN, r"line 2: feature b'206\\x0231' is not field_id"),
        (
            skeleton_line(1, 0, 0, U1, [("205", "20x1")]),
            r"line 2: feature b'205\\x0220x1\\x031.0' is not.*integer feature_id",
        ),
        (
            skeleton_line(1, 0, 0, U1, [("205", 1, "one")]),
            r"line 2: feature .* numeric value",
        ),
        (
            skeleton_line(1, 0, 0, U1, [("205", 1)], num_features=2),
            r"line 2: num_features is 2 but the feature list has 1 features",
        ),
        (
            skeleton_line(1, "yes", 0, U1, [("205", 1)]),
            r"line 2: column click must be a non-negative integer; got b'yes'",
        ),
        (
            skeleton_line(1, 0, 0, U1 + "\x01", [("205", 1)]),
            r"line 2: column common_feature_index holds a feature separator",
        ),
        (
            skeleton_line(1, 0, 0, "deadbeef", [("205", 1)]),
            r"line 2: common_feature_index 'deadbeef' is not in .*common_features_train",
        ),
    ],
)
def test_malformed_skeleton_lines_name_file_and_line(tmp_path, line, match):
    root = write_split(tmp_path, skeleton=[SKELETON[0], line])
    with pytest.raises(ValueError, match=r"sample_skeleton_train.csv'?: " + match):
        load_aliccp(root, features=FEATURES)


def test_an_error_after_the_first_block_stops_the_pipeline(tmp_path, monkeypatch):
    monkeypatch.setattr(parser, "BLOCK_BYTES", 1)  # one line per block
    root = write_split(tmp_path, skeleton=[*SKELETON[:3], BAD_TOKEN])
    ds = load_aliccp(root, features=FEATURES, batch_size=2)
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"line 4: feature"):
        list(ds)


@pytest.mark.parametrize(
    "line, match",
    [
        (common_line(U1, [("101", 1)])[:-6], r"line 3: feature b'101' is not"),
        (common_line(U1, [("101", 7)]), f"line 3: common_feature_index '{U1}' already"),
        (U3 + ",1", r"line 3 has 2 comma-separated columns, expected 3"),
    ],
)
def test_malformed_common_features(tmp_path, line, match):
    root = write_split(tmp_path, common=[COMMON[0], COMMON[1], line])
    with pytest.raises(ValueError, match=r"common_features_train.csv'?: " + match):
        load_aliccp(root, features=FEATURES)


CONVERSION_WITHOUT_CLICK = skeleton_line(6, 0, 1, U2, [("205", 2006)])


def test_conversion_without_click(tmp_path, monkeypatch):
    root = write_split(tmp_path, skeleton=[*SKELETON, CONVERSION_WITHOUT_CLICK])
    with pytest.raises(
        ValueError,
        match=r"line 6: conversion=1 without click=1, but task 'cvr'.*"
        "drop_conversions_without_click=True",
    ):
        load_aliccp(root, features=FEATURES)
    x, y = next(
        iter(load_aliccp(root, features=FEATURES, drop_conversions_without_click=True))
    )
    assert x["item_id"].numpy().tolist() == EXPECTED_X["item_id"]
    assert same(y["cvr"].numpy().tolist(), EXPECTED_Y["cvr"])
    # Tasks without a funnel keep the row.
    x, y = next(
        iter(load_aliccp(root, features=FEATURES, tasks=[Task("ctr", label="click")]))
    )
    assert x["item_id"].numpy().tolist()[-1] == 2006
    # Past the first block, the error stops the pipeline.
    monkeypatch.setattr(parser, "BLOCK_BYTES", 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="line 6: conversion=1"):
        list(load_aliccp(root, features=FEATURES))


def test_bad_arguments(tmp_path):
    root = write_split(tmp_path)
    with pytest.raises(ValueError, match="label columns"):
        load_aliccp(root, features=FEATURES, tasks=[Task("buy")])
    with pytest.raises(ValueError, match="not named after an Ali-CCP field"):
        load_aliccp(root, features=[SparseFeature("item", hash_bins=10, dtype="int64")])
    with pytest.raises(ValueError, match="int64 SparseFeatures"):
        load_aliccp(root, features=[SparseFeature("item_id", hash_bins=10)])
    with pytest.raises(ValueError, match="max_rows must be a positive int"):
        load_aliccp(root, features=FEATURES, max_rows=0)
