"""`ShuffleEpoch`: each epoch of `fit` reads its own shuffle order."""

from __future__ import annotations

import keras

from keras_mtl.data import epochs


class ShuffleEpoch(keras.callbacks.Callback):
    """Tells `make_dataset` datasets which epoch `fit` is about to train.

    A shuffled `make_dataset` dataset reads the order of pass k from its `seed`
    and k alone (`keras_mtl.data.set_shuffle_epoch`). This callback numbers the
    passes by Keras's epochs: epoch e of a `fit` reads pass `start + e`, where
    `start` is the number of passes the dataset made before that `fit` (0 for a
    fresh dataset). A run resumed at epoch k (by
    `keras.callbacks.BackupAndRestore`, or `fit(initial_epoch=k)`) on freshly
    built datasets therefore reads the orders of a run never stopped, while
    successive `fit` calls on one dataset (e.g. a loop of `fit(epochs=1)`) keep
    getting new orders. `MultiTaskModel.fit` (every builder's model) adds it
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
    >>> callback = ShuffleEpoch(ds)
    >>> callback.on_train_begin()  # a fresh dataset: start 0
    >>> callback.on_epoch_begin(4)  # as a fit resumed at epoch 4 does
    >>> int(shuffle_epoch(ds).numpy())
    4
    """

    def __init__(self, *datasets):
        super().__init__()
        self.counters = [
            c for c in map(epochs.shuffle_epoch, datasets) if c is not None
        ]
        self.starts = None

    def on_train_begin(self, logs=None):
        self.starts = [int(c.numpy()) for c in self.counters]

    def on_epoch_begin(self, epoch, logs=None):
        if self.starts is None:  # (called outside fit)
            self.on_train_begin()
        for counter, start in zip(self.counters, self.starts):
            counter.assign(start + int(epoch))
