import shutil

import numpy as np
import pytest

tfds = pytest.importorskip("tensorflow_datasets")

import keras_mtl.datasets.census_tfds  # noqa: E402,F401  (registers the builder)
from keras_mtl.datasets import census  # noqa: E402
from tests.datasets.test_census import (  # noqa: E402
    EXPECTED_CODES,
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
    rows = list(ds.as_numpy_iterator())
    return {k: np.array([r[k] for r in rows]) for k in rows[0]}


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
    for name, codes in EXPECTED_CODES.items():
        assert columns[name].dtype == np.int64
        assert columns[name][order].tolist() == np.array(codes)[expected_order].tolist()
    assert sorted(columns["income"].tolist()) == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert columns["marital"].sum() == 2.0
    with pytest.raises(ValueError, match="[Uu]nknown split"):
        load(manual, tmp_path / "tfds", "train")

    features, labels = next(
        iter(load(manual, tmp_path / "tfds", "test", as_supervised=True).batch(5))
    )
    assert len(features) == 38 and set(labels) == {"income", "marital"}
    assert features["age"].dtype.name == "float32"
    assert features["class_of_worker"].shape == (5,)


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


@pytest.mark.slow
@pytest.mark.shared_data
def test_prepares_the_official_test_file(shared_data, tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    shutil.copy(shared_data / "census-income" / "census-income.test.gz", manual)
    ds = load(manual, tmp_path / "tfds", "test")
    rows = income = marital = 0
    for batch in ds.batch(20_000).as_numpy_iterator():
        rows += len(batch["income"])
        income += batch["income"].sum()
        marital += batch["marital"].sum()
    assert rows == 99_762
    assert income / rows * 100 == pytest.approx(6.20, abs=0.05)
    assert marital / rows * 100 == pytest.approx(43.25, abs=0.05)
