"""A training run stopped after epoch k and resumed from its
`keras.callbacks.BackupAndRestore` backup, in a model and dataset built afresh,
ends where the uninterrupted run ends: reshuffled data (each epoch's order from
`(seed, epoch)`), GradNorm's state, Adam's moments, dropout's seeds."""

import keras
import numpy as np
import pytest

import keras_mtl as km
from keras_mtl import datasets
from keras_mtl.data import make_dataset, shuffle_epoch

EPOCHS, STOP_AFTER = 4, 2
SYNTHETIC = datasets.make_synthetic(num_examples=192, dim=6, seed=0)


def build():
    """Model and dataset from scratch, as a restarted process builds them."""
    keras.utils.set_random_seed(0)
    model = km.build_mmoe(
        SYNTHETIC.features,
        SYNTHETIC.tasks,
        num_experts=2,
        expert_units=(6,),
        tower_units=(4,),
        dropout=0.3,
        compile={"loss_weighting": "gradnorm", "jit_compile": False},
    )
    data = make_dataset(
        SYNTHETIC.data, SYNTHETIC.features, SYNTHETIC.tasks, batch_size=64, seed=3
    )
    return model, data


class Interrupt(Exception):
    pass


class StopAfter(keras.callbacks.Callback):
    """Raises at the end of epoch `epochs` (after the backup of that epoch)."""

    def __init__(self, epochs):
        super().__init__()
        self.epochs = epochs

    def on_epoch_end(self, epoch, logs=None):
        if epoch + 1 == self.epochs:
            raise Interrupt


def weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


@pytest.fixture(scope="module")
def uninterrupted():
    model, data = build()
    history = model.fit(data, epochs=EPOCHS, verbose=0).history
    assert shuffle_epoch(data).numpy() == EPOCHS  # one pass (order) per epoch
    return weights(model), history


def test_a_resumed_run_ends_where_the_uninterrupted_one_does(uninterrupted, tmp_path):
    expected, full = uninterrupted
    backup = str(tmp_path / "backup")
    model, data = build()
    with pytest.raises(Interrupt):
        model.fit(
            data,
            epochs=EPOCHS,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(backup), StopAfter(STOP_AFTER)],
        )
    model, data = build()  # the restarted process
    rest = model.fit(
        data,
        epochs=EPOCHS,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    ).history
    assert len(rest["loss"]) == EPOCHS - STOP_AFTER  # resumed at epoch 2
    for got, want in zip(weights(model), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    # GradNorm's weights (restored with the model) and the losses of the
    # resumed epochs are the uninterrupted run's.
    for key in ("y1_weight", "y2_weight", "y1_loss", "y2_loss", "loss"):
        np.testing.assert_allclose(rest[key], full[key][STOP_AFTER:], atol=1e-6)
    assert full["y1_weight"][STOP_AFTER] != 1.0  # the state moved: a real check
    assert not (tmp_path / "backup").exists()  # deleted when training ended
