"""MovieLens-100K's vocabularies, buckets and specs, and the `MovieLensSequences` result.

The fixed category lists (`GENRES`, `OCCUPATIONS`, `GENDERS`), the bucket edges
of ages, release years, ratings and history time gaps, `movielens_specs` (the
feature and task specs, no data needed) and the dataclass `load_movielens`
returns. The specs carry the vocabularies and bucket edges, so the data and
the exported model hold raw values (a gender "F", an age 24, a year 1995, a
rating 4, a gap in seconds) and the model looks them up and buckets them;
the `bucket_*` helpers say in numpy what the model computes.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from keras_mtl.features import INT_PAD, SequenceFeature, SparseFeature
from keras_mtl.tasks import Task

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
#: release date has year -1 (padding: no year embedding).
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
#: Lower edges of the rating buckets 1..4: a rating r (1..5 stars) is bucket
#: r - 1, one bucket per number of stars.
RATING_EDGES: tuple[int, ...] = (2, 3, 4, 5)


@dataclasses.dataclass(frozen=True)
class MovieLensSequences:
    """The three time-ordered splits and the specs of `load_movielens`.

    Args:
        train: dict of column name to numpy array: examples with the earliest
            target times.
        val: dict of columns: the middle period.
        test: dict of columns: the latest period.
        history: `SequenceFeature` "history": item fields `item`, `genres`,
            `year` and property fields `rating`, `gap` (raw stars and seconds,
            bucketised in the model).
        candidates: `SequenceFeature` "candidates": the same item fields, no
            properties, `max_len = list_size`.
        item: list of `SparseFeature`: the target item's inputs `item`,
            `genres`, `year` (the same specs as `history.item`).
        profile: list of `SparseFeature`: `gender`, `occupation` (the strings
            of u.user) and `age` (years, bucketised in the model).
        query: list of `SparseFeature`: `hour`, `weekday` (ints the loader
            derives from the request's Unix time, see `load_movielens`; an
            export derives them in its graph with `time_features`).
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
    def time_features(self) -> dict:
        """The config of the `keras_mtl.layers.TimeFeatures` that derives the
        `hour`, `weekday` and `history_gap` inputs from the raw `timestamp`
        and `history_timestamp` columns, as the loader does:
        `export_dupn(model, path,
        preprocessor=keras_mtl.layers.TimeFeatures(**ml.time_features))`
        serves raw timestamps."""
        return {
            "timestamp": "timestamp",
            "hour": "hour",
            "weekday": "weekday",
            "elapsed": {f"{self.history.name}_gap": f"{self.history.name}_timestamp"},
        }

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
    """Release-year bucket ids (0..15) of `YEAR_EDGES`; no date (NaN or -1)
    gives -1.

    Args:
        years: array of years, NaN or -1 where unknown.

    Returns:
        int64 array of bucket ids, same shape.

    Example:
    >>> bucket_years(np.array([1925.0, 1985.0, 1995.0, np.nan, -1])).tolist()
    [0, 6, 12, -1, -1]
    """
    years = np.asarray(years, dtype=np.float64)
    unknown = np.isnan(years) | (years == INT_PAD)
    ids = np.searchsorted(YEAR_EDGES, np.where(unknown, 0, years), side="right")
    return np.where(unknown, INT_PAD, ids).astype(np.int64)


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

    The model takes raw values: `year`, `age`, `rating` and `gap` are
    bucketised numbers (`SparseFeature(boundaries=...)` with `YEAR_EDGES`,
    `AGE_EDGES`, `RATING_EDGES`, `GAP_EDGES_SECONDS`; int64, -1 for none),
    `gender` and `occupation` string vocabularies (`GENDERS`, `OCCUPATIONS`).
    `hour` and `weekday` are integers derived from the request time (0..23,
    0..6), and `gap` is the request time minus the step's time, in seconds:
    an export derives the three from raw timestamps in its graph
    (`MovieLensSequences.time_features`).

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
        SparseFeature("year", boundaries=YEAR_EDGES, dtype="int64", embedding_dim=8),
    ]
    properties = [
        SparseFeature(
            "rating", boundaries=RATING_EDGES, dtype="int64", embedding_dim=4
        ),
        SparseFeature(
            "gap", boundaries=GAP_EDGES_SECONDS, dtype="int64", embedding_dim=4
        ),
    ]
    history = SequenceFeature(
        "history", item=item, properties=properties, max_len=max_len
    )
    candidates = SequenceFeature("candidates", item=item, max_len=list_size)
    profile = [
        SparseFeature("gender", vocabulary=GENDERS, embedding_dim=4),
        SparseFeature("age", boundaries=AGE_EDGES, dtype="int64", embedding_dim=4),
        SparseFeature("occupation", vocabulary=OCCUPATIONS, embedding_dim=8),
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
