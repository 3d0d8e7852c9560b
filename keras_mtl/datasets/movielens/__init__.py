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

The package: `specs` (vocabularies, buckets, `movielens_specs`,
`MovieLensSequences`), `reader` (the files -> checked tables) and `sequences`
(the steps from ratings to examples); `load_movielens` here runs them in order.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np

from keras_mtl._checks import check_int_at_least
from keras_mtl.datasets.movielens.reader import (
    MOVIELENS_FILES,
    URL,
    download,
    read_files,
)
from keras_mtl.datasets.movielens.sequences import (
    _sample_negatives,  # noqa: F401  (tested through this module)
    assemble,
    build_candidates,
    build_histories,
    order_ratings,
    select_examples,
    split_by_time,
    time_cuts,
    train_popularity,
)
from keras_mtl.datasets.movielens.specs import (
    AGE_EDGES,
    GAP_EDGES_SECONDS,
    GENDERS,
    GENRES,
    MAX_GENRES,
    OCCUPATIONS,
    RATING_EDGES,
    YEAR_EDGES,
    MovieLensSequences,
    bucket_ages,
    bucket_gaps,
    bucket_years,
    movielens_specs,
)

__all__ = [
    "AGE_EDGES",
    "GAP_EDGES_SECONDS",
    "GENDERS",
    "GENRES",
    "MAX_GENRES",
    "MOVIELENS_FILES",
    "OCCUPATIONS",
    "RATING_EDGES",
    "URL",
    "YEAR_EDGES",
    "MovieLensSequences",
    "bucket_ages",
    "bucket_gaps",
    "bucket_years",
    "load_movielens",
    "movielens_specs",
]


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

    **Raw values.** The columns hold what a production log has, and the specs
    hold the vocabularies and bucket edges, so the model (and its SavedModel)
    looks the values up and buckets them itself: gender and occupation as the
    strings of u.user, ages and release years in years, ratings in stars, gaps
    in seconds. Three inputs are derived from timestamps: `hour` / `weekday`
    of the request time and each step's `gap` (request time minus step time);
    the loader computes them for training, and an export computes them in its
    graph from the raw `timestamp` and `history_timestamp`
    (`preprocessor=keras_mtl.layers.TimeFeatures(**ml.time_features)`), so a
    serving client sends Unix times.

    **Columns** of each split dict (N rows; int64 unless stated; L = `max_len`,
    K = `MAX_GENRES`, S = `list_size`):

    - `history_item` (N, L): movie ids of the history steps, -1 = padding.
    - `history_genres` (N, L, K): genre ids (0..18, see `GENRES`) of each step's
      movie, the first K in `GENRES` order, padded with -1.
    - `history_year` (N, L): release year (bucketised by `YEAR_EDGES` in the
      model), -1 if the movie has no release date.
    - `history_rating` (N, L): the rating, 1..5 stars (`RATING_EDGES`).
    - `history_gap` (N, L): target time minus step time, in seconds (>= 1;
      bucketised by `GAP_EDGES_SECONDS`).
    - `item` (N,), `genres` (N, K), `year` (N,): the target movie.
    - `candidates_item` (N, S), `candidates_genres` (N, S, K),
      `candidates_year` (N, S): the target movie and S - 1 negatives, in random
      positions. Negatives are drawn without replacement, proportionally to
      the movie's number of ratings in the train period plus one, among the
      movies the user never rates in the whole data.
    - `gender` (N,) and `occupation` (N,): str objects, as in u.user (one of
      `GENDERS` / `OCCUPATIONS`); `age` (N,): years (bucketised by
      `AGE_EDGES`).
    - `hour` (N,) 0..23 and `weekday` (N,) 0..6 (Monday = 0) of the target
      time, in UTC.
    - Labels: `like` (N,) float32, 1 if the target rating is >= 4 else 0;
      `relevance` (N, S) float32, 1 at the target's position, 0 elsewhere;
      `genre` (N, 19) float32, the multi-hot genre flags of the target movie.
    - `timestamp` (N,): the target (request) time and `history_timestamp`
      (N, L) the step times (-1 for padding), Unix seconds: what a serving
      request sends instead of `hour`, `weekday` and `history_gap` (see
      above).
    - Extra for checks (not a model input): `user_id` (N,).

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
    source = download() if path is None else pathlib.Path(os.fspath(path))
    ratings, items, users = read_files(source)
    timeline = order_ratings(ratings)
    examples = select_examples(timeline, min_history, source)
    histories = build_histories(timeline, examples, max_len)
    cuts, ends = time_cuts(timeline.t[examples], split)
    popularity = train_popularity(timeline, cuts[0], items.num_rows)
    candidate_items, relevance = build_candidates(
        timeline, examples, items, users, popularity, list_size, seed, source
    )
    columns = assemble(
        timeline, examples, histories, candidate_items, relevance, items, users
    )
    train, val, test = split_by_time(columns, ends)
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


def _check_args(max_len, list_size, split, min_history, seed) -> None:
    for name, value, least in (
        ("max_len", max_len, 1),
        ("list_size", list_size, 1),
        ("min_history", min_history, 0),
    ):
        check_int_at_least("load_movielens", name, value, least)
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
