import numpy as np
import pandas as pd
import pytest

from keras_mtl.data import make_dataset
from keras_mtl.datasets.funnel import FunnelData, make_funnel
from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import Task

SMALL = dict(num_users=2_000, num_items=500, num_categories=20, history_len=6)
EVENTS = ("click", "action", "conversion")
TRUE = ("true_ctr", "true_action", "true_cvr")
TRUE += ("true_cvr_given_action", "true_cvr_given_no_action")


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@pytest.fixture(scope="module")
def funnel():
    return make_funnel(60_000, seed=0, **SMALL)


def test_shapes_dtypes_and_specs(funnel):
    assert isinstance(funnel, FunnelData)
    frame = funnel.frame
    assert list(frame.columns) == [
        "user_id",
        "user_age",
        "user_history",
        "item_id",
        "item_category",
        "item_price",
        *EVENTS,
        "dwell",
    ]
    assert len(frame) == 60_000
    for column in ("user_id", "user_age", "item_id", "item_category"):
        assert frame[column].dtype == np.int64
    for column in ("item_price", *EVENTS):
        assert frame[column].dtype == np.float32
    for column in EVENTS:
        assert set(np.unique(frame[column])) == {0.0, 1.0}
    assert frame.user_id.between(0, 1_999).all()
    assert frame.item_id.between(0, 499).all()
    assert frame.item_category.between(0, 19).all()
    assert frame.user_age.between(0, 5).all()
    assert funnel.features == [
        SparseFeature("user_id", vocabulary_size=2_000),
        SparseFeature("user_age", vocabulary_size=6),
        SparseFeature(
            "user_history",
            vocabulary_size=20,
            max_len=6,
            share_embedding_with="item_category",
        ),
        SparseFeature("item_id", vocabulary_size=500),
        SparseFeature("item_category", vocabulary_size=20),
        DenseFeature("item_price", transform="log", mean=3.0, std=float(np.sqrt(0.38))),
    ]
    # The model's standardisation matches the log of the raw price column.
    price, log_price = funnel.features[-1], np.log(frame.item_price)
    assert (frame.item_price > 0).all()
    assert log_price.mean() == pytest.approx(price.mean, abs=0.15)
    assert log_price.std() == pytest.approx(price.std, rel=0.2)
    for name in TRUE + ("click_score", "conversion_score"):
        values = getattr(funnel, name)
        assert values.shape == (60_000,) and values.dtype == np.float64, name
    for name in TRUE:
        values = getattr(funnel, name)
        assert (values > 0).all() and (values < 1).all(), name
    assert funnel.user_factors.shape == (2_000, 24)
    assert funnel.item_factors.shape == (500, 24)
    assert funnel.category_factors.shape == (20, 24)
    assert set(funnel.intercepts) == set(EVENTS)
    assert funnel.correlation == 0.7


def test_make_dataset_accepts_the_frame(funnel):
    tasks = [
        Task("ctr", label="click"),
        Task("ctcvr", label="conversion", requires="click"),
    ]
    ds = make_dataset(funnel.frame, funnel.features, tasks, batch_size=512)
    x, y = next(iter(ds))
    assert set(x) == {f.name for f in funnel.features}
    assert x["user_history"].shape == (512, 6)
    assert x["user_history"].dtype.name == "int64"
    assert x["item_price"].shape == (512,)
    assert set(y) == {"ctr", "ctcvr"} and y["ctr"].shape == (512,)
    history = x["user_history"].numpy()
    assert (history == -1).any() and (history[:, 0] >= 0).all()  # padded, not empty
    # The plain task list of the brief works too.
    plain = [Task("ctr", label="click"), Task("ctcvr", label="conversion")]
    make_dataset(funnel.frame, funnel.features, plain, batch_size=512)


