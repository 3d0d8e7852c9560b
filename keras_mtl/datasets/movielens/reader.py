"""Reading MovieLens-100K's files: u.data, u.item and u.user -> checked numpy tables.

The files are read where they are (a directory, or straight out of the zip,
never copied) and checked; every error names the file and the column.
"""

from __future__ import annotations

import dataclasses
import io
import pathlib
import zipfile

import numpy as np
import pandas as pd

from keras_mtl.datasets._download import download_file, keras_home
from keras_mtl.datasets.movielens.specs import (
    GENDERS,
    GENRES,
    MAX_GENRES,
    OCCUPATIONS,
)
from keras_mtl.features import INT_PAD

#: Official GroupLens archive (about 5 MB).
URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
#: The files the loader reads.
MOVIELENS_FILES = ("u.data", "u.item", "u.user")

_UNSEEN = -2  # marks lookup-table rows of ids absent from u.item / u.user


def download() -> pathlib.Path:
    """The archive at `URL`, downloaded into the Keras cache once (progress
    on standard error)."""
    return download_file(URL, keras_home() / "datasets" / "ml-100k.zip")


def _open_sources(source: pathlib.Path) -> dict[str, tuple[str, bytes]]:
    """`{file name: (description, raw bytes)}` of the three files of `source`."""
    if source.is_file():
        if not zipfile.is_zipfile(source):
            raise ValueError(
                f"{str(source)!r} is a file but not a zip archive; pass the "
                "ml-100k.zip archive or the directory holding u.data, u.item, u.user."
            )
        out = {}
        with zipfile.ZipFile(source) as archive:
            members = {
                pathlib.PurePosixPath(n).name: n
                for n in sorted(archive.namelist(), key=lambda n: n.count("/"))
                if pathlib.PurePosixPath(n).parent.name in ("", "ml-100k")
            }
            for name in MOVIELENS_FILES:
                if name not in members:
                    raise FileNotFoundError(
                        f"MovieLens file {name!r} not found in the archive "
                        f"{str(source)!r} (expected at its root or under ml-100k/)."
                    )
                out[name] = (f"{source}:{members[name]}", archive.read(members[name]))
        return out
    if not source.is_dir():
        raise FileNotFoundError(
            f"MovieLens path not found: {str(source)!r} (expected a directory with "
            "u.data, u.item, u.user, or the ml-100k.zip archive)."
        )
    directory = source
    if not (source / "u.data").exists() and (source / "ml-100k").is_dir():
        directory = source / "ml-100k"
    out = {}
    for name in MOVIELENS_FILES:
        file = directory / name
        if not file.is_file():
            raise FileNotFoundError(
                f"MovieLens file {name!r} not found in the directory "
                f"{str(directory)!r} (expected u.data, u.item and u.user of "
                "ml-100k)."
            )
        out[name] = (str(file), file.read_bytes())
    return out


def _read_table(
    what: str, raw: bytes, sep: str, names: list[str], int_columns: list[str]
) -> pd.DataFrame:
    def read(dtype) -> pd.DataFrame:
        return pd.read_csv(
            io.BytesIO(raw),
            sep=sep,
            header=None,
            names=names,
            encoding="latin-1",
            dtype=dtype,
            keep_default_na=False,
            engine="c",
        )

    try:  # fast path: the C parser reads the integers directly
        return read({c: np.int64 if c in int_columns else str for c in names})
    except (pd.errors.ParserError, ValueError):
        pass  # read again as text to name the bad line
    try:
        frame = read(str)
    except (pd.errors.ParserError, ValueError) as error:
        raise ValueError(
            f"Could not parse {what} (expected {len(names)} {sep!r}-separated "
            f"fields per line: {', '.join(names)}): {error}"
        ) from None
    for column in int_columns:
        text = frame[column].fillna("")
        bad = ~text.str.fullmatch(r"\s*-?\d+\s*").to_numpy(dtype=bool)
        if bad.any():
            row = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{what}: column {column!r} must hold integers; line {row + 1} has "
                f"{frame[column].iloc[row]!r} (expected {len(names)} "
                f"{sep!r}-separated fields: {', '.join(names)})."
            )
    raise ValueError(f"Could not parse {what}.")


@dataclasses.dataclass(frozen=True)
class Items:
    """The movies of u.item as lookup tables indexed by movie id."""

    ids: np.ndarray  # movie ids of u.item
    genres: np.ndarray  # (max id + 1, K) int64, row = movie id, -1 padded
    year: np.ndarray  # (max id + 1,) int64 release year, -1 if none
    flags: np.ndarray  # (max id + 1, 19) float32 multi-hot genres

    @property
    def num_rows(self) -> int:
        return len(self.year)


@dataclasses.dataclass(frozen=True)
class Users:
    """The users of u.user as lookup tables indexed by user id."""

    gender: np.ndarray  # (max id + 1,) str objects as in u.user, row = user id
    age: np.ndarray  # int64 age in years
    occupation: np.ndarray  # str objects as in u.user

    @property
    def num_rows(self) -> int:
        return len(self.age)


