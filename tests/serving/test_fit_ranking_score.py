"""`fit_ranking_score`: a fusion score fitted on logged outcomes ranks by the
expected value; it exports as the `ranking_score` signature."""

import keras
import keras_rs
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.datasets.funnel import make_funnel
from keras_mtl.serving import RankingScore

#: A purchase is worth BETA clicks: value = click + BETA * conversion, so
#: E[value | x] = ctr + BETA * ctr * cvr, and equal weights rank by ~ctr.
BETA = 10.0
EQUAL = RankingScore({"ctr": 1.0, "ctcvr": 1.0}, "sum")


def _ranks(values):
    ranks = np.empty(len(values))
    ranks[np.argsort(values)] = np.arange(len(values))
    return ranks


def spearman(a, b):
    return float(np.corrcoef(_ranks(a), _ranks(b))[0, 1])


def ndcg(scores, gains, lists=300, size=20):
    """keras-rs NDCG@10 over random lists of `size` rows (fixed draws)."""
    rows = np.random.default_rng(2).choice(len(gains), (lists, size))
    metric = keras_rs.metrics.NDCG(k=10)
    metric.update_state(gains[rows].astype("float32"), scores[rows].astype("float32"))
    return float(metric.result())


def apply(score, predictions):
    """The formula by hand, in numpy."""
    return sum(w * predictions[k] for k, w in score.weights.items())


@pytest.fixture(scope="module")
def funnel():
    """4000 impressions to fit on, 4000 to evaluate; the model's predictions
    are the simulator's true probabilities with noise (N(0, 0.3) on the
    logit), the logged outcome is click + BETA * conversion."""
    data = make_funnel(
        8000,
        num_users=500,
        num_items=500,
        click_rate=0.2,
        conversion_rate=0.2,
        seed=0,
    )
    rng = np.random.default_rng(1)

    def noisy(p):
        logit = np.log(p) - np.log1p(-p) + 0.3 * rng.standard_normal(len(p))
        return 1.0 / (1.0 + np.exp(-logit))

    ctr, cvr = noisy(data.true_ctr), noisy(data.true_cvr)
    predictions = {"ctr": ctr, "ctcvr": ctr * cvr}
    value = data.frame["click"].to_numpy() + BETA * data.frame["conversion"].to_numpy()
    expected = data.true_ctr + BETA * data.true_ctr * data.true_cvr
    fit, held_out = slice(0, 4000), slice(4000, 8000)
    fitted = km.fit_ranking_score(
        EQUAL, {k: v[fit] for k, v in predictions.items()}, value[fit]
    )
    return fitted, {k: v[held_out] for k, v in predictions.items()}, expected[held_out]


def test_fitted_weights_rank_by_the_expected_value(funnel):
    fitted, predictions, expected = funnel
    # The weights move from 1:1 towards E[value] = 1*ctr + 10*ctcvr.
    assert fitted.combine == "sum" and list(fitted.weights) == ["ctr", "ctcvr"]
    assert 0.5 < fitted.weights["ctr"] < 2.0
    assert 6.0 < fitted.weights["ctcvr"] < 15.0
    # On other rows they rank by the true expected value better than 1:1.
    equal, tuned = apply(EQUAL, predictions), apply(fitted, predictions)
    assert spearman(tuned, expected) > spearman(equal, expected) + 0.003
    assert ndcg(tuned, expected) > ndcg(equal, expected) + 0.005


