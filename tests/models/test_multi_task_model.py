"""What `MultiTaskModel` adds to `keras.Model`: one way to compile (task defaults,
named overrides), tasks in its config, steps per execution chosen from the data,
steps traced once."""

import warnings

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.losses import MaskedBinaryCrossentropy, MaskedMeanSquaredError
from keras_mtl.training import auto_steps_per_execution

FEATURES = [km.SparseFeature("item", vocabulary_size=20, embedding_dim=4)]
TASKS = [km.Task("ctr"), km.Task("spend", "regression")]


def data(n=256):
    rng = np.random.default_rng(0)
    item = rng.integers(0, 20, n)
    return {
        "item": item,
        "ctr": (item % 2).astype("float32"),
        "spend": (item / 20).astype("float32"),
    }


@pytest.mark.parametrize("jit_compile", [False, True])
def test_fit_and_evaluate_trace_their_step_once(jit_compile, monkeypatch):
    """Keras alone builds the optimizer and compiled losses / metrics inside the
    first trace, so TensorFlow traces the step twice; the model builds them
    from the dataset's spec first."""
    backend = keras.backend.backend()
    if backend == "torch" or (not jit_compile and backend == "jax"):
        pytest.skip(f"{backend} runs this step eagerly: nothing is traced")
    traced = []
    for step in ("train_step", "test_step"):
        original = getattr(km.MultiTaskModel, step)

        def counting(self, *args, original=original, step=step):
            traced.append(step)  # (args: the batch; on JAX, the state first)
            return original(self, *args)

        monkeypatch.setattr(km.MultiTaskModel, step, counting)
    model = km.build_shared_bottom(
        FEATURES,
        TASKS,
        hidden_units=(8,),
        tower_units=(4,),
        compile={"jit_compile": jit_compile, "learning_rate": 0.05},
    )
    ds = make_dataset(data(), FEATURES, TASKS, batch_size=64, seed=0)
    before = model.evaluate(ds, return_dict=True, verbose=0)
    assert traced == ["test_step"]
    history = model.fit(ds, epochs=3, verbose=0).history
    assert traced == ["test_step", "train_step"]
    # Built up front, the model still trains and reports as usual.
    after = model.evaluate(ds, return_dict=True, verbose=0)
    assert traced == ["test_step", "train_step"]  # the evaluation step is reused
    assert history["loss"][-1] < history["loss"][0]
    assert after["loss"] < before["loss"] and after["ctr_auc"] > 0.9, after


DEFAULT_FEATURES = [
    km.SparseFeature("item", vocabulary_size=20, embedding_dim=4),
    km.DenseFeature("age"),
]
DEFAULT_TASKS = [
    km.Task("ctr"),
    km.Task("watch", "regression", loss_weight=0.5, missing_value=-1.0),
]


def _data(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "item": rng.integers(0, 20, n),
        "age": rng.normal(size=n).astype("float32"),
        "ctr": rng.integers(0, 2, n).astype("float32"),
        "watch": rng.normal(size=n).astype("float32"),
    }


def _model(**compile_args):
    model = km.build_shared_bottom(
        DEFAULT_FEATURES,
        DEFAULT_TASKS,
        hidden_units=(8,),
        tower_units=(4,),
        compile=False,
    )
    model.compile(**compile_args)
    return model


@pytest.mark.xla
@pytest.mark.backends(
    "tensorflow", "jax", reason="torch trains eagerly (jit off by design)"
)
def test_compile_with_no_arguments_gives_every_task_its_defaults():
    model = _model()
    assert {t: type(loss) for t, loss in model.loss.items()} == {
        "ctr": MaskedBinaryCrossentropy,
        "watch": MaskedMeanSquaredError,
    }
    assert model.loss["watch"].mask_value == -1.0
    assert model.get_compile_config()["loss_weights"] == {"ctr": 1.0, "watch": 0.5}
    assert isinstance(model.optimizer, keras.optimizers.Adam)
    assert model.jit_compile is True
    assert model.get_compile_config()["steps_per_execution"] == "auto"
    history = model.fit(
        make_dataset(_data(256), DEFAULT_FEATURES, DEFAULT_TASKS, 64), verbose=0
    )
    assert {"ctr_auc", "watch_mse", "ctr_loss", "watch_loss"} <= set(history.history)


