import numpy as np
import pytest

from keras_mtl.layers import InverseTransform
from tests.helpers import run_layer_test, to_numpy

Z = np.array([0.0, np.log(3.0), 2.0, 100.0], "float32")


def test_log1p_inverse_values():
    out = to_numpy(InverseTransform("log1p")(Z))
    # exp(z) - 1, with z clipped to 80 (finite in float32).
    np.testing.assert_allclose(out[:3], [0.0, 2.0, np.e**2 - 1], rtol=1e-6)
    assert np.isfinite(out[3]) and out[3] == pytest.approx(np.expm1(80.0), rel=1e-5)


def test_identity_and_missing_transform():
    np.testing.assert_array_equal(to_numpy(InverseTransform("identity")(Z)), Z)
    with pytest.raises(ValueError, match="InverseTransform: transform"):
        InverseTransform(None)


def test_layer_contract(tmp_path):
    run_layer_test(
        InverseTransform,
        {"transform": "log1p"},
        Z[:3].reshape(3, 1),
        (None, 1),
        tmp_path,
        expected_output=np.array([[0.0], [2.0], [np.e**2 - 1]], "float32"),
        fit=False,
    )
