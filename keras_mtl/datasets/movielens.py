"""MovieLens-100K as user behaviour sequences, set up for DUPN (Ni et al., KDD 2018).

The GroupLens ml-100k release holds 100,000 ratings (1-5 stars) of 1,682 movies
by 943 users, made from September 1997 to April 1998. Three of its files are
read:

- `u.data`: tab-separated `user id, item id, rating, timestamp` (Unix seconds).
- `u.item`: `|`-separated, latin-1: `movie id | title | release date (e.g.
  01-Jan-1995, sometimes empty) | video release date | IMDb URL | 19 genre
  flags` (the flags in the order of `GENRES`).
- `u.user`: `|`-separated `user id | age | gender | occupation | zip code`.

`load_movielens` turns every rating into one example: the user's earlier
ratings (the behaviour sequence), the rated movie (the target item), a list of
candidate movies to rank, the user's profile and the request context, with
three tasks (like / rank the candidates / genre of the next movie).

License: the data is for research use only and may not be redistributed
(see the README of the release). The loader reads the files where they are, or
straight out of the zip, and never copies them.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pathlib
import zipfile
from collections.abc import Sequence

import numpy as np
import pandas as pd

from keras_mtl.features import INT_PAD, SequenceFeature, SparseFeature
from keras_mtl.tasks import Task

#: Official GroupLens archive (about 5 MB).
URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
#: The files the loader reads.
MOVIELENS_FILES = ("u.data", "u.item", "u.user")

#: The 19 genre flags of u.item, in file order (genre id = position).
GENRES: tuple[str, ...] = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
#: Genres kept per movie in the `genres` inputs (the first ones in `GENRES`
#: order). In ml-100k, 99.2% of the movies (97.8% of the ratings) have at most 4
#: genres; the other 14 movies (5 or 6 genres) lose their last ones. The `genre`
#: label always holds all of them.
MAX_GENRES = 4

#: The 21 occupations of u.user, sorted (occupation id = position).
OCCUPATIONS: tuple[str, ...] = (
    "administrator",
    "artist",
    "doctor",
    "educator",
    "engineer",
    "entertainment",
    "executive",
    "healthcare",
    "homemaker",
    "lawyer",
    "librarian",
    "marketing",
    "none",
    "other",
    "programmer",
    "retired",
    "salesman",
    "scientist",
    "student",
    "technician",
    "writer",
)
#: Gender codes of u.user (gender id = position).
GENDERS: tuple[str, ...] = ("F", "M")
#: Lower edges of the age buckets 1..6 (the buckets of MovieLens-1M): bucket 0
#: is under 18, then 18-24, 25-34, 35-44, 45-49, 50-55 and 56+.
AGE_EDGES: tuple[int, ...] = (18, 25, 35, 45, 50, 56)
#: Lower edges of the release-year buckets 1..15: bucket 0 is before 1930, then
#: one bucket per decade up to the 1980s (1..6), then one per year from 1990
#: (7) to 1997 (14), and 1998 or later (15). Most rated movies are from the
#: 1990s (70% of the ratings), hence the finer buckets there. A movie without a
#: release date gets -1 (padding: no year embedding).
YEAR_EDGES: tuple[int, ...] = (1930, 1940, 1950, 1960, 1970, 1980) + tuple(
    range(1990, 1999)
)
#: Lower edges, in seconds, of the time-gap buckets 1..8 of a history step
#: (target time minus step time, always >= 1 s): bucket 0 is under 1 minute,
#: then [1 min, 10 min), [10 min, 1 h), [1 h, 6 h), [6 h, 1 day),
#: [1 day, 1 week), [1 week, 30 days), [30 days, 90 days) and 90 days or more.
GAP_EDGES_SECONDS: tuple[int, ...] = (
    60,
    600,
    3_600,
    6 * 3_600,
    86_400,
    7 * 86_400,
    30 * 86_400,
    90 * 86_400,
)


@dataclasses.dataclass(frozen=True)
class MovieLensSequences:
    """The three time-ordered splits and the specs of `load_movielens`.

    Args:
        train: dict of column name to numpy array: examples with the earliest
            target times.
        val: dict of columns: the middle period.
        test: dict of columns: the latest period.
        history: `SequenceFeature` "history": item fields `item`, `genres`,
            `year` and property fields `rating`, `gap`.
        candidates: `SequenceFeature` "candidates": the same item fields, no
            properties, `max_len = list_size`.
        item: list of `SparseFeature`: the target item's inputs `item`,
            `genres`, `year` (the same specs as `history.item`).
        profile: list of `SparseFeature`: `gender`, `age`, `occupation`.
        query: list of `SparseFeature`: `hour`, `weekday`.
        tasks: list of `Task`: "ctr" (binary, label `like`), "l2r" (ranking,
            label `relevance`) and "genre" (multiclass, label `genre`).
        popularity: int64 array indexed by movie id: the movie's number of
            ratings in the train period (before the first val example), which
            (plus one) weighs the negative sampling. A popularity baseline.
    """

    train: dict[str, np.ndarray]
    val: dict[str, np.ndarray]
    test: dict[str, np.ndarray]
    history: SequenceFeature
    candidates: SequenceFeature
    item: list[SparseFeature]
    profile: list[SparseFeature]
    query: list[SparseFeature]
    tasks: list[Task]
    popularity: np.ndarray

    @property
    def features(self) -> list:
        """All model inputs: history, target item, candidates, profile, query.

        The one list for `make_dataset` and for
        `keras_mtl.build_dupn(features, tasks, query=self.query)`, which tells
        the roles apart by kind (see `build_dupn`).
        """
        return [self.history, *self.item, self.candidates, *self.profile, *self.query]


def bucket_gaps(seconds: np.ndarray) -> np.ndarray:
    """Time-gap bucket ids (0..8) of `GAP_EDGES_SECONDS`.

    Args:
        seconds: array of non-negative gaps in seconds.

    Returns:
        int64 array of bucket ids, same shape.

    Example:
    >>> bucket_gaps(np.array([1, 60, 3_600, 100 * 86_400])).tolist()
    [0, 1, 3, 8]
    """
    return np.searchsorted(GAP_EDGES_SECONDS, seconds, side="right").astype(np.int64)


def bucket_years(years: np.ndarray) -> np.ndarray:
    """Release-year bucket ids (0..15) of `YEAR_EDGES`; NaN (no date) gives -1.

    Args:
        years: float array of years, NaN where unknown.

    Returns:
        int64 array of bucket ids, same shape.

    Example:
    >>> bucket_years(np.array([1925.0, 1985.0, 1995.0, np.nan])).tolist()
    [0, 6, 12, -1]
    """
    years = np.asarray(years, dtype=np.float64)
    ids = np.searchsorted(YEAR_EDGES, np.nan_to_num(years), side="right")
    return np.where(np.isnan(years), INT_PAD, ids).astype(np.int64)


def bucket_ages(ages: np.ndarray) -> np.ndarray:
    """Age bucket ids (0..6) of `AGE_EDGES`.

    Args:
        ages: array of ages in years.

    Returns:
        int64 array of bucket ids, same shape.

    Example:
    >>> bucket_ages(np.array([7, 18, 24, 25, 56])).tolist()
    [0, 1, 1, 2, 6]
    """
    return np.searchsorted(AGE_EDGES, ages, side="right").astype(np.int64)


def movielens_specs(
    *, max_len: int = 50, list_size: int = 20, item_hash_bins: int = 16384
) -> tuple[SequenceFeature, SequenceFeature, list, list, list, list[Task]]:
    """The feature and task specs of `load_movielens` (no data needed).

    Args:
        max_len: int. History steps per example.
        list_size: int. Candidates per example.
        item_hash_bins: int. Hash buckets of the movie id.

    Returns:
        `(history, candidates, item, profile, query, tasks)` as in
        `MovieLensSequences`.

    Example:
    >>> history, *_ = movielens_specs(max_len=10)
    >>> history.input_names
    ['history_item', 'history_genres', 'history_year', 'history_rating', \
'history_gap']
    """
    item = [
        SparseFeature(
            "item", hash_bins=item_hash_bins, dtype="int64", embedding_dim=32
        ),
        SparseFeature(
            "genres", vocabulary_size=len(GENRES), embedding_dim=8, max_len=MAX_GENRES
        ),
        SparseFeature("year", vocabulary_size=len(YEAR_EDGES) + 1, embedding_dim=8),
    ]
    properties = [
        SparseFeature("rating", vocabulary_size=5, embedding_dim=4),
        SparseFeature(
            "gap", vocabulary_size=len(GAP_EDGES_SECONDS) + 1, embedding_dim=4
        ),
    ]
    history = SequenceFeature(
        "history", item=item, properties=properties, max_len=max_len
    )
    candidates = SequenceFeature("candidates", item=item, max_len=list_size)
    profile = [
        SparseFeature("gender", vocabulary_size=len(GENDERS), embedding_dim=4),
        SparseFeature("age", vocabulary_size=len(AGE_EDGES) + 1, embedding_dim=4),
        SparseFeature("occupation", vocabulary_size=len(OCCUPATIONS), embedding_dim=8),
    ]
    query = [
        SparseFeature("hour", vocabulary_size=24, embedding_dim=4),
        SparseFeature("weekday", vocabulary_size=7, embedding_dim=4),
    ]
    tasks = [
        Task("ctr", label="like"),
        Task("l2r", type="ranking", list_size=list_size, label="relevance"),
        Task("genre", type="multiclass", num_classes=len(GENRES), label="genre"),
    ]
    return history, candidates, list(history.item), profile, query, tasks


def load_movielens(
    path: str | os.PathLike | None = None,
    *,
    max_len: int = 50,
    list_size: int = 20,
    split: Sequence[float] = (0.8, 0.1, 0.1),
    item_hash_bins: int = 16384,
    min_history: int = 1,
    seed: int = 0,
) -> MovieLensSequences:
    """Load MovieLens-100K as next-interaction examples with behaviour sequences.

    **Examples.** Each user's ratings are sorted by (timestamp, movie id). Every
    rating (user u, movie i, rating r, time t) whose user has at least
    `min_history` ratings with a timestamp strictly before t gives one
    example; i is the target item.

    **Leakage rule.** The history of an example is the user's ratings with a
    timestamp strictly before t (ratings made in the same second as the target
    are not history: their order is unknown), the most recent `max_len` of
    them, oldest first, padded at the end with -1. No input holds anything from
    time t or later; labels describe only the target rating.

    **Split.** By time, globally: with the example times sorted, the cut points
    are the times at the `split[0]` and `split[0] + split[1]` fractions;
    train holds the examples before the first cut, val those from the first cut
    up to the second, test those from the second on (examples of the same
    second stay together, so the fractions hold approximately). The histories
    of val/test examples include earlier-period ratings (the past), never
    anything at or after their own target time. Within a split, examples are
    ordered by (timestamp, user id, movie id).

    **Item ids are hashed.** `item` holds raw movie ids, hashed into
    `item_hash_bins` buckets by the model (not mapped through a vocabulary
    built on the train period): movies first rated after the first period land
    in hash buckets rather than an out-of-vocabulary row, so incremental
    training on later periods handles new ids by design.

    **Columns** of each split dict (N rows; int64 unless stated; L = `max_len`,
    K = `MAX_GENRES`, S = `list_size`):

    - `history_item` (N, L): movie ids of the history steps, -1 = padding.
    - `history_genres` (N, L, K): genre ids (0..18, see `GENRES`) of each step's
      movie, the first K in `GENRES` order, padded with -1.
    - `history_year` (N, L): release-year bucket (`YEAR_EDGES`), -1 if the
      movie has no release date.
    - `history_rating` (N, L): rating - 1 (0..4).
    - `history_gap` (N, L): bucket (`GAP_EDGES_SECONDS`) of target time minus
      step time.
    - `item` (N,), `genres` (N, K), `year` (N,): the target movie.
    - `candidates_item` (N, S), `candidates_genres` (N, S, K),
      `candidates_year` (N, S): the target movie and S - 1 negatives, in random
      positions. Negatives are drawn without replacement, proportionally to
      the movie's number of ratings in the train period plus one, among the
      movies the user never rates in the whole data.
    - `gender` (N,): position in `GENDERS`; `age` (N,): bucket of `AGE_EDGES`;
      `occupation` (N,): position in `OCCUPATIONS`.
    - `hour` (N,) 0..23 and `weekday` (N,) 0..6 (Monday = 0) of the target
      time, in UTC.
    - Labels: `like` (N,) float32, 1 if the target rating is >= 4 else 0;
      `relevance` (N, S) float32, 1 at the target's position, 0 elsewhere;
      `genre` (N, 19) float32, the multi-hot genre flags of the target movie.
    - Extras for checks (not model inputs): `user_id` (N,), `timestamp` (N,)
      the target time, `history_timestamp` (N, L) the step times (0 for
      padding).

    Args:
        path: str, path-like or None. A directory holding u.data, u.item and
            u.user (or an `ml-100k` subdirectory holding them), or the
            `ml-100k.zip` archive (read without unpacking). None downloads the
            archive from `URL` into the Keras cache (`~/.keras/datasets`) once.
        max_len: int. History steps kept per example. Defaults to 50.
        list_size: int. Candidates per example (the target and
            `list_size - 1` negatives). Defaults to 20.
        split: three fractions (train, val, test) summing to 1. Defaults to
            (0.8, 0.1, 0.1).
        item_hash_bins: int. Hash buckets of the movie id embedding. Defaults
            to 16384.
        min_history: int. Earlier ratings a user needs for an example (0 keeps
            every rating, with an empty history for the first ones). Defaults
            to 1.
        seed: int. Seed of the negative sampling and the candidate order.
            Defaults to 0.

    Returns:
        A `MovieLensSequences` with the three splits and the feature / task
        specs; `features` and `tasks` go to `make_dataset` and the model.

    Raises:
        FileNotFoundError: a file or the path is missing.
        ValueError: bad arguments or malformed files (the message names the
            file and the column).

    Example:
    >>> data = load_movielens("/data/ml-100k", max_len=50)  # doctest: +SKIP
    >>> ds = make_dataset(data.train, data.features, data.tasks)  # doctest: +SKIP
    """
    _check_args(max_len, list_size, split, min_history, seed)
    history, candidates, item_specs, profile, query, tasks = movielens_specs(
        max_len=max_len, list_size=list_size, item_hash_bins=item_hash_bins
    )
    source = _download() if path is None else pathlib.Path(os.fspath(path))
    ratings, items, users = _read_files(source)

    # Each user's ratings sorted by (timestamp, movie id).
    order = np.lexsort((ratings["item"], ratings["t"], ratings["user"]))
    user = ratings["user"][order]
    movie = ratings["item"][order]
    stars = ratings["rating"][order]
    t = ratings["t"][order]
    # First position of the user's block and of its run of equal timestamps.
    new_user = np.r_[True, user[1:] != user[:-1]]
    new_time = new_user | np.r_[True, t[1:] != t[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(len(t)), 0))
    tie_start = np.maximum.accumulate(np.where(new_time, np.arange(len(t)), 0))
    num_prior = tie_start - user_start

    examples = np.flatnonzero(num_prior >= min_history)
    if examples.size == 0:
        raise ValueError(
            f"No example: no rating has min_history={min_history} earlier "
            f"ratings of its user in {source}."
        )
    examples = examples[
        np.lexsort((movie[examples], user[examples], t[examples]))
    ]  # final order: by target time
    ex_t = t[examples]
    ex_user = user[examples]
    ex_movie = movie[examples]
    num_examples = examples.size

    # History: positions [tie_start - h, tie_start) of the sorted ratings.
    h = np.minimum(num_prior[examples], max_len)
    steps = np.arange(max_len)
    valid = steps[None, :] < h[:, None]
    index = np.where(valid, (tie_start[examples] - h)[:, None] + steps[None, :], 0)
    hist_movie = np.where(valid, movie[index], INT_PAD)
    hist_t = np.where(valid, t[index], 0)
    hist_rating = np.where(valid, stars[index] - 1, INT_PAD)
    hist_gap = np.where(valid, bucket_gaps(ex_t[:, None] - hist_t), INT_PAD)
    del index

    # Time split at the quantiles of the example times.
    cuts = []
    for fraction in np.cumsum(split)[:2]:
        position = int(round(fraction * num_examples))
        last = position >= num_examples
        cuts.append(np.iinfo(np.int64).max if last else ex_t[position])
    ends = np.searchsorted(ex_t, cuts, side="left")

    # Candidates: the target and popularity-sampled negatives, shuffled.
    train_period = t < cuts[0]
    popularity = np.bincount(movie[train_period], minlength=items.num_rows)
    weights = popularity[items.ids] + 1
    rated = np.zeros((users.num_rows, items.num_rows), dtype=bool)
    rated[user, movie] = True
    rng = np.random.default_rng(seed)
    negatives = _sample_negatives(
        rng, ex_user, rated, items.ids, weights, list_size - 1, source
    )
    candidates_item = np.concatenate([ex_movie[:, None], negatives], axis=1)
    permutation = np.argsort(rng.random((num_examples, list_size)), axis=1)
    candidates_item = np.take_along_axis(candidates_item, permutation, axis=1)
    relevance = (permutation == 0).astype(np.float32)

    hist_safe = np.where(valid, hist_movie, 0)  # row 0 of the item tables is padding
    columns = {
        "history_item": hist_movie,
        "history_genres": items.genres[hist_safe],
        "history_year": items.year[hist_safe],
        "history_rating": hist_rating,
        "history_gap": hist_gap,
        "item": ex_movie,
        "genres": items.genres[ex_movie],
        "year": items.year[ex_movie],
        "candidates_item": candidates_item,
        "candidates_genres": items.genres[candidates_item],
        "candidates_year": items.year[candidates_item],
        "gender": users.gender[ex_user],
        "age": users.age[ex_user],
        "occupation": users.occupation[ex_user],
        "hour": (ex_t // 3_600) % 24,
        "weekday": (ex_t // 86_400 + 3) % 7,  # 1970-01-01 was a Thursday
        "like": (stars[examples] >= 4).astype(np.float32),
        "relevance": relevance,
        "genre": items.flags[ex_movie],
        "user_id": ex_user,
        "timestamp": ex_t,
        "history_timestamp": hist_t,
    }
    columns = {
        name: array.astype(
            np.float32 if array.dtype == np.float32 else np.int64, copy=False
        )
        for name, array in columns.items()
    }
    parts = [slice(0, ends[0]), slice(ends[0], ends[1]), slice(ends[1], None)]
    train, val, test = ({k: v[s] for k, v in columns.items()} for s in parts)
    return MovieLensSequences(
        train=train,
        val=val,
        test=test,
        history=history,
        candidates=candidates,
        item=item_specs,
        profile=profile,
        query=query,
        tasks=tasks,
        popularity=popularity.astype(np.int64),
    )


# ------------------------------------------------------------------------- helpers

_UNSEEN = -2  # marks lookup-table rows of ids absent from u.item / u.user


def _check_args(max_len, list_size, split, min_history, seed) -> None:
    for name, value, least in (
        ("max_len", max_len, 1),
        ("list_size", list_size, 1),
        ("min_history", min_history, 0),
    ):
        if not isinstance(value, (int, np.integer)) or value < least:
            raise ValueError(f"{name} must be an int >= {least}, got {value!r}.")
    if not isinstance(seed, (int, np.integer)):
        raise ValueError(f"seed must be an int, got {seed!r}.")
    try:
        fractions = [float(f) for f in split]
    except (TypeError, ValueError):
        fractions = []
    if (
        len(fractions) != 3
        or any(not f >= 0 for f in fractions)
        or fractions[0] <= 0
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise ValueError(
            "split must be three fractions (train, val, test) >= 0 summing to 1, "
            f"with train > 0; got {split!r}."
        )


def _download() -> pathlib.Path:
    import keras  # deferred: only a download needs it

    return pathlib.Path(
        keras.utils.get_file(fname="ml-100k.zip", origin=URL, cache_subdir="datasets")
    )


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
class _Items:
    ids: np.ndarray  # movie ids of u.item
    genres: np.ndarray  # (max id + 1, K) int64, row = movie id, -1 padded
    year: np.ndarray  # (max id + 1,) int64 year bucket
    flags: np.ndarray  # (max id + 1, 19) float32 multi-hot genres

    @property
    def num_rows(self) -> int:
        return len(self.year)


@dataclasses.dataclass(frozen=True)
class _Users:
    gender: np.ndarray  # (max id + 1,) int64, row = user id
    age: np.ndarray
    occupation: np.ndarray

    @property
    def num_rows(self) -> int:
        return len(self.gender)


def _read_files(source: pathlib.Path) -> tuple[dict, _Items, _Users]:
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
        ("user", "u.user", users.gender, "user"),
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


def _read_items(what: str, raw: bytes) -> _Items:
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
    year[ids] = bucket_years(dates.dt.year.to_numpy(dtype=np.float64))
    # The first MAX_GENRES set flags of each movie, in GENRES order.
    first = np.argsort(flags == 0, axis=1, kind="stable")[:, :MAX_GENRES]
    has = np.arange(MAX_GENRES)[None, :] < flags.sum(axis=1)[:, None]
    genres = np.full((rows, MAX_GENRES), INT_PAD, dtype=np.int64)
    genres[ids] = np.where(has, first, INT_PAD)
    multi_hot = np.zeros((rows, len(GENRES)), dtype=np.float32)
    multi_hot[ids] = flags
    year[0] = max(year[0], INT_PAD)  # row 0 (no movie 0) serves padding lookups
    return _Items(ids=ids, genres=genres, year=year, flags=multi_hot)


def _read_users(what: str, raw: bytes) -> _Users:
    names = ["id", "age", "gender", "occupation", "zip"]
    frame = _read_table(what, raw, "|", names, ["id", "age"])
    ids = frame["id"].to_numpy()
    _check_ids(what, "user id", ids)
    codes = {}
    for column, vocabulary in (("gender", GENDERS), ("occupation", OCCUPATIONS)):
        values = frame[column].str.strip()
        code = pd.Categorical(values, categories=list(vocabulary)).codes
        if (code < 0).any():
            bad = values[code < 0].iloc[0]
            raise ValueError(
                f"{what}: column {column!r} has the unknown value {bad!r}; expected "
                f"one of {list(vocabulary)}."
            )
        codes[column] = code
    rows = int(ids.max()) + 1
    tables = {}
    for column, values in (
        ("gender", codes["gender"]),
        ("age", bucket_ages(frame["age"].to_numpy())),
        ("occupation", codes["occupation"]),
    ):
        table = np.full(rows, _UNSEEN, dtype=np.int64)
        table[ids] = values
        tables[column] = table
    return _Users(**tables)


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


def _sample_negatives(
    rng: np.random.Generator,
    users: np.ndarray,
    rated: np.ndarray,
    pool: np.ndarray,
    weights: np.ndarray,
    k: int,
    source: pathlib.Path,
) -> np.ndarray:
    """`k` distinct movies per row, drawn proportionally to `weights`, not rated.

    Successive draws with replacement, skipping movies the user rated and
    movies already drawn, give exactly sampling without replacement
    proportional to the weights among the user's unrated movies. Rows still
    short of `k` after a round get more draws appended (never restarted, so
    the distribution is exact).
    """
    num_rows = len(users)
    out = np.empty((num_rows, k), dtype=np.int64)
    if k == 0:
        return out
    unrated = (~rated[:, pool]).sum(axis=1)
    short = np.unique(users[unrated[users] < k])
    if short.size:
        raise ValueError(
            f"list_size={k + 1} needs {k} movies a user never rated, but user "
            f"{short[0]} has only {unrated[short[0]]} (of {len(pool)} in u.item of "
            f"{source}); use a smaller list_size."
        )
    # Integer weights: a draw is a uniform slot of `owner`, which repeats each
    # movie `weight` times (an O(1) lookup instead of a search in the CDF).
    owner = np.repeat(pool, weights)
    todo = np.arange(num_rows)
    draws = np.empty((num_rows, 0), dtype=np.int64)
    width = k + k // 2 + 4
    while todo.size:
        picks = rng.integers(0, len(owner), size=(todo.size, width))
        draws = np.concatenate([draws, owner[picks]], axis=1)
        keep = ~rated[users[todo][:, None], draws]
        order = np.argsort(draws, axis=1, kind="stable")
        ordered = np.take_along_axis(draws, order, axis=1)
        repeat = np.zeros_like(keep)
        repeat[:, 1:] = ordered[:, 1:] == ordered[:, :-1]  # not the first occurrence
        np.put_along_axis(keep, order, np.take_along_axis(keep, order, 1) & ~repeat, 1)
        rank = np.cumsum(keep, axis=1)
        done = rank[:, -1] >= k
        chosen = keep[done] & (rank[done] <= k)
        out[todo[done]] = draws[done][chosen].reshape(-1, k)
        todo, draws = todo[~done], draws[~done]
        width *= 2
    return out
