"""gated_sum: the gated sum of expert outputs, element-wise or as a matmul."""

import numpy as np
import pytest

from keras_mtl.layers import _mixing
from tests.helpers import to_numpy


@pytest.mark.parametrize("small", [True, False])
def test_gated_sum_matches_einsum_on_both_paths(monkeypatch, small):
    # The threshold decides the path; both give the einsum's values.
    monkeypatch.setattr(_mixing, "SMALL_MIXTURE", 10**9 if small else 0)
    rng = np.random.default_rng(0)
    gates = rng.random((5, 2, 3)).astype("float32")
    experts = rng.random((5, 1, 3, 4)).astype("float32")  # broadcast over gates
    out = to_numpy(_mixing.gated_sum(gates, experts))
    np.testing.assert_allclose(
        out, np.einsum("bge,beu->bgu", gates, experts[:, 0]), rtol=1e-6
    )
    per_gate = rng.random((5, 2, 3, 4)).astype("float32")  # one pool per gate
    np.testing.assert_allclose(
        to_numpy(_mixing.gated_sum(gates, per_gate)),
        np.einsum("bge,bgeu->bgu", gates, per_gate),
        rtol=1e-6,
    )
    # Hand-computed: weights 1, 2 over experts [1, 10] and [100, 1000].
    assert to_numpy(
        _mixing.gated_sum(
            np.array([[1.0, 2.0]]), np.array([[[1.0, 10.0], [100.0, 1000.0]]])
        )
    ).tolist() == [[201.0, 2010.0]]