def test_compile_changes_only_what_it_names():
    custom = keras.losses.MeanAbsoluteError(name="watch_mae")
    model = _model(
        optimizer=keras.optimizers.SGD(), learning_rate=0.25, loss={"watch": custom}
    )
    assert isinstance(model.optimizer, keras.optimizers.SGD)
    assert float(model.optimizer.learning_rate) == 0.25
    assert model.loss["watch"] is custom
    assert type(model.loss["ctr"]) is MaskedBinaryCrossentropy  # still the default
    assert model.get_compile_config()["loss_weights"] == {"ctr": 1.0, "watch": 0.5}
    model.compile(loss_weighting="uncertainty")
    assert type(model.loss_weighting).__name__ == "UncertaintyWeighting"
    assert type(model.loss["watch"]) is MaskedMeanSquaredError  # defaults again
    model.compile(jit_compile=False, steps_per_execution=3)
    assert model.loss_weighting is None
    assert model.jit_compile is False and model.steps_per_execution == 3


def test_a_model_without_tasks_compiles_as_keras_does():
    built = _model()
    plain = km.MultiTaskModel(built.input, built.output)
    assert plain.tasks is None
    plain.compile(loss={"ctr": "binary_crossentropy", "watch": "mse"})
    assert plain.loss == {"ctr": "binary_crossentropy", "watch": "mse"}


@pytest.mark.parametrize(
    "bad", [0, -2, 1.5, True, "fast"], ids=["zero", "negative", "float", "bool", "str"]
)
def test_bad_steps_per_execution_is_named(bad):
    with pytest.raises(ValueError, match="steps_per_execution must be 'auto'"):
        _model(steps_per_execution=bad)


def test_tasks_survive_the_config_and_a_keras_file(tmp_path):
    model = _model(loss_weighting="dwa")
    config = model.get_config()
    assert [t["name"] for t in config["tasks"]] == ["ctr", "watch"]
    again = km.MultiTaskModel.from_config(config)
    assert again.tasks == model.tasks
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.tasks == tuple(DEFAULT_TASKS)
    assert [f.name for f in loaded.features] == ["item", "age"]
    assert type(loaded.loss_weighting).__name__ == "DynamicWeightAverage"
    assert loaded.get_compile_config()["steps_per_execution"] == "auto"
    # A recompile of the loaded model gives the same defaults.
    loaded.compile()
    assert loaded.get_compile_config()["loss_weights"] == {"ctr": 1.0, "watch": 0.5}


@pytest.mark.backends(
    "tensorflow", "jax", reason="Keras runs one batch per call on torch"
)
def test_auto_steps_per_execution_rule():
    assert auto_steps_per_execution(None) == 1
    assert auto_steps_per_execution(3) == 1  # fewer than 4 calls would be too few
    assert auto_steps_per_execution(40) == 10
    assert auto_steps_per_execution(128) == km.training.MAX_STEPS_PER_EXECUTION


