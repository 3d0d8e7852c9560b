"""Synthetic two-task regression data with a controlled task correlation (MMoE paper)."""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_mtl._checks import (
    check_int_at_least,
    check_non_negative,
    check_positive,
    check_positive_int,
)
from keras_mtl.features import DenseFeature
from keras_mtl.tasks import Task


@dataclasses.dataclass(frozen=True, eq=False)
class SyntheticData:
    """Output of `make_synthetic`: the data, its specs and the generating parameters.

    Args:
        data: dict. `"x"` float32 `(N, dim)`, `"y1"` and `"y2"` float32 `(N,)`.
        features: list. `[DenseFeature("x", dim=dim)]`.
        tasks: list. `[Task("y1", "regression"), Task("y2", "regression")]`.
        correlation: float. The task correlation `p` used (cosine of w1, w2).
        u1: np.ndarray. Unit vector `(dim,)`, orthogonal to `u2`.
        u2: np.ndarray. Unit vector `(dim,)`.
        w1: np.ndarray. `scale * u1`.
        w2: np.ndarray. `scale * (p * u1 + sqrt(1 - p^2) * u2)`.
        alpha: np.ndarray. `(num_sin,)` frequencies shared by both tasks.
        beta: np.ndarray. `(num_sin,)` phases shared by both tasks.
    """

    data: dict
    features: list
    tasks: list
    correlation: float
    u1: np.ndarray
    u2: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    alpha: np.ndarray
    beta: np.ndarray


def synthetic_targets(
    x: np.ndarray, w: np.ndarray, alpha: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """Noise-free target `w^T x + sum_i sin(alpha_i w^T x + beta_i)`, in float64.

    Args:
        x: array `(N, dim)`. Inputs.
        w: array `(dim,)`. Task weight vector.
        alpha: array `(m,)`. Sine frequencies.
        beta: array `(m,)`. Sine phases.

    Returns:
        float64 array `(N,)`.
    """
    z = np.asarray(x, dtype=np.float64) @ np.asarray(w, dtype=np.float64)
    return z + np.sin(np.outer(z, alpha) + beta).sum(axis=1)


def make_synthetic(
    num_examples: int = 10_000,
    dim: int = 100,
    correlation: float = 0.5,
    scale: float = 1.0,
    num_sin: int = 5,
    noise_std: float = 0.1,
    seed: int | None = None,
) -> SyntheticData:
    """Two regression tasks whose correlation is set by the cosine of their weights.

    The generator of Ma et al. (MMoE, KDD 2018, section 4): draw orthonormal
    `u1, u2` in R^d (QR of a Gaussian matrix); `w1 = c u1`,
    `w2 = c (p u1 + sqrt(1 - p^2) u2)`, so `cos(w1, w2) = p`; `x ~ N(0, I)`;
    `y_k = w_k^T x + sum_{i=1..m} sin(alpha_i w_k^T x + beta_i) + eps_k` with
    `alpha_i, beta_i ~ N(0, 1)` shared by both tasks and
    `eps_k ~ N(0, noise_std^2)`. The sines make the relation non-linear, so the
    label correlation grows with `p` but is not equal to it.

    Args:
        num_examples: int. Rows N. Defaults to 10000.
        dim: int. Input width d (>= 2). Defaults to 100.
        correlation: float. Task correlation p in [-1, 1]. Defaults to 0.5.
        scale: float. Norm c of the weight vectors (> 0). Defaults to 1.
        num_sin: int. Number m of sine terms (>= 0). Defaults to 5.
        noise_std: float. Standard deviation of the label noise (>= 0).
            Defaults to 0.1.
        seed: int or None. Fully determines the output. Defaults to None.

    Returns:
        A `SyntheticData` with `data`, `features`, `tasks` and the parameters.

    Example:

    >>> from keras_mtl.data import make_dataset
    >>> from keras_mtl.datasets import make_synthetic
    >>> syn = make_synthetic(1000, dim=16, correlation=0.9, seed=0)
    >>> ds = make_dataset(syn.data, syn.features, syn.tasks, batch_size=128)

    References:
        Ma et al., "Modeling Task Relationships in Multi-task Learning with
        Multi-gate Mixture-of-Experts", KDD 2018.
    """
    check_positive_int("make_synthetic", "num_examples", num_examples)
    check_int_at_least("make_synthetic", "dim (two orthogonal vectors)", dim, 2)
    if not -1.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must lie in [-1, 1]; got {correlation!r}.")
    check_positive("make_synthetic", "scale", scale)
    check_int_at_least("make_synthetic", "num_sin", num_sin, 0)
    check_non_negative("make_synthetic", "noise_std", noise_std)

    rng = np.random.default_rng(seed)
    q, r = np.linalg.qr(rng.standard_normal((dim, 2)))
    q = q * np.sign(np.diag(r))  # unique QR: columns independent of LAPACK sign choice
    u1, u2 = q[:, 0], q[:, 1]
    p = float(correlation)
    w1 = scale * u1
    w2 = scale * (p * u1 + np.sqrt(1.0 - p * p) * u2)
    alpha = rng.standard_normal(num_sin)
    beta = rng.standard_normal(num_sin)
    x = rng.standard_normal((num_examples, dim)).astype(np.float32)
    noise = rng.standard_normal((2, num_examples)) * noise_std
    y1 = synthetic_targets(x, w1, alpha, beta) + noise[0]
    y2 = synthetic_targets(x, w2, alpha, beta) + noise[1]
    return SyntheticData(
        data={"x": x, "y1": y1.astype(np.float32), "y2": y2.astype(np.float32)},
        features=[DenseFeature("x", dim=dim)],
        tasks=[Task("y1", "regression"), Task("y2", "regression")],
        correlation=p,
        u1=u1,
        u2=u2,
        w1=w1,
        w2=w2,
        alpha=alpha,
        beta=beta,
    )