def read_files(source: pathlib.Path) -> tuple[dict, Items, Users]:
    """The checked ratings (int64 columns `user`, `item`, `rating`, `t`), movies
    and users of the directory or zip archive `source`."""
    files = _open_sources(source)
    what, raw = files["u.data"]
    data = _read_table(
        what,
        raw,
        "\t",
        ["user", "item", "rating", "t"],
        ["user", "item", "rating", "t"],
    )
    ratings = {c: data[c].to_numpy(dtype=np.int64) for c in data.columns}
    if len(data) == 0:
        raise ValueError(f"{what} holds no rating.")
    bad = (ratings["rating"] < 1) | (ratings["rating"] > 5)
    if bad.any():
        raise ValueError(
            f"{what}: column 'rating' must be 1..5; found {ratings['rating'][bad][0]}."
        )
    if (ratings["t"] < 0).any():
        raise ValueError(f"{what}: column 'timestamp' must be >= 0 (Unix seconds).")
    items = _read_items(*files["u.item"])
    users = _read_users(*files["u.user"])
    for column, table, known, name in (
        ("item", "u.item", items.year, "movie"),
        ("user", "u.user", users.age, "user"),
    ):
        ids = ratings[column]
        bad = (ids < 1) | (ids >= len(known))
        bad[~bad] = known[ids[~bad]] == _UNSEEN
        if bad.any():
            raise ValueError(
                f"{what}: {name} id {ids[bad][0]} (column {column!r}) is not in "
                f"{table}."
            )
    return ratings, items, users


def _read_items(what: str, raw: bytes) -> Items:
    names = ["id", "title", "release", "video", "url", *GENRES]
    frame = _read_table(what, raw, "|", names, ["id", *GENRES])
    ids = frame["id"].to_numpy()
    _check_ids(what, "movie id", ids)
    flags = frame[list(GENRES)].to_numpy()
    if not np.isin(flags, (0, 1)).all():
        raise ValueError(f"{what}: the 19 genre flag columns must hold 0 or 1.")
    release = frame["release"].str.strip()
    dates = pd.to_datetime(release, format="%d-%b-%Y", errors="coerce")
    unparsed = dates.isna().to_numpy() & (release != "").to_numpy()
    if unparsed.any():
        row = int(np.flatnonzero(unparsed)[0])
        raise ValueError(
            f"{what}: column 'release date' must look like 01-Jan-1995 or be "
            f"empty; movie {ids[row]} has {release.iloc[row]!r}."
        )
    rows = int(ids.max()) + 1
    year = np.full(rows, _UNSEEN, dtype=np.int64)
    year[ids] = dates.dt.year.fillna(INT_PAD).to_numpy(dtype=np.int64)
    # The first MAX_GENRES set flags of each movie, in GENRES order.
    first = np.argsort(flags == 0, axis=1, kind="stable")[:, :MAX_GENRES]
    has = np.arange(MAX_GENRES)[None, :] < flags.sum(axis=1)[:, None]
    genres = np.full((rows, MAX_GENRES), INT_PAD, dtype=np.int64)
    genres[ids] = np.where(has, first, INT_PAD)
    multi_hot = np.zeros((rows, len(GENRES)), dtype=np.float32)
    multi_hot[ids] = flags
    year[0] = max(year[0], INT_PAD)  # row 0 (no movie 0) serves padding lookups
    return Items(ids=ids, genres=genres, year=year, flags=multi_hot)


def _read_users(what: str, raw: bytes) -> Users:
    names = ["id", "age", "gender", "occupation", "zip"]
    frame = _read_table(what, raw, "|", names, ["id", "age"])
    ids = frame["id"].to_numpy()
    _check_ids(what, "user id", ids)
    rows = int(ids.max()) + 1
    tables = {}
    for column, vocabulary in (("gender", GENDERS), ("occupation", OCCUPATIONS)):
        values = frame[column].str.strip()
        unknown = ~values.isin(vocabulary).to_numpy()
        if unknown.any():
            bad = values[unknown].iloc[0]
            raise ValueError(
                f"{what}: column {column!r} has the unknown value {bad!r}; expected "
                f"one of {list(vocabulary)}."
            )
        table = np.full(rows, "", dtype=object)
        table[ids] = values.to_numpy(dtype=object)
        tables[column] = table
    ages = frame["age"].to_numpy(dtype=np.int64)
    if (ages < 0).any():
        raise ValueError(f"{what}: column 'age' must be >= 0; found {ages.min()}.")
    tables["age"] = np.full(rows, _UNSEEN, dtype=np.int64)
    tables["age"][ids] = ages
    return Users(**tables)


def _check_ids(what: str, column: str, ids: np.ndarray) -> None:
    if len(ids) == 0:
        raise ValueError(f"{what} is empty.")
    if ids.min() < 1:
        raise ValueError(f"{what}: column {column!r} must be >= 1, found {ids.min()}.")
    unique, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ValueError(
            f"{what}: column {column!r} has duplicates, e.g. {unique[counts > 1][0]}."
        )