@pytest.mark.parametrize("batches, expected", [(3, 1), (40, 10), (128, 32)])
@pytest.mark.backends(
    "tensorflow", "jax", reason="Keras runs one batch per call on torch"
)
def test_auto_steps_are_chosen_from_the_data_and_train_the_same(batches, expected):
    data = _data(16 * batches)
    auto, single = _model(), _model(steps_per_execution=1)
    single.set_weights(auto.get_weights())
    ds = make_dataset(data, DEFAULT_FEATURES, DEFAULT_TASKS, 16, shuffle=False)
    h_auto = auto.fit(ds, epochs=1, verbose=0).history
    h_single = single.fit(ds, epochs=1, verbose=0).history
    assert auto.steps_per_execution == expected and single.steps_per_execution == 1
    np.testing.assert_allclose(h_auto["loss"], h_single["loss"], rtol=1e-5)
    for a, b in zip(auto.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # evaluate reuses fit's choice (and its traced step), and agrees too.
    small = make_dataset(
        _data(48, seed=1), DEFAULT_FEATURES, DEFAULT_TASKS, 16, shuffle=False
    )
    np.testing.assert_allclose(
        auto.evaluate(small, verbose=0), single.evaluate(small, verbose=0), rtol=1e-5
    )
    assert auto.steps_per_execution == expected


@pytest.mark.backends(
    "tensorflow", "jax", reason="Keras runs one batch per call on torch"
)
def test_evaluate_chooses_first_and_validation_keeps_the_training_choice():
    model = _model()
    ds = make_dataset(
        _data(16 * 40), DEFAULT_FEATURES, DEFAULT_TASKS, 16, shuffle=False
    )
    small = make_dataset(
        _data(48, seed=1), DEFAULT_FEATURES, DEFAULT_TASKS, 16, shuffle=False
    )
    model.evaluate(small, verbose=0)
    assert model.steps_per_execution == 1  # nothing chose before: 3 batches
    history = model.fit(ds, validation_data=small, epochs=2, verbose=0).history
    assert model.steps_per_execution == 10  # fit chose from its 40 batches
    assert len(history["val_loss"]) == 2 and np.isfinite(history["val_loss"]).all()


@pytest.mark.backends(
    "tensorflow", "jax", reason="Keras runs one batch per call on torch"
)
def test_fixed_step_counts_are_whole_calls():
    model = _model()
    ds = make_dataset(
        _data(16 * 100), DEFAULT_FEATURES, DEFAULT_TASKS, 16, shuffle=False
    ).repeat()
    model.fit(ds, steps_per_epoch=30, epochs=2, verbose=0)
    assert model.steps_per_execution == 6  # 30 // 4 = 7 does not divide 30
    assert int(model.optimizer.iterations) == 60  # not a batch more
    small = make_dataset(_data(16 * 10), DEFAULT_FEATURES, DEFAULT_TASKS, 16)
    model.evaluate(small.repeat(), steps=4, verbose=0)
    assert model.steps_per_execution == 1  # 4 steps: fit's 6 is not whole calls


def test_recompiling_with_the_same_strategy_keeps_it_tracked():
    model = _model()
    strategy = km.weighting.UncertaintyWeighting()
    model.compile(loss_weighting=strategy)
    count = len(model.trainable_weights)
    model.compile(loss_weighting=strategy)
    assert model.loss_weighting is strategy
    assert len(model.trainable_weights) == count  # its log-variances train


def test_a_failed_compile_leaves_the_model_as_it_was():
    model = _model(loss_weighting="uncertainty")
    optimizer = model.optimizer
    with pytest.raises(ValueError, match="which are not tasks"):
        model.compile(loss={"nope": "mse"})
    assert type(model.loss_weighting).__name__ == "UncertaintyWeighting"
    assert model.optimizer is optimizer


def test_auto_jit_is_off_when_running_eagerly_and_saved_as_auto():
    model = _model(run_eagerly=True)
    assert model.jit_compile is False
    assert model.get_compile_config()["jit_compile"] == "auto"
    assert _model().get_compile_config()["jit_compile"] == "auto"


def test_fit_on_a_dataset_does_not_warn_that_shuffle_is_ignored():
    """A dataset shuffles itself (make_dataset: every epoch): fit passes Keras
    shuffle=False, so no "`shuffle=True` was passed, but will be ignored"
    warning; a caller's own shuffle=True still reaches Keras, warning and all."""
    model = _model()
    ds = make_dataset(_data(64), DEFAULT_FEATURES, DEFAULT_TASKS, batch_size=32, seed=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(ds, epochs=1, verbose=0)
    assert [str(w.message) for w in caught if "shuffle" in str(w.message)] == []
    with pytest.warns(UserWarning, match="`shuffle=True` was passed"):
        model.fit(ds, epochs=1, verbose=0, shuffle=True)
