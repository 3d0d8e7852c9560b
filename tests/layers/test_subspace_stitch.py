"""SubspaceStitch: the sluice network's α over task subspaces."""

import numpy as np
import pytest

from keras_mtl.layers import CrossStitch, SubspaceStitch
from tests.helpers import run_layer_test, to_numpy

RNG = np.random.default_rng(0)


def test_one_subspace_is_a_cross_stitch_unit():
    h = [RNG.normal(size=(4, 6)).astype("float32") for _ in range(3)]
    stitch = SubspaceStitch(num_subspaces=1, self_weight=0.8)
    cross = CrossStitch(self_weight=0.8)
    for a, b in zip(stitch(h), cross(h)):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-6)
    np.testing.assert_allclose(stitch.weights_matrix, cross.weights_matrix)


def test_subspaces_mix_by_alpha():
    """Two tasks, two halves: α row i mixes into subspace i (task i // 2)."""
    stitch = SubspaceStitch(num_subspaces=2)
    a = np.array([[1.0, 1.0, 2.0, 2.0]], "float32")  # task 0: halves (1,1), (2,2)
    b = np.array([[3.0, 3.0, 4.0, 4.0]], "float32")  # task 1: halves (3,3), (4,4)
    stitch([a, b])
    np.testing.assert_allclose(stitch.weights_matrix, np.full((4, 4), 0.25))
    alpha = np.zeros((4, 4), "float32")
    alpha[0, 3] = 1.0  # task 0's first half <- task 1's second half
    alpha[1, 1] = 2.0  # task 0's second half <- twice its own (unnormalised)
    alpha[2, 0], alpha[2, 2] = 1.0, 1.0  # task 1's first half <- 1 + 3
    stitch.alpha.assign(alpha)
    out_a, out_b = (to_numpy(o) for o in stitch([a, b]))
    np.testing.assert_allclose(out_a, [[4.0, 4.0, 4.0, 4.0]])
    np.testing.assert_allclose(out_b, [[4.0, 4.0, 0.0, 0.0]])
    with pytest.raises(ValueError, match="width 5 must split into num_subspaces=2"):
        SubspaceStitch(2)([np.zeros((1, 5), "float32")] * 2)


def test_layer_contract(tmp_path):
    run_layer_test(
        SubspaceStitch,
        {"num_subspaces": 2, "self_weight": 0.7},
        [RNG.normal(size=(3, 4)).astype("float32")] * 2,
        [(None, 4), (None, 4)],
        tmp_path,
    )
