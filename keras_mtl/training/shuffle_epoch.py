"""`ShuffleEpoch`: each epoch of `fit` reads its own shuffle order."""

from __future__ import annotations

import keras

from keras_mtl.data import epochs


class ShuffleEpoch(keras.callbacks.Callback):
    """Tells `make_dataset` datasets which epoch `fit` is about to train.

    A shuffled `make_dataset` dataset draws the order of epoch k from its `seed`
    and k alone (`keras_mtl.data.set_shuffle_epoch`). At the start of every
    epoch this callback sets each dataset's epoch to the one Keras trains, so a
    run resumed at epoch k (by `keras.callbacks.BackupAndRestore`, or
    `fit(initial_epoch=k)`) on freshly built datasets reads the orders of a
    run never stopped. `MultiTaskModel.fit` (every builder's model) adds it
    for its `x` and `validation_data`; add it yourself for a plain
    `keras.Model`. Datasets without an epoch counter (unshuffled, not from
    `make_dataset`, or transformed since) are ignored.

    Args:
        *datasets: the datasets `make_dataset` returned, as passed to `fit`.

    Example:

    >>> from keras_mtl.data import make_dataset, shuffle_epoch
    >>> from keras_mtl.features import SparseFeature
    >>> from keras_mtl.tasks import Task
    >>> ds = make_dataset({"user": [0, 1, 2], "click": [0, 1, 0]},
    ...                   [SparseFeature("user", vocabulary_size=3)],
    ...                   [Task("click")], batch_size=3, seed=0)
    >>> ShuffleEpoch(ds).on_epoch_begin(4)  # as fit does before epoch 4
    >>> int(shuffle_epoch(ds).numpy())
    4
    """

    def __init__(self, *datasets):
        super().__init__()
        self.counters = [
            c for c in map(epochs.shuffle_epoch, datasets) if c is not None
        ]

    def on_epoch_begin(self, epoch, logs=None):
        for counter in self.counters:
            counter.assign(int(epoch))