def test_history_is_a_variable_length_user_feature(funnel):
    histories = funnel.frame.user_history
    assert all(isinstance(h, list) for h in histories)
    lengths = histories.map(len)
    assert lengths.min() == 1 and lengths.max() == 6
    assert lengths.nunique() == 6
    flat = np.concatenate(histories.to_numpy())
    assert flat.min() >= 0 and flat.max() < 20
    assert all(len(set(h)) == len(h) for h in histories)  # distinct categories
    # One history per user.
    first = funnel.frame.groupby("user_id").user_history.first()
    again = funnel.frame.user_id.map(first)
    assert all(a == b for a, b in zip(again, histories))
    # It reveals the user's taste: listed categories have higher affinity.
    taste = funnel.user_factors @ funnel.category_factors.T
    users = funnel.frame.user_id.to_numpy()
    listed = np.concatenate(
        [taste[u, h] for u, h in zip(users[:2000], histories[:2000])]
    )
    assert listed.mean() > taste.mean() + 3.0


def test_funnel_order_holds_on_every_row(funnel):
    frame = funnel.frame
    assert (frame.conversion <= frame.click).all()
    assert (frame.action <= frame.click).all()
    assert frame.conversion.sum() > 100 and frame.action.sum() > 100
    # Some conversions happen without an action, more with one.
    clicked = frame[frame.click == 1]
    with_action = clicked.conversion[clicked.action == 1].mean()
    without = clicked.conversion[clicked.action == 0].mean()
    assert 0 < without < with_action


@pytest.mark.parametrize(
    "click_rate, conversion_rate", [(0.1, 0.1), (0.05, 0.03), (0.2, 0.01)]
)
def test_realised_rates_match_the_requested_ones(click_rate, conversion_rate):
    n = 100_000
    f = make_funnel(
        n,
        click_rate=click_rate,
        action_rate=0.3,
        conversion_rate=conversion_rate,
        seed=1,
        **SMALL,
    )
    # The solved intercepts hit the expected rates exactly.
    weight = f.true_ctr / f.true_ctr.sum()
    assert f.true_ctr.mean() == pytest.approx(click_rate, rel=1e-6)
    assert weight @ f.true_action == pytest.approx(0.3, rel=1e-6)
    assert weight @ f.true_cvr == pytest.approx(conversion_rate, rel=1e-6)
    # Realised rates are within 4 binomial standard deviations.
    clicks = f.frame.click.to_numpy() == 1
    num_clicks = clicks.sum()
    assert abs(clicks.mean() - click_rate) < 4 * np.sqrt(
        click_rate * (1 - click_rate) / n
    )
    for column, rate in (("action", 0.3), ("conversion", conversion_rate)):
        realised = f.frame[column].to_numpy()[clicks].mean()
        assert abs(realised - rate) < 4 * np.sqrt(rate * (1 - rate) / num_clicks)


