"""From ratings to examples: the steps of `load_movielens` after reading the files.

`order_ratings` sorts each user's ratings in time; `select_examples` picks the
target ratings; `build_histories` takes each target's earlier ratings;
`time_cuts` finds the split points; `train_popularity` and `build_candidates`
draw the candidate lists; `assemble` writes the columns and `split_by_time`
cuts them into train, val and test.
"""

from __future__ import annotations

import dataclasses
import pathlib
from collections.abc import Sequence

import numpy as np

from keras_mtl.datasets.movielens.reader import Items, Users
from keras_mtl.features import INT_PAD


@dataclasses.dataclass(frozen=True)
class Timeline:
    """Every rating, sorted by (user id, timestamp, movie id).

    Args:
        user, movie, stars, t: int64 arrays, one entry per rating.
        tie_start: position of the first rating of the same user and second.
        num_prior: the user's ratings strictly before this one's second (the
            history a rating at this position may use).
    """

    user: np.ndarray
    movie: np.ndarray
    stars: np.ndarray
    t: np.ndarray
    tie_start: np.ndarray
    num_prior: np.ndarray


def order_ratings(ratings: dict[str, np.ndarray]) -> Timeline:
    """Each user's ratings sorted by (timestamp, movie id), with their ties."""
    order = np.lexsort((ratings["item"], ratings["t"], ratings["user"]))
    user = ratings["user"][order]
    t = ratings["t"][order]
    # First position of the user's block and of its run of equal timestamps.
    new_user = np.r_[True, user[1:] != user[:-1]]
    new_time = new_user | np.r_[True, t[1:] != t[:-1]]
    user_start = np.maximum.accumulate(np.where(new_user, np.arange(len(t)), 0))
    tie_start = np.maximum.accumulate(np.where(new_time, np.arange(len(t)), 0))
    return Timeline(
        user=user,
        movie=ratings["item"][order],
        stars=ratings["rating"][order],
        t=t,
        tie_start=tie_start,
        num_prior=tie_start - user_start,
    )


def select_examples(
    timeline: Timeline, min_history: int, source: pathlib.Path
) -> np.ndarray:
    """Positions in `timeline` of the target ratings: those with at least
    `min_history` earlier ratings, ordered by (timestamp, user id, movie id)."""
    examples = np.flatnonzero(timeline.num_prior >= min_history)
    if examples.size == 0:
        raise ValueError(
            f"No example: no rating has min_history={min_history} earlier "
            f"ratings of its user in {source}."
        )
    keys = (timeline.movie[examples], timeline.user[examples], timeline.t[examples])
    return examples[np.lexsort(keys)]


@dataclasses.dataclass(frozen=True)
class Histories:
    """The history steps of each example, `(N, max_len)`, oldest first.

    Args:
        valid: bool, False on padding steps.
        movie: movie ids, -1 on padding.
        t: timestamps, -1 on padding.
        rating: the rating (1..5), -1 on padding.
        gap: target time minus step time in seconds (>= 1), -1 on padding.
    """

    valid: np.ndarray
    movie: np.ndarray
    t: np.ndarray
    rating: np.ndarray
    gap: np.ndarray


def build_histories(
    timeline: Timeline, examples: np.ndarray, max_len: int
) -> Histories:
    """The most recent `max_len` ratings strictly before each example's second."""
    # Positions [tie_start - h, tie_start) of the sorted ratings.
    h = np.minimum(timeline.num_prior[examples], max_len)
    steps = np.arange(max_len)
    valid = steps[None, :] < h[:, None]
    start = timeline.tie_start[examples] - h
    index = np.where(valid, start[:, None] + steps[None, :], 0)
    t = np.where(valid, timeline.t[index], INT_PAD)
    gap = timeline.t[examples][:, None] - t
    return Histories(
        valid=valid,
        movie=np.where(valid, timeline.movie[index], INT_PAD),
        t=t,
        rating=np.where(valid, timeline.stars[index], INT_PAD),
        gap=np.where(valid, gap, INT_PAD),
    )


