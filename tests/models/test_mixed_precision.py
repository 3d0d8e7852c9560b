"""Every registered builder under the mixed-precision policies: a few training
steps with finite losses, float32 outputs (variables float32, compute in float16
or bfloat16); DUPN with empty histories and AITM included."""

from __future__ import annotations

import contextlib
import warnings

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.datasets.movielens import load_movielens
from keras_mtl.layers import AttentionPooling
from keras_mtl.models import MODELS
from tests.models import test_builders as flat
from tests.models import test_funnel_builders as funnel
from tests.movielens_fixture import write_movielens

POLICIES = ("mixed_float16", "mixed_bfloat16")
COMPUTE = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
#: Rows a test trains on, in batches of `BATCH`: two steps.
ROWS, BATCH = 128, 64
#: What is tested is the numerics, cheaply: on TensorFlow two eager steps cost
#: a quarter of tracing the step; on JAX eager ops are slow and the jitted step
#: is cheaper (measured).
COMPILE = (
    dict(jit_compile=False, steps_per_execution=1, run_eagerly=True)
    if keras.backend.backend() == "tensorflow"
    else dict(jit_compile=True, steps_per_execution=1)
)
#: Layers in float32 under any policy, besides the output casts.
KL_LAYERS = {"mmoe_kl": {"ctr_times_cvr", "kl_divergence_bound"}}


@pytest.fixture(params=POLICIES)
def policy(request):
    keras.mixed_precision.set_dtype_policy(request.param)
    try:
        yield request.param
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


@pytest.fixture(scope="module")
def flat_data():
    return flat.make_data(ROWS)


@pytest.fixture(scope="module")
def funnel_data():
    return funnel.make_funnel(ROWS)


@pytest.fixture(scope="module")
def movielens(tmp_path_factory):
    path = write_movielens(tmp_path_factory.mktemp("ml"), num_users=12, num_items=60)
    ml = load_movielens(path, max_len=6, list_size=4, item_hash_bins=64)
    rows = {k: np.array(v[:ROWS]) for k, v in ml.train.items()}
    for k in rows:  # the first quarter of the users have no history yet
        if k.startswith("history_"):
            rows[k][: ROWS // 4] = -1
    return ml, rows


def _case(name, flat_data, funnel_data, movielens):
    """`(model, features, tasks, data)` of the registered builder `name`, small."""
    if name in flat.SIZES:
        model = flat.build(name, tasks=flat.BATTERY_TASKS, compile=COMPILE)
        return model, flat.FEATURES, flat.BATTERY_TASKS, flat_data
    if name in funnel.BUILDERS:
        build, tasks = funnel.BUILDERS[name]
        return build(compile=COMPILE), funnel.FEATURES, tasks, funnel_data
    if name == "dupn":
        ml, rows = movielens
        model = km.build_dupn(
            ml.features,
            ml.tasks,
            query=ml.query,
            units=8,
            attention_units=4,
            profile_units=4,
            tower_units=(4,),
            compile=COMPILE,
        )
        return model, ml.features, ml.tasks, rows
    raise AssertionError(f"no mixed-precision case for the registered builder {name}")


def test_every_registered_builder_has_a_case():
    covered = set(flat.SIZES) | set(funnel.BUILDERS) | {"dupn"}
    assert set(MODELS) <= covered, sorted(set(MODELS) - covered)


@pytest.mark.parametrize("name", [*MODELS, "mmoe_kl"])
def test_builder_trains_with_finite_losses_and_float32_outputs(
    policy, name, flat_data, funnel_data, movielens
):
    model, features, tasks, data = _case(name, flat_data, funnel_data, movielens)
    compute = COMPUTE[policy]
    assert model.dtype_policy.name == policy
    assert {v.dtype for v in model.trainable_variables} == {"float32"}
    # Every layer computes in the policy's dtype but the float32 casts of the
    # outputs (and the KL bound's probability product).
    full = {
        layer.name
        for layer in model.layers
        if not isinstance(layer, keras.layers.InputLayer)
        and layer.compute_dtype != compute
    }
    assert full == {f"{t}_float32" for t in model.output} | KL_LAYERS.get(name, set())
    ds = make_dataset(data, features, tasks, batch_size=BATCH, shuffle=False)
    logs = model.fit(ds, epochs=1, verbose=0).history
    losses = {k: v[-1] for k, v in logs.items() if k.endswith("loss")}
    assert losses and all(np.isfinite(v) for v in losses.values()), losses
    for v in model.trainable_variables:
        assert np.isfinite(keras.ops.convert_to_numpy(v)).all(), v.path
    x = next(iter(make_dataset(data, features, None, BATCH, shuffle=False)))
    out = model.predict_on_batch({k: x[k] for k in model.input})
    for task, y in out.items():
        assert y.dtype == np.float32, (task, y.dtype)
        assert np.isfinite(y).all(), task
    for task, symbolic in model.output.items():
        assert symbolic.dtype == "float32", (task, symbolic.dtype)
    if policy == "mixed_float16":  # Keras's loss scaling, with the row check
        assert isinstance(model.optimizer, km.optimizers.LossScaleOptimizer)


@pytest.mark.parametrize("dtype", ["float32", *POLICIES])
@pytest.mark.parametrize("units", [4, 0])
def test_attention_pooling_masks_in_every_dtype(dtype, units):
    """An all-masked row pools to zeros, the others to the float32 values."""
    keras.mixed_precision.set_dtype_policy(dtype)
    try:
        pool = AttentionPooling(units)
        rng = np.random.default_rng(0)
        steps = rng.normal(size=(3, 5, 2)).astype("float32")
        query = rng.normal(size=(3, 2)).astype("float32")
        mask = np.array([[1, 1, 0, 0, 0], [0, 0, 0, 0, 0], [1, 1, 1, 1, 1]], bool)
        pooled, weights = pool([steps, query], mask=mask, return_weights=True)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    pooled = keras.ops.convert_to_numpy(keras.ops.cast(pooled, "float32"))
    weights = keras.ops.convert_to_numpy(keras.ops.cast(weights, "float32"))
    np.testing.assert_array_equal(pooled[1], 0.0)
    np.testing.assert_array_equal(weights[1], 0.0)
    np.testing.assert_array_equal(weights[0, 2:], 0.0)
    np.testing.assert_allclose(weights[[0, 2]].sum(axis=1), 1.0, atol=1e-2)
    # The same layer (same weights) in float32 gives the same values, to the
    # compute dtype's precision.
    exact = AttentionPooling(units)
    exact([steps, query])
    exact.set_weights(pool.get_weights())
    want = keras.ops.convert_to_numpy(exact([steps, query], mask=mask))
    np.testing.assert_allclose(pooled, want, atol=3e-2)
    if units == 0:  # the masked mean, by hand
        np.testing.assert_allclose(pooled[0], steps[0, :2].mean(0), atol=3e-2)


def test_feature_encoder_standardises_raw_values_float16_cannot_hold(policy):
    """A raw 250,000 is inf in float16; standardised first (in float32) it is 1.5."""
    features = [km.DenseFeature("amount", mean=1e5, std=1e5)]
    encoder = km.layers.FeatureEncoder(features)
    out = encoder({"amount": np.array([2.5e5, 0.0], "float32")})
    assert keras.backend.standardize_dtype(out.dtype) == COMPUTE[policy]
    got = keras.ops.convert_to_numpy(keras.ops.cast(out, "float32"))
    np.testing.assert_allclose(got[:, 0], [1.5, -1.0])


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="IndexedSlices are TensorFlow's"
)
def test_loss_scale_optimizer_sees_an_inf_in_a_row_looked_up_twice():
    import tensorflow as tf

    # The rows of a table's gradient, row 0 twice, one of them inf: Keras's
    # own check (keras 3.15) reads row 0 as finite.
    grad = tf.IndexedSlices(
        tf.constant([[np.inf], [1.0]]), tf.constant([0, 0]), tf.constant([3, 1])
    )
    optimizer = km.optimizers.LossScaleOptimizer(keras.optimizers.SGD())
    assert not bool(optimizer.check_finite([grad, tf.ones(2)]))
    finite = tf.IndexedSlices(
        tf.constant([[2.0], [1.0]]), tf.constant([0, 0]), tf.constant([3, 1])
    )
    assert bool(optimizer.check_finite([finite, tf.ones(2)]))