def test_events_follow_the_true_probabilities(funnel):
    frame = funnel.frame
    clicks = frame.click.to_numpy() == 1
    actions = frame.action.to_numpy() == 1
    conversions = frame.conversion.to_numpy()

    def close(rows, events, probabilities):
        p = probabilities[rows]
        std = np.sqrt((p * (1 - p)).sum()) / rows.sum()
        assert abs(events[rows].mean() - p.mean()) < 4 * std

    close(np.ones_like(clicks), frame.click.to_numpy(), funnel.true_ctr)
    close(clicks, frame.action.to_numpy(), funnel.true_action)
    close(clicks, conversions, funnel.true_cvr)
    close(actions, conversions, funnel.true_cvr_given_action)
    close(clicks & ~actions, conversions, funnel.true_cvr_given_no_action)
    # The best achievable CVR ranking is far better than chance.
    order = np.argsort(funnel.true_cvr[clicks])
    top, bottom = order[-len(order) // 4 :], order[: len(order) // 4]
    assert conversions[clicks][top].mean() > 5 * conversions[clicks][bottom].mean()


def test_true_cvr_is_the_action_mixture(funnel):
    a = funnel.true_action
    mixture = (
        a * funnel.true_cvr_given_action + (1 - a) * funnel.true_cvr_given_no_action
    )
    np.testing.assert_allclose(funnel.true_cvr, mixture, rtol=1e-12)
    assert (funnel.true_cvr_given_action > funnel.true_cvr_given_no_action).all()
    # The conditional probabilities are logistic in the conversion score.
    z = 2.0 * funnel.conversion_score + funnel.intercepts["conversion"]
    np.testing.assert_allclose(funnel.true_cvr_given_no_action, sigmoid(z), rtol=1e-9)
    np.testing.assert_allclose(
        funnel.true_cvr_given_action, sigmoid(z + 2.0), rtol=1e-9
    )
    ctr = sigmoid(2.0 * funnel.click_score + funnel.intercepts["click"])
    np.testing.assert_allclose(funnel.true_ctr, ctr, rtol=1e-9)
    # Without a lift the action does not change the conversion probability.
    flat = make_funnel(2_000, action_lift=0.0, seed=3, **SMALL)
    np.testing.assert_allclose(flat.true_cvr_given_action, flat.true_cvr, rtol=1e-12)
    np.testing.assert_allclose(flat.true_cvr_given_no_action, flat.true_cvr)


def test_probabilities_depend_on_the_features(funnel):
    frame = funnel.frame.assign(ctr=funnel.true_ctr, cvr=funnel.true_cvr)
    pairs = frame.groupby(["user_id", "item_id"])
    # P(click) is a function of (user, item); P(conversion) also of the price.
    assert (pairs.ctr.nunique() == 1).all()
    assert pairs.cvr.nunique().max() > 1
    # Within a pair, the more expensive impression always converts less.
    d_cvr, d_price = pairs.cvr.diff(), pairs.item_price.diff()
    both = d_cvr.notna() & (d_price != 0)
    assert both.sum() > 1000
    assert (np.sign(d_cvr[both]) == -np.sign(d_price[both])).all()
    # Per-user CTR varies far more than sampling noise would explain.
    assert frame.groupby("user_id").ctr.mean().std() > 0.05


def test_popularity_makes_many_ids_rare(funnel):
    per_user = funnel.frame.user_id.value_counts()
    per_item = funnel.frame.item_id.value_counts()
    assert (per_user <= 10).mean() > 0.3
    assert per_user.iloc[0] > 20 * per_user.median()
    assert per_item.iloc[0] > 10 * per_item.median()
    flat = make_funnel(60_000, popularity_exponent=0.0, seed=0, **SMALL)
    per_user = flat.frame.user_id.value_counts()
    assert per_user.iloc[0] < 2.5 * per_user.median()  # uniform: 30 +- 5.5 each


def test_selection_bias_grows_with_correlation():
    gaps, expected_gaps = [], []
    for p in (0.0, 0.4, 0.8):
        f = make_funnel(40_000, correlation=p, seed=2, **SMALL)
        clicked = f.frame.click.to_numpy() == 1
        gaps.append(f.true_cvr[clicked].mean() - f.true_cvr.mean())
        expected = np.average(f.true_cvr, weights=f.true_ctr)
        expected_gaps.append(expected - f.true_cvr.mean())
        score_correlation = np.corrcoef(f.click_score, f.conversion_score)[0, 1]
        assert score_correlation == pytest.approx(p, abs=0.1)
    assert gaps[0] < gaps[1] < gaps[2], gaps
    assert expected_gaps[0] < expected_gaps[1] < expected_gaps[2], expected_gaps
    assert abs(gaps[0]) < 0.02 and abs(expected_gaps[0]) < 0.02
    # At p = 0.8 a CVR model fit on clicks over-estimates the average by > 2x.
    assert gaps[2] > 0.05
    assert f.true_cvr[clicked].mean() > 2 * f.true_cvr.mean()


def test_default_size_hits_the_defaults():
    f = make_funnel(seed=0)
    assert len(f.frame) == 200_000
    clicks = f.frame.click.to_numpy() == 1
    assert abs(clicks.mean() - 0.1) < 4 * np.sqrt(0.1 * 0.9 / 200_000)
    assert abs(f.frame.conversion[clicks].mean() - 0.1) < 4 * np.sqrt(
        0.1 * 0.9 / clicks.sum()
    )
    assert f.true_cvr[clicks].mean() > 2 * f.true_cvr.mean()


def test_seed_determines_the_data():
    a = make_funnel(3_000, seed=5, **SMALL)
    b = make_funnel(3_000, seed=5, **SMALL)
    c = make_funnel(3_000, seed=6, **SMALL)
    pd.testing.assert_frame_equal(a.frame, b.frame)
    for name in TRUE:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name))
    assert a.intercepts == b.intercepts
    assert not a.frame.user_id.equals(c.frame.user_id)
    assert not a.frame.click.equals(c.frame.click)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"num_impressions": 0}, "num_impressions"),
        ({"num_impressions": 10.0}, "num_impressions"),
        ({"num_users": 0}, "num_users"),
        ({"num_items": -1}, "num_items"),
        ({"num_categories": 1}, "num_categories"),
        ({"history_len": 0}, "history_len"),
        ({"latent_dim": True}, "latent_dim"),
        ({"click_rate": 0.0}, "click_rate"),
        ({"click_rate": 1.0}, "click_rate"),
        ({"action_rate": 1.5}, "action_rate"),
        ({"conversion_rate": -0.01}, "conversion_rate"),
        ({"conversion_rate": float("nan")}, "conversion_rate"),
        ({"correlation": 1.01}, "correlation"),
        ({"correlation": -1.5}, "correlation"),
        ({"logit_scale": 0.0}, "logit_scale"),
        ({"action_lift": -1.0}, "action_lift"),
        ({"popularity_exponent": -0.5}, "popularity_exponent"),
    ],
)
def test_bad_arguments_raise(kwargs, match):
    with pytest.raises(ValueError, match=match) as info:
        make_funnel(**kwargs)
    assert repr(next(iter(kwargs.values()))) in str(info.value)


