import json

import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.features import check_features, feature_from_config, feature_to_config
from keras_mtl.tasks import task_from_config, task_to_config


def test_make_inputs_names_dtypes_shapes():
    inputs = km.make_inputs(
        [
            km.SparseFeature("user", vocabulary_size=10),
            km.SparseFeature("tags", vocabulary=("a", "b"), max_len=4),
            km.SparseFeature("city", hash_bins=8),
            km.DenseFeature("price"),
            km.DenseFeature("vec", dim=3),
        ]
    )
    got = {k: (v.name, v.dtype, tuple(v.shape)) for k, v in inputs.items()}
    assert got == {
        "user": ("user", "int64", (None,)),
        "tags": ("tags", "string", (None, 4)),
        "city": ("city", "string", (None,)),
        "price": ("price", "float32", (None,)),
        "vec": ("vec", "float32", (None, 3)),
    }


def test_rows_include_the_oov_row():
    assert km.SparseFeature("a", vocabulary_size=5).num_rows == 6
    assert km.SparseFeature("a", vocabulary=(3, 7)).num_rows == 3
    assert km.SparseFeature("a", vocabulary=(3, 7)).dtype == "int64"
    assert km.SparseFeature("a", hash_bins=9).num_rows == 9


def test_config_round_trip():
    for f in [
        km.SparseFeature("t", vocabulary=("x", "y"), embedding_dim=3, max_len=2),
        km.DenseFeature("d", dim=2, allow_missing=True, mean=1.5, std=2.0),
    ]:
        assert feature_from_config(feature_to_config(f)) == f


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: km.make_inputs([km.SparseFeature("a")]), "adapt_features"),
        (lambda: km.SparseFeature("a", vocabulary_size=3, hash_bins=4), "exactly one"),
        (lambda: km.SparseFeature("a", vocabulary_size=0), "vocabulary_size"),
        (lambda: km.SparseFeature("a", vocabulary=("x", "x")), "duplicates"),
        (lambda: km.SparseFeature("a", vocabulary=("x", "")), "padding value"),
        (lambda: km.SparseFeature("a", vocabulary=("x", 3)), "must be str"),
        (lambda: km.SparseFeature("a", vocabulary_size=3, dtype="string"), "integer"),
        (lambda: km.SparseFeature("a", vocabulary_size=3, max_len=0), "max_len"),
        (lambda: km.SparseFeature("", vocabulary_size=3), "non-empty"),
        (lambda: km.DenseFeature("d", dim=0), "dim"),
        (lambda: km.DenseFeature("d", std=0), "std"),
        (lambda: km.Task("t", "multiclass"), "type"),
        (lambda: km.Task("t", loss_weight=-1), "loss_weight"),
    ],
)
def test_bad_specs_name_the_argument(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_embedding_sharing_is_checked():
    owner = km.SparseFeature("item", vocabulary_size=10, embedding_dim=4)
    with pytest.raises(ValueError, match="'nope' names no sparse feature"):
        check_features(
            [
                owner,
                km.SparseFeature("x", vocabulary_size=10, share_embedding_with="nope"),
            ]
        )
    with pytest.raises(ValueError, match="11 rows x 8 dims"):
        check_features(
            [
                owner,
                km.SparseFeature(
                    "x",
                    vocabulary_size=10,
                    embedding_dim=8,
                    share_embedding_with="item",
                ),
            ]
        )
    ok = km.SparseFeature(
        "clicked",
        vocabulary_size=10,
        embedding_dim=4,
        max_len=5,
        share_embedding_with="item",
    )
    assert len(check_features([owner, ok])) == 2


# ----------------------------------------------------------------------------- sequences

ITEM_FIELDS = [
    km.SparseFeature("item", hash_bins=100, embedding_dim=8),
    km.SparseFeature("genres", vocabulary_size=20, embedding_dim=4, max_len=3),
]
PROPERTY_FIELDS = [km.SparseFeature("action", vocabulary=("click", "buy"))]


def _history(**kwargs):
    args = {"item": ITEM_FIELDS, "properties": PROPERTY_FIELDS, "max_len": 5}
    return km.SequenceFeature("history", **{**args, **kwargs})


def test_sequence_inputs_names_shapes_and_dtypes():
    seq = _history()
    assert seq.input_names == ["history_item", "history_genres", "history_action"]
    assert seq.fields == (*ITEM_FIELDS, *PROPERTY_FIELDS)
    assert [seq.input_shape(f) for f in seq.fields] == [(5,), (5, 3), (5,)]
    assert seq.input_spec(ITEM_FIELDS[1]) == km.SparseFeature(
        "history_genres", vocabulary_size=20, embedding_dim=4, max_len=3
    )
    assert not seq.supports_jit  # hashing and a string vocabulary
    inputs = km.make_inputs([km.SparseFeature("user", vocabulary_size=9), seq])
    got = {k: (v.name, v.dtype, tuple(v.shape)) for k, v in inputs.items()}
    assert got == {
        "user": ("user", "int64", (None,)),
        "history_item": ("history_item", "string", (None, 5)),
        "history_genres": ("history_genres", "int64", (None, 5, 3)),
        "history_action": ("history_action", "string", (None, 5)),
    }


def test_sequence_config_round_trip():
    seq = _history()
    config = feature_to_config(seq)
    assert config["kind"] == "sequence" and config["max_len"] == 5
    assert feature_from_config(config) == seq
    # Field configs are accepted in place of the specs.
    assert km.SequenceFeature(**{k: v for k, v in config.items() if k != "kind"}) == seq
    bare = km.SequenceFeature("h", item=ITEM_FIELDS[:1])
    assert bare.properties == () and bare.max_len == 100
    assert feature_from_config(feature_to_config(bare)) == bare


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"item": []}, "at least one item field"),
        ({"item": ITEM_FIELDS[::-1]}, "first item field 'genres'.*single-valued"),
        ({"item": [ITEM_FIELDS[0], km.DenseFeature("price")]}, "must be SparseFeature"),
        (
            {"properties": [km.SparseFeature("tags", hash_bins=3, max_len=2)]},
            r"property fields must be single-valued; \['tags'\]",
        ),
        (
            {"properties": [km.SparseFeature("item", vocabulary_size=3)]},
            "field names must be unique",
        ),
        (
            {
                "item": [
                    ITEM_FIELDS[0],
                    km.SparseFeature("shop", hash_bins=9, share_embedding_with="x"),
                ]
            },
            "share_embedding_with is not supported",
        ),
        ({"max_len": 0}, "max_len must be a positive int"),
        ({"max_len": 2.5}, "max_len must be a positive int"),
        ({"max_len": None}, "max_len must be a positive int"),
    ],
)
def test_bad_sequences_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _history(**kwargs)


