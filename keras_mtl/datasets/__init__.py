"""Built-in data sets, each with its feature specs, tasks and loader.

Every loader returns data for the one `keras_mtl.data.make_dataset` pipeline.
`keras_mtl.datasets.census_tfds` (the TensorFlow Datasets builder) is not
imported here, so that `import keras_mtl` does not import `tensorflow_datasets`.
"""

from keras_mtl.datasets.aliccp import aliccp_features, aliccp_tasks, load_aliccp
from keras_mtl.datasets.census import CensusData, census_features, load_census
from keras_mtl.datasets.funnel import FunnelData, make_funnel
from keras_mtl.datasets.movielens import MovieLensSequences, load_movielens
from keras_mtl.datasets.multi_domain import MultiDomainData, make_multi_domain
from keras_mtl.datasets.synthetic import SyntheticData, make_synthetic

__all__ = [
    "CensusData",
    "FunnelData",
    "MovieLensSequences",
    "MultiDomainData",
    "SyntheticData",
    "aliccp_features",
    "aliccp_tasks",
    "census_features",
    "load_aliccp",
    "load_census",
    "load_movielens",
    "make_funnel",
    "make_multi_domain",
    "make_synthetic",
]
