"""Simulated multi-domain CTR data (several scenarios of one platform) with known probabilities."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from keras_mtl._checks import check_fraction, check_int_at_least, check_positive
from keras_mtl.datasets.funnel import _sigmoid, _solve_intercept
from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import Task

#: Variance shares of the five unit-variance parts of a score function: the
#: user x item latent match, the user's and the item's bias, a linear and a
#: pairwise (product) effect of the context vector. They sum to 1.
SCORE_PARTS = {
    "match": 0.2,
    "user_bias": 0.2,
    "item_bias": 0.2,
    "linear": 0.2,
    "pairwise": 0.2,
}
#: Default share of the rows per domain: five domains, the smallest 5%.
DOMAIN_SHARES = (0.45, 0.25, 0.15, 0.10, 0.05)


@dataclasses.dataclass(frozen=True, eq=False)
class MultiDomainData:
    """Output of `make_multi_domain`: the rows, their specs and the true probabilities.

    Args:
        data: dict of numpy arrays, one row per impression: `"domain"`,
            `"user_id"`, `"item_id"` (int64 `(N,)`), `"context"` (float32
            `(N, context_dim)`) and `"click"` (float32 0/1 `(N,)`).
        features: list. `SparseFeature("domain")`, `SparseFeature("user_id")`,
            `SparseFeature("item_id")`, `DenseFeature("context", dim=context_dim)`.
        tasks: list. `[Task("click")]`.
        domain: str. The name of the domain feature (`"domain"`), what
            `build_star(..., domain=)` takes.
        true_ctr: np.ndarray. `(N,)` float64 P(click | row), in its own domain.
        domain_logits: np.ndarray. `(N, num_domains)` float64: column `d` is the
            click logit the row would have in domain `d` (`true_ctr` is the
            sigmoid of the row's own domain's column).
        domain_sizes: tuple of int. Rows per domain.
        click_rates: tuple of float. The expected click rate of each domain.
        intercepts: np.ndarray. `(num_domains,)` solved logit intercepts `b_d`.
        similarity: float. The requested `rho`: the correlation between two
            domains' scores of the same row.
    """

    data: dict
    features: list
    tasks: list
    domain: str
    true_ctr: np.ndarray
    domain_logits: np.ndarray
    domain_sizes: tuple
    click_rates: tuple
    intercepts: np.ndarray
    similarity: float

    @property
    def num_domains(self) -> int:
        return len(self.domain_sizes)


def _score_function(
    rng: np.random.Generator,
    users: np.ndarray,
    items: np.ndarray,
    context_dim: int,
):
    """One random score function `F(user, item, context)` of unit variance.

    `F = sqrt(.2) (U_u' M V_i / |M| + g_u + b_i + a.x + (c.x)(e.x))` with the
    given latent factors `U`, `V`, a fresh `M ~ N(0, 1)` (`k x k`, `|M|` its
    Frobenius norm), fresh user and item biases `g, b ~ N(0, 1)` and fresh
    unit vectors `a`, `c`, `e`, `c` orthogonal to `e`.
    For factors with N(0, 1) entries, `x ~ N(0, I)` and independent users and
    items, each part has mean 0 and variance 1, and so has `F`.
    """
    k = users.shape[1]
    pairing = rng.standard_normal((k, k))
    pairing /= np.linalg.norm(pairing)
    user_bias = rng.standard_normal(len(users))
    item_bias = rng.standard_normal(len(items))
    q, r = np.linalg.qr(rng.standard_normal((context_dim, 3)))
    a, c, e = (q * np.sign(np.diag(r))).T  # unique QR, orthonormal columns
    w = {k: np.sqrt(v) for k, v in SCORE_PARTS.items()}

    def score(user: np.ndarray, item: np.ndarray, x: np.ndarray) -> np.ndarray:
        match = np.einsum("nj,jl,nl->n", users[user], pairing, items[item])
        return (
            w["match"] * match
            + w["user_bias"] * user_bias[user]
            + w["item_bias"] * item_bias[item]
            + w["linear"] * (x @ a)
            + w["pairwise"] * (x @ c) * (x @ e)
        )

    return score


def _domain_sizes(num_examples: int, shares: np.ndarray) -> np.ndarray:
    """Rows per domain: `floor(share * N)`, the leftover rows to the largest
    remainders (ties to the lower domain)."""
    exact = shares * num_examples
    sizes = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - sizes), kind="stable")
    sizes[order[: num_examples - sizes.sum()]] += 1
    return sizes


def make_multi_domain(
    num_examples: int = 100_000,
    domain_shares: Sequence[float] = DOMAIN_SHARES,
    click_rates: float | Sequence[float] | None = None,
    similarity: float = 0.5,
    num_users: int = 500,
    num_items: int = 200,
    latent_dim: int = 8,
    context_dim: int = 8,
    logit_scale: float = 2.0,
    seed: int | None = None,
) -> MultiDomainData:
    """Click data from several domains that share some of their click behaviour.

    The setting of multi-domain CTR prediction (STAR): one platform, several
    scenarios (domains) of very different sizes, the same users and items in
    all of them, and a click probability that is partly common to every domain
    and partly the domain's own.

    The generating process. Users and items have latent factors `U_u`, `V_i`
    of width `k = latent_dim` (entries N(0, 1)). A *score function*
    `F(u, i, x)` of a user `u`, an item `i` and a context vector `x` is drawn
    as `F = sqrt(.2) (U_u' M V_i / |M| + g_u + b_i + a.x + (c.x)(e.x))`: a
    latent match (a random `k x k` pairing `M ~ N(0, 1)` of the user's and the
    item's factors, `|M|` its Frobenius norm), a user and an item bias
    `g_u, b_i ~ N(0, 1)`, and a linear and a pairwise (product) effect of the
    context, with `a`, `c`, `e` unit vectors, `c` orthogonal to `e`. Each of
    the five parts, and so `F`, has mean 0 and variance 1. One shared function
    `F_0` and one function `F_d` per domain are drawn independently (the
    factors `U`, `V` are common to all: a domain pairs the same traits its own
    way), and domain `d` scores a row by
    `S_d = sqrt(rho) F_0 + sqrt(1 - rho) F_d`, so two domains' scores of the
    same row have correlation `rho = similarity` (1: one click model for all
    domains; 0: unrelated domains). That holds in expectation over the draw of
    the functions: the pairings and context directions of two functions are
    independent and random, and their chance overlap moves the realised
    correlation (`np.corrcoef(domain_logits.T)`) away from `rho`, by up to
    about 0.15 at the default sizes. The click probability in domain `d` is
    `sigmoid(logit_scale * S_d + b_d)`, with the intercept `b_d` set by
    bisection so that the mean probability over the domain's rows is
    `click_rates[d]`.

    Rows: domain `d` gets `domain_shares[d]` of the `num_examples` rows
    (rounded, exact sizes in `domain_sizes`), in random order; users and items
    are drawn uniformly, the context `x ~ N(0, I)`; the label is
    `click ~ Bernoulli(true_ctr)`. Everything is drawn from `seed` alone.
    A small domain has few rows per user, so its own part `F_d` is hard to
    learn from it alone, while `F_0` can be learnt from every domain: the
    trade-off a multi-domain model addresses. (The bilinear match is the part
    an MLP over concatenated embeddings learns worst; it is one fifth of
    each score.)

    Args:
        num_examples: int. Rows N (at least one per domain). Defaults to 100000.
        domain_shares: sequence of float. Relative size of each domain (> 0,
            normalised to sum to 1); its length is the number of domains (>= 2).
            Defaults to (0.45, 0.25, 0.15, 0.10, 0.05).
        click_rates: float, sequence of float or None. Expected click rate of
            each domain, in (0, 1); one float for all. None spaces the rates
            evenly from 0.05 (first domain) to 0.2 (last). Defaults to None.
        similarity: float. Correlation `rho` in [0, 1] of two domains' scores.
            Defaults to 0.5.
        num_users: int. Distinct users. Defaults to 500.
        num_items: int. Distinct items. Defaults to 200.
        latent_dim: int. Width `k` of the latent factors. Defaults to 8.
        context_dim: int. Width of the context vector (>= 3). Defaults to 8.
        logit_scale: float. Multiplier of the scores (> 0); larger is easier
            to rank. Defaults to 2.
        seed: int or None. Fully determines the output. Defaults to None.

    Returns:
        A `MultiDomainData` with the rows, the feature specs, the `click` task,
        the name of the domain feature and the true probabilities.

    Example:

    >>> from keras_mtl.data import make_dataset
    >>> from keras_mtl.datasets import make_multi_domain
    >>> md = make_multi_domain(5_000, domain_shares=(0.7, 0.2, 0.1), seed=0)
    >>> md.domain_sizes
    (3500, 1000, 500)
    >>> ds = make_dataset(md.data, md.features, md.tasks, batch_size=256)

    References:
        Sheng et al., "One Model to Serve All: Star Topology Adaptive
        Recommender for Multi-Domain CTR Prediction", CIKM 2021
        (arXiv:2101.11427).
    """
    owner = "make_multi_domain"
    for name, value in [
        ("num_users", num_users),
        ("num_items", num_items),
        ("latent_dim", latent_dim),
    ]:
        check_int_at_least(owner, name, value, 1)
    check_int_at_least(owner, "context_dim", context_dim, 3)
    shares = np.asarray(domain_shares, dtype=np.float64)
    if shares.ndim != 1 or len(shares) < 2 or not np.all(shares > 0):
        raise ValueError(
            f"{owner}: domain_shares must be a sequence of at least 2 numbers > 0, "
            f"got {domain_shares!r}."
        )
    num_domains = len(shares)
    check_int_at_least(owner, "num_examples (one row per domain)", num_examples, 1)
    sizes = _domain_sizes(num_examples, shares / shares.sum())
    if sizes.min() < 1:
        raise ValueError(
            f"{owner}: num_examples={num_examples} leaves domain "
            f"{int(np.argmin(sizes))} without rows; give more rows or larger shares."
        )
    if click_rates is None:
        rates = np.linspace(0.05, 0.2, num_domains)
    elif np.ndim(click_rates) > 1 or np.size(click_rates) not in (1, num_domains):
        raise ValueError(
            f"{owner}: click_rates must be one float or {num_domains} floats (one "
            f"per domain), got {click_rates!r}."
        )
    else:
        rates = np.broadcast_to(np.asarray(click_rates, dtype=np.float64), shares.shape)
    if not np.all((rates > 0) & (rates < 1)):
        raise ValueError(
            f"{owner}: click_rates must lie in (0, 1), got {click_rates!r}."
        )
    rho = check_fraction(owner, "similarity", similarity)
    check_positive(owner, "logit_scale", logit_scale)

    rng = np.random.default_rng(seed)
    users = rng.standard_normal((num_users, latent_dim))
    items = rng.standard_normal((num_items, latent_dim))
    shared = _score_function(rng, users, items, context_dim)
    own = [_score_function(rng, users, items, context_dim) for _ in range(num_domains)]
    domain = rng.permutation(np.repeat(np.arange(num_domains), sizes))
    user = rng.integers(num_users, size=num_examples)
    item = rng.integers(num_items, size=num_examples)
    x = rng.standard_normal((num_examples, context_dim))
    common = np.sqrt(rho) * shared(user, item, x)
    scores = np.stack(
        [common + np.sqrt(1.0 - rho) * f(user, item, x) for f in own], axis=1
    )
    intercepts = np.empty(num_domains)
    for d in range(num_domains):
        row_scores = logit_scale * scores[domain == d, d]
        intercepts[d] = _solve_intercept(
            lambda b, s=row_scores: _sigmoid(s + b).mean(), rates[d]
        )
    domain_logits = logit_scale * scores + intercepts
    true_ctr = _sigmoid(domain_logits[np.arange(num_examples), domain])
    click = rng.uniform(size=num_examples) < true_ctr

    features = [
        SparseFeature("domain", vocabulary_size=num_domains),
        SparseFeature("user_id", vocabulary_size=num_users),
        SparseFeature("item_id", vocabulary_size=num_items),
        DenseFeature("context", dim=context_dim),
    ]
    return MultiDomainData(
        data={
            "domain": domain.astype(np.int64),
            "user_id": user.astype(np.int64),
            "item_id": item.astype(np.int64),
            "context": x.astype(np.float32),
            "click": click.astype(np.float32),
        },
        features=features,
        tasks=[Task("click")],
        domain="domain",
        true_ctr=true_ctr,
        domain_logits=domain_logits,
        domain_sizes=tuple(int(s) for s in sizes),
        click_rates=tuple(float(r) for r in rates),
        intercepts=intercepts,
        similarity=rho,
    )
