"""make_lookup / table_rows: raw values -> rows of a feature's own table."""

import keras
import numpy as np
import pytest

from keras_mtl.features import SparseFeature
from keras_mtl.layers._lookup import (
    Bucketize,
    IntegerHashing,
    make_lookup,
    table_rows,
)
from tests.helpers import STRINGS_TF_ONLY, run_layer_test, to_numpy


def test_integer_ids_are_rows_and_others_go_to_the_oov_row():
    f = SparseFeature("user", vocabulary_size=3)
    assert make_lookup(f) is None
    rows, mask = table_rows(f, None, np.array([[0, 2, 3], [-5, -1, 1]]))
    assert to_numpy(rows).tolist() == [[0, 2, 3], [3, 3, 1]]
    assert to_numpy(mask).tolist() == [[True, True, True], [True, False, True]]


def test_integer_vocabulary():
    codes = SparseFeature("code", vocabulary=(40, 7))
    rows, _ = table_rows(codes, make_lookup(codes), np.array([7, 40, 99]))
    assert to_numpy(rows).tolist() == [2, 1, 0]


@STRINGS_TF_ONLY
def test_string_vocabularies_and_hashing():
    city = SparseFeature("city", vocabulary=("paris", "rome"))
    lookup = make_lookup(city)
    rows, mask = table_rows(city, lookup, np.array(["rome", "oslo", ""]))
    assert to_numpy(rows).tolist() == [2, 0, 0]  # OOV row first, then the vocabulary
    assert to_numpy(mask).tolist() == [True, True, False]
    tags = SparseFeature("tags", hash_bins=5)
    rows, _ = table_rows(tags, make_lookup(tags), np.array(["a", "b", "a"]))
    r = to_numpy(rows).tolist()
    assert r[0] == r[2] and all(0 <= v < 5 for v in r)


# ----------------------------------------------------------- int_hash_v1

MASK32 = 0xFFFFFFFF


def _fmix32(x: int) -> int:
    x ^= x >> 16
    x = (x * 0x85EBCA6B) & MASK32
    x ^= x >> 13
    x = (x * 0xC2B2AE35) & MASK32
    return x ^ (x >> 16)


def _int_hash_v1(i: int, bins: int) -> int:
    """The documented formula, in Python integers."""
    u = i & (2**64 - 1)
    lo, hi = u & MASK32, u >> 32
    mixed = (_fmix32(hi ^ 0x9E3779B9) * 0x85EBCA6B) & MASK32
    return _fmix32(lo ^ mixed) % bins


IDS = [0, 1, 2, 41, -1, -7, 2**31 - 1, -(2**31), 2**31, 10**12, 2**63 - 1, -(2**63)]


def _has_int64() -> bool:
    if keras.backend.backend() != "jax":
        return True
    import jax

    return bool(jax.config.jax_enable_x64)


#: Ids beyond int32 need a backend with 64-bit integers.
NEEDS_INT64 = pytest.mark.backends(
    "tensorflow",
    "torch",
    reason="JAX without JAX_ENABLE_X64=1 truncates int64 values to int32",
)


def test_hashed_ids_give_the_same_buckets_on_every_backend():
    """Hand-kept buckets of `int_hash_v1` (from the formula in Python integers,
    `_int_hash_v1`), checked on whichever backend runs the test: CI runs this
    file under TensorFlow, JAX and torch (.ci/run), so a model trained on one
    backend looks up the same embedding rows on another. Ids beyond int32 are
    checked where the backend has 64-bit integers (JAX only with
    JAX_ENABLE_X64=1)."""
    layer = IntegerHashing(1000)
    ids = [0, 1, 2, 41, -1, -7, 2**31 - 1, -(2**31)]
    want = [731, 774, 76, 556, 668, 281, 317, 712]
    assert want == [_int_hash_v1(i, 1000) for i in ids]
    for dtype in ("int32", "int64"):
        got = keras.ops.convert_to_numpy(layer(np.array(ids, dtype)))
        assert got.tolist() == want, (keras.backend.backend(), dtype)
    wide = [2**31, 10**12, 2**63 - 1, -(2**63)]
    wide_want = [670, 353, 951, 961]
    assert wide_want == [_int_hash_v1(i, 1000) for i in wide]
    if _has_int64():
        got = keras.ops.convert_to_numpy(layer(np.array(wide, "int64")))
        assert got.tolist() == wide_want, keras.backend.backend()


@NEEDS_INT64
def test_integer_hashing_is_the_documented_formula():
    layer = IntegerHashing(1_000_003)
    want = [_int_hash_v1(i, 1_000_003) for i in IDS]
    ids = np.array(IDS, "int64")
    assert keras.ops.convert_to_numpy(layer(ids)).tolist() == want


@pytest.mark.backends("tensorflow", reason="tf.function(jit_compile=True)")
def test_integer_hashing_is_the_documented_formula_with_xla():
    import tensorflow as tf

    layer = IntegerHashing(1_000_003)
    want = [_int_hash_v1(i, 1_000_003) for i in IDS]
    ids = np.array(IDS, "int64")
    compiled = tf.function(layer, jit_compile=True)
    assert to_numpy(compiled(tf.constant(ids))).tolist() == want


