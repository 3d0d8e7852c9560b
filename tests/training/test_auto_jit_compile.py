"""`jit_compile="auto"`: on TensorFlow XLA only for large data or runs long
enough to repay its compilation, on JAX always jitted, on torch never
(`keras_mtl.training.auto_jit_compile`), decided by `fit` from its run;
explicit values kept."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl import training
from keras_mtl.data import make_dataset
from keras_mtl.training import defaults

FEATURES = [km.SparseFeature("item", vocabulary_size=20, embedding_dim=4)]
TASKS = [km.Task("ctr")]
LIMIT = training.AUTO_JIT_MIN_STEPS
EPOCH = training.AUTO_JIT_MIN_EPOCH_STEPS
BACKEND = keras.backend.backend()
#: The model-level tests below follow TensorFlow's rule (the run's length).
tensorflow_only = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="TensorFlow's policy: XLA from the run's length"
)


def rows(n):
    item = np.random.default_rng(0).integers(0, 20, n)
    return {"item": item, "ctr": (item % 2).astype("float32")}


@pytest.fixture
def xla_allowed(monkeypatch):
    """The real `supports_jit` (conftest turns "auto" XLA off in unmarked
    tests) and policy (conftest allows XLA for any run); nothing here compiles
    with XLA: the runs are tiny, or only decided."""
    monkeypatch.setattr(training, "supports_jit", defaults.supports_jit)
    monkeypatch.setattr(training, "auto_jit_compile", defaults.auto_jit_compile)


def model(jit_compile="auto"):
    return km.build_shared_bottom(
        FEATURES,
        TASKS,
        hidden_units=(4,),
        tower_units=(2,),
        compile={"jit_compile": jit_compile},
    )


def reason(decision, run):
    return (
        f"{decision}: {run} (XLA from {training.AUTO_JIT_MIN_EPOCH_STEPS} batches an "
        f"epoch or {LIMIT} steps)"
    )


def test_the_policy_on_hand_made_runs():
    def auto(*run):
        return defaults.auto_jit_compile(*run, backend="tensorflow")

    assert auto(None) is True and auto(None, 3) is True  # unknown length: keep XLA
    assert auto(2, 20) is False  # the 100 rows, batch 64, 20 epochs
    assert auto(10, 3) is False  # 10,000 rows at batch 1024, 3 epochs
    assert auto(10, LIMIT // 10 - 1) is False
    assert auto(10, LIMIT // 10) is True  # a long run
    assert auto(EPOCH - 1, 1) is False
    assert auto(EPOCH, 1) is True  # large data, from its first epoch
    assert auto(196, 1) is True  # census-size data


@pytest.mark.parametrize(
    "run", [(None,), (1, 1), (2, 20), (EPOCH - 1, 1), (EPOCH, 1), (10, LIMIT)]
)
def test_jax_is_always_jitted_and_torch_never(run):
    """JAX's un-jitted step runs op by op (slower from the first epoch: no run
    is short enough for it); torch's jit is torch.compile (minutes)."""
    assert defaults.auto_jit_compile(*run, backend="jax") is True
    assert defaults.auto_jit_compile(*run, backend="torch") is False


def test_the_policy_reads_the_current_backend():
    expected = defaults.auto_jit_compile(2, 20, backend=BACKEND)
    assert defaults.auto_jit_compile(2, 20) is expected
    assert expected is {"tensorflow": False, "jax": True, "torch": False}[BACKEND]


def test_each_backend_says_why():
    reason_of = defaults.auto_jit_reason
    assert reason_of(False, 2, 20, "tensorflow") == reason(
        "off", "2 batches x 20 epochs"
    )
    assert reason_of(True, None, 1, "tensorflow") == reason("on", "unknown length")
    assert reason_of(True, 2, 20, "jax") == (
        "on: the jax backend (without jit its steps run op by op, slower from the "
        "first epoch)"
    )
    assert reason_of(False, 2, 20, "torch") == (
        "off: the torch backend (jit_compile=True would be torch.compile: minutes "
        "of compilation)"
    )


@pytest.mark.skipif(BACKEND == "tensorflow", reason="JAX's and torch's policy")
def test_a_model_follows_its_backends_policy(xla_allowed):
    """On JAX "auto" stays jitted for a tiny run; on torch it stays eager."""
    auto = model()
    jit = BACKEND == "jax"
    assert auto.jit_compile is jit
    assert auto.choose_jit_compile(2, 20) is jit and auto.jit_compile is jit
    assert auto.jit_compile_reason == defaults.auto_jit_reason(jit, 2, 20, BACKEND)


@tensorflow_only
def test_auto_decides_from_the_run_explicit_values_are_kept(xla_allowed):
    auto = model()
    assert auto.jit_compile is True  # allowed: every layer supports XLA
    assert auto.jit_compile_reason is None  # nothing decided yet
    assert auto.choose_jit_compile(2, 20) is False
    assert auto.jit_compile is False
    assert auto.jit_compile_reason == reason("off", "2 batches x 20 epochs")
    assert auto.choose_jit_compile(None) is True and auto.jit_compile is True
    assert auto.jit_compile_reason == reason("on", "unknown length")
    assert auto.choose_jit_compile(EPOCH) is True
    assert auto.get_compile_config()["jit_compile"] == "auto"  # saved as asked
    on, off = model(True), model(False)
    assert on.choose_jit_compile(1) is True and on.jit_compile is True
    assert off.choose_jit_compile(10 * EPOCH, 100) is False and off.jit_compile is False
    assert on.jit_compile_reason is None and off.jit_compile_reason is None


@tensorflow_only
def test_auto_stays_off_where_a_layer_does_not_allow_xla():
    # (conftest's `supports_jit` says no here, as for an integer vocabulary)
    auto = model()
    assert auto.jit_compile is False
    assert auto.choose_jit_compile(10 * EPOCH) is False
    assert auto.jit_compile_reason == (
        "off: XLA not allowed (a layer of the step, or run_eagerly)"
    )


@tensorflow_only
def test_a_tiny_fit_records_its_decision(xla_allowed):
    auto = model()
    ds = make_dataset(rows(200), FEATURES, TASKS, batch_size=64, seed=0)  # 4 batches
    auto.fit(ds, epochs=3, verbose=0)
    assert auto.jit_compile is False
    assert auto.jit_compile_reason == reason("off", "4 batches x 3 epochs")
    # Arrays: Keras's batches (default 32), from `initial_epoch` on.
    arrays = rows(100)
    auto.fit(
        {"item": arrays["item"]},
        {"ctr": arrays["ctr"]},
        epochs=5,
        initial_epoch=3,
        verbose=0,
    )
    assert auto.jit_compile_reason == reason("off", "4 batches x 2 epochs")
    # Before any fit, `evaluate` decides from its own pass.
    fresh = model()
    fresh.evaluate(ds, verbose=0)
    assert fresh.jit_compile is False
    assert fresh.jit_compile_reason == reason("off", "4 batches x 1 epochs")


class _Batches(keras.utils.PyDataset):
    def __init__(self, n):
        super().__init__()
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"item": np.array([i % 20])}, {"ctr": np.array([1.0])}


@tensorflow_only
def test_a_py_dataset_counts_its_batches(xla_allowed):
    """`len()` of a PyDataset is its batches (not rows to divide by 32)."""
    auto = model()
    auto._auto_jit(_Batches(EPOCH))
    assert auto.jit_compile_reason == reason("on", f"{EPOCH} batches x 1 epochs")
    auto._auto_jit(_Batches(3), epochs=2)
    assert auto.jit_compile_reason == reason("off", "3 batches x 2 epochs")