def time_cuts(times: np.ndarray, split: Sequence[float]) -> tuple[list, np.ndarray]:
    """`(cut times, end positions)` of train and val in the sorted `times`.

    The cuts are the times at the `split[0]` and `split[0] + split[1]`
    fractions of the examples (the largest int64 if a fraction reaches the
    end); examples of the cut's second go to the later split.
    """
    cuts = []
    for fraction in np.cumsum(split)[:2]:
        position = int(round(fraction * len(times)))
        last = position >= len(times)
        cuts.append(np.iinfo(np.int64).max if last else times[position])
    return cuts, np.searchsorted(times, cuts, side="left")


def train_popularity(timeline: Timeline, cut: int, num_movies: int) -> np.ndarray:
    """Ratings per movie id before the time `cut` (the train period)."""
    return np.bincount(timeline.movie[timeline.t < cut], minlength=num_movies)


def build_candidates(
    timeline: Timeline,
    examples: np.ndarray,
    items: Items,
    users: Users,
    popularity: np.ndarray,
    list_size: int,
    seed: int,
    source: pathlib.Path,
) -> tuple[np.ndarray, np.ndarray]:
    """`(candidate movie ids, relevance)`, both `(N, list_size)`: the target and
    `list_size - 1` popularity-sampled negatives, in random positions."""
    weights = popularity[items.ids] + 1
    rated = np.zeros((users.num_rows, items.num_rows), dtype=bool)
    rated[timeline.user, timeline.movie] = True
    rng = np.random.default_rng(seed)
    negatives = _sample_negatives(
        rng, timeline.user[examples], rated, items.ids, weights, list_size - 1, source
    )
    movies = np.concatenate([timeline.movie[examples][:, None], negatives], axis=1)
    permutation = np.argsort(rng.random((len(examples), list_size)), axis=1)
    movies = np.take_along_axis(movies, permutation, axis=1)
    return movies, (permutation == 0).astype(np.float32)


def assemble(
    timeline: Timeline,
    examples: np.ndarray,
    histories: Histories,
    candidates: np.ndarray,
    relevance: np.ndarray,
    items: Items,
    users: Users,
) -> dict[str, np.ndarray]:
    """The columns of all examples (see `load_movielens`): int64, float32, or
    str objects (`gender`, `occupation`)."""
    t, user, movie = (a[examples] for a in (timeline.t, timeline.user, timeline.movie))
    # Row 0 of the item tables (no movie 0) serves the padding steps.
    steps = np.where(histories.valid, histories.movie, 0)
    columns = {
        "history_item": histories.movie,
        "history_genres": items.genres[steps],
        "history_year": items.year[steps],
        "history_rating": histories.rating,
        "history_gap": histories.gap,
        "item": movie,
        "genres": items.genres[movie],
        "year": items.year[movie],
        "candidates_item": candidates,
        "candidates_genres": items.genres[candidates],
        "candidates_year": items.year[candidates],
        "gender": users.gender[user],
        "age": users.age[user],
        "occupation": users.occupation[user],
        "hour": (t // 3_600) % 24,
        "weekday": (t // 86_400 + 3) % 7,  # 1970-01-01 was a Thursday
        "like": (timeline.stars[examples] >= 4).astype(np.float32),
        "relevance": relevance,
        "genre": items.flags[movie],
        "user_id": user,
        "timestamp": t,
        "history_timestamp": histories.t,
    }
    return {
        name: array
        if array.dtype == object
        else array.astype(
            np.float32 if array.dtype == np.float32 else np.int64, copy=False
        )
        for name, array in columns.items()
    }


def split_by_time(
    columns: dict[str, np.ndarray], ends: np.ndarray
) -> tuple[dict, dict, dict]:
    """`(train, val, test)`: the rows before `ends[0]`, up to `ends[1]`, after."""
    parts = [slice(0, ends[0]), slice(ends[0], ends[1]), slice(ends[1], None)]
    train, val, test = ({k: v[s] for k, v in columns.items()} for s in parts)
    return train, val, test


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
