"""ParetoWeighting: MGDA's min-norm weights (closed form, simplex) and PE-LTR's
bounds, on hand-made gradients."""

import itertools

import numpy as np
import pytest

from keras_mtl.weighting import ParetoWeighting
from tests.weighting.surgery_helpers import step_weights


def strategy(count, **kwargs):
    pareto = ParetoWeighting(**kwargs)
    pareto.configure({f"t{k}": "mse" for k in range(count)})
    return pareto


def weights(pareto, vectors):
    traced = pareto.num_tasks > 2 or bool(pareto.bounds)
    return step_weights(pareto, [np.asarray(v) for v in vectors], traced)


def exact_min_norm(gram):
    """argmin_{w ∈ simplex} wᵀGw by enumerating the supports (KKT on each)."""
    count = len(gram)
    best, found = np.inf, None
    for size in range(1, count + 1):
        for support in itertools.combinations(range(count), size):
            s = list(support)
            system = np.block(
                [
                    [gram[np.ix_(s, s)], np.ones((size, 1))],
                    [np.ones((1, size)), np.zeros((1, 1))],
                ]
            )
            try:
                solution = np.linalg.solve(system, np.r_[np.zeros(size), 1.0])[:size]
            except np.linalg.LinAlgError:
                continue
            if (solution >= -1e-12).all():
                w = np.zeros(count)
                w[s] = solution
                if w @ gram @ w < best:
                    best, found = w @ gram @ w, w
    return found


@pytest.mark.parametrize(
    "g1, g2",
    [
        ([1.0, 0.0], [0.0, 2.0]),
        ([3.0, 1.0, -1.0], [-1.0, 2.0, 0.5]),
        ([1.0, 1.0], [2.0, 2.1]),  # nearly parallel: γ clipped
    ],
)
def test_two_tasks_closed_form(g1, g2):
    v1, v2 = np.array(g1), np.array(g2)
    gamma = (v2 @ v2 - v1 @ v2) / ((v1 - v2) @ (v1 - v2))
    gamma = np.clip(gamma, 0.001, 0.999)
    np.testing.assert_allclose(
        weights(strategy(2), [g1, g2]),
        [2 * gamma, 2 * (1 - gamma)],
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_combination_is_the_shortest():
    """Two tasks: the min-norm point makes equal angles (g₁·d = g₂·d)."""
    v1, v2 = np.array([3.0, 1.0, -1.0]), np.array([-1.0, 2.0, 0.5])
    w = weights(strategy(2), [v1, v2]) / 2
    d = w[0] * v1 + w[1] * v2
    assert v1 @ d == pytest.approx(v2 @ d, rel=1e-5)


@pytest.mark.parametrize("count, seed", [(3, 0), (4, 1), (6, 2)])
def test_more_tasks_match_the_exact_min_norm(count, seed):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(count, 6))
    vectors[0] *= 3.0
    w = weights(strategy(count), vectors)
    assert w.min() >= 0.0 and w.sum() == pytest.approx(count, rel=1e-5)
    want = exact_min_norm(vectors @ vectors.T)
    np.testing.assert_allclose(w / count, want, atol=1e-3)
    gram = vectors @ vectors.T
    assert (w / count) @ gram @ (w / count) == pytest.approx(
        want @ gram @ want, rel=1e-4
    )


def test_a_task_without_gradient_gets_weight_zero():
    np.testing.assert_allclose(
        weights(strategy(2), [[1.0, 2.0], []]), [1.0, 0.0], atol=1e-6
    )
    np.testing.assert_allclose(
        weights(strategy(2), [[0.0, 0.0], [1.0, 2.0]]), [0.0, 1.0], atol=1e-6
    )
    w = weights(strategy(3), [[1.0, 0.0], [], [0.0, 1.0]])
    np.testing.assert_allclose(w, [1.0, 0.0, 1.0], atol=1e-3)


def test_bounds_are_respected():
    # Unbounded, the shorter g₁ takes γ = 0.8; with c₂ = 0.4 the optimum on
    # [0, 0.6] is its end, 0.6.
    g = [[1.0, 0.0], [0.0, 2.0]]
    np.testing.assert_allclose(
        weights(strategy(2, bounds={"t1": 0.4}), g), [1.2, 0.8], rtol=1e-4
    )
    # Inactive bounds change nothing.
    np.testing.assert_allclose(
        weights(strategy(2, bounds={"t0": 0.1}), g), [1.6, 0.4], rtol=1e-4
    )
    rng = np.random.default_rng(3)
    vectors = rng.normal(size=(4, 5))
    bounds = {"t0": 0.3, "t1": 0.1, "t2": 0.25}
    w = weights(strategy(4, bounds=bounds), vectors) / 4
    assert w.sum() == pytest.approx(1.0, rel=1e-5)
    assert (w >= np.array([0.3, 0.1, 0.25, 0.0]) - 1e-6).all()


def test_bounds_with_a_task_without_gradient():
    # A zero gradient costs nothing in the norm: unguarded, it would take all
    # the free weight and leave the task with a gradient at its bound (0.2).
    bounds = {"t0": 0.2, "t1": 0.2}
    w = weights(strategy(2, bounds=bounds), [[1.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(w, [1.0, 0.0], atol=1e-5)
    # Of three, the two present share the weight under their bounds (sum 2).
    bounds = {"t0": 0.3, "t1": 0.3, "t2": 0.3}
    w = weights(strategy(3, bounds=bounds), [[1.0, 0.0], [], [0.0, 2.0]])
    # Unbounded: α = (0.8, 0.2) on t0, t2; t2's bound 0.3 binds: (0.7, 0.3).
    np.testing.assert_allclose(w, [1.4, 0.0, 0.6], atol=1e-4)


def test_fixed_weights_are_refused():
    with pytest.raises(ValueError, match="weights= would be replaced"):
        ParetoWeighting(weights={"t0": 2.0})


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"bounds": {"t0": 0.7, "t1": 0.6}}, "bounds must sum to at most 1"),
        ({"bounds": {"t0": -0.1}}, r"bounds\['t0'\]"),
        ({"bounds": [0.1, 0.2]}, "bounds must be a dict"),
        ({"iterations": 0}, "iterations"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises((ValueError, TypeError), match=match):
        ParetoWeighting(**kwargs)


def test_bounds_for_unknown_tasks():
    with pytest.raises(ValueError, match=r"bounds for \['c'\]"):
        ParetoWeighting(bounds={"c": 0.2}).configure({"a": "mse", "b": "mse"})
