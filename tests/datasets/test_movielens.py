import datetime
import re
import time
import zipfile
from collections import defaultdict

import numpy as np
import pandas as pd
import pytest

from keras_mtl.data import make_dataset
from keras_mtl.datasets import movielens
from keras_mtl.datasets.movielens import (
    GAP_EDGES_SECONDS,
    GENRES,
    MAX_GENRES,
    bucket_ages,
    bucket_gaps,
    bucket_years,
    load_movielens,
)
from tests.movielens_fixture import write_movielens

MAX_LEN = 8
LIST_SIZE = 10
K = MAX_GENRES
# Independent restatements of the documented buckets (not imported from the loader).
GAPS = [60, 600, 3_600, 21_600, 86_400, 604_800, 2_592_000, 7_776_000]
# Positions in the sorted list of the 21 occupations of u.occupation.
OCCUPATION_ID = {
    "administrator": 0,
    "artist": 1,
    "educator": 3,
    "engineer": 4,
    "none": 12,
    "other": 13,
    "programmer": 14,
    "retired": 15,
    "student": 18,
    "writer": 20,
}


def gap_bucket(seconds):
    return sum(seconds >= edge for edge in GAPS)


def year_of(date):
    return int(date[-4:]) if date else -1


def year_bucket(date):
    if not date:
        return -1
    year = int(date[-4:])
    if year < 1990:
        return max(0, (year - 1920) // 10)
    return min(year - 1990 + 7, 15)


def read_raw(directory):
    """The fixture's files parsed line by line, without pandas."""
    ratings = [
        tuple(int(v) for v in line.split("\t"))
        for line in (directory / "u.data").read_text().splitlines()
    ]
    items = {}
    for line in (directory / "u.item").read_text(encoding="latin-1").splitlines():
        fields = line.split("|")
        items[int(fields[0])] = (fields[2], [int(f) for f in fields[5:]])
    users = {}
    for line in (directory / "u.user").read_text().splitlines():
        uid, age, gender, occupation, _ = line.split("|")
        users[int(uid)] = (int(age), gender, occupation)
    return ratings, items, users


def concat(data):
    return {
        k: np.concatenate([data.train[k], data.val[k], data.test[k]])
        for k in data.train
    }


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    return write_movielens(tmp_path_factory.mktemp("ml-100k"))


@pytest.fixture(scope="module")
def raw(fixture_dir):
    return read_raw(fixture_dir)


@pytest.fixture(scope="module")
def data(fixture_dir):
    return load_movielens(fixture_dir, max_len=MAX_LEN, list_size=LIST_SIZE)


@pytest.fixture(scope="module")
def columns(data):
    return concat(data)


# --------------------------------------------------------------------- specs, shapes


def test_specs(data):
    assert GENRES[0] == "unknown" and GENRES[4] == "Children's" and len(GENRES) == 19
    assert data.history.name == "history" and data.history.max_len == MAX_LEN
    assert data.history.input_names == [
        "history_item",
        "history_genres",
        "history_year",
        "history_rating",
        "history_gap",
    ]
    assert data.item == list(data.history.item)
    item, genres, year = data.item
    assert (item.name, item.hash_bins, item.dtype) == ("item", 16384, "int64")
    assert (genres.name, genres.vocabulary_size, genres.max_len) == ("genres", 19, K)
    assert (year.name, year.dtype, year.num_rows) == ("year", "int64", 16)
    assert year.boundaries == movielens.YEAR_EDGES
    rating, gap = data.history.properties
    assert (rating.boundaries, rating.num_rows) == ((2, 3, 4, 5), 5)
    assert (gap.boundaries, gap.num_rows, gap.dtype) == (tuple(GAPS), 9, "int64")
    assert data.candidates.name == "candidates"
    assert data.candidates.item == data.history.item
    assert data.candidates.properties == ()
    assert data.candidates.max_len == LIST_SIZE
    gender, age, occupation = data.profile
    assert (gender.name, gender.vocabulary, gender.dtype) == (
        "gender",
        ("F", "M"),
        "string",
    )
    assert (age.name, age.boundaries, age.num_rows) == ("age", movielens.AGE_EDGES, 7)
    assert (occupation.name, occupation.vocabulary) == (
        "occupation",
        movielens.OCCUPATIONS,
    )
    assert [(f.name, f.vocabulary_size) for f in data.query] == [
        ("hour", 24),
        ("weekday", 7),
    ]
    assert [(t.name, t.type, t.label_column) for t in data.tasks] == [
        ("ctr", "binary", "like"),
        ("l2r", "ranking", "relevance"),
        ("genre", "multiclass", "genre"),
    ]
    assert data.tasks[1].list_size == LIST_SIZE and data.tasks[2].num_classes == 19
    assert data.features == [
        data.history,
        *data.item,
        data.candidates,
        *data.profile,
        *data.query,
    ]
    assert load_movielens.__module__ == "keras_mtl.datasets.movielens"
    assert movielens.URL.endswith("/ml-100k.zip")


def test_shapes_and_dtypes(data):
    L, S = MAX_LEN, LIST_SIZE
    expected = {
        "history_item": ((L,), np.int64),
        "history_genres": ((L, K), np.int64),
        "history_year": ((L,), np.int64),
        "history_rating": ((L,), np.int64),
        "history_gap": ((L,), np.int64),
        "item": ((), np.int64),
        "genres": ((K,), np.int64),
        "year": ((), np.int64),
        "candidates_item": ((S,), np.int64),
        "candidates_genres": ((S, K), np.int64),
        "candidates_year": ((S,), np.int64),
        "gender": ((), object),
        "age": ((), np.int64),
        "occupation": ((), object),
        "hour": ((), np.int64),
        "weekday": ((), np.int64),
        "like": ((), np.float32),
        "relevance": ((S,), np.float32),
        "genre": ((19,), np.float32),
        "user_id": ((), np.int64),
        "timestamp": ((), np.int64),
        "history_timestamp": ((L,), np.int64),
    }
    for split in (data.train, data.val, data.test):
        assert sorted(split) == sorted(expected)
        n = len(split["item"])
        assert n > 0
        for name, (shape, dtype) in expected.items():
            assert split[name].shape == (n, *shape), name
            assert split[name].dtype == dtype, name


def test_make_dataset_accepts_every_split(data):
    ds = make_dataset(data.val, data.features, data.tasks, batch_size=16, shuffle=False)
    x, y = next(iter(ds))
    assert x["history_genres"].shape == (16, MAX_LEN, K)
    assert x["candidates_item"].shape == (16, LIST_SIZE)
    assert y["l2r"].shape == (16, LIST_SIZE) and y["genre"].shape == (16, 19)
    np.testing.assert_array_equal(x["item"].numpy(), data.val["item"][:16])


# ------------------------------------------------------------------ history, leakage


def test_history_is_the_past_in_time_order_padded_at_the_end(columns):
    hist_t, t = columns["history_timestamp"], columns["timestamp"]
    valid = columns["history_item"] != -1
    assert valid[:, 0].all()  # min_history=1
    lengths = valid.sum(axis=1)
    np.testing.assert_array_equal(valid, np.arange(MAX_LEN) < lengths[:, None])
    assert (hist_t[valid] < np.broadcast_to(t[:, None], hist_t.shape)[valid]).all()
    assert (np.diff(np.where(valid, hist_t, np.iinfo(np.int64).max), axis=1) >= 0).all()
    for name in ("history_year", "history_rating", "history_gap", "history_timestamp"):
        assert (columns[name][~valid] == -1).all(), name
    assert (columns["history_genres"][~valid] == -1).all()
    assert (columns["history_genres"][valid][:, 0] >= 0).all()
    assert lengths.max() == MAX_LEN  # some histories are truncated


def test_histories_match_a_naive_reference(columns, raw):
    ratings, items, _ = raw
    by_user = defaultdict(list)
    for user, item, rating, t in ratings:
        by_user[user].append((t, item, rating))
    expected = {}
    for user, rows in by_user.items():
        rows.sort()
        for t, item, rating in rows:
            prior = [row for row in rows if row[0] < t]
            if prior:
                expected[(user, item)] = (t, rating, prior[-MAX_LEN:])
    got = list(zip(columns["user_id"].tolist(), columns["item"].tolist()))
    assert len(got) == len(set(got)) == len(expected)
    assert set(got) == set(expected)
    for row, key in enumerate(got):
        t, rating, prior = expected[key]
        assert columns["timestamp"][row] == t
        assert columns["like"][row] == float(rating >= 4)
        n = len(prior)
        assert columns["history_item"][row, :n].tolist() == [p[1] for p in prior]
        assert columns["history_rating"][row, :n].tolist() == [p[2] for p in prior]
        assert columns["history_timestamp"][row, :n].tolist() == [p[0] for p in prior]
        assert columns["history_gap"][row, :n].tolist() == [t - p[0] for p in prior]
        assert columns["history_year"][row, :n].tolist() == [
            year_of(items[p[1]][0]) for p in prior
        ]
        # The documented buckets, restated independently, of those raw values.
        gaps = columns["history_gap"][row, :n]
        assert bucket_gaps(gaps).tolist() == [gap_bucket(t - p[0]) for p in prior]
        assert bucket_years(columns["history_year"][row, :n]).tolist() == [
            year_bucket(items[p[1]][0]) for p in prior
        ]


def test_a_hand_picked_example(tmp_path):
    """Ties (same second), truncation to max_len, gaps, profile, query, split."""
    directory = write_movielens(tmp_path, num_users=5)
    base = 880_000_000  # 1997-11-20 04:26:40 UTC, a Thursday
    lines = [
        (1, 15, 4, base + 100_000),
        (2, 10, 4, base + 50),
        (1, 11, 3, base),
        (1, 13, 1, base + 4_000),
        (1, 10, 5, base),
        (2, 20, 2, base + 8 * 86_400),
        (1, 14, 2, base + 4_000),
        (1, 12, 4, base + 30),
    ]
    (directory / "u.data").write_text(
        "".join("\t".join(map(str, line)) + "\n" for line in lines)
    )
    (directory / "u.user").write_text("1|24|F|writer|85711\n2|56|M|student|T8H1N\n")
    data = load_movielens(directory, max_len=3, list_size=5, split=(0.5, 0.25, 0.25))
    # 5 examples in time order; 13 and 14 share a second, so they stay together.
    assert data.train["item"].tolist() == [12]
    assert data.val["item"].tolist() == [13, 14, 15]
    assert data.test["item"].tolist() == [20]
    x = concat(data)
    assert x["user_id"].tolist() == [1, 1, 1, 1, 2]
    assert x["history_item"].tolist() == [
        [10, 11, -1],  # the two ratings of second `base`, ordered by movie id
        [10, 11, 12],  # 14, rated in the same second as 13, is not history
        [10, 11, 12],
        [12, 13, 14],  # the last max_len=3 of 5 earlier ratings
        [10, -1, -1],
    ]
    assert x["history_rating"].tolist() == [
        [5, 3, -1],
        [5, 3, 4],
        [5, 3, 4],
        [4, 1, 2],
        [4, -1, -1],
    ]
    assert x["history_gap"].tolist() == [
        [30, 30, -1],
        [4_000, 4_000, 3_970],
        [4_000, 4_000, 3_970],
        [99_970, 96_000, 96_000],
        [691_150, -1, -1],
    ]
    assert bucket_gaps(x["history_gap"]).tolist() == [  # -1 pads: masked anyway
        [0, 0, 0],
        [3, 3, 3],
        [3, 3, 3],
        [5, 5, 5],
        [6, 0, 0],
    ]
    assert x["like"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]
    assert x["hour"].tolist() == [4, 5, 5, 8, 4]
    assert x["weekday"].tolist() == [3, 3, 3, 4, 4]
    for t, hour, weekday in zip(x["timestamp"], x["hour"], x["weekday"]):
        moment = datetime.datetime.fromtimestamp(int(t), datetime.timezone.utc)
        assert (moment.hour, moment.weekday()) == (hour, weekday)
    assert x["gender"].tolist() == ["F", "F", "F", "F", "M"]
    assert x["age"].tolist() == [24, 24, 24, 24, 56]
    assert x["occupation"].tolist() == ["writer"] * 4 + ["student"]
    # Negatives: movies the user never rates (not 10-15 for user 1, not 10/20 for 2).
    for row in range(5):
        rated = {10, 11, 12, 13, 14, 15} if row < 4 else {10, 20}
        others = set(x["candidates_item"][row].tolist()) - {x["item"][row]}
        assert len(others) == 4 and not others & rated


def test_min_history(fixture_dir, raw):
    ratings = raw[0]
    all_examples = concat(load_movielens(fixture_dir, min_history=0, list_size=5))
    assert len(all_examples["item"]) == len(ratings)
    first = all_examples["history_item"][:, 0] == -1  # no earlier rating
    earliest = defaultdict(lambda: np.inf)
    for user, _, _, t in ratings:
        earliest[user] = min(earliest[user], t)
    expected = sum(t == earliest[user] for user, _, _, t in ratings)
    assert first.sum() == expected
    three = concat(load_movielens(fixture_dir, min_history=3, list_size=5))
    assert ((three["history_item"] != -1).sum(axis=1) >= 3).all()
    counts = (all_examples["history_item"] != -1).sum(axis=1)
    assert len(three["item"]) == (counts >= 3).sum()


# ------------------------------------------------------------------- item fields, labels


def test_item_fields_and_genre_label(columns, raw):
    items = raw[1]
    genres = np.full((max(items) + 1, K), -1)
    years = np.full(max(items) + 1, -1)
    flags = np.zeros((max(items) + 1, 19), dtype=np.float32)
    for movie, (date, movie_flags) in items.items():
        ids = [g for g, f in enumerate(movie_flags) if f][:K]
        genres[movie, : len(ids)] = ids
        years[movie] = year_of(date)
        flags[movie] = movie_flags
    np.testing.assert_array_equal(columns["genre"], flags[columns["item"]])
    # The same item fields for the target, the history steps and the candidates.
    for prefix in ("", "history_", "candidates_"):
        movies = columns[f"{prefix}item"]
        valid = movies != -1
        assert valid.any()
        np.testing.assert_array_equal(
            columns[f"{prefix}genres"][valid], genres[movies[valid]]
        )
        np.testing.assert_array_equal(
            columns[f"{prefix}year"][valid], years[movies[valid]]
        )


def test_special_movies(fixture_dir):
    data = concat(load_movielens(fixture_dir, min_history=0, list_size=5))
    by_movie = {m: r for r, m in enumerate(data["item"].tolist())}
    five = by_movie[2]  # five genres: Action, Adventure, Comedy, Sci-Fi, Thriller
    assert data["genres"][five].tolist() == [1, 2, 5, 15]
    assert np.flatnonzero(data["genre"][five]).tolist() == [1, 2, 5, 15, 16]
    empty_date = by_movie[3]
    assert data["year"][empty_date] == -1
    assert data["genres"][empty_date].tolist() == [0, -1, -1, -1]


def test_bucket_helpers():
    seconds = [1, 59, 60, 599, 600, 3_599, 3_600, 21_599, 21_600, 86_399, 86_400]
    seconds += [604_799, 604_800, 2_591_999, 2_592_000, 7_775_999, 7_776_000, 10**9]
    expected = [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8]
    assert bucket_gaps(np.array(seconds)).tolist() == expected
    assert list(GAP_EDGES_SECONDS) == GAPS
    years = [1922, 1929, 1930, 1939, 1989, 1990, 1995, 1997, 1998, np.nan]
    assert bucket_years(np.array(years)).tolist() == [0, 0, 1, 1, 6, 7, 12, 14, 15, -1]
    ages = [7, 17, 18, 24, 25, 34, 35, 44, 45, 49, 50, 55, 56, 73]
    assert bucket_ages(np.array(ages)).tolist() == [
        0,
        0,
        1,
        1,
        2,
        2,
        3,
        3,
        4,
        4,
        5,
        5,
        6,
        6,
    ]


def test_profile_and_query(columns, raw):
    users = raw[2]
    for row, user in enumerate(columns["user_id"].tolist()):
        assert (
            columns["age"][row],
            columns["gender"][row],
            columns["occupation"][row],
        ) == users[user]
    assert len(movielens.OCCUPATIONS) == 21
    assert list(movielens.OCCUPATIONS) == sorted(movielens.OCCUPATIONS)
    moments = [
        datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
        for t in columns["timestamp"].tolist()
    ]
    assert columns["hour"].tolist() == [m.hour for m in moments]
    assert columns["weekday"].tolist() == [m.weekday() for m in moments]


# ---------------------------------------------------------------------- candidates


def test_candidate_lists(columns, raw):
    ratings, items, _ = raw
    rated = defaultdict(set)
    for user, item, _, _ in ratings:
        rated[user].add(item)
    cands, relevance = columns["candidates_item"], columns["relevance"]
    assert set(np.unique(relevance).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(relevance.sum(axis=1), 1.0)
    positions = relevance.argmax(axis=1)
    np.testing.assert_array_equal(
        cands[np.arange(len(cands)), positions], columns["item"]
    )
    assert len(set(positions.tolist())) == LIST_SIZE  # the target is shuffled
    for row, user in enumerate(columns["user_id"].tolist()):
        listed = cands[row].tolist()
        assert len(set(listed)) == LIST_SIZE
        assert listed.count(columns["item"][row]) == 1
        negatives = set(listed) - {columns["item"][row]}
        assert negatives <= set(items) and not negatives & rated[user]


def test_new_movies_can_be_negatives(data, raw):
    first_rated = defaultdict(lambda: np.inf)
    for _, item, _, t in raw[0]:
        first_rated[item] = min(first_rated[item], t)
    cut = data.val["timestamp"].min()
    new = {m for m, t in first_rated.items() if t >= cut}
    assert new  # the fixture releases movies late
    assert new & set(data.train["candidates_item"].ravel().tolist())
    assert new & set(data.train["history_item"].ravel().tolist()) == set()


def test_negatives_favour_movies_popular_in_the_train_period(data, raw):
    ratings, items, _ = raw
    cut = data.val["timestamp"].min()
    counts = np.zeros(max(items) + 1)
    unrated = np.ones((max(r[0] for r in ratings) + 1, max(items) + 1), dtype=bool)
    unrated[:, 0] = False
    for user, item, _, t in ratings:
        counts[item] += t < cut
        unrated[user, item] = False
    weights = (counts + 1) * unrated[data.train["user_id"]]
    uniform = (counts * unrated[data.train["user_id"]]).sum(1) / unrated[
        data.train["user_id"]
    ].sum(1)
    weighted = (counts * weights).sum(1) / weights.sum(1)
    negatives = counts[data.train["candidates_item"]] * (data.train["relevance"] == 0)
    got = negatives.sum(1) / (LIST_SIZE - 1)
    # Mean train count of the negatives: close to that of one draw proportional
    # to count + 1 (drawing without replacement flattens it a little), well
    # above that of uniform draws among the unrated movies.
    assert got.mean() == pytest.approx(weighted.mean(), rel=0.1)
    assert got.mean() > 1.3 * uniform.mean()


def test_popularity_counts_the_train_period_ratings(data, raw):
    ratings, _, _ = raw
    cut = data.val["timestamp"].min()
    counts = {}
    for _, movie, _, t in ratings:
        if t < cut:
            counts[movie] = counts.get(movie, 0) + 1
    assert data.popularity.dtype == np.int64 and data.popularity[0] == 0
    assert {m: int(c) for m, c in enumerate(data.popularity) if c} == counts


def test_negatives_follow_popularity_without_replacement():
    rng = np.random.default_rng(0)
    pool = np.array([1, 2, 3, 4, 5])
    weights = np.array([1, 2, 3, 4, 10])
    rated = np.zeros((2, 6), dtype=bool)
    rated[1, 5] = True  # user 1 rated movie 5: never drawn for user 1
    users = np.repeat([0, 1], 20_000)
    draws = movielens._sample_negatives(rng, users, rated, pool, weights, 2, "x")
    assert (draws[:, 0] != draws[:, 1]).all()
    assert not (draws[users == 1] == 5).any()
    # P(m among 2 successive draws) = p_m + sum over j != m of p_j p_m / (1 - p_j).
    for user, allowed in ((0, [0, 1, 2, 3, 4]), (1, [0, 1, 2, 3])):
        p = weights[allowed] / weights[allowed].sum()
        inclusion = (
            p + sum(p[j] * p / (1 - p[j]) for j in range(len(p))) - p * p / (1 - p)
        )
        got = [(draws[users == user] == pool[i]).any(axis=1).mean() for i in allowed]
        np.testing.assert_allclose(got, inclusion, atol=0.015)


def test_seed_determinism(fixture_dir, data):
    again = load_movielens(fixture_dir, max_len=MAX_LEN, list_size=LIST_SIZE)
    other = load_movielens(fixture_dir, max_len=MAX_LEN, list_size=LIST_SIZE, seed=1)
    for name in data.train:
        np.testing.assert_array_equal(again.train[name], data.train[name])
        np.testing.assert_array_equal(again.test[name], data.test[name])
        if not name.startswith(("candidates_", "relevance")):
            np.testing.assert_array_equal(other.train[name], data.train[name])
    changed = (other.train["candidates_item"] != data.train["candidates_item"]).any(1)
    assert changed.mean() > 0.9


# --------------------------------------------------------------------------- split


def test_time_split(data, columns):
    train, val, test = data.train, data.val, data.test
    assert train["timestamp"].max() < val["timestamp"].min()
    assert val["timestamp"].max() < test["timestamp"].min()
    for split in (train, val, test):
        assert (np.diff(split["timestamp"]) >= 0).all()
    n = len(columns["item"])
    fractions = [len(s["item"]) / n for s in (train, val, test)]
    np.testing.assert_allclose(fractions, [0.8, 0.1, 0.1], atol=0.03)
    # val/test histories reach into the train period (the past is allowed).
    assert (
        test["history_timestamp"][test["history_item"] != -1] < val["timestamp"].min()
    ).any()


def test_split_argument(fixture_dir):
    data = load_movielens(fixture_dir, split=(0.5, 0.5, 0.0), list_size=5)
    assert len(data.test["item"]) == 0 and len(data.val["item"]) > 0
    ratio = len(data.train["item"]) / (len(data.train["item"]) + len(data.val["item"]))
    assert ratio == pytest.approx(0.5, abs=0.03)


# --------------------------------------------------------------------- paths, errors


def test_zip_and_subdirectory(tmp_path, fixture_dir, data):
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("u.data", "u.item", "u.user", "README"):
            source = fixture_dir / name
            zf.writestr(
                f"ml-100k/{name}", source.read_bytes() if source.exists() else ""
            )
    nested = tmp_path / "nested"
    write_movielens(nested / "ml-100k")
    for path in (archive, nested):
        loaded = load_movielens(path, max_len=MAX_LEN, list_size=LIST_SIZE)
        for name in data.train:
            np.testing.assert_array_equal(loaded.train[name], data.train[name])


def test_no_path_reads_the_downloaded_zip(tmp_path, fixture_dir, data, monkeypatch):
    """`load_movielens()` downloads (here a file:// URL) into the Keras cache."""
    from keras_mtl.datasets.movielens import reader

    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for name in ("u.data", "u.item", "u.user"):
            zf.write(fixture_dir / name, f"ml-100k/{name}")
    monkeypatch.setattr(reader, "URL", archive.as_uri())  # no network in tests
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    loaded = load_movielens(max_len=MAX_LEN, list_size=LIST_SIZE)
    cached = tmp_path / "keras" / "datasets" / "ml-100k.zip"
    assert cached.read_bytes() == archive.read_bytes()
    np.testing.assert_array_equal(loaded.test["item"], data.test["item"])


def test_missing_files(tmp_path):
    directory = write_movielens(tmp_path / "data", num_users=5)
    (directory / "u.user").unlink()
    with pytest.raises(
        FileNotFoundError, match=r"'u\.user' not found in the directory .*data"
    ):
        load_movielens(directory)
    with pytest.raises(FileNotFoundError, match="MovieLens path not found"):
        load_movielens(tmp_path / "absent")
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", (directory / "u.data").read_bytes())
    with pytest.raises(FileNotFoundError, match=r"'u\.item' not found in the archive"):
        load_movielens(archive)
    not_zip = tmp_path / "u.data"
    not_zip.write_text("1\t2\t3\t4\n")
    with pytest.raises(ValueError, match="not a zip archive"):
        load_movielens(not_zip)


@pytest.mark.parametrize(
    "file, edit, match",
    [
        (
            "u.data",
            lambda s: s.replace("\t", "\tx", 1),
            r"u\.data: column 'item' must hold integers; line 1",
        ),
        (
            "u.data",
            lambda s: "1\t2\t6\t880000000\n" + s,
            r"u\.data: column 'rating' must be 1\.\.5; found 6",
        ),
        (
            "u.data",
            lambda s: s + "1\t999\t3\t880000000\n",
            r"u\.data: movie id 999 .* not in u\.item",
        ),
        (
            "u.data",
            lambda s: s + "77\t1\t3\t880000000\n",
            r"u\.data: user id 77 .* not in u\.user",
        ),
        (
            "u.user",
            lambda s: re.sub(r"\|[MF]\|", "|X|", s, count=1),
            r"u\.user: column 'gender' has the unknown value 'X'",
        ),
        (
            "u.user",
            lambda s: re.sub(r"^(\d+\|\d+\|[MF]\|)\w+", r"\1astronaut", s, count=1),
            r"u\.user: column 'occupation' has the unknown value 'astronaut'",
        ),
        (
            "u.item",
            lambda s: re.sub(r"-(\d{4})\|", r"-\1x|", s, count=1),
            r"u\.item: column 'release date' must look like 01-Jan-1995 or be empty; movie 1 has '\d\d-\w{3}-\d{4}x'",
        ),
        (
            "u.item",
            lambda s: s.replace("|0|", "|2|", 1),
            r"u\.item: the 19 genre flag columns must hold 0 or 1",
        ),
    ],
)
def test_malformed_files(tmp_path, file, edit, match):
    directory = write_movielens(tmp_path, num_users=5)
    path = directory / file
    path.write_text(edit(path.read_text(encoding="latin-1")), encoding="latin-1")
    with pytest.raises(ValueError, match=match):
        load_movielens(directory, list_size=5)


def test_bad_arguments(fixture_dir):
    for kwargs, match in [
        ({"split": (0.8, 0.2)}, "split must be three fractions"),
        ({"split": (0.8, 0.3, 0.1)}, "split must be three fractions"),
        ({"max_len": 0}, "max_len must be an int >= 1"),
        ({"list_size": 0}, "list_size must be an int >= 1"),
        ({"min_history": -1}, "min_history must be an int >= 0"),
        ({"list_size": 45}, r"list_size=45 needs 44 movies a user never rated"),
        ({"min_history": 1000}, "No example"),
    ]:
        with pytest.raises(ValueError, match=match):
            load_movielens(fixture_dir, **kwargs)


# ---------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def real(shared_data):
    directory = shared_data / "movielens-100k"
    if not (directory / "u.data").is_file():
        pytest.skip(f"MovieLens-100K not found at {directory}")
    start = time.perf_counter()
    data = load_movielens(directory)
    seconds = time.perf_counter() - start
    print(f"\nload_movielens(ml-100k): {seconds:.2f} s")
    return directory, data, seconds


@pytest.mark.shared_data
def test_real_data_examples_and_split(real):
    directory, data, seconds = real
    sizes = [len(s["item"]) for s in (data.train, data.val, data.test)]
    print(f"examples train/val/test: {sizes}")
    assert sum(sizes) == 97_865  # ratings with an earlier rating of their user
    raw = pd.read_csv(directory / "u.data", sep="\t", header=None).to_numpy()
    first = np.full(raw[:, 0].max() + 1, np.iinfo(np.int64).max)
    np.minimum.at(first, raw[:, 0], raw[:, 3])
    assert sum(sizes) == (raw[:, 3] > first[raw[:, 0]]).sum()
    np.testing.assert_allclose(
        np.array(sizes) / sum(sizes), [0.8, 0.1, 0.1], atol=0.005
    )
    assert data.train["timestamp"].max() < data.val["timestamp"].min()
    assert data.val["timestamp"].max() < data.test["timestamp"].min()
    assert (
        len(
            np.unique(
                np.concatenate(
                    [s["user_id"] for s in (data.train, data.val, data.test)]
                )
            )
        )
        == 943
    )
    assert seconds < 30


@pytest.mark.shared_data
def test_real_data_values(real):
    directory, data, _ = real
    test = data.test
    for f in data.features:
        specs = (
            [(f.input_name(g), g) for g in f.fields]
            if hasattr(f, "fields")
            else [(f.name, f)]
        )
        for column, spec in specs:
            if spec.vocabulary_size is not None:
                values = test[column][test[column] != -1]
                assert values.min() >= 0 and values.max() < spec.vocabulary_size, column
    valid = test["history_item"] != -1
    assert (
        test["history_timestamp"][valid]
        < np.broadcast_to(test["timestamp"][:, None], valid.shape)[valid]
    ).all()
    assert valid.sum(axis=1).max() == 50
    np.testing.assert_array_equal(test["relevance"].sum(axis=1), 1.0)
    assert 0.5 < data.train["like"].mean() < 0.6  # 55% of the ratings are 4 or 5


@pytest.mark.shared_data
def test_real_data_genre_coverage(real):
    directory, data, _ = real
    items = pd.read_csv(directory / "u.item", sep="|", header=None, encoding="latin-1")
    flags = items.iloc[:, 5:24].to_numpy()
    per_movie = flags.sum(axis=1)
    coverage = (per_movie <= MAX_GENRES).mean()
    print(f"movies with <= {MAX_GENRES} genres: {coverage:.2%}; max {per_movie.max()}")
    assert coverage > 0.99 and per_movie.min() >= 1
    label = data.train["genre"]
    kept = (data.train["genres"] != -1).sum(axis=1)
    np.testing.assert_array_equal(kept, np.minimum(label.sum(axis=1), MAX_GENRES))
    assert (kept == label.sum(axis=1)).mean() > 0.97  # ratings with all genres kept


def test_the_model_buckets_and_looks_up_as_the_helpers(data, columns):
    """The in-graph lookups of the specs give the buckets `bucket_*` compute (and
    the codes the loader used to store), on every column of the fixture."""
    from keras_mtl.layers._lookup import make_lookup, table_rows

    specs = {f.name: f for f in [*data.item, *data.history.properties, *data.profile]}
    helpers = {
        "year": bucket_years,
        "gap": bucket_gaps,
        "age": bucket_ages,
        "rating": lambda stars: stars - 1,
        "gender": lambda g: np.array([movielens.GENDERS.index(v) + 1 for v in g]),
        "occupation": lambda o: np.array([OCCUPATION_ID[v] + 1 for v in o]),
    }
    checked = 0
    for column, values in columns.items():
        name = column.removeprefix("history_").removeprefix("candidates_")
        if name not in helpers:
            continue
        spec = specs[name]
        rows, mask = (
            np.asarray(t) for t in table_rows(spec, make_lookup(spec), values)
        )
        present = values != spec.pad_value
        assert (mask == present).all(), column
        np.testing.assert_array_equal(
            rows[present], helpers[name](values[present]), err_msg=column
        )
        checked += int(present.sum())
    assert checked > 10_000
    assert (columns["year"] == -1).any()  # the movie without a date: padding
