import numpy as np
import pytest

from keras_mtl import DenseFeature, SparseFeature
from keras_mtl.layers import FeatureEncoder
from tests.helpers import STRINGS_TF_ONLY, run_layer_test, to_numpy

FEATURES = [
    SparseFeature("a", vocabulary_size=3, embedding_dim=2),
    SparseFeature("b", vocabulary_size=3, embedding_dim=2, share_embedding_with="a"),
    SparseFeature("h", vocabulary_size=4, embedding_dim=2, max_len=3),
    SparseFeature("s", vocabulary=("x", "y"), embedding_dim=3),
    DenseFeature("d", mean=10.0, std=2.0),
    DenseFeature("m", allow_missing=True),
]
INPUTS = {
    "a": np.array([0, 7]),  # 7 is out of range -> OOV row 3
    "b": np.array([2, -1]),  # -1 is "no value" -> zeros
    "h": np.array([[1, 1, -1], [9, -1, -1]]),  # 9 -> OOV row
    "s": np.array(["y", "z"], dtype=object),  # z unknown -> OOV (index 0)
    "d": np.array([12.0, 8.0], "float32"),
    "m": np.array([np.nan, 5.0], "float32"),
}


def _encoder_with_known_tables():
    enc = FeatureEncoder(FEATURES)
    enc({k: to_numpy(v) for k, v in INPUTS.items()})  # build
    # Width-2 table: a's block (rows 0..3, 3 = OOV) then h's block (rows 4..8).
    t2 = np.arange(9 * 2, dtype="float32").reshape(9, 2)
    t3 = 100 + np.arange(3 * 3, dtype="float32").reshape(3, 3)
    enc.tables["2"].assign(t2)
    enc.tables["3"].assign(t3)
    enc.missing_value.fill.assign([-4.0])
    return enc, t2, t3


@STRINGS_TF_ONLY
def test_hand_computed_encoding():
    enc, t2, t3 = _encoder_with_known_tables()
    out = to_numpy(enc(INPUTS))
    assert enc.output_dim == 11 and out.shape == (2, 11)
    expected_row0 = np.concatenate(
        [t2[0], t2[2], t2[4 + 1] * 2, t3[2], [1.0], [-4.0]]  # y is index 2
    )
    expected_row1 = np.concatenate(
        [t2[3], [0, 0], t2[4 + 4], t3[0], [-1.0], [5.0]]  # OOV rows, padding zeros
    )
    np.testing.assert_allclose(out, np.stack([expected_row0, expected_row1]))


def test_dense_transforms_apply_before_standardising():
    enc = FeatureEncoder(
        [
            DenseFeature("price", transform="log", mean=1.0, std=2.0),
            DenseFeature("count", transform="log1p"),
            DenseFeature("seen", transform="log", allow_missing=True),
        ]
    )
    enc.build(None)
    enc.missing_value.fill.assign([-7.0])
    out = to_numpy(
        enc(
            {
                "price": np.float32([np.e**3, 1.0]),
                "count": np.float32([0.0, np.e - 1]),
                "seen": np.float32([np.e, np.nan]),  # NaN: the learned fill
            }
        )
    )
    np.testing.assert_allclose(out, [[1.0, 0.0, 1.0], [-0.5, 1.0, -7.0]], atol=1e-6)
    with pytest.raises(ValueError, match=r"transform must be None or one of"):
        DenseFeature("price", transform="sqrt")


@STRINGS_TF_ONLY
def test_shared_feature_reads_the_same_rows():
    enc, t2, _ = _encoder_with_known_tables()
    same = dict(INPUTS, a=np.array([1, 2]), b=np.array([1, 2]))
    out = to_numpy(enc(same))
    np.testing.assert_array_equal(out[:, 0:2], out[:, 2:4])
    assert enc.tables["2"].shape == (9, 2)  # b owns no rows


@STRINGS_TF_ONLY
def test_padding_position_does_not_matter():
    enc, _, _ = _encoder_with_known_tables()
    moved = dict(INPUTS, h=np.array([[-1, 1, 1], [-1, -1, 9]]))
    np.testing.assert_allclose(to_numpy(enc(moved)), to_numpy(enc(INPUTS)))


