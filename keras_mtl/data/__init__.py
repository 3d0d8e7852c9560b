"""The input pipeline: `make_dataset` (in-memory, CSV, TFRecord), TFRecord writing,
seeded splits, feature specs fitted to training data (`adapt_features`). The data
sets themselves are in `keras_mtl.datasets`."""

from keras_mtl.data._unseen import UnseenIdWarning
from keras_mtl.data.adapt import adapt_features
from keras_mtl.data.dataset import make_dataset
from keras_mtl.data.epochs import set_shuffle_epoch, shuffle_epoch
from keras_mtl.data.split import split_frame
from keras_mtl.data.tfrecord import write_tfrecord

__all__ = [
    "UnseenIdWarning",
    "adapt_features",
    "make_dataset",
    "set_shuffle_epoch",
    "shuffle_epoch",
    "split_frame",
    "write_tfrecord",
]
