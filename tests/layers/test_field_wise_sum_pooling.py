import numpy as np
import pytest

from keras_mtl.layers import FieldWiseSumPooling
from tests.helpers import run_layer_test, to_numpy

EMB = np.arange(2 * 4 * 2, dtype="float32").reshape(2, 4, 2)
MASK = np.array([[1, 1, 1, 0], [1, 0, 0, 0]], bool)


def test_hand_computed_sums_honour_the_mask():
    out = to_numpy(FieldWiseSumPooling((1, 3))(EMB, mask=MASK))
    # Row 0: field 0 = slot 0; field 1 = slots 1+2 (slot 3 is padding).
    # Row 1: field 0 = slot 0; field 1 = nothing -> zeros.
    expected = np.array([[0, 1, 2 + 4, 3 + 5], [8, 9, 0, 0]], "float32")
    np.testing.assert_array_equal(out, expected)


def test_single_valued_fields_pass_through():
    out = to_numpy(FieldWiseSumPooling((1, 1, 1, 1))(EMB))
    np.testing.assert_array_equal(out, EMB.reshape(2, 8))


def test_padding_changes_nothing():
    pool = FieldWiseSumPooling((2, 2))
    noisy = EMB.copy()
    noisy[:, 1] = 1e6  # slot 1 is padding in every row
    mask = np.array([[1, 0, 1, 1]] * 2, bool)
    np.testing.assert_array_equal(
        to_numpy(pool(noisy, mask=mask)), to_numpy(pool(EMB, mask=mask))
    )


def test_layer_contract(tmp_path):
    run_layer_test(
        FieldWiseSumPooling,
        {"field_lengths": (1, 3)},
        EMB,
        expected_output_shape=(None, 4),
        tmp_path=tmp_path,
        expected_output=np.array([[0, 1, 12, 15], [8, 9, 36, 39]], "float32"),
        fit=False,
    )


@pytest.mark.parametrize("bad", [(), (0, 2), (-1,)])
def test_bad_field_lengths(bad):
    with pytest.raises(ValueError, match="field_lengths"):
        FieldWiseSumPooling(bad)


def test_lengths_must_match_input():
    with pytest.raises(ValueError, match="add up to 5"):
        FieldWiseSumPooling((2, 3))(EMB)