def test_jit_support_follows_the_specs():
    assert not FeatureEncoder(FEATURES).supports_jit  # string lookup inside
    assert FeatureEncoder([f for f in FEATURES if f.name != "s"]).supports_jit
    # ... but strings given as rows leave only XLA-compatible work.
    assert FeatureEncoder(FEATURES).supports_jit_beside_strings
    codes = SparseFeature("c", vocabulary=(40, 7))  # an IntegerLookup stays
    assert not FeatureEncoder([*FEATURES, codes]).supports_jit_beside_strings


@STRINGS_TF_ONLY
def test_string_feature_given_as_rows():
    enc, _, _ = _encoder_with_known_tables()
    # "y" is row 2, "z" the OOV row 0, and row -1 is padding (zeros).
    rows = dict(INPUTS, s=np.array([2, 0], "int32"))
    np.testing.assert_array_equal(to_numpy(enc(rows)), to_numpy(enc(INPUTS)))
    padded = to_numpy(enc(dict(INPUTS, s=np.array([-1, 2], "int32"))))
    np.testing.assert_array_equal(padded[:, 6:9], [[0, 0, 0], [106, 107, 108]])


@STRINGS_TF_ONLY
def test_missing_input_is_named():
    enc = FeatureEncoder(FEATURES)
    with pytest.raises(ValueError, match=r"\['d'\]"):
        enc({k: v for k, v in INPUTS.items() if k != "d"})


@STRINGS_TF_ONLY
def test_layer_contract(tmp_path):
    run_layer_test(
        FeatureEncoder,
        {"features": FEATURES},
        INPUTS,
        expected_output_shape=(None, 11),
        tmp_path=tmp_path,
    )


def test_bucketised_features_embed_their_bucket_and_nan_as_zeros(tmp_path):
    features = [
        SparseFeature("age", boundaries=[18, 30], embedding_dim=2),
        SparseFeature(
            "gap", boundaries=[60], dtype="int64", embedding_dim=2, max_len=2
        ),
    ]
    inputs = {
        "age": np.array([17.0, 30.0, np.nan], "float32"),
        "gap": np.array([[59, 60], [60, -1], [-1, -1]], "int64"),
    }
    enc = FeatureEncoder(features)
    enc(inputs)
    table = np.arange(5 * 2, dtype="float32").reshape(5, 2)  # age rows 0..2, gap 3..4
    enc.tables["2"].assign(table)
    out = to_numpy(enc(inputs))
    want = np.array(
        [
            [*table[0], *(table[3] + table[4])],
            [*table[2], *table[4]],
            [0.0, 0.0, 0.0, 0.0],  # NaN and -1: no value
        ]
    )
    np.testing.assert_allclose(out, want)
    run_layer_test(FeatureEncoder, {"features": features}, inputs, (None, 4), tmp_path)


def test_output_fields_name_the_columns_in_output_order():
    """Sparse fields grouped by width (widths in order of first use), then dense
    features without missing values, then those with: whatever the spec order."""
    features = [
        DenseFeature("m", allow_missing=True),
        SparseFeature("s", vocabulary_size=4, embedding_dim=3),
        DenseFeature("d", mean=10.0, std=2.0),
        SparseFeature("a", vocabulary_size=4, embedding_dim=2),
        SparseFeature("t", vocabulary_size=4, embedding_dim=3),
    ]
    enc = FeatureEncoder(features)
    fields = enc.output_fields
    assert fields == [("s", 3), ("t", 3), ("a", 2), ("d", 1), ("m", 1)]
    assert sum(width for _, width in fields) == enc.output_dim
    inputs = {
        "m": np.array([7.0], "float32"),
        "s": np.array([0]),
        "d": np.array([14.0], "float32"),
        "a": np.array([1]),
        "t": np.array([1]),
    }
    enc(inputs)  # build
    enc.tables["3"].assign(np.repeat(np.arange(10.0), 3).reshape(10, 3))  # row i: i
    enc.tables["2"].assign(np.full((5, 2), -1.0))
    starts = np.cumsum([0] + [w for _, w in fields])
    out = to_numpy(enc(inputs))[0]
    column = {
        name: out[starts[i] : starts[i + 1]] for i, (name, _) in enumerate(fields)
    }
    np.testing.assert_allclose(column["s"], 0.0)  # s's id 0: row 0
    np.testing.assert_allclose(column["t"], 5.0 + 1)  # t's block follows s's 5 rows
    np.testing.assert_allclose(column["a"], -1.0)
    np.testing.assert_allclose(column["d"], 2.0)  # (14 - 10) / 2
    np.testing.assert_allclose(column["m"], 7.0)