def test_dwell_is_log_normal_after_a_click_only(funnel):
    frame = funnel.frame
    clicks = frame.click.to_numpy() == 1
    dwell = frame.dwell.to_numpy()
    assert frame.dwell.dtype == np.float32
    assert np.isnan(dwell[~clicks]).all()  # no click: no label
    assert (dwell[clicks] > 0).all()
    # log dwell = 3 + 0.8 C + 1 * e given a click (the defaults).
    np.testing.assert_allclose(
        funnel.true_log_dwell, 3.0 + 0.8 * funnel.conversion_score
    )
    np.testing.assert_allclose(funnel.true_dwell, np.exp(funnel.true_log_dwell + 0.5))
    residual = np.log(dwell[clicks].astype(np.float64)) - funnel.true_log_dwell[clicks]
    n = clicks.sum()
    assert abs(residual.mean()) < 4 / np.sqrt(n)
    assert abs(residual.std() - 1.0) < 4 * np.sqrt(0.5 / n)
    # Its mean given a click is exp(m + σ²/2) (within 4 standard errors).
    ratio = dwell[clicks] / funnel.true_dwell[clicks]  # mean 1, var e - 1
    assert abs(ratio.mean() - 1.0) < 4 * np.sqrt((np.e - 1) / n)


def test_dwell_parameters_leave_the_other_columns_unchanged():
    small = dict(num_users=300, num_items=100, num_categories=5, seed=4)
    base = make_funnel(5_000, **small)
    other = make_funnel(
        5_000, dwell_mean=1.0, dwell_slope=-0.5, dwell_sigma=2.0, **small
    )
    columns = [c for c in base.frame.columns if c != "dwell"]
    pd.testing.assert_frame_equal(base.frame[columns], other.frame[columns])
    np.testing.assert_array_equal(base.true_cvr, other.true_cvr)
    clicks = base.frame.click.to_numpy() == 1
    # Same noise, new parameters: log dwell = 1 - 0.5 C + 2 e.
    e = (
        np.log(base.frame.dwell.to_numpy()[clicks].astype(np.float64))
        - (3.0 + 0.8 * base.conversion_score[clicks])
    ) / 1.0
    np.testing.assert_allclose(
        np.log(other.frame.dwell.to_numpy()[clicks].astype(np.float64)),
        1.0 - 0.5 * base.conversion_score[clicks] + 2.0 * e,
        rtol=1e-5,
        atol=1e-5,
    )


def test_dwell_sigma_must_be_non_negative():
    with pytest.raises(ValueError, match="dwell_sigma"):
        make_funnel(100, num_users=10, num_items=10, dwell_sigma=-1.0)
