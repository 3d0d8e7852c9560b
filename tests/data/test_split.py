import numpy as np
import pandas as pd
import pytest

from keras_mtl.data import split_frame


def test_parts_are_disjoint_cover_all_rows_and_keep_order():
    frame = pd.DataFrame({"id": np.arange(1001), "v": np.arange(1001) * 2.0})
    train, val, test = split_frame(frame, (0.8, 0.1, 0.1), seed=3)
    assert (len(train), len(val), len(test)) == (800, 100, 101)
    ids = np.concatenate([train["id"], val["id"], test["id"]])
    assert sorted(ids.tolist()) == list(range(1001))
    for part in (train, val, test):
        assert part["id"].is_monotonic_increasing
        assert part.index.tolist() == list(range(len(part)))
        np.testing.assert_array_equal(part["v"], part["id"] * 2.0)
    assert train["id"].tolist() != list(range(800))  # random, not a head/tail cut


def test_seeded():
    frame = pd.DataFrame({"id": np.arange(100)})
    a = split_frame(frame, (0.5, 0.5), seed=1)
    b = split_frame(frame, (0.5, 0.5), seed=1)
    c = split_frame(frame, (0.5, 0.5), seed=2)
    assert a[0]["id"].tolist() == b[0]["id"].tolist()
    assert a[0]["id"].tolist() != c[0]["id"].tolist()


def test_dict_input_with_ragged_lists():
    data = {"id": np.arange(10), "tags": [[i] * (i % 3) for i in range(10)]}
    first, second = split_frame(data, (0.7, 0.3), seed=0)
    assert len(first["id"]) == 7 and len(second["tags"]) == 3
    for part in (first, second):
        for i, tags in zip(part["id"], part["tags"]):
            assert tags == [i] * (i % 3)


@pytest.mark.parametrize("fractions", [(0.5, 0.4), (0.0, 1.0), (1.2, -0.2), ()])
def test_bad_fractions(fractions):
    with pytest.raises(ValueError, match="fractions"):
        split_frame(pd.DataFrame({"a": [1, 2]}), fractions)
