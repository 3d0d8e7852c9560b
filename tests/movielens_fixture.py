"""A small generated MovieLens-100K look-alike, in the exact GroupLens file formats.

`write_movielens` writes `u.data`, `u.item` and `u.user` so that the loader can
be tested without the real (non-redistributable) data. The ratings have
learnable structure and realistic timing:

- each user has two favourite genres and rates movies of those genres more
  often and higher; each movie has a quality that shifts its ratings;
- popular movies (a Zipf-like popularity) are rated more often;
- users rate in sessions (bursts of ratings seconds to minutes apart, some in
  the same second) spread over about seven months from September 1997;
- the last movies are released late: nobody rates them before ~85% of the
  period (new ids after the first period);
- movie 3 has an empty release date (and only the "unknown" genre), movie 2 has
  five genres (more than the loader keeps), one title has a latin-1 character.
"""

from __future__ import annotations

import os
import pathlib

import numpy as np

#: Start of the generated period (1997-09-20 00:00:00 UTC), as in ml-100k.
START = 874_713_600
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun")
MONTHS += ("Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
FIXTURE_OCCUPATIONS = (
    "administrator",
    "artist",
    "educator",
    "engineer",
    "none",
    "other",
    "programmer",
    "retired",
    "student",
    "writer",
)
NUM_GENRES = 19


def write_movielens(
    directory: str | os.PathLike,
    num_users: int = 40,
    num_items: int = 60,
    seed: int = 0,
    *,
    ratings_per_user: tuple[int, int] = (12, 30),
    days: int = 210,
    new_item_fraction: float = 0.15,
) -> pathlib.Path:
    """Write a generated u.data / u.item / u.user into `directory`.

    Args:
        directory: target directory (created if needed).
        num_users: number of users (ids 1..num_users).
        num_items: number of movies (ids 1..num_items), at least 10.
        seed: random seed; the same seed writes the same files.
        ratings_per_user: inclusive range of ratings per user; the upper end
            must leave at least 20 movies each user never rates.
        days: length of the rating period in days.
        new_item_fraction: share of movies (the highest ids) that nobody rates
            before 85% of the period.

    Returns:
        The directory, as a `pathlib.Path`.

    Example:
    >>> path = write_movielens(tmp_path, num_users=5)  # doctest: +SKIP
    """
    if num_items < 10 or ratings_per_user[1] > num_items - 20:
        raise ValueError(
            f"num_items={num_items} must be >= 10 and leave >= 20 unrated movies "
            f"per user (ratings_per_user={ratings_per_user})."
        )
    rng = np.random.default_rng(seed)
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    span = days * 86_400

    # Movies: 1-3 genres (from 1..18), a release year, a popularity, a quality.
    genre_weights = rng.dirichlet(np.full(NUM_GENRES - 1, 0.7))
    flags = np.zeros((num_items, NUM_GENRES), dtype=np.int64)
    for row in range(num_items):
        count = rng.choice([1, 2, 3], p=[0.45, 0.35, 0.2])
        chosen = rng.choice(NUM_GENRES - 1, size=count, replace=False, p=genre_weights)
        flags[row, chosen + 1] = 1
    flags[1] = 0
    flags[1, [1, 2, 5, 15, 16]] = 1  # movie 2: five genres
    flags[2] = 0
    flags[2, 0] = 1  # movie 3: "unknown", no release date
    years = np.where(
        rng.random(num_items) < 0.7,
        rng.integers(1990, 1999, num_items),
        rng.integers(1925, 1990, num_items),
    )
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8
    popularity = popularity[rng.permutation(num_items)]
    popularity[1:3] = popularity.max()  # movies 2 and 3 get rated
    quality = rng.uniform(-1.0, 1.0, num_items)
    num_new = max(1, int(round(new_item_fraction * num_items)))
    available_from = np.zeros(num_items, dtype=np.int64)
    available_from[-num_new:] = rng.integers(
        int(0.85 * span), int(0.95 * span), num_new
    )

    item_lines = []
    for row in range(num_items):
        movie_id = row + 1
        title = f"Movie {movie_id} ({years[row]})"
        if movie_id == 5:
            title = f"Café Society ({years[row]})"
        date = f"{rng.integers(1, 29):02d}-{MONTHS[rng.integers(12)]}-{years[row]}"
        url = f"http://us.imdb.com/M/title-exact?Movie%20{movie_id}"
        if movie_id == 3:
            title, date, url = "unknown", "", ""
        fields = [str(movie_id), title, date, "", url, *map(str, flags[row])]
        item_lines.append("|".join(fields))
    (directory / "u.item").write_bytes(("\n".join(item_lines) + "\n").encode("latin-1"))

    # Users.
    user_lines = []
    for user_id in range(1, num_users + 1):
        age = int(rng.integers(7, 74))
        gender = "F" if rng.random() < 0.3 else "M"
        occupation = FIXTURE_OCCUPATIONS[rng.integers(len(FIXTURE_OCCUPATIONS))]
        zip_code = "T8H1N" if user_id == 2 else f"{rng.integers(0, 100_000):05d}"
        user_lines.append(f"{user_id}|{age}|{gender}|{occupation}|{zip_code}")
    (directory / "u.user").write_text("\n".join(user_lines) + "\n")

    # Ratings: sessions of bursts, item choice by popularity and taste.
    rows = []
    for user_id in range(1, num_users + 1):
        favourites = rng.choice(NUM_GENRES - 1, size=2, replace=False) + 1
        likes = flags[:, favourites].any(axis=1)
        count = int(rng.integers(ratings_per_user[0], ratings_per_user[1] + 1))
        first = int(rng.integers(0, int(0.6 * span)))
        num_sessions = int(rng.integers(2, 6))
        sessions = np.sort(rng.integers(first, span - 3_600, num_sessions))
        sessions[0] = first
        per_session = np.bincount(
            rng.integers(0, num_sessions, count), minlength=num_sessions
        )
        rated = np.zeros(num_items, dtype=bool)
        for start, size in zip(sessions, per_session):
            now = int(start)
            for _ in range(size):
                # Same second (15%), seconds to minutes later otherwise.
                now += 0 if rng.random() < 0.15 else int(rng.integers(1, 300))
                open_ = ~rated & (available_from <= now)
                if not open_.any():
                    continue
                weight = popularity * np.where(likes, 4.0, 1.0) * open_
                row = rng.choice(num_items, p=weight / weight.sum())
                rated[row] = True
                score = 2.6 + 1.4 * likes[row] + 0.5 * quality[row]
                rating = int(np.clip(np.rint(score + rng.normal(0, 0.6)), 1, 5))
                rows.append((user_id, row + 1, rating, START + now))
    order = rng.permutation(len(rows))  # u.data is not sorted
    lines = ["\t".join(map(str, rows[i])) for i in order]
    (directory / "u.data").write_text("\n".join(lines) + "\n")
    return directory
