import pytest

import keras_mtl as km
from keras_mtl.features import check_features, feature_from_config, feature_to_config


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
        (lambda: km.SparseFeature("a"), "exactly one of"),
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