def test_int32_ids_hash_as_int64_ids_of_the_same_value():
    """What a backend without 64-bit integers (JAX by default) computes."""
    small = [i for i in IDS if -(2**31) <= i < 2**31]
    layer = IntegerHashing(977)
    as32 = keras.ops.convert_to_numpy(layer(np.array(small, "int32")))
    as64 = keras.ops.convert_to_numpy(layer(np.array(small, "int64")))
    assert as32.tolist() == as64.tolist() == [_int_hash_v1(i, 977) for i in small]


def test_consecutive_ids_spread_evenly_over_the_buckets():
    # 200k consecutive ids into 100 buckets: chi-square with 99 degrees of freedom
    # (mean 99, sd 14); a hash that kept id order (i mod 100) scores 0, one that
    # clumps scores thousands.
    buckets = keras.ops.convert_to_numpy(IntegerHashing(100)(np.arange(200_000)))
    counts = np.bincount(buckets, minlength=100)
    chi2 = ((counts - 2000) ** 2 / 2000).sum()
    assert 40 < chi2 < 170, chi2
    # Avalanche: ids one apart land in unrelated buckets.
    assert np.mean(buckets[1:] == buckets[:-1]) < 0.02


@NEEDS_INT64
def test_integer_hashing_layer_battery(tmp_path):
    run_layer_test(
        IntegerHashing,
        {"num_bins": 50},
        np.array([3, -1, 10**10], "int64"),
        (None,),
        tmp_path,
        expected_output=np.array([_int_hash_v1(i, 50) for i in (3, -1, 10**10)]),
        fit=False,
    )


def test_integer_hashing_rejects_bad_bins_and_float_ids():
    with pytest.raises(ValueError, match=r"num_bins must be an int in \[1, 2\*\*31\)"):
        IntegerHashing(2**31)
    with pytest.raises(ValueError, match="expected integer ids.*float32"):
        IntegerHashing(8)(np.ones(3, "float32"))


def test_hash_function_defaults_and_choices():
    assert SparseFeature("u", hash_bins=9, dtype="int64").hash_function == "int_hash_v1"
    assert SparseFeature("u", hash_bins=9).hash_function == "farmhash64"
    assert SparseFeature("u", vocabulary_size=9).hash_function is None
    old = SparseFeature("u", hash_bins=9, dtype="int64", hash_function="farmhash64")
    assert isinstance(make_lookup(old), keras.layers.Hashing)
    assert not old.supports_jit
    assert SparseFeature("u", hash_bins=9, dtype="int64").supports_jit
    with pytest.raises(ValueError, match=r"must be one of \['farmhash64'\]"):
        SparseFeature("u", hash_bins=9, hash_function="int_hash_v1")
    with pytest.raises(ValueError, match=r"must be one of \[None\].*hash_bins None"):
        SparseFeature("u", vocabulary_size=9, hash_function="int_hash_v1")


# ----------------------------------------------------------- bucketised numbers


def test_bucket_ids_by_hand_and_as_searchsorted():
    age = SparseFeature("age", boundaries=[18, 25, 35])
    lookup = make_lookup(age)
    assert isinstance(lookup, Bucketize)
    x = np.array([[-3.0, 17.9, 18.0, 24.99], [25.0, 34.0, 35.0, np.nan]], "float32")
    rows, mask = table_rows(age, lookup, x)
    # bucket 0 below 18, 1 for [18, 25), 2 for [25, 35), 3 from 35 on; NaN pads
    assert to_numpy(rows).tolist() == [[0, 0, 1, 1], [2, 2, 3, 0]]
    assert to_numpy(mask).tolist() == [[True] * 4, [True, True, True, False]]
    finite = x[np.isfinite(x)]
    got = keras.ops.convert_to_numpy(lookup(finite))
    assert got.tolist() == np.searchsorted([18, 25, 35], finite, side="right").tolist()


def test_int64_buckets_are_exact_beyond_float32():
    # One second apart: float32 cannot tell these timestamps apart.
    t0 = 1_700_000_001
    seen = SparseFeature("seen", boundaries=[t0, t0 + 1], dtype="int64")
    x = np.array([t0 - 1, t0, t0 + 1, -1], "int64")
    rows, mask = table_rows(seen, make_lookup(seen), x)
    assert to_numpy(rows).tolist() == [0, 1, 2, 0]
    assert to_numpy(mask).tolist() == [True, True, True, False]  # -1 pads
    # An integer input meets a fractional boundary at its ceiling.
    half = keras.ops.convert_to_numpy(Bucketize([2.5])(np.array([2, 3], "int64")))
    assert half.tolist() == [0, 1]


@pytest.mark.backends("tensorflow", reason="tf.function(jit_compile=True)")
def test_bucketize_compiles_with_xla():
    import tensorflow as tf

    layer = Bucketize([60, 3_600, 86_400])
    x = tf.constant([[0, 60, 3_599], [3_600, 86_399, 10**9]], tf.int64)
    compiled = tf.function(layer, jit_compile=True)
    assert to_numpy(compiled(x)).tolist() == [[0, 1, 1], [2, 2, 3]]
    assert SparseFeature("gap", boundaries=[60], dtype="int64").supports_jit


def test_bucketize_layer_battery(tmp_path):
    run_layer_test(
        Bucketize,
        {"boundaries": [0.0, 1.5]},
        np.array([[-1.0, 1.5], [0.0, 9.0]], "float32"),
        (None, 2),
        tmp_path,
        expected_output=np.array([[0, 2], [1, 2]]),
        fit=False,
    )
    with pytest.raises(ValueError, match="strictly increasing list"):
        Bucketize([1, 1])
