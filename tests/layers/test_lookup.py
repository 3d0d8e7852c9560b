"""make_lookup / table_rows: raw values -> rows of a feature's own table."""

import numpy as np

from keras_mtl.features import SparseFeature
from keras_mtl.layers._lookup import make_lookup, table_rows


def test_integer_ids_are_rows_and_others_go_to_the_oov_row():
    f = SparseFeature("user", vocabulary_size=3)
    assert make_lookup(f) is None
    rows, mask = table_rows(f, None, np.array([[0, 2, 3], [-5, -1, 1]]))
    assert rows.numpy().tolist() == [[0, 2, 3], [3, 3, 1]]
    assert mask.numpy().tolist() == [[True, True, True], [True, False, True]]


def test_vocabularies_and_hashing():
    city = SparseFeature("city", vocabulary=("paris", "rome"))
    lookup = make_lookup(city)
    rows, mask = table_rows(city, lookup, np.array(["rome", "oslo", ""]))
    assert rows.numpy().tolist() == [2, 0, 0]  # OOV row first, then the vocabulary
    assert mask.numpy().tolist() == [True, True, False]
    codes = SparseFeature("code", vocabulary=(40, 7))
    rows, _ = table_rows(codes, make_lookup(codes), np.array([7, 40, 99]))
    assert rows.numpy().tolist() == [2, 1, 0]
    tags = SparseFeature("tags", hash_bins=5)
    rows, _ = table_rows(tags, make_lookup(tags), np.array(["a", "b", "a"]))
    r = rows.numpy().tolist()
    assert r[0] == r[2] and all(0 <= v < 5 for v in r)
