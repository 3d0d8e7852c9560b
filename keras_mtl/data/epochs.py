"""Epoch-numbered shuffling: the order of epoch k is a function of (seed, k).

A shuffled `make_dataset` dataset holds an epoch counter (a `tf.Variable`). Each
pass over the dataset reads the counter, advances it, and shuffles with a seed
derived from `(seed, epoch)` only: passes 0, 1, 2 ... of a fresh dataset give the
orders of epochs 0, 1, 2 ..., and `set_shuffle_epoch(dataset, k)` makes the next
pass that of epoch k. `MultiTaskModel.fit` numbers the passes by Keras's epochs
(`keras_mtl.training.ShuffleEpoch`: epoch e of a fit reads pass `start + e`,
`start` the passes made before it), so a run resumed at epoch k by
`keras.callbacks.BackupAndRestore` (or `fit(initial_epoch=k)`) on a freshly built
dataset reads the same orders as a run that was never stopped.
"""

from __future__ import annotations

import tensorflow as tf

_ATTRIBUTE = "_keras_mtl_shuffle_epoch"


def new_counter() -> tf.Variable:
    """A fresh epoch counter at 0 (created eagerly, outside any traced function)."""
    with tf.init_scope():
        return tf.Variable(0, dtype=tf.int64, trainable=False, name="shuffle_epoch")


def base_seed(seed: int | None) -> tf.Tensor:
    """`seed` as an int64 scalar; None draws one (reproducible under
    `tf.random.set_seed`, e.g. `keras.utils.set_random_seed`)."""
    if seed is None:
        with tf.init_scope():
            seed = int(tf.random.uniform([], maxval=2**62, dtype=tf.int64))
    return tf.constant(int(seed), tf.int64)


def next_epoch(counter: tf.Variable) -> tf.data.Dataset:
    """One element: the epoch number this pass reads (the counter, then advanced).

    The counter is read when the pass's first element is asked for, not when
    its iterator is made.
    """
    return tf.data.Dataset.from_tensors(tf.constant(0, tf.int64)).map(
        lambda _: counter.assign_add(1) - 1
    )


def epoch_seed(seed: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    """A `[2]` int64 seed for the stateless shuffles of `epoch`."""
    return tf.stack([seed, tf.cast(epoch, tf.int64)])


def epoch_op_seed(seed: tf.Tensor, epoch: tf.Tensor) -> tf.Tensor:
    """A scalar int64 seed for `Dataset.shuffle` in `epoch`, drawn from
    `(seed, epoch)` (neighbouring epochs get unrelated seeds)."""
    return tf.random.stateless_uniform(
        [], seed=epoch_seed(seed, epoch), minval=None, maxval=None, dtype=tf.int64
    )


def attach(dataset: tf.data.Dataset, counter: tf.Variable) -> tf.data.Dataset:
    setattr(dataset, _ATTRIBUTE, counter)
    return dataset


def shuffle_epoch(dataset) -> tf.Variable | None:
    """The epoch counter of a shuffled dataset as `make_dataset` returned it, or
    None (an unshuffled dataset, another dataset, or one transformed since).

    Example:

    >>> from keras_mtl.data import make_dataset
    >>> from keras_mtl.features import SparseFeature
    >>> from keras_mtl.tasks import Task
    >>> ds = make_dataset({"user": [0, 1, 2], "click": [0, 1, 0]},
    ...                   [SparseFeature("user", vocabulary_size=3)],
    ...                   [Task("click")], batch_size=3, seed=0)
    >>> int(shuffle_epoch(ds).numpy())  # the epoch the next pass reads
    0
    >>> _ = list(ds)
    >>> int(shuffle_epoch(ds).numpy())
    1
    """
    return getattr(dataset, _ATTRIBUTE, None)


def set_shuffle_epoch(dataset, epoch: int) -> bool:
    """Makes the next pass over `dataset` read the order of epoch `epoch`.

    The orders of a shuffled `make_dataset` dataset are a function of its `seed`
    and the epoch number; `MultiTaskModel.fit` calls this at the start of every
    epoch. Returns False (and does nothing) for a dataset without an epoch
    counter (see `shuffle_epoch`).

    Args:
        dataset: a dataset `make_dataset` returned.
        epoch: int >= 0. The epoch whose order the next pass reads.

    Example:

    >>> from keras_mtl.data import make_dataset
    >>> from keras_mtl.features import SparseFeature
    >>> from keras_mtl.tasks import Task
    >>> def orders(ds, passes):
    ...     return [[int(u) for x, y in ds for u in x["user"]] for _ in range(passes)]
    >>> data = {"user": list(range(8)), "click": [0, 1] * 4}
    >>> args = ([SparseFeature("user", vocabulary_size=8)], [Task("click")], 8)
    >>> epochs_0_to_2 = orders(make_dataset(data, *args, seed=1), 3)
    >>> restarted = make_dataset(data, *args, seed=1)
    >>> set_shuffle_epoch(restarted, 2)
    True
    >>> orders(restarted, 1) == epochs_0_to_2[2:]
    True
    """
    counter = shuffle_epoch(dataset)
    if counter is None:
        return False
    if int(epoch) < 0:
        raise ValueError(f"set_shuffle_epoch: epoch must be >= 0, got {epoch!r}.")
    counter.assign(int(epoch))
    return True