def test_sequences_are_checked_among_the_features():
    seq = _history()
    with pytest.raises(ValueError, match="need a sequence model"):
        check_features([seq])
    assert check_features([seq], allow_sequences=True) == [seq]
    clash = km.SparseFeature("history_item", vocabulary_size=3)
    with pytest.raises(ValueError, match=r"repeated: \['history_item'\]"):
        check_features([clash, seq], allow_sequences=True)
    with pytest.raises(ValueError, match=r"repeated: \['history_item'\]"):
        km.make_inputs([seq, clash])


# ----------------------------------------------------------------------------- tasks


def test_new_task_types_and_label_shapes():
    genre = km.Task("genre", "multiclass", num_classes=4)
    rank = km.Task("rank", "ranking", list_size=10, label="grades")
    assert genre.label_shape == (4,) and rank.label_shape == (10,)
    assert km.Task("click").label_shape == () == km.Task("y", "regression").label_shape
    assert rank.label_column == "grades"
    assert km.Task("r", "ranking", list_size=1).label_shape == (1,)
    for task in (genre, rank):
        assert task_from_config(task_to_config(task)) == task


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"type": "multiclass"}, "num_classes is required for type='multiclass'"),
        ({"type": "ranking"}, "list_size is required for type='ranking'"),
        ({"type": "binary", "num_classes": 3}, "num_classes is required .* only"),
        ({"type": "regression", "list_size": 3}, "list_size is required .* only"),
        ({"type": "multiclass", "num_classes": 3, "list_size": 3}, "list_size"),
        ({"type": "ranking", "list_size": 3, "num_classes": 3}, "num_classes"),
        ({"type": "multiclass", "num_classes": 1}, "num_classes must be an int >= 2"),
        ({"type": "multiclass", "num_classes": 3.0}, "num_classes must be an int"),
        ({"type": "ranking", "list_size": 0}, "list_size must be an int >= 1"),
        ({"type": "ordinal"}, "type must be one of"),
        (
            {"type": "multiclass", "num_classes": 3, "given": "click"},
            "given='click' needs a binary task",
        ),
        (
            {"type": "ranking", "list_size": 3, "requires": "click"},
            "requires='click' needs a binary task",
        ),
    ],
)
def test_bad_new_tasks_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        km.Task("t", **kwargs)


def test_bucketised_specs():
    age = km.SparseFeature("age", boundaries=[18, 25, 35], embedding_dim=4)
    assert (age.dtype, age.num_rows, age.boundaries) == ("float32", 4, (18.0, 25, 35))
    assert np.isnan(age.pad_value) and age.supports_jit
    seconds = km.SparseFeature("t", boundaries=(60, 3_600.0), dtype="int64")
    assert seconds.boundaries == (60, 3_600) and seconds.pad_value == -1
    assert all(type(b) is int for b in seconds.boundaries)
    for f in (age, seconds, km.SparseFeature("s", boundaries=[0.5], max_len=3)):
        config = feature_to_config(f)
        assert json.loads(json.dumps(config)) == config
        assert feature_from_config(config) == f
    inputs = km.make_inputs([age, seconds])
    assert [(x.dtype, tuple(x.shape)) for x in inputs.values()] == [
        ("float32", (None,)),
        ("int64", (None,)),
    ]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"boundaries": [1, 2], "vocabulary_size": 3}, "exactly one of"),
        ({"boundaries": []}, "boundaries is empty"),
        ({"boundaries": [1, 1]}, "strictly increasing; got 1.0 then 1.0"),
        ({"boundaries": [2, 1], "dtype": "int64"}, "strictly increasing; got 2 then 1"),
        ({"boundaries": [1.0, 1.00000001]}, "strictly increasing in float32"),
        ({"boundaries": [0, float("nan")]}, "finite numbers; got nan"),
        ({"boundaries": [0, float("inf")]}, "finite numbers"),
        ({"boundaries": [1e39]}, "fit in float32"),
        ({"boundaries": ["a"]}, "finite numbers; got 'a'"),
        ({"boundaries": "ab"}, "sequence of numbers"),
        ({"boundaries": [0.5], "dtype": "int64"}, "must be integers; got 0.5"),
        ({"boundaries": [2**63], "dtype": "int64"}, "fit in int64"),
        ({"boundaries": [1], "dtype": "string"}, "'float32' or 'int64'"),
        ({"boundaries": [1], "hash_function": "farmhash64"}, "hash_function"),
        ({"boundaries": [1], "embedding_dim": 0}, "embedding_dim"),
        ({"vocabulary_size": 3, "dtype": "float32"}, "for boundaries= only"),
    ],
)
def test_bad_bucketised_specs_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        km.SparseFeature("age", **kwargs)
