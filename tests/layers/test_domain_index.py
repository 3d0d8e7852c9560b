import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.layers.domain_index import DomainIndex
from tests.helpers import STRINGS_TF_ONLY, run_layer_test, to_numpy

CITY = km.SparseFeature("city", vocabulary=("paris", "rome", "oslo"))


def _index(feature, values):
    return to_numpy(DomainIndex(feature)(values)).tolist()


@STRINGS_TF_ONLY
def test_layer_contract(tmp_path):
    run_layer_test(
        DomainIndex,
        {"feature": CITY},
        np.array(["oslo", "lima", "paris", ""], object),
        expected_output_shape=(None,),
        tmp_path=tmp_path,
        expected_output=np.array([2, -1, 0, -1], "int32"),
    )


@STRINGS_TF_ONLY
def test_vocabulary_positions_are_the_domains_unknown_and_padding_are_minus_one():
    assert DomainIndex(CITY).num_domains == 3
    assert _index(CITY, np.array(["rome", "lima", "", "oslo"])) == [1, -1, -1, 2]
    ints = km.SparseFeature("shop", vocabulary=(75, 12))
    assert _index(ints, np.array([12, 75, 3, -1])) == [1, 0, -1, -1]
    ids = km.SparseFeature("scene", vocabulary_size=4)
    assert DomainIndex(ids).num_domains == 4
    assert _index(ids, np.array([3, 0, 4, -1, 99])) == [3, 0, -1, -1, -1]


def test_string_rows_looked_up_outside_the_step_give_the_same_domains():
    # A MultiTaskModel feeds a string feature's table rows (OOV row 0, padding -1).
    rows = np.array([2, 0, -1, 3], "int32")  # rome, OOV, padding, oslo
    assert _index(CITY, rows) == [1, -1, -1, 2]
    assert DomainIndex(CITY).string_lookups("x")[0][1] is CITY


@pytest.mark.parametrize(
    "feature, match",
    [
        (km.DenseFeature("city"), "must be a SparseFeature"),
        (km.SparseFeature("city", hash_bins=8), "it has hash_bins"),
        (km.SparseFeature("age", boundaries=(18, 30)), "it has boundaries"),
        (km.SparseFeature("tags", vocabulary_size=5, max_len=3), "multi-valued"),
    ],
)
def test_features_that_cannot_name_domains_are_rejected(feature, match):
    with pytest.raises(ValueError, match=f"DomainIndex: .*{match}"):
        DomainIndex(feature)
