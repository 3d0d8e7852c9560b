"""CAGrad's update on hand-made gradients against a numpy solution of its dual."""

import numpy as np
import pytest

from keras_mtl.weighting import CAGrad
from tests.weighting.surgery_helpers import step_weights


def cagrad(vectors, **kwargs):
    strategy = CAGrad(**kwargs)
    strategy.configure({f"t{k}": "mse" for k in range(len(vectors))})
    return step_weights(strategy, [np.asarray(v) for v in vectors], traced=True)


def dual_objective(w, vectors, c):
    g0 = vectors.mean(axis=0)
    gw = w @ vectors
    return gw @ g0 + c * np.linalg.norm(g0) * np.linalg.norm(gw)


def update(w, vectors, c, rescale):
    """d = g₀ + (√φ / ‖g_w‖) g_w (÷ (1 + c²))."""
    g0 = vectors.mean(axis=0)
    gw = w @ vectors
    d = g0 + c * np.linalg.norm(g0) / np.linalg.norm(gw) * gw
    return d / (1 + c**2) if rescale else d


@pytest.mark.parametrize("seed, rescale", [(0, True), (1, False), (2, True)])
def test_two_tasks_match_a_dense_search_of_the_dual(seed, rescale):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(2, 5))
    vectors[0] *= 4.0
    grid = np.linspace(0.0, 1.0, 100001)
    candidates = np.stack([grid, 1 - grid], axis=1)
    g0 = vectors.mean(axis=0)
    gw = candidates @ vectors
    values = gw @ g0 + 0.5 * np.linalg.norm(g0) * np.linalg.norm(gw, axis=1)
    best = candidates[values.argmin()]
    want = update(best, vectors, 0.5, rescale)
    w = cagrad(vectors, c=0.5, rescale=rescale)
    got = w @ vectors / 2  # the weights are the coefficients times n
    np.testing.assert_allclose(got, want, rtol=2e-3, atol=2e-3 * np.abs(want).max())


def test_three_tasks_solve_the_dual():
    rng = np.random.default_rng(4)
    vectors = rng.normal(size=(3, 6))
    grid = np.linspace(0, 1, 401)
    a, b = np.meshgrid(grid, grid)
    keep = a + b <= 1
    candidates = np.stack([a[keep], b[keep], 1 - a[keep] - b[keep]], axis=1)
    g0 = vectors.mean(axis=0)
    gw = candidates @ vectors
    best = (gw @ g0 + 0.5 * np.linalg.norm(g0) * np.linalg.norm(gw, axis=1)).min()
    w = cagrad(vectors, c=0.5, rescale=False)
    # Recover the dual's weights from d's coefficients: w/3 = 1/3 + λ ŵ.
    dual = w / 3 - 1 / 3
    dual = dual / dual.sum()
    assert dual.min() >= -1e-6
    assert dual_objective(dual, vectors, 0.5) <= best + 1e-4
    np.testing.assert_allclose(
        w @ vectors / 3, update(dual, vectors, 0.5, False), rtol=1e-4, atol=1e-5
    )


def test_c_zero_is_the_plain_average():
    vectors = np.array([[1.0, 0.0, 2.0], [-3.0, 1.0, 0.0], [0.5, 0.5, -1.0]])
    np.testing.assert_allclose(cagrad(vectors, c=0.0), [1.0, 1.0, 1.0], rtol=1e-6)


def test_the_worst_task_improves_more_than_under_the_average():
    vectors = np.array([[1.0, 0.0], [-1.0, 3.0]])
    w = cagrad(vectors, c=0.5)
    d = w @ vectors
    average = vectors.sum(axis=0)
    assert min(vectors @ d) / np.linalg.norm(d) > min(
        vectors @ average
    ) / np.linalg.norm(average)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"c": -1}, "c"), ({"rescale": 1}, "rescale"), ({"iterations": 0}, "iterations")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        CAGrad(**kwargs)
