import gzip
import itertools

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

import keras_mtl.datasets.census_tfds  # noqa: E402,F401  (registers the builder)
from keras_mtl.datasets import census  # noqa: E402
from tests.datasets.test_census import (  # noqa: E402
    EXPECTED_STRINGS,
    RAW_LINES,
    make_fake_uci_zip,
    write_raw,
)


def load(manual_dir, data_dir, split, **kwargs):
    return tfds.load(
        "census_income_kdd",
        split=split,
        data_dir=str(data_dir),
        download_and_prepare_kwargs={
            "download_config": tfds.download.DownloadConfig(manual_dir=str(manual_dir))
        },
        **kwargs,
    )


def as_columns(ds):
    """All examples of `ds` as one array per column (strings decoded from bytes)."""
    batches = list(ds.batch(4096).as_numpy_iterator())
    columns = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    for k, column in columns.items():
        if column.dtype == object:
            columns[k] = np.array([v.decode() for v in column], dtype=object)
    return columns


def test_registered_on_import():
    assert "census_income_kdd" in tfds.list_builders()


def test_manual_dir_with_only_the_test_file(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    write_raw(manual / "census-income.test.gz")
    ds, info = load(manual, tmp_path / "tfds", "test", with_info=True)
    assert set(info.splits) == {"test"}  # no train file -> no train split
    assert info.splits["test"].num_examples == 5
    columns = as_columns(ds)
    assert set(columns) == set(census.RAW_COLUMNS[:-1]) | {"income", "marital"}
    # tfds shuffles on write: compare the rows as a set, keyed by age.
    order = np.argsort(columns["age"])
    expected_order = np.argsort([38, 44, 2, 35, 27])
    for name, strings in EXPECTED_STRINGS.items():
        expected = np.array(strings, dtype=object)[expected_order]
        assert columns[name][order].tolist() == expected.tolist(), name
    assert sorted(columns["income"].tolist()) == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert columns["marital"].sum() == 2.0
    with pytest.raises(ValueError, match="[Uu]nknown split"):
        load(manual, tmp_path / "tfds", "train")

    features, labels = next(
        iter(load(manual, tmp_path / "tfds", "test", as_supervised=True).batch(5))
    )
    assert len(features) == 38 and set(labels) == {"income", "marital"}
    assert features["age"].dtype.name == "float32"
    assert features["class_of_worker"].dtype.name == "string"
    assert features["class_of_worker"].shape == (5,)
    assert set(features["country_of_birth_self"].numpy()) == {
        b"Mexico",
        b"United-States",
        b"?",
    }


def test_manual_dir_with_both_files(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    write_raw(manual / "census-income.data", RAW_LINES[:3])
    write_raw(manual / "census-income.test.gz")
    builder = tfds.builder("census_income_kdd", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=str(manual))
    )
    splits = builder.info.splits
    assert {k: splits[k].num_examples for k in splits} == {"train": 3, "test": 5}


def test_without_manual_dir_the_uci_archive_is_used(tmp_path, monkeypatch):
    archive = make_fake_uci_zip(tmp_path / "census+income+kdd.zip")
    urls = []

    def fake_download(self, url):  # no network in tests
        urls.append(url)
        return archive

    monkeypatch.setattr(tfds.download.DownloadManager, "download", fake_download)
    builder = tfds.builder("census_income_kdd", data_dir=str(tmp_path / "tfds"))
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(
            manual_dir=str(tmp_path / "no_manual_dir")
        )
    )
    assert urls == [census.CENSUS_URL]
    splits = builder.info.splits
    assert {k: splits[k].num_examples for k in splits} == {"train": 3, "test": 5}


#: Lines of the real test file that `test_prepares_real_census_lines` prepares
#: (tfds writes about a thousand examples a second; the whole file's counts
#: and label rates are checked on `load_census` in test_census.py).
REAL_LINES = 8000


@pytest.mark.slow
@pytest.mark.shared_data
def test_prepares_real_census_lines(shared_data, tmp_path):
    """The first lines of the official test file, prepared by tfds, hold the
    same columns as `parse_census` gives for them: every value, every row."""
    manual = tmp_path / "manual"
    manual.mkdir()
    source = shared_data / "census-income" / "census-income.test.gz"
    with gzip.open(source, "rt") as f:
        lines = list(itertools.islice(f, REAL_LINES))
    head = manual / "census-income.test.gz"
    with gzip.open(head, "wt") as f:
        f.writelines(lines)
    frame = census.parse_census(head)
    columns = as_columns(load(manual, tmp_path / "tfds", "test"))
    assert len(columns["income"]) == len(frame) == REAL_LINES
    assert set(columns) == set(frame.columns)
    # tfds shuffles on write: put both in the same row order first.
    keys = sorted(columns)
    served = np.lexsort([columns[k] for k in keys])
    parsed = np.lexsort([frame[k].to_numpy() for k in keys])
    for k in keys:
        np.testing.assert_array_equal(
            columns[k][served], frame[k].to_numpy()[parsed], err_msg=k
        )
    assert 0.03 < frame["income"].mean() < 0.1 < 0.3 < frame["marital"].mean() < 0.6
