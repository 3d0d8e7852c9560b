"""Simulated impression -> click -> action -> conversion funnel with known probabilities."""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd

from keras_mtl._checks import check_int_at_least, check_non_negative, check_positive
from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import esmm_tasks

NUM_AGES = 6
# Weights of the unit-variance components (latent dot product, user bias, item
# bias, age x category effect, -log price) in the scores S_1 (click), S_2
# (conversion) and S_3 (action only). Rows sum to 1: each score has unit variance.
_WEIGHTS = np.array(
    [
        [0.50, 0.15, 0.15, 0.20, 0.0],
        [0.40, 0.15, 0.15, 0.10, 0.2],
        [0.50, 0.15, 0.15, 0.20, 0.0],
    ]
)
_PRICE_MEAN, _PRICE_STD = 3.0, float(np.sqrt(0.25 + 0.09 + 0.04))


@dataclasses.dataclass(frozen=True, eq=False)
class FunnelData:
    """Output of `make_funnel`: impressions, specs and the true probabilities.

    Args:
        frame: pd.DataFrame. One row per impression: `user_id`, `user_age`,
            `user_history` (a list of category ids; the rows of one user share
            one list object), `item_id`, `item_category`, `item_price` (the
            raw price, log-normal; its spec takes the log in the model), the
            float32 0/1 events `click`, `action`, `conversion` and the float32
            `dwell` time after a click (log-normal; NaN, i.e. no label, where
            there is no click).
        features: list. Specs of the six feature columns.
        tasks: list. ESMM's tasks on `click` and `conversion` (`esmm_tasks()`:
            `ctr`, `cvr` given a click, metric-only, and `ctcvr`). The frame also
            fits `esm2_tasks()` (with `action`), `aitm_tasks()` and
            `funnel_tasks()` (independent heads for MMoE, shared-bottom, ...).
        true_ctr: np.ndarray. `(N,)` float64 P(click | x); the other `true_*`
            arrays are likewise `(N,)` float64, defined for every row.
        true_action: np.ndarray. P(action | click, x).
        true_cvr: np.ndarray. P(conversion | click, x).
        true_cvr_given_action: np.ndarray. P(conversion | action, x).
        true_cvr_given_no_action: np.ndarray. P(conversion | click, no action, x).
        true_dwell: np.ndarray. E[dwell | click, x] = exp(m + s²/2), with
            `m = dwell_mean + dwell_slope * C` the mean and `s = dwell_sigma`
            the standard deviation of log dwell given a click.
        true_log_dwell: np.ndarray. E[log dwell | click, x] = m; `exp(m)` is
            the median dwell given a click.
        click_score, conversion_score: np.ndarray. `(N,)` scores A and C.
        correlation: float. The requested `p`.
        intercepts: dict. Solved logit intercepts, keys `"click"`, `"action"`,
            `"conversion"`.
        user_factors, item_factors, category_factors: np.ndarray. Latent factors,
            `(num_users | num_items | num_categories, 3 * latent_dim)`.
    """

    frame: pd.DataFrame
    features: list
    tasks: list
    true_ctr: np.ndarray
    true_action: np.ndarray
    true_cvr: np.ndarray
    true_cvr_given_action: np.ndarray
    true_cvr_given_no_action: np.ndarray
    true_dwell: np.ndarray
    true_log_dwell: np.ndarray
    click_score: np.ndarray
    conversion_score: np.ndarray
    correlation: float
    intercepts: dict
    user_factors: np.ndarray
    item_factors: np.ndarray
    category_factors: np.ndarray


