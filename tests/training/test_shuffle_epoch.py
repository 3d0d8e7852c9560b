"""`ShuffleEpoch` numbers a dataset's passes by `fit`'s epochs: epoch e reads pass
`start + e`, `start` the passes the dataset made before that `fit`."""

from keras_mtl.data import make_dataset, shuffle_epoch
from keras_mtl.features import SparseFeature
from keras_mtl.tasks import Task
from keras_mtl.training import ShuffleEpoch


def dataset(shuffle=True):
    return make_dataset(
        {"f": list(range(8)), "y": [0, 1] * 4},
        [SparseFeature("f", vocabulary_size=8)],
        [Task("y")],
        batch_size=4,
        shuffle=shuffle,
        seed=0,
    )


def read(ds):
    return int(shuffle_epoch(ds).numpy())


def test_epochs_of_a_fit_read_the_passes_after_those_made_before_it():
    fresh, used, unshuffled = dataset(), dataset(), dataset(shuffle=False)
    for _ in range(2):  # e.g. a previous fit of two epochs
        list(used)
    callback = ShuffleEpoch(fresh, used, unshuffled, None, (1, 2))
    assert len(callback.counters) == 2  # the others have no counter
    callback.on_train_begin()
    callback.on_epoch_begin(3)  # a fit resumed at epoch 3
    assert (read(fresh), read(used)) == (3, 5)
    list(fresh)
    assert read(fresh) == 4  # the pass advanced it
    callback.on_epoch_begin(4)
    assert (read(fresh), read(used)) == (4, 6)