def test_gradient_weighting_trains_without_the_loss_scaler(policy, flat_data):
    """GradNorm takes its own (unscaled) task gradients: no scaler divides them."""
    model = flat.build("mmoe", tasks=flat.TASKS, compile=False)
    model.compile(loss_weighting="gradnorm", **COMPILE)
    assert not isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    ds = make_dataset(flat_data, flat.FEATURES, flat.TASKS, BATCH, shuffle=False)
    logs = model.fit(ds, epochs=1, verbose=0).history
    assert np.isfinite(logs["loss"]).all(), logs
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    # Adam's first steps move each weight by about the learning rate (1e-3),
    # not by 1e-3 / 2**15.
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(after, before))
    assert moved > 5e-4, moved


@contextlib.contextmanager
def global_policy(name):
    keras.mixed_precision.set_dtype_policy(name)
    try:
        yield
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_a_reloaded_float16_model_scales_its_loss_once(tmp_path):
    with global_policy("mixed_float16"):
        model = km.build_mmoe(
            [km.SparseFeature("item", vocabulary_size=8, embedding_dim=2)],
            [km.Task("click")],
            num_experts=2,
            expert_units=(4,),
        )
        model.predict({"item": np.array([1, 2])}, verbose=0)
        model.save(tmp_path / "m.keras")
        loaded = keras.saving.load_model(tmp_path / "m.keras")
    for m in (model, loaded):
        assert isinstance(m.optimizer, km.optimizers.LossScaleOptimizer)
        assert not isinstance(
            m.optimizer.inner_optimizer, keras.optimizers.LossScaleOptimizer
        )


def test_float16_with_row_wise_tables_warns_that_they_update_densely():
    def tiny():
        return km.build_mmoe(
            [km.SparseFeature("item", vocabulary_size=8, embedding_dim=2)],
            [km.Task("click")],
            num_experts=2,
            expert_units=(4,),
            compile=False,
        )

    with global_policy("mixed_float16"):
        model = tiny()
    with pytest.warns(UserWarning, match="mixed_bfloat16 needs no loss scaling"):
        model.compile(row_wise_updates=True)
    with global_policy("mixed_bfloat16"):
        model = tiny()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile(row_wise_updates=True)
    assert isinstance(model.optimizer, km.optimizers.RowWiseOptimizer)