def _sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function kept strictly inside (0, 1)."""
    with np.errstate(over="ignore"):
        return np.clip(1.0 / (1.0 + np.exp(-x)), 1e-12, 1.0 - 1e-12)


def _solve_intercept(rate, target: float) -> float:
    """Bisection for b with `rate(b) == target`; `rate` increases with b."""
    lo, hi = -8.0, 8.0
    while rate(lo) > target and lo > -1e6:  # widen for large logit scales
        lo *= 2
    while rate(hi) < target and hi < 1e6:
        hi *= 2
    while hi - lo > 1e-9:
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate(mid) < target else (lo, mid)
    return 0.5 * (lo + hi)


def _popularity(rng: np.random.Generator, n: int, exponent: float) -> np.ndarray:
    """Zipf-Mandelbrot weights `1 / (rank + 10)^exponent`, ranks shuffled over ids."""
    weights = (np.arange(n) + 10.0) ** -exponent
    return rng.permutation(weights / weights.sum())


def _check(name: str, value, ok: bool, what: str) -> None:
    if not ok:
        raise ValueError(f"{name} must be {what}; got {value!r}.")


def make_funnel(
    num_impressions: int = 200_000,
    num_users: int = 20_000,
    num_items: int = 5_000,
    num_categories: int = 50,
    history_len: int = 10,
    latent_dim: int = 8,
    click_rate: float = 0.1,
    action_rate: float = 0.2,
    conversion_rate: float = 0.1,
    correlation: float = 0.7,
    logit_scale: float = 2.0,
    action_lift: float = 2.0,
    popularity_exponent: float = 1.0,
    dwell_mean: float = 3.0,
    dwell_slope: float = 0.8,
    dwell_sigma: float = 1.0,
    seed: int | None = None,
) -> FunnelData:
    """Impressions with clicks, actions and conversions from known probabilities.

    Users, items and categories get latent factors in three blocks of
    `latent_dim` (an item's mixes its category's with noise), plus random
    biases and an age x category effect. Block j gives a unit-variance score
    S_j: scaled dot product, biases, age effect and, for S_2 only, the log
    price. With `s` the sigmoid, `k = logit_scale`, `p = correlation`:
    click score `A = S_1`, conversion score `C = p A + sqrt(1 - p^2) S_2`,
    `true_ctr = s(k A + b_c)`, `a = true_action = s(k (C + S_3) / sqrt(2) + b_a)`,
    `P(buy | action) = s(k C + b_v + action_lift)`, `P(buy | click, no action)
    = s(k C + b_v)` and `true_cvr = a P(buy | action) + (1 - a) P(buy | no
    action)`. Bisection sets b_c, b_a, b_v so that the expected click rate is
    `click_rate` and the expected action and conversion rates among clicks
    are `action_rate` and `conversion_rate`. Actions and conversions happen
    only after a click. Users and items are drawn with Zipf-like popularity,
    so many ids are rare; `user_history` lists 1..`history_len` distinct
    categories drawn by the user's taste (Gumbel top-k), so it also informs
    about rare users. A click is followed by a dwell time (seconds, say) with
    `log dwell = dwell_mean + dwell_slope * C + dwell_sigma * e`, e standard
    normal: log-normal, so its mean given a click is `true_dwell = exp(
    dwell_mean + dwell_slope * C + dwell_sigma² / 2)`. The dwell times are
    drawn from a generator of their own (seeded from `seed`), so every other
    column is what it was before the dwell column existed.

    With `correlation > 0`, clicked impressions have a higher mean `true_cvr`
    than all impressions (sample selection bias), and a CVR model trained on
    clicks sees few clicks per id (data sparsity): the setting of ESMM.

    Args:
        num_impressions: int. Rows N. Defaults to 200000.
        num_users: int. Distinct users. Defaults to 20000.
        num_items: int. Distinct items. Defaults to 5000.
        num_categories: int. Item categories (>= 2). Defaults to 50.
        history_len: int. `max_len` of `user_history`. Defaults to 10.
        latent_dim: int. Width of each latent block. Defaults to 8.
        click_rate: float. Expected clicks per impression, in (0, 1).
            Defaults to 0.1.
        action_rate: float. Expected actions (cart/wish) per click, in (0, 1).
            Defaults to 0.2.
        conversion_rate: float. Expected conversions per click, in (0, 1).
            Defaults to 0.1 (about 2000 conversions at the default size);
            rates of 0.01-0.04 need more impressions for a learnable signal.
        correlation: float. Correlation p of the click and conversion scores,
            in [-1, 1]. Defaults to 0.7.
        logit_scale: float. Multiplier k of the scores (> 0); larger is easier
            to rank. Defaults to 2.
        action_lift: float. Log-odds lift of buying after an action (>= 0).
            Defaults to 2.
        popularity_exponent: float. Zipf exponent of user and item popularity
            (>= 0; 0 is uniform). Defaults to 1.
        dwell_mean: float. Mean log dwell given a click at C = 0. Defaults to 3
            (a median of about 20).
        dwell_slope: float. Weight of the conversion score C in log dwell.
            Defaults to 0.8.
        dwell_sigma: float. Standard deviation of log dwell given the features
            (>= 0). Defaults to 1.
        seed: int or None. Fully determines the output. Defaults to None.

    Returns:
        A `FunnelData` with the frame, feature specs, ESMM's tasks, the true
        probabilities and the generating parameters.

    Example:

    >>> from keras_mtl.data import make_dataset
    >>> from keras_mtl.datasets import make_funnel
    >>> funnel = make_funnel(10_000, num_users=500, num_items=200, seed=0)
    >>> ds = make_dataset(funnel.frame, funnel.features, funnel.tasks, batch_size=512)

    References:
        Ma et al., "Entire Space Multi-Task Model: An Effective Approach for
        Estimating Post-Click Conversion Rate", SIGIR 2018 (arXiv:1804.07931).
        Wen et al., "Entire Space Multi-Task Modeling via Post-Click Behavior
        Decomposition for Conversion Rate Prediction" (ESM2), SIGIR 2020.
    """
    ints = dict(num_impressions=num_impressions, num_users=num_users)
    ints.update(num_items=num_items, history_len=history_len, latent_dim=latent_dim)
    for name, value in [*ints.items(), ("num_categories", num_categories)]:
        low = 2 if name == "num_categories" else 1
        check_int_at_least("make_funnel", name, value, low)
    rates = dict(click_rate=click_rate, action_rate=action_rate)
    for name, value in [*rates.items(), ("conversion_rate", conversion_rate)]:
        _check(name, value, 0.0 < value < 1.0, "in (0, 1)")
    _check("correlation", correlation, -1.0 <= correlation <= 1.0, "in [-1, 1]")
    check_positive("make_funnel", "logit_scale", logit_scale)
    check_non_negative("make_funnel", "action_lift", action_lift)
    check_non_negative("make_funnel", "popularity_exponent", popularity_exponent)
    check_non_negative("make_funnel", "dwell_sigma", dwell_sigma)
    for name, value in (("dwell_mean", dwell_mean), ("dwell_slope", dwell_slope)):
        _check(name, value, np.isfinite(value), "a finite number")

    rng = np.random.default_rng(seed)
    d, n = latent_dim, num_impressions
    category_factors = rng.standard_normal((num_categories, 3 * d))
    user_factors = rng.standard_normal((num_users, 3 * d))
    item_category = rng.integers(num_categories, size=num_items)
    noise = rng.standard_normal((num_items, 3 * d))
    item_factors = np.sqrt(0.5) * (category_factors[item_category] + noise)
    user_bias = rng.standard_normal((num_users, 3))
    item_bias = rng.standard_normal((num_items, 3))
    age_effect = rng.standard_normal((3, NUM_AGES, num_categories))
    user_age = rng.integers(NUM_AGES, size=num_users)
    item_log_price = (
        _PRICE_MEAN
        + rng.normal(0.0, 0.5, num_categories)[item_category]
        + rng.normal(0.0, 0.3, num_items)
    )

    # User history: distinct categories by Gumbel top-k over taste log-odds.
    taste = 2.0 * user_factors @ category_factors.T / np.sqrt(3 * d)
    gumbel = -np.log(-np.log(rng.uniform(size=taste.shape)))
    top = np.argsort(-(taste + gumbel), axis=1)[:, : min(history_len, num_categories)]
    lengths = rng.integers(1, top.shape[1] + 1, size=num_users)
    histories = np.empty(num_users, dtype=object)  # one shared list per user
    for user, (row, size) in enumerate(zip(top.tolist(), lengths.tolist())):
        histories[user] = row[:size]

    # Impressions: users and items by Zipf-like popularity; per-impression discounts.
    zipf = popularity_exponent
    users = rng.choice(num_users, n, p=_popularity(rng, num_users, zipf))
    items = rng.choice(num_items, n, p=_popularity(rng, num_items, zipf))
    cats, ages = item_category[items], user_age[users]
    log_price = item_log_price[items] + rng.normal(0.0, 0.2, n)
    dots = np.einsum(
        "nbd,nbd->nb",
        user_factors[users].reshape(n, 3, d),
        item_factors[items].reshape(n, 3, d),
    ) / np.sqrt(d)
    price = -(log_price - _PRICE_MEAN) / _PRICE_STD
    parts = [dots, user_bias[users], item_bias[items], age_effect[:, ages, cats].T]
    parts = np.stack([*parts, np.repeat(price[:, None], 3, axis=1)], axis=-1)
    scores = np.einsum("nbc,bc->nb", parts, np.sqrt(_WEIGHTS))  # (N, 3) blocks
    p, k = float(correlation), logit_scale
    click_score = scores[:, 0]
    conversion_score = p * click_score + np.sqrt(1.0 - p * p) * scores[:, 1]
    act_logit = k * np.sqrt(0.5) * (conversion_score + scores[:, 2])

    b_click = _solve_intercept(
        lambda b: _sigmoid(k * click_score + b).mean(), click_rate
    )
    true_ctr = _sigmoid(k * click_score + b_click)
    weight = true_ctr / true_ctr.sum()  # expected share of the clicks per row
    b_action = _solve_intercept(lambda b: weight @ _sigmoid(act_logit + b), action_rate)
    true_action = _sigmoid(act_logit + b_action)

    def buy(b):
        z = k * conversion_score + b
        given_action, given_none = _sigmoid(z + action_lift), _sigmoid(z)
        mixed = true_action * given_action + (1.0 - true_action) * given_none
        return given_action, given_none, mixed

    b_conv = _solve_intercept(lambda b: weight @ buy(b)[2], conversion_rate)
    cvr_action, cvr_none, true_cvr = buy(b_conv)

    u = rng.uniform(size=(3, n))
    click = u[0] < true_ctr
    action = click & (u[1] < true_action)
    conversion = click & (u[2] < np.where(action, cvr_action, cvr_none))
    events = {"click": click, "action": action, "conversion": conversion}

    # Dwell after a click, from a generator of its own: the columns above stay
    # bit-identical to those drawn before the dwell column existed.
    dwell_rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(1)[0])
    true_log_dwell = dwell_mean + dwell_slope * conversion_score
    log_dwell = true_log_dwell + dwell_sigma * dwell_rng.standard_normal(n)
    dwell = np.where(click, np.exp(log_dwell), np.nan)
    true_dwell = np.exp(true_log_dwell + 0.5 * dwell_sigma**2)

    frame = pd.DataFrame(
        {
            "user_id": users,
            "user_age": ages,
            "user_history": histories[users],
            "item_id": items,
            "item_category": cats,
            "item_price": np.exp(log_price).astype(np.float32),
            **{k: v.astype(np.float32) for k, v in events.items()},
            "dwell": dwell.astype(np.float32),
        }
    )
    features = [
        SparseFeature("user_id", vocabulary_size=num_users),
        SparseFeature("user_age", vocabulary_size=NUM_AGES),
        SparseFeature(
            "user_history",
            vocabulary_size=num_categories,
            max_len=history_len,
            share_embedding_with="item_category",
        ),
        SparseFeature("item_id", vocabulary_size=num_items),
        SparseFeature("item_category", vocabulary_size=num_categories),
        # The raw price; the model takes its log (log-normal prices).
        DenseFeature("item_price", transform="log", mean=_PRICE_MEAN, std=_PRICE_STD),
    ]
    return FunnelData(
        frame=frame,
        features=features,
        tasks=esmm_tasks(),
        true_ctr=true_ctr,
        true_action=true_action,
        true_cvr=true_cvr,
        true_cvr_given_action=cvr_action,
        true_cvr_given_no_action=cvr_none,
        true_dwell=true_dwell,
        true_log_dwell=true_log_dwell,
        click_score=click_score,
        conversion_score=conversion_score,
        correlation=p,
        intercepts={"click": b_click, "action": b_action, "conversion": b_conv},
        user_factors=user_factors,
        item_factors=item_factors,
        category_factors=category_factors,
    )
