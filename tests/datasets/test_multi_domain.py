import numpy as np
import pytest

from keras_mtl.data import make_dataset
from keras_mtl.datasets import MultiDomainData, make_multi_domain
from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import Task

SHARES = (0.5, 0.3, 0.15, 0.05)
RATES = (0.05, 0.1, 0.2, 0.3)


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def md():
    return make_multi_domain(
        40_000, domain_shares=SHARES, click_rates=RATES, context_dim=5, seed=0
    )


def test_shapes_dtypes_specs_and_domain_sizes(md):
    assert isinstance(md, MultiDomainData)
    data = md.data
    assert sorted(data) == ["click", "context", "domain", "item_id", "user_id"]
    for key in ("domain", "user_id", "item_id"):
        assert data[key].shape == (40_000,) and data[key].dtype == np.int64, key
    assert data["context"].shape == (40_000, 5) and data["context"].dtype == np.float32
    assert data["click"].dtype == np.float32
    assert set(np.unique(data["click"])) == {0.0, 1.0}
    assert data["user_id"].min() >= 0 and data["user_id"].max() == 499
    assert data["item_id"].min() >= 0 and data["item_id"].max() == 199
    assert md.features == [
        SparseFeature("domain", vocabulary_size=4),
        SparseFeature("user_id", vocabulary_size=500),
        SparseFeature("item_id", vocabulary_size=200),
        DenseFeature("context", dim=5),
    ]
    assert md.tasks == [Task("click")] and md.domain == "domain"
    assert md.num_domains == 4
    assert md.domain_sizes == (20_000, 12_000, 6_000, 2_000)
    assert np.bincount(data["domain"]).tolist() == list(md.domain_sizes)
    assert md.true_ctr.shape == (40_000,) and md.true_ctr.dtype == np.float64
    assert md.domain_logits.shape == (40_000, 4) and md.intercepts.shape == (4,)
    assert md.click_rates == RATES and md.similarity == 0.5
    # The domains are interleaved, not in blocks.
    assert (data["domain"][:100] == 0).mean() < 0.9
    x, y = next(iter(make_dataset(data, md.features, md.tasks, batch_size=256)))
    assert set(x) == {"domain", "user_id", "item_id", "context"}
    assert x["context"].shape == (256, 5) and y["click"].shape == (256,)


def test_leftover_rows_go_to_the_largest_remainders():
    # 0.5 / 0.3 / 0.2 of 11 rows: 5.5, 3.3, 2.2 -> floors 5, 3, 2, the extra row
    # to the largest remainder (domain 0).
    md = make_multi_domain(11, domain_shares=(5, 3, 2), seed=0)
    assert md.domain_sizes == (6, 3, 2)
    # The shares are normalised, and the default rates run from 0.05 to 0.2.
    assert make_multi_domain(100, domain_shares=(1, 1, 2), seed=0).domain_sizes == (
        25,
        25,
        50,
    )
    assert md.click_rates == pytest.approx((0.05, 0.125, 0.2))


def test_true_ctr_is_the_sigmoid_of_the_rows_own_domain_logit(md):
    own = md.domain_logits[np.arange(40_000), md.data["domain"]]
    np.testing.assert_allclose(md.true_ctr, sigmoid(own), rtol=1e-12)
    assert (md.true_ctr > 0).all() and (md.true_ctr < 1).all()


def test_each_domain_has_its_requested_mean_probability_and_click_rate(md):
    domain, click = md.data["domain"], md.data["click"]
    for d, rate in enumerate(RATES):
        p = md.true_ctr[domain == d]
        # The intercept is solved on the domain's own rows.
        assert p.mean() == pytest.approx(rate, abs=1e-6), d
        # Clicks ~ Bernoulli(p): the count is within 4 standard deviations.
        clicks = click[domain == d].sum()
        assert abs(clicks - p.sum()) < 4 * np.sqrt((p * (1 - p)).sum()), d
    # Larger click rates need larger intercepts.
    assert (np.diff(md.intercepts) > 0).all()


def test_labels_follow_the_true_probability_within_a_domain(md):
    """Within domain 0, rows in each quintile of true_ctr click at that
    quintile's mean probability (not only on average over the domain)."""
    rows = md.data["domain"] == 0
    p, click = md.true_ctr[rows], md.data["click"][rows]
    order = np.argsort(p)
    rates = []
    for part in np.array_split(order, 5):
        q = p[part]
        assert abs(click[part].sum() - q.sum()) < 4 * np.sqrt((q * (1 - q)).sum())
        rates.append(click[part].mean())
    assert rates[-1] > 5 * rates[0]  # the score ranks


def test_deterministic_by_seed():
    kwargs = dict(num_examples=3_000, domain_shares=(0.6, 0.4))
    a, b = make_multi_domain(**kwargs, seed=7), make_multi_domain(**kwargs, seed=7)
    for key in a.data:
        np.testing.assert_array_equal(a.data[key], b.data[key])
    np.testing.assert_array_equal(a.domain_logits, b.domain_logits)
    c = make_multi_domain(**kwargs, seed=8)
    assert not np.array_equal(a.data["user_id"], c.data["user_id"])
    assert not np.allclose(a.domain_logits, c.domain_logits)


@pytest.mark.parametrize("rho", [0.0, 0.5, 0.9])
def test_domain_scores_correlate_as_the_similarity(rho):
    """Two domains' logits of the same rows have correlation `similarity`. It
    holds in expectation over the random functions; with many users, items and
    context dimensions the sample correlation is close to it."""
    md = make_multi_domain(
        20_000,
        domain_shares=(0.5, 0.3, 0.2),
        similarity=rho,
        num_users=10_000,
        num_items=10_000,
        latent_dim=32,
        context_dim=300,
        seed=1,
    )
    corr = np.corrcoef(md.domain_logits.T)
    off = corr[~np.eye(3, dtype=bool)]
    assert off == pytest.approx(np.full(6, rho), abs=0.05)
    # Each score has unit variance: the logit's standard deviation is the scale.
    assert md.domain_logits.std(axis=0) == pytest.approx([2.0] * 3, rel=0.05)


def test_domains_differ_in_how_they_click(md):
    """The same rows get different probabilities in different domains, beyond
    the intercepts; with similarity 1 only the intercepts differ."""
    centred = md.domain_logits - md.intercepts
    assert np.abs(centred[:, 0] - centred[:, 3]).mean() > 1.0
    same = make_multi_domain(2_000, domain_shares=(0.5, 0.5), similarity=1.0, seed=0)
    centred = same.domain_logits - same.intercepts
    np.testing.assert_allclose(centred[:, 0], centred[:, 1], atol=1e-12)
    assert same.intercepts[0] != pytest.approx(same.intercepts[1])


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(domain_shares=(1.0,)), "domain_shares must be a sequence of at least 2"),
        (dict(domain_shares=(0.5, 0.0)), "domain_shares must be"),
        (dict(click_rates=(0.1, 0.2)), r"click_rates must be one float or 5 floats"),
        (dict(click_rates=1.0), r"click_rates must lie in \(0, 1\)"),
        (dict(similarity=1.5), "similarity must be a float in"),
        (dict(num_examples=4), "leaves domain 3 without rows"),
        (dict(context_dim=2), "context_dim"),
        (dict(logit_scale=0), "logit_scale"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_multi_domain(**{"num_examples": 1_000, **kwargs})
