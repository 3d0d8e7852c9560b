"""ESMM, ESM², AITM and the KL bound through the builder battery, plus their
structure: the probability chains, the loss-free heads, the calibrator."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from tests.helpers import BuilderBattery, assert_outputs_close, feature_batch

FEATURES = [
    km.SparseFeature("item", vocabulary_size=60, embedding_dim=6),
    km.SparseFeature("user", vocabulary_size=40, embedding_dim=6),
    km.SparseFeature("history", vocabulary_size=30, embedding_dim=6, max_len=4),
    km.DenseFeature("price"),
]
CTR_CTCVR = [
    km.Task("ctr", label="click"),
    km.Task("ctcvr", label="conversion", requires="click"),
]
MEITUAN = [
    km.Task("ctr", label="click"),
    km.Task("cvr", label="conversion", given="click"),
    km.Task("ctcvr", label="conversion", requires="click"),
]


def make_funnel(n=6144, seed=0):
    """Click driven by the item, conversion-given-click by the user, cart in between."""
    rng = np.random.default_rng(seed)
    item, user = rng.integers(0, 60, n), rng.integers(0, 40, n)
    history = [rng.integers(0, 30, k).tolist() for k in rng.integers(0, 5, n)]
    click = rng.random(n) < np.where(item % 3 == 0, 0.6, 0.1)
    action = click & (rng.random(n) < 0.5)
    conversion = click & (rng.random(n) < np.where(user % 2 == 0, 0.5, 0.05))
    return {
        "item": item,
        "user": user,
        "history": history,
        "price": rng.normal(size=n).astype("float32"),
        "click": click.astype("float32"),
        "action": action.astype("float32"),
        "conversion": conversion.astype("float32"),
    }


#: name -> (build(**kwargs) -> model, the tasks it trains on).
BUILDERS = {
    "esmm": (
        lambda **kw: km.build_esmm(FEATURES, tower_units=(16, 8), **kw),
        km.esmm_tasks(),
    ),
    "esm2": (
        lambda **kw: km.build_esm2(FEATURES, tower_units=(16, 8), **kw),
        km.esm2_tasks(),
    ),
    "aitm": (
        lambda **kw: km.build_aitm(FEATURES, tower_units=(16, 8), **kw),
        CTR_CTCVR,
    ),
    "mmoe_kl": (
        lambda compile=True: km.add_kl_bound(
            km.build_mmoe(
                FEATURES, MEITUAN, num_experts=3, expert_units=(8,), compile=compile
            ),
            weight=0.5,
        ),
        MEITUAN,
    ),
}
NAMES = sorted(BUILDERS)


@pytest.fixture(scope="module")
def data():
    return make_funnel()


@pytest.fixture(scope="module")
def battery(data, tmp_path_factory):
    cases = {
        name: dict(build=build, features=FEATURES, tasks=tasks, data=data, epochs=4)
        for name, (build, tasks) in BUILDERS.items()
    }
    return BuilderBattery(cases, tmp_path_factory.mktemp("funnel_builders"))


def features_of(data, n):
    return feature_batch(data, FEATURES, n)


@pytest.mark.xla(full_suite_only=True)  # every builder compiles with XLA
@pytest.mark.parametrize("name", NAMES)
def test_battery_heads_and_learning(battery, name):
    built = battery.run(name)
    expected = {
        "esmm": ["ctcvr", "ctr", "cvr"],
        "esm2": ["ctavr", "ctcvr", "ctr", "cvr"],
        "aitm": ["ctcvr", "ctr"],
        "mmoe_kl": ["ctcvr", "ctr", "cvr"],
    }[name]
    assert sorted(built.model.output) == expected
    h = built.history
    # The click depends on item % 3 only: every model must find it.
    assert h["ctr_auc"][-1] > 0.8, h["ctr_auc"]
    assert h["ctcvr_auc"][-1] > 0.75, h["ctcvr_auc"]
    if "cvr" in expected:  # on clicked rows only: driven by user parity
        assert h["cvr_auc"][-1] > 0.75, h["cvr_auc"]
    # The auxiliary terms (the battery checks they survive a .keras round trip).
    assert (
        len(built.model.losses) == {"esmm": 0, "esm2": 0, "aitm": 1, "mmoe_kl": 1}[name]
    )


@pytest.mark.slow  # a fresh Python that imports TensorFlow again
def test_serving_parity_in_fresh_process(battery):
    """Every head of every funnel model is served, equal to predict."""
    battery.check_serving()


@pytest.mark.parametrize("name", ["esmm", "esm2"])
def test_probability_chain_is_exact(battery, data, name):
    model = battery.run(name).model
    x = features_of(data, 300)
    out = model.predict(x, verbose=0)
    if name == "esmm":
        np.testing.assert_allclose(out["ctcvr"], out["ctr"] * out["cvr"], rtol=1e-6)
        return
    towers = keras.Model(
        model.inputs,
        [
            model.get_layer(f"{t}_tower").output
            for t in ("ctr", "action_given_click", "buy_given_action")
            + ("buy_given_no_action",)
        ],
    ).predict(x, verbose=0)
    y1, y2, y3, y4 = towers
    np.testing.assert_allclose(out["ctr"], y1, rtol=1e-6)
    np.testing.assert_allclose(out["ctavr"], y1 * y2, rtol=1e-5)
    np.testing.assert_allclose(out["cvr"], y2 * y3 + (1 - y2) * y4, rtol=1e-5)
    np.testing.assert_allclose(out["ctcvr"], out["ctr"] * out["cvr"], rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_only_the_entire_space_heads_have_a_loss(battery, name):
    trained_heads = {
        "esmm": ["ctcvr", "ctr"],
        "esm2": ["ctavr", "ctcvr", "ctr"],
        "aitm": ["ctcvr", "ctr"],
        "mmoe_kl": ["ctcvr", "ctr", "cvr"],
    }[name]
    assert sorted(battery.run(name).model.loss) == trained_heads


def test_esmm_trains_on_ctr_and_ctcvr_labels_only(data):
    """The public contract: build_esmm(features) fits make_dataset(.., [ctr, ctcvr])."""
    keras.utils.set_random_seed(1)
    model = km.build_esmm(FEATURES, tower_units=(8,))
    tasks = [km.Task("ctr", label="click"), km.Task("ctcvr", label="conversion")]
    history = model.fit(make_dataset(data, FEATURES, tasks, batch_size=512), verbose=0)
    h = history.history
    assert np.isfinite(h["loss"][0]) and h["ctr_auc"][0] > 0.5
    assert np.isnan(h["cvr_auc"][0])  # no cvr labels in this data: NaN, not 0


def test_esmm_cvr_tower_learns_only_through_ctcvr(data):
    """Without conversions, the CVR tower is pushed down; with the click task
    alone (ctcvr weight 0) the CVR tower never moves."""
    model = km.build_esmm(
        FEATURES,
        [
            km.Task("ctr", label="click"),
            km.Task("ctcvr", label="conversion", loss_weight=0.0),
        ],
        tower_units=(4,),
    )
    tower = model.get_layer("cvr_tower")
    before = [np.array(w) for w in tower.trainable_weights]
    model.fit(make_dataset(data, FEATURES, CTR_CTCVR, batch_size=512), verbose=0)
    for a, w in zip(before, tower.trainable_weights):
        np.testing.assert_array_equal(a, np.array(w))


def test_aitm_calibration_term_is_hand_checkable(data):
    model = km.build_aitm(FEATURES, tower_units=(8,), calibration_weight=0.6)
    x = features_of(data, 200)
    out = model(x)
    expected = (
        0.6 * np.maximum(np.asarray(out["ctcvr"]) - np.asarray(out["ctr"]), 0).mean()
    )
    assert float(model.losses[0]) == pytest.approx(expected, rel=1e-5, abs=1e-8)
    assert not km.build_aitm(FEATURES, calibration_weight=0.0).losses


def test_aitm_three_steps_chain_the_transfer(data):
    tasks = [
        km.Task("ctr", label="click"),
        km.Task("ctavr", label="action", requires="click"),
        km.Task("ctcvr", label="conversion", requires="click"),
    ]
    model = km.build_aitm(FEATURES, tasks, tower_units=(8,))
    assert [layer.name for layer in model.layers if "_ait" in layer.name] == [
        "ctavr_ait",
        "ctcvr_ait",
    ]
    model(features_of(data, 10))
    assert len(model.losses) == 2  # one calibrator per consecutive pair


def test_kl_bound_adds_the_weighted_term(data):
    keras.utils.set_random_seed(0)
    base = km.build_mmoe(FEATURES, MEITUAN, num_experts=2, expert_units=(4,))
    bounded = km.add_kl_bound(base, weight=2.0)
    x = features_of(data, 128)
    out = bounded(x)
    p = np.clip(np.asarray(out["ctr"]) * np.asarray(out["cvr"]), 1e-6, 1 - 1e-6)
    q = np.clip(np.asarray(out["ctcvr"]), 1e-6, 1 - 1e-6)
    logit = lambda v: np.log(v / (1 - v))  # noqa: E731
    expected = 2.0 * ((p - q) * (logit(p) - logit(q))).mean()
    assert float(bounded.losses[0]) == pytest.approx(expected, rel=1e-4)
    assert_outputs_close(base(x), out)  # same weights, same predictions
    assert bounded.compiled and sorted(bounded.loss) == ["ctcvr", "ctr", "cvr"]


def test_bad_funnel_arguments():
    with pytest.raises(ValueError, match=r"among the outputs .* \['click'\]"):
        km.build_esmm(FEATURES, [km.Task("click")])
    with pytest.raises(ValueError, match="at least 2 funnel steps"):
        km.build_aitm(FEATURES, [km.Task("ctr", label="click")])
    with pytest.raises(ValueError, match="calibration_weight"):
        km.build_aitm(FEATURES, calibration_weight=-1)
    with pytest.raises(ValueError, match=r"needs outputs \['ctr', 'cvr', 'missing'\]"):
        km.add_kl_bound(
            km.build_esmm(FEATURES, compile=False), convert="cvr", order="missing"
        )
    with pytest.raises(TypeError, match="positional"):  # options are keyword-only
        km.add_kl_bound(km.build_esmm(FEATURES, compile=False), "ctr", "cvr")
    with pytest.raises(ValueError, match="nothing to train"):
        km.build_esmm(FEATURES, km.esmm_tasks()[1:2])
