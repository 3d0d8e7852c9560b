"""TensorFlow Datasets builder `census_income_kdd` (importing this module registers it).

Kept out of `keras_mtl.data.__init__` so that `import keras_mtl.data` does not
pay for importing `tensorflow_datasets`. Usage::

    import tensorflow_datasets as tfds
    import keras_mtl.datasets.census_tfds  # noqa: F401  (registers the builder)

    ds = tfds.load("census_income_kdd", split="train", as_supervised=True)

Examples hold every column of `load_census` (the categories as the raw strings
of the UCI file, `?` included, as `tf.string`; float32 numbers; float32 labels
`income` and `marital`). With
`as_supervised=True` they are `(features, labels)` pairs: the 38 model inputs
and the two labels, the element layout of `make_dataset` once batched.

Splits: `train` from census-income.data and `test` from census-income.test. A
manual directory (`tfds.download.DownloadConfig(manual_dir=...)`) may hold only
one of the two files (plain or `.gz`); then only that split is prepared, and
asking for the other one fails with tfds' unknown-split error. Without a
manual directory the official UCI archive is downloaded and both are prepared.
"""

from __future__ import annotations

import pathlib

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from keras_mtl.datasets import census

_DESCRIPTION = """\
UCI Census-Income (KDD): 299,285 records of the 1994-1995 US Current Population
Survey (199,523 train, 99,762 test), with the 33 nominal columns as the raw
strings of the file (checked against the category lists of census-income.names;
`?` means unknown) and the MMoE paper's two binary labels: income > 50K and
marital status "Never married".
"""

_CITATION = """\
@misc{census_income_kdd,
  title = {Census-Income (KDD)},
  author = {Lane, Terran and Kohavi, Ronny},
  howpublished = {UCI Machine Learning Repository},
  year = {2000},
  doi = {10.24432/C5N30T}
}
"""


class CensusIncomeKdd(tfds.core.GeneratorBasedBuilder):
    """UCI Census-Income (KDD) with the MMoE paper's income and marital tasks."""

    VERSION = tfds.core.Version("2.0.0")
    RELEASE_NOTES = {
        "1.0.0": "Initial release.",
        "2.0.0": "Nominal columns as the raw strings of the file, not int64 codes.",
    }
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
    Optional. Put census-income.data[.gz] and/or census-income.test[.gz] (from
    census.tar.gz in the UCI archive) in the manual directory; only the splits
    whose files are present are prepared. Without them the archive is
    downloaded from {census.CENSUS_URL}.
    """

    @tfds.core.utils.classproperty
    @classmethod
    def code_path(cls) -> epath.Path:
        # tfds 4.9.10 resolves this through `importlib_resources`, which newer
        # etils no longer install; the file of this module is the same answer.
        return epath.Path(__file__)

    def _info(self) -> tfds.core.DatasetInfo:
        columns = {}
        for name in census.RAW_COLUMNS[:-1]:
            if name in census.VOCABULARIES:
                columns[name] = tfds.features.Text()
            else:
                columns[name] = tfds.features.Scalar(dtype=np.float32)
        for task in census.CENSUS_TASKS:
            columns[task.name] = tfds.features.Scalar(dtype=np.float32)
        inputs = census.CATEGORICAL_COLUMNS + census.NUMERIC_COLUMNS
        return self.dataset_info_from_configs(
            description=_DESCRIPTION,
            features=tfds.features.FeaturesDict(columns),
            supervised_keys=(
                {name: name for name in inputs},
                {task.name: task.name for task in census.CENSUS_TASKS},
            ),
            homepage="https://archive.ics.uci.edu/dataset/117/census+income+kdd",
            citation=_CITATION,
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        directory = _manual_dir(dl_manager)
        if directory is None:
            archive = pathlib.Path(dl_manager.download(census.CENSUS_URL))
            directory = archive.parent / "census_income_kdd_files"
            directory.mkdir(exist_ok=True)
            census.extract_census_archive(archive, directory)
        splits = {}
        for split in census.CENSUS_FILES:
            try:
                splits[split] = self._generate_examples(
                    census.find_census_file(directory, split)
                )
            except FileNotFoundError:
                continue
        if not splits:
            raise FileNotFoundError(
                f"Neither census-income.data[.gz] nor census-income.test[.gz] in "
                f"{str(directory)!r}."
            )
        return splits

    def _generate_examples(self, path: pathlib.Path):
        frame = census.parse_census(path)
        yield from enumerate(frame.to_dict("records"))


def _manual_dir(dl_manager) -> pathlib.Path | None:
    """The manual directory if the user gave a non-empty one, else None."""
    try:
        return pathlib.Path(dl_manager.manual_dir)
    except AssertionError:  # not given, missing or empty
        return None