def test_groups_compare_rows_within_a_group_only():
    """Two groups with opposite offsets: within a group y = 2 a + b; across
    groups the offsets reverse the order of `a`. Only within-group
    comparisons recover 2:1."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0, 1, 400), rng.uniform(0, 1, 400)
    group = np.repeat([0, 1], 200)
    a[group == 1] += 3.0  # group 1 has the larger a ...
    target = 2 * a + b - 10.0 * group  # ... and the lower values
    start = RankingScore({"a": 1.0, "b": 1.0}, "sum")
    within = km.fit_ranking_score(start, {"a": a, "b": b}, target, group, steps=150)
    assert within.weights["a"] == pytest.approx(2.0, rel=0.03)
    assert within.weights["b"] == pytest.approx(1.0, rel=0.03)
    across = km.fit_ranking_score(start, {"a": a, "b": b}, target, steps=150)
    assert across.weights["a"] < 0.5  # (non-negative: a is pushed to ~0)


def test_product_fits_exponents():
    rng = np.random.default_rng(0)
    ctr, cvr = rng.uniform(0.05, 0.3, 1000), rng.uniform(0.02, 0.3, 1000)
    start = RankingScore({"ctr": 1.0, "cvr": 1.0})
    fitted = km.fit_ranking_score(
        start, {"ctr": ctr, "cvr": cvr}, ctr**0.5 * cvr**2, steps=150
    )
    assert fitted.combine == "product"
    assert fitted.weights["ctr"] == pytest.approx(0.5, rel=0.05)
    assert fitted.weights["cvr"] == pytest.approx(2.0, rel=0.05)


def test_fitted_score_exports_as_the_ranking_score_signature(tmp_path):
    inputs = km.make_inputs([km.DenseFeature("x", dim=3)])
    towers = {t: km.layers.TaskTower((), "binary", name=t) for t in ("click", "buy")}
    model = keras.Model(inputs, {t: tower(inputs["x"]) for t, tower in towers.items()})
    x = np.random.default_rng(1).normal(size=(5, 3)).astype("float32")
    outputs = {k: np.asarray(v) for k, v in model({"x": x}).items()}
    rng = np.random.default_rng(0)
    held_out = {"click": rng.uniform(0, 1, 300), "buy": rng.uniform(0, 1, 300)}
    target = held_out["click"] + 3 * held_out["buy"]
    fitted = km.fit_ranking_score(
        RankingScore({"click": 1.0, "buy": 1.0}, "sum"), held_out, target, steps=50
    )
    assert fitted.weights["buy"] > 2 * fitted.weights["click"] > 0
    # Recorded and edited by hand for a business period (here: its weights,
    # the formula dropped): the same score.
    edited = RankingScore.from_json(dict(fitted.to_json(), formula=None))
    assert edited == fitted
    path = km.export_saved_model(model, tmp_path, ranking_score=edited)
    served = tf.saved_model.load(str(path)).signatures["ranking_score"]
    score = served(x=tf.constant(x))["ranking_score"].numpy()
    np.testing.assert_allclose(score, apply(fitted, outputs), rtol=1e-5)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"score": {"ctr": 1.0}}, "score must be a RankingScore"),
        ({"score": RankingScore({"cvr": 1.0}, "sum")}, r"\['cvr'\], which are not"),
        ({"target": np.zeros(5)}, "target has 5 rows, the predictions 6"),
        ({"target": [0, 1, np.nan, 0, 1, 0]}, "target has 1 NaN or infinite"),
        ({"groups": [7, 7, 8, 8, 8, 9]}, r"1 groups have one row \(e.g. \[9\]\)"),
        (
            {"groups": [1, 1, 1, 2, 2, 2], "target": [1, 1, 1, 0, 0, 0]},
            "no two rows of a group have different",
        ),
        ({"predictions": {"ctr": np.ones((6, 2))}}, r"shape \(N,\) or \(N, 1\)"),
        ({"score": RankingScore({"ctr": -1.0}, "sum")}, "non_negative=True"),
        ({"list_size": 1}, "list_size must be at least 2"),
        ({"steps": 0}, "steps"),
    ],
)
def test_bad_input_is_named(change, message):
    kwargs = {
        "score": RankingScore({"ctr": 1.0}, "sum"),
        "predictions": {"ctr": np.linspace(0.1, 0.6, 6)},
        "target": [0, 1, 0, 0, 1, 1],
        "groups": None,
        **change,
    }
    with pytest.raises(ValueError, match=message):
        km.fit_ranking_score(**kwargs)
