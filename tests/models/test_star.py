"""STAR: the builder's structure, its errors, and how a domain value outside
the vocabulary is served. Its layers are tested in tests/layers/
(test_partitioned_normalization.py, test_star_dense.py, test_star_tower.py,
test_domain_index.py); the builder battery (learning, .keras round trip,
serving parity, bad specs) runs for it with every flat builder in
test_builders.py, with `domain="city"` and the data's out-of-vocabulary "lima"."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as km
from tests.models.test_builders import FEATURES, TASKS, features_only, make_data

SMALL = dict(domain="city", hidden_units=(8,), tower_units=(4,), compile=False)


def test_structure_one_star_tower_per_task_and_an_auxiliary_encoder():
    home = km.SparseFeature(
        "home",
        vocabulary=("paris", "rome", "oslo"),
        embedding_dim=3,
        share_embedding_with="city",
    )
    model = km.build_star(
        FEATURES + [home], TASKS, aux_features=("home", "age"), **SMALL
    )
    assert model.name == "star"
    assert model.get_layer("domain_index").num_domains == 3
    pn = model.get_layer("partitioned_normalization")
    encoder = model.get_layer("feature_encoder")
    width = encoder.output_dim
    # The main path reads every feature but the domain "city"; "home", which
    # shared city's table, gets one of its own there.
    assert [f.name for f in encoder.features] == [
        "occupation",
        "history",
        "age",
        "capital_gains",
        "home",
    ]
    assert encoder.features[-1].share_embedding_with is None
    assert width == km.layers.FeatureEncoder(FEATURES + [home]).output_dim - 3
    assert tuple(pn.moving_mean.shape) == (4, width)  # 3 domains + global
    assert tuple(model.get_layer("star_hidden_1").domain_kernel.shape) == (3, width, 8)
    # The auxiliary network's own embeddings: the domain, then its features.
    aux = model.get_layer("aux_encoder")
    assert [f.name for f in aux.features] == ["city", "home", "age"]
    assert aux.output_dim == 3 + 3 + 1
    for task in TASKS:
        tower = model.get_layer(f"{task.name}_tower")
        assert (tower.task_type, tower.units, tower.aux_units) == (
            task.type,
            (4,),
            (8,),
        )
    by_id = km.build_star(FEATURES, TASKS, **{**SMALL, "domain": "occupation"})
    assert by_id.get_layer("domain_index").num_domains == 50  # vocabulary_size
    index = by_id.get_layer("domain_index")(np.array([3, 49, 50, -1]))
    assert np.asarray(index).tolist() == [3, 49, -1, -1]
    plain = km.build_star(FEATURES, TASKS, aux_units=None, **SMALL)
    assert "aux_encoder" not in [layer.name for layer in plain.layers]
    assert plain.get_layer("income_tower").aux_units is None


def _perturb_domain_parts(model, rng):
    """Every per-domain parameter and statistic set to random values."""
    per_domain = [w for w in model.weights if w.name.startswith("domain_")]
    # PN, star_hidden_1, then two StarDense layers per tower: two weights each
    assert len(per_domain) == 2 + 2 + 2 * 2 * len(TASKS)
    for w in per_domain:
        w.assign(rng.normal(1.0, 0.5, w.shape).astype("float32"))
    pn = model.get_layer("partitioned_normalization")
    for moving in (pn.moving_mean, pn.moving_variance):
        value = np.array(moving)
        value[:-1] = rng.uniform(0.5, 2.0, value[:-1].shape)  # not the global row
        moving.assign(value)


def test_an_unknown_domain_is_served_by_the_shared_parameters_alone():
    model = km.build_star(FEATURES, TASKS, **SMALL)
    x = features_only(make_data(16))
    city = np.asarray(x["city"]).astype(str)
    x["city"] = np.where(np.arange(16) % 5 == 0, "", city).astype(object)  # padding
    unknown = (x["city"] == "lima") | (x["city"] == "")
    assert 0 < unknown.sum() < 16
    x["city"] = tf.constant(x["city"].astype(str))
    before = {k: np.asarray(v) for k, v in model(x).items()}
    _perturb_domain_parts(model, np.random.default_rng(0))
    after = {k: np.asarray(v) for k, v in model(x).items()}
    for task in ("income", "spend"):
        # Out-of-vocabulary and padded domains: the same predictions, since
        # they read no per-domain parameter or statistic ...
        np.testing.assert_allclose(
            after[task][unknown], before[task][unknown], atol=1e-6
        )
        # ... which the known domains do.
        assert np.abs(after[task][~unknown] - before[task][~unknown]).min() > 1e-4


def test_a_training_call_keeps_each_domains_statistics():
    # momentum 0: the moving statistics are the batch's, per city (the
    # out-of-vocabulary "lima" only in the global row); "age" is the
    # encoding's standardised (age - 40) / 12.
    data = make_data(128)
    model = km.build_star(FEATURES, TASKS, **{**SMALL, "momentum": 0.0})
    model(features_only(data), training=True)
    pn = model.get_layer("partitioned_normalization")
    age = model.get_layer("feature_encoder").output_dim - 2  # then capital_gains
    z = (data["age"] - 40.0) / 12.0
    want = [z[data["city"] == c].mean() for c in ("paris", "rome", "oslo")]
    np.testing.assert_allclose(
        np.asarray(pn.moving_mean)[:, age], [*want, z.mean()], rtol=1e-4
    )
    variance = [z[data["city"] == c].var() for c in ("paris", "rome", "oslo")]
    np.testing.assert_allclose(
        np.asarray(pn.moving_variance)[:, age], [*variance, z.var()], rtol=1e-4
    )


@pytest.mark.xla
def test_xla_stays_on_with_a_string_domain():
    model = km.build_star(FEATURES, TASKS, domain="city", hidden_units=(8,))
    assert model.jit_compile is True  # the city lookup runs beside the step
    assert "city" in model.hosted_lookups.lookups


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"domain": "town"}, r"domain must name one of the features \['occupation'"),
        ({"domain": "age"}, "the domain feature must be a SparseFeature"),
        ({"domain": "history"}, "'history' must hold one value per example"),
        ({"aux_features": ("town",)}, r"aux_features \['town'\] are not features"),
        ({"aux_features": ("city",)}, "aux_features must be distinct features other"),
        ({"aux_features": ("age", "age")}, "aux_features must be distinct"),
        ({"aux_units": None, "aux_features": ("age",)}, "aux_units=None leaves"),
        ({"momentum": 2.0}, "momentum must be a float in"),
        ({"epsilon": 0.0}, "epsilon must be a finite number > 0"),
        ({"hidden_units": (0,)}, "hidden_units must hold positive ints"),
        ({"hidden_dropout": 1.0}, r"hidden_dropout must be in \[0, 1\)"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=f"^build_star: .*{match}"):
        km.build_star(FEATURES, TASKS, **{**SMALL, **kwargs})


def test_the_main_encoder_does_not_read_the_domain():
    # Constant within a domain, its embedding would normalise to 0 in training
    # but to (e - moving mean) / sqrt(moving variance + eps) at inference.
    model = km.build_star(FEATURES, TASKS, **SMALL)
    encoder = model.get_layer("feature_encoder")
    assert "city" not in [f.name for f in encoder.features]
    assert "city" not in encoder.input  # the Functional call's inputs
    assert "city" in model.input  # still a model input: domain_index, aux
    # Another domain value moves nothing on the main path's input.
    x = features_only(make_data(8))
    main = keras.Model(model.inputs, encoder.output)
    other = {**x, "city": tf.constant(["oslo"] * 8)}
    assert set(np.asarray(x["city"]).astype(str)) != {"oslo"}
    np.testing.assert_array_equal(np.asarray(main(other)), np.asarray(main(x)))


def test_the_domain_alone_is_rejected():
    only = [km.SparseFeature("city", vocabulary=("paris", "rome"))]
    with pytest.raises(ValueError, match="build_star: the domain 'city' is the only"):
        km.build_star(only, TASKS, domain="city", compile=False)


def test_a_hashed_domain_is_rejected():
    hashed = [km.SparseFeature("shop", hash_bins=16), km.DenseFeature("age")]
    with pytest.raises(ValueError, match="needs a known list of domains"):
        km.build_star(hashed, TASKS, domain="shop", compile=False)
