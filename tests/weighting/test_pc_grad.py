"""PCGrad's projections on hand-made gradients."""

import numpy as np
import pytest

from keras_mtl.weighting import PCGrad
from tests.weighting.surgery_helpers import step_weights


def pcgrad_sum(vectors, seed=0):
    """The summed projected gradient, through the strategy's weights."""
    strategy = PCGrad(seed=seed)
    strategy.configure({f"t{k}": "mse" for k in range(len(vectors))})
    w = step_weights(strategy, [np.asarray(v) for v in vectors])
    return w, w @ np.asarray(vectors)


def reference(vectors, orders):
    """Yu et al.'s procedure in numpy, for given visiting orders."""
    vectors = np.asarray(vectors, "float64")
    total = np.zeros(vectors.shape[1])
    for i, order in enumerate(orders):
        g = vectors[i].copy()
        for j in order:
            if j != i and g @ vectors[j] < 0:
                g -= (g @ vectors[j]) / (vectors[j] @ vectors[j]) * vectors[j]
        total += g
    return total


def test_two_conflicting_gradients():
    g1, g2 = np.array([1.0, 0.0, 2.0]), np.array([-2.0, 1.0, 0.5])
    assert g1 @ g2 < 0
    w, total = pcgrad_sum([g1, g2])
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g1 @ g2) / (g1 @ g1) * g1
    np.testing.assert_allclose(total, p1 + p2, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        w, [1 - (g1 @ g2) / (g1 @ g1), 1 - (g1 @ g2) / (g2 @ g2)], rtol=1e-5
    )
    # Each projected gradient is orthogonal to the other task's.
    assert p1 @ g2 == pytest.approx(0.0, abs=1e-12)


def test_agreeing_gradients_are_untouched():
    w, total = pcgrad_sum([[1.0, 2.0], [0.5, -0.1], [3.0, 0.0]])
    np.testing.assert_allclose(w, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(total, [4.5, 1.9], rtol=1e-6)


def test_three_tasks_match_the_procedure_in_some_order():
    """With three tasks the result depends on the order; it is the procedure's
    result for one of the orders."""
    vectors = np.array([[1.0, 0.0], [-1.0, 0.6], [-0.2, -1.0]])
    _, total = pcgrad_sum(vectors)
    candidates = []
    for a in ([1, 2], [2, 1]):
        for b in ([0, 2], [2, 0]):
            for c in ([0, 1], [1, 0]):
                candidates.append(reference(vectors, [a, b, c]))
    assert min(np.abs(total - c).max() for c in candidates) < 1e-5
    # The orders are random: different seeds find different sums.
    sums = {tuple(np.round(pcgrad_sum(vectors, seed)[1], 4)) for seed in range(4)}
    assert len(sums) > 1


def test_absent_task_gets_weight_zero():
    strategy = PCGrad()
    strategy.configure({"a": "mse", "b": "mse"})
    w = step_weights(strategy, [np.array([1.0, -1.0]), []])
    np.testing.assert_allclose(w, [1.0, 0.0])


def test_bad_seed():
    with pytest.raises(ValueError, match="seed"):
        PCGrad(seed="x")
