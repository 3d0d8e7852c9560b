"""What `MultiTaskModel` adds to `keras.Model` around fit and evaluate."""

import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset

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
    traced = []
    for step in ("train_step", "test_step"):
        original = getattr(km.MultiTaskModel, step)

        def counting(self, batch, original=original, step=step):
            traced.append(step)
            return original(self, batch)

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
