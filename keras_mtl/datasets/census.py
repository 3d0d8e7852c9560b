"""UCI Census-Income (KDD) loader, set up as in the MMoE paper (income + marital status).

Raw format: 42 comma-separated fields per line, no header, each value after a
comma preceded by a space, the line ending with `.`; field 42 is the income
label `- 50000.` or `50000+.`. `?` marks an unknown value.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import json
import os
import pathlib
import tarfile
import warnings
import zipfile

import numpy as np
import pandas as pd

from keras_mtl.datasets._download import download_file
from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import Task


def _read_vocabularies() -> dict[str, tuple[str, ...]]:
    """The category lists of census-income.names, shipped as package data."""
    text = (
        importlib.resources.files("keras_mtl.datasets")
        .joinpath("census_vocabularies.json")
        .read_text(encoding="utf-8")
    )
    return {k: tuple(c["values"]) for k, c in json.loads(text)["columns"].items()}


#: Category lists of the categorical columns, the raw strings of the UCI file
#: (`SparseFeature(vocabulary=...)` of each input column).
VOCABULARIES = _read_vocabularies()

#: Official UCI archive (a zip holding census.tar.gz with the .data.gz/.test.gz files).
CENSUS_URL = "https://archive.ics.uci.edu/static/public/117/census+income+kdd.zip"
#: Default download directory of `load_census(path=None)`.
DEFAULT_CACHE_DIR = os.path.join("~", ".keras", "datasets", "census_income_kdd")
#: File names inside the archive, by split.
CENSUS_FILES = {"train": "census-income.data", "test": "census-income.test"}

#: The 42 raw fields, in file order (snake_case of census-income.names).
RAW_COLUMNS = (
    "age",
    "class_of_worker",
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "education",
    "wage_per_hour",
    "enroll_in_edu_inst_last_wk",
    "marital_stat",
    "major_industry_code",
    "major_occupation_code",
    "race",
    "hispanic_origin",
    "sex",
    "member_of_a_labor_union",
    "reason_for_unemployment",
    "full_or_part_time_employment_stat",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "tax_filer_stat",
    "region_of_previous_residence",
    "state_of_previous_residence",
    "detailed_household_and_family_stat",
    "detailed_household_summary_in_household",
    "instance_weight",
    "migration_code_change_in_msa",
    "migration_code_change_in_reg",
    "migration_code_move_within_reg",
    "live_in_this_house_1_year_ago",
    "migration_prev_res_in_sunbelt",
    "num_persons_worked_for_employer",
    "family_members_under_18",
    "country_of_birth_father",
    "country_of_birth_mother",
    "country_of_birth_self",
    "citizenship",
    "own_business_or_self_employed",
    "fill_inc_questionnaire_for_veterans_admin",
    "veterans_benefits",
    "weeks_worked_in_year",
    "year",
    "income_raw",
)
#: The 7 continuous input columns.
NUMERIC_COLUMNS = (
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
)
#: Nominal columns kept in the frame (as strings) but not used as inputs: the
#: marital status is a label, and education is the label of the paper's group 2.
EXCLUDED_COLUMNS = ("education", "marital_stat")
#: The 31 categorical input columns.
CATEGORICAL_COLUMNS = tuple(c for c in VOCABULARIES if c not in EXCLUDED_COLUMNS)
#: The two tasks (MMoE paper, census group 1).
CENSUS_TASKS = (Task("income", "binary"), Task("marital", "binary"))
#: UCI's raw value for "unknown". Kept as it is in the frame and not in any
#: vocabulary: the model's lookup sends it to the out-of-vocabulary (OOV) row, a
#: learned "unknown" embedding, in training and in the exported graph alike.
UNKNOWN_VALUE = "?"
_INCOME_LABELS = {"- 50000.": 0.0, "50000+.": 1.0}


@dataclasses.dataclass(frozen=True, eq=False)
class CensusData:
    """Output of `load_census`.

    Args:
        frame: pandas DataFrame. One row per person: the 31 categorical input
            columns as the raw strings of the UCI file (e.g. "Private", "?"),
            the 7 numeric columns as float32, `education` and
            `marital_stat` as strings (not inputs), `instance_weight` and the
            float32 labels `income` and `marital`.
        features: list. 31 string `SparseFeature` + 7 `DenseFeature` specs.
        tasks: list. `[Task("income"), Task("marital")]`.
    """

    frame: pd.DataFrame
    features: list
    tasks: list


def load_census(
    path: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    split: str = "train",
) -> CensusData:
    """Load UCI Census-Income (KDD) as raw-valued features and two binary tasks.

    The setup of the MMoE paper's group 1: tasks `income` (1.0 for `50000+`)
    and `marital` (1.0 for marital status "Never married"). Education and
    marital status are not inputs, nor is the instance weight (UCI: not to be
    used by classifiers). That leaves 31 categorical columns, declared with the
    fixed vocabularies of census-income.names (`VOCABULARIES`) as
    `SparseFeature(name, vocabulary=VOCABULARIES[name], embedding_dim=4)`
    (dtype "string"), and 7 numeric columns as
    `DenseFeature(name, mean=..., std=...)`. The frame keeps the raw values of
    the file (the strings stripped of their surrounding spaces, the numbers as
    float32): the model looks the strings up and standardises the numbers
    inside its graph, so an exported model takes a production log's raw values
    as they are. The mean/std are those of the loaded frame; for mean/std of a
    training part only, call `census_features(train_frame)`.

    Unknown values: `?` (UCI's "unknown", frequent in the migration and
    country-of-birth columns) stays `"?"` in the frame and is in no
    vocabulary, so the model sends it to the out-of-vocabulary row: a learned
    "unknown" embedding, shared with any other value a production request may
    bring that the vocabulary lacks. A served `"?"` thus gets exactly what
    training gave it, with no preprocessing outside the graph; `""` is the
    padding value ("no value", a zero embedding). In the file, any value
    outside the vocabulary other than `?` raises a ValueError: it means a
    corrupt or different file.

    Args:
        path: str, path-like or None. A `census-income.data[.gz]` or
            `.test[.gz]` file (gzip or plain), or a directory holding them
            (then `split` picks the file). None downloads the official UCI
            archive (`CENSUS_URL`) into `cache_dir` once and reads the `split`
            file. Defaults to None.
        cache_dir: str or None. Download directory. Defaults to
            `~/.keras/datasets/census_income_kdd`.
        split: "train" (census-income.data, 199,523 rows) or "test"
            (census-income.test, 99,762 rows), for a directory or a download.
            Defaults to "train".

    Returns:
        A `CensusData(frame, features, tasks)`.

    Example:

    With a local copy of the UCI file (or `load_census()` to download it, so
    this is a plain code block):

        from keras_mtl.data import make_dataset, split_frame
        from keras_mtl.datasets import load_census

        census = load_census("census-income.test.gz")
        train, val, test = split_frame(census.frame, seed=0)
        ds = make_dataset(train, census.features, census.tasks)

    References:
        Ma et al., "Modeling Task Relationships in Multi-task Learning with
        Multi-gate Mixture-of-Experts", KDD 2018.
    """
    if split not in CENSUS_FILES:
        raise ValueError(f"split must be one of {tuple(CENSUS_FILES)}; got {split!r}.")
    if path is None:
        path = download_census(cache_dir)
    frame = parse_census(find_census_file(path, split))
    return CensusData(frame, census_features(frame), list(CENSUS_TASKS))


def census_features(frame: pd.DataFrame) -> list:
    """Feature specs of the census inputs, numeric mean/std computed from `frame`.

    Args:
        frame: DataFrame from `parse_census` / `load_census` (or a part of it).

    Returns:
        31 `SparseFeature` (string vocabularies) and 7 `DenseFeature`, in raw
        column order.
    """
    features = []
    for name in RAW_COLUMNS:
        if name in CATEGORICAL_COLUMNS:
            vocabulary = VOCABULARIES[name]
            features.append(SparseFeature(name, vocabulary=vocabulary, embedding_dim=4))
        elif name in NUMERIC_COLUMNS:
            values = frame[name].to_numpy(dtype=np.float64)
            std = float(values.std())
            features.append(
                DenseFeature(
                    name, mean=float(values.mean()), std=std if std > 0 else 1.0
                )
            )
    return features


def find_census_file(path: str | os.PathLike, split: str = "train") -> pathlib.Path:
    """The census file at `path`, or the `split` file in the directory `path`."""
    path = pathlib.Path(path).expanduser()
    if path.is_dir():
        stem = CENSUS_FILES[split]
        for name in (stem + ".gz", stem):
            if (path / name).is_file():
                return path / name
        raise FileNotFoundError(
            f"No {stem}[.gz] ({split} split) in {str(path)!r}; found "
            f"{sorted(p.name for p in path.iterdir())}."
        )
    if not path.is_file():
        raise FileNotFoundError(f"Census file not found: {str(path)!r}.")
    return path


def parse_census(path: str | os.PathLike) -> pd.DataFrame:
    """Parse one raw census file (plain or gzip) into the raw-valued frame.

    Args:
        path: a census-income.data / .test file, optionally gzipped.

    Returns:
        DataFrame as described in `CensusData.frame`.

    Raises:
        ValueError: a line without 42 fields, a non-numeric value in a numeric
            column, an unknown category (other than `?`) or label, or no rows.
    """
    path = os.fspath(path)
    try:
        with warnings.catch_warnings():
            # A too-long line fills `_extra` and is reported below.
            warnings.simplefilter("ignore", pd.errors.ParserWarning)
            raw = pd.read_csv(
                path,
                header=None,
                names=[*RAW_COLUMNS, "_extra"],
                dtype=str,
                skipinitialspace=True,
                index_col=False,
                na_filter=False,
                compression="gzip" if path.endswith(".gz") else None,
                engine="c",
            )
    except pd.errors.ParserError as error:
        raise ValueError(
            f"{path!r} is not in the census format (42 fields per line): {error}"
        ) from None
    except pd.errors.EmptyDataError:
        raw = pd.DataFrame(columns=list(RAW_COLUMNS))
    if raw.empty:
        raise ValueError(f"Census file {path!r} has no rows.")
    for bad, problem in (
        (raw["income_raw"].isna() | (raw["income_raw"] == ""), "fewer"),
        (raw["_extra"].notna() & (raw["_extra"] != ""), "more"),
    ):
        if bad.any():
            raise ValueError(
                f"{path!r}: line {int(np.argmax(bad.to_numpy())) + 1} has {problem} "
                "than 42 fields; not in the census format."
            )

    frame = {}
    for name in RAW_COLUMNS[:-1]:
        column = raw[name].str.strip()
        if name in VOCABULARIES:
            frame[name] = _checked_strings(path, name, column)
        else:
            numbers = pd.to_numeric(column, errors="coerce")
            if numbers.isna().any():
                bad = column[numbers.isna()].iloc[0]
                raise ValueError(
                    f"{path!r}: column {name!r} must be numeric; received {bad!r}."
                )
            frame[name] = numbers.to_numpy(dtype=np.float32)

    income = raw["income_raw"].str.strip().map(_INCOME_LABELS)
    if income.isna().any():
        bad = raw["income_raw"][income.isna()].iloc[0]
        raise ValueError(
            f"{path!r}: income label must be '- 50000.' or '50000+.'; received {bad!r}."
        )
    frame["income"] = income.to_numpy(dtype=np.float32)
    frame["marital"] = (frame["marital_stat"] == "Never married").astype(np.float32)
    return pd.DataFrame(frame)


def _checked_strings(path: str, name: str, column: pd.Series) -> np.ndarray:
    """The raw strings of `column` (an object array of the vocabulary's own
    strings), each a value of its fixed vocabulary or `?`; anything else ->
    ValueError (a corrupt file)."""
    vocabulary = VOCABULARIES[name]
    codes = pd.Categorical(column, categories=vocabulary).codes
    unknown = (codes == -1) & (column != UNKNOWN_VALUE).to_numpy()
    if unknown.any():
        values = sorted(set(column[unknown]))
        raise ValueError(
            f"{path!r}: column {name!r} has value(s) {values[:5]} outside its "
            f"vocabulary from census-income.names ({int(unknown.sum())} rows)."
        )
    # Code -1 (only `?` is left) indexes the last entry.
    return np.array([*vocabulary, UNKNOWN_VALUE], dtype=object)[codes]


def download_census(cache_dir: str | os.PathLike | None = None) -> pathlib.Path:
    """Download and unpack the official UCI archive once; return the directory.

    Args:
        cache_dir: str or None. Target directory. Defaults to
            `~/.keras/datasets/census_income_kdd`.

    Returns:
        The directory holding census-income.data.gz and census-income.test.gz.
    """
    cache_dir = pathlib.Path(cache_dir or DEFAULT_CACHE_DIR).expanduser()
    if all(
        (cache_dir / stem).is_file() or (cache_dir / (stem + ".gz")).is_file()
        for stem in CENSUS_FILES.values()
    ):
        return cache_dir
    # (progress on standard error: keras_mtl.datasets._download)
    archive = download_file(CENSUS_URL, cache_dir / "census+income+kdd.zip")
    extract_census_archive(archive, cache_dir)
    return cache_dir


def extract_census_archive(
    archive: str | os.PathLike, target: str | os.PathLike
) -> list[pathlib.Path]:
    """Unpack census-income.{data,test}[.gz] from the UCI zip (zip > tar.gz > files).

    Args:
        archive: the downloaded `census+income+kdd.zip`.
        target: directory to write the files into.

    Returns:
        Paths of the files written.
    """
    target = pathlib.Path(target)
    written = []
    with zipfile.ZipFile(archive) as outer:
        inner = next(
            (n for n in outer.namelist() if n.endswith((".tar.gz", ".tgz"))), None
        )
        if inner is None:
            raise ValueError(f"{archive!r} holds no .tar.gz; found {outer.namelist()}.")
        with (
            outer.open(inner) as stream,
            tarfile.open(fileobj=stream, mode="r|*") as tar,
        ):
            for member in tar:  # streamed: no seeks inside the zip
                base = os.path.basename(member.name)
                if (
                    member.isfile()
                    and base.removesuffix(".gz") in CENSUS_FILES.values()
                ):
                    (target / base).write_bytes(tar.extractfile(member).read())
                    written.append(target / base)
    if not written:
        raise ValueError(f"No census-income.data/.test file inside {archive!r}.")
    return written
