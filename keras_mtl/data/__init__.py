"""Data: `tf.data` pipelines (`make_dataset`), TFRecord writing, simulated and real data.

`keras_mtl.data.census_tfds` (the TensorFlow Datasets builder) is not imported
here, so that `import keras_mtl.data` does not import `tensorflow_datasets`.
"""

from keras_mtl.data.aliccp import aliccp_features, aliccp_tasks, load_aliccp
from keras_mtl.data.census import CensusData, census_features, load_census
from keras_mtl.data.dataset import make_dataset
from keras_mtl.data.funnel import FunnelData, make_funnel
from keras_mtl.data.movielens import MovieLensSequences, load_movielens
from keras_mtl.data.split import split_frame
from keras_mtl.data.synthetic import SyntheticData, make_synthetic
from keras_mtl.data.tfrecord import write_tfrecord

__all__ = [
    "CensusData",
    "FunnelData",
    "MovieLensSequences",
    "SyntheticData",
    "census_features",
    "load_census",
    "load_movielens",
    "aliccp_features",
    "aliccp_tasks",
    "load_aliccp",
    "make_dataset",
    "make_funnel",
    "make_synthetic",
    "split_frame",
    "write_tfrecord",
]
