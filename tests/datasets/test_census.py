import gzip
import io
import tarfile
import zipfile

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.data import make_dataset
from keras_mtl.datasets import census, load_census
from keras_mtl.datasets._download import download_file
from keras_mtl.features import DenseFeature, SparseFeature
from tests.helpers import serve_in_fresh_process, write_text

# Five lines in the exact raw format: rows 1-3 and 2 others of census-income.test
# (row 4: income 50000+ and never married; row 5: "?" countries, a value with a
# trailing space, year 94).
RAW_LINES = [
    "38, Private, 6, 36, 1st 2nd 3rd or 4th grade, 0, Not in universe, Married-civilian spouse present, Manufacturing-durable goods, Machine operators assmblrs & inspctrs, White, Mexican (Mexicano), Female, Not in universe, Not in universe, Full-time schedules, 0, 0, 0, Joint one under 65 & one 65+, Not in universe, Not in universe, Spouse of householder, Spouse of householder, 1032.38, ?, ?, ?, Not in universe under 1 year old, ?, 4, Not in universe, Mexico, Mexico, Mexico, Foreign born- Not a citizen of U S , 0, Not in universe, 2, 12, 95, - 50000.",
    "44, Self-employed-not incorporated, 37, 12, Associates degree-occup /vocational, 0, Not in universe, Married-civilian spouse present, Business and repair services, Professional specialty, White, All other, Female, Not in universe, Not in universe, PT for econ reasons usually PT, 0, 0, 2500, Joint both under 65, Not in universe, Not in universe, Spouse of householder, Spouse of householder, 1462.33, ?, ?, ?, Not in universe under 1 year old, ?, 1, Not in universe, United-States, United-States, United-States, Native- Born in the United States, 0, Not in universe, 2, 26, 95, - 50000.",
    "2, Not in universe, 0, 0, Children, 0, Not in universe, Never married, Not in universe or children, Not in universe, White, Mexican-American, Male, Not in universe, Not in universe, Children or Armed Forces, 0, 0, 0, Nonfiler, Not in universe, Not in universe, Child <18 never marr not in subfamily, Child under 18 never married, 1601.75, ?, ?, ?, Not in universe under 1 year old, ?, 0, Both parents present, United-States, United-States, United-States, Native- Born in the United States, 0, Not in universe, 0, 0, 95, - 50000.",
    "35, Private, 35, 17, Masters degree(MA MS MEng MEd MSW MBA), 0, Not in universe, Never married, Finance insurance and real estate, Sales, White, All other, Male, Not in universe, Not in universe, PT for non-econ reasons usually FT, 0, 0, 1, Single, Not in universe, Not in universe, Nonfamily householder, Householder, 3001.29, ?, ?, ?, Not in universe under 1 year old, ?, 6, Not in universe, United-States, United-States, United-States, Native- Born in the United States, 1, Not in universe, 2, 36, 95, 50000+.",
    "27, Private, 37, 31, High school graduate, 0, Not in universe, Married-civilian spouse present, Business and repair services, Other service, White, Central or South American, Male, Not in universe, Not in universe, Children or Armed Forces, 0, 0, 0, Joint both under 65, Not in universe, Not in universe, Householder, Householder, 2056.67, Nonmover, Nonmover, Nonmover, Yes, Not in universe, 4, Not in universe, ?, ?, ?, Foreign born- Not a citizen of U S , 1, Not in universe, 2, 50, 94, - 50000.",
]
# The raw strings of the file, stripped of their surrounding spaces (row 1's
# citizenship ends in a space); "?" stays "?".
EXPECTED_STRINGS = {
    "class_of_worker": [
        "Private",
        "Self-employed-not incorporated",
        "Not in universe",
        "Private",
        "Private",
    ],
    "detailed_industry_recode": ["6", "37", "0", "35", "37"],
    "sex": ["Female", "Female", "Male", "Male", "Male"],
    "citizenship": [
        "Foreign born- Not a citizen of U S",
        "Native- Born in the United States",
        "Native- Born in the United States",
        "Native- Born in the United States",
        "Foreign born- Not a citizen of U S",
    ],
    "own_business_or_self_employed": ["0", "0", "0", "1", "1"],
    "migration_code_change_in_msa": ["?", "?", "?", "?", "Nonmover"],
    "country_of_birth_father": ["Mexico", *["United-States"] * 3, "?"],
    "country_of_birth_mother": ["Mexico", *["United-States"] * 3, "?"],
    "year": ["95", "95", "95", "95", "94"],
    "marital_stat": [
        "Married-civilian spouse present",
        "Married-civilian spouse present",
        "Never married",
        "Never married",
        "Married-civilian spouse present",
    ],
    "education": [
        "1st 2nd 3rd or 4th grade",
        "Associates degree-occup /vocational",
        "Children",
        "Masters degree(MA MS MEng MEd MSW MBA)",
        "High school graduate",
    ],
}
EXPECTED_NUMBERS = {
    "age": [38, 44, 2, 35, 27],
    "dividends_from_stocks": [0, 2500, 0, 1, 0],
    "num_persons_worked_for_employer": [4, 1, 0, 6, 4],
    "weeks_worked_in_year": [12, 26, 0, 36, 50],
}


def write_raw(path, lines=RAW_LINES):
    return write_text(path, "\n".join(lines) + "\n")


@pytest.mark.parametrize("name", ["census-income.test", "census-income.test.gz"])
def test_parses_the_raw_format_plain_and_gzip(tmp_path, name):
    data = load_census(write_raw(tmp_path / name))
    frame = data.frame
    assert len(frame) == 5
    for column, strings in EXPECTED_STRINGS.items():
        assert frame[column].tolist() == strings, column
    for column in census.VOCABULARIES:  # every nominal column holds strings
        assert all(isinstance(v, str) for v in frame[column]), column
    for column, values in EXPECTED_NUMBERS.items():
        assert frame[column].dtype == np.float32
        assert frame[column].tolist() == values, column
    np.testing.assert_allclose(
        frame["instance_weight"],
        [1032.38, 1462.33, 1601.75, 3001.29, 2056.67],
        rtol=1e-6,
    )
    assert frame["income"].tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]
    assert frame["marital"].tolist() == [0.0, 0.0, 1.0, 1.0, 0.0]
    assert not frame.isna().any().any()


def test_features_and_tasks(tmp_path):
    data = load_census(write_raw(tmp_path / "census-income.data"))
    sparse = [f for f in data.features if isinstance(f, SparseFeature)]
    dense = [f for f in data.features if isinstance(f, DenseFeature)]
    assert len(sparse) == 31 and len(dense) == 7
    names = {f.name for f in data.features}
    assert not names & {
        "education",
        "marital_stat",
        "instance_weight",
        "income",
        "marital",
    }
    assert {f.name for f in dense} == set(census.NUMERIC_COLUMNS)
    for f in sparse:  # string vocabularies, looked up inside the model
        assert f.dtype == "string" and f.vocabulary == census.VOCABULARIES[f.name]
        assert f.embedding_dim == 4 and f.vocabulary_size is None
        assert census.UNKNOWN_VALUE not in f.vocabulary  # "?" -> the OOV row
    worker = next(f for f in sparse if f.name == "class_of_worker")
    assert worker.vocabulary[4] == "Private" and worker.num_rows == 9 + 1
    age = next(f for f in dense if f.name == "age")
    ages = np.array(EXPECTED_NUMBERS["age"], dtype=np.float64)
    assert age.mean == pytest.approx(ages.mean())
    assert age.std == pytest.approx(ages.std())
    capital = next(f for f in dense if f.name == "capital_gains")
    assert capital.std == 1.0  # constant column: no division by zero
    assert [(t.name, t.type) for t in data.tasks] == [
        ("income", "binary"),
        ("marital", "binary"),
    ]
    x, y = next(
        iter(make_dataset(data.frame, data.features, data.tasks, shuffle=False))
    )
    assert x["country_of_birth_father"].numpy().tolist() == [
        b"Mexico",
        *[b"United-States"] * 3,
        b"?",
    ]
    assert y["income"].numpy().tolist() == [0.0, 0.0, 0.0, 1.0, 0.0]


@pytest.fixture(scope="module")
def raw_rows_model(tmp_path_factory):
    """`(data, model, raw)`: a small MMoE from `census_features`, trained a few
    steps on the fixture lines (which moves the output layer off its zero start
    and trains the OOV row, used by their "?"), and four raw rows: row 5 with
    "?" for the three countries of birth, then the same row with a country no
    vocabulary has, with a known one and with the padding value ""."""
    data = load_census(write_raw(tmp_path_factory.mktemp("raw") / "census.test"))
    keras.utils.set_random_seed(0)
    model = km.build_mmoe(
        data.features,
        data.tasks,
        num_experts=2,
        expert_units=(4,),
        tower_units=(4,),
        compile={"learning_rate": 0.05},
    )
    train = make_dataset(data.frame, data.features, data.tasks, batch_size=5, seed=0)
    model.fit(train, epochs=5, verbose=0)
    names = [f.name for f in data.features]
    countries = [n for n in names if n.startswith("country_of_birth_")]
    rows = [data.frame.iloc[4][names].to_dict() for _ in range(4)]
    assert [rows[0][c] for c in countries] == ["?"] * 3
    for row, value in zip(rows[1:], ("Atlantis", "Mexico", "")):
        row.update(dict.fromkeys(countries, value))
    raw = {
        f.name: np.array(
            [r[f.name] for r in rows],
            dtype=object if isinstance(f, SparseFeature) else np.float32,
        )
        for f in data.features
    }
    return data, model, raw


def test_the_model_takes_raw_strings_and_unknowns_share_the_oov_row(raw_rows_model):
    """A model built from `census_features` takes the file's strings; `?` and a
    value no vocabulary has both go to the OOV row (the same prediction), in
    `predict` (the training path: lookups beside the step) and in a direct call
    (lookups inside the graph, as a SavedModel runs them)."""
    data, model, raw = raw_rows_model
    dtypes = {name: str(t.dtype) for name, t in model.input.items()}
    assert dtypes == {
        f.name: "string" if isinstance(f, SparseFeature) else "float32"
        for f in data.features
    }
    predicted = model.predict(raw, verbose=0)
    direct = model({k: tf.constant(v) for k, v in raw.items()}, training=False)
    for task in ("income", "marital"):
        p = predicted[task].reshape(-1)
        assert p[0] == pytest.approx(p[1], abs=1e-7), task  # "?" == "Atlantis"
        assert abs(p[0] - p[2]) > 1e-6 and abs(p[0] - p[3]) > 1e-6, task
        np.testing.assert_allclose(direct[task].numpy().reshape(-1), p, atol=1e-6)
    # The training pipeline's frame row gives the raw "?" row's score.
    ds = make_dataset(data.frame.iloc[[4]], data.features, shuffle=False)
    from_frame = model.predict(ds, verbose=0)
    for task in ("income", "marital"):
        np.testing.assert_allclose(from_frame[task][0], predicted[task][0], atol=1e-6)


@pytest.mark.slow
def test_exported_census_model_serves_raw_rows(raw_rows_model, tmp_path):
    """The SavedModel's `serving_default`, called in a fresh process that never
    imports keras_mtl, takes the raw strings ("?" and an unknown value
    included) and gives `model.predict`'s outputs."""
    data, model, raw = raw_rows_model
    predicted = model.predict(raw, verbose=0)
    export = km.export_saved_model(model, tmp_path / "census_model")
    (served,) = serve_in_fresh_process([{"dir": export, "inputs": raw}])
    for task, value in predicted.items():
        np.testing.assert_allclose(served["outputs"][task], value, atol=1e-5, rtol=0)
    assert served["outputs"]["income"][0] == served["outputs"]["income"][1]
    assert (
        "inputs['country_of_birth_self'] tensor_info:\n      dtype: DT_STRING"
        in served["signature"]
    )


def test_directory_picks_the_split_file(tmp_path):
    write_raw(tmp_path / "census-income.test.gz")
    write_raw(tmp_path / "census-income.data", RAW_LINES[:2])
    assert len(load_census(tmp_path).frame) == 2  # split="train" by default
    assert len(load_census(tmp_path, split="test").frame) == 5
    only_test = tmp_path / "only_test"
    only_test.mkdir()
    write_raw(only_test / "census-income.test")
    with pytest.raises(
        FileNotFoundError, match=r"census-income.data\[.gz\] \(train split\)"
    ):
        load_census(only_test)
    with pytest.raises(ValueError, match="split must be one of"):
        load_census(tmp_path, split="validation")


@pytest.mark.parametrize(
    "edit, match",
    [
        (
            lambda s: s.replace(" Private,", " Privat,", 1),
            r"'class_of_worker'.*\['Privat'\].*outside",
        ),
        (  # an empty field is no "?": a corrupt line
            lambda s: s.replace(" Mexico, Mexico,", " , Mexico,", 1),
            r"'country_of_birth_father'.*\[''\].*outside",
        ),
        (lambda s: s.replace("- 50000.", "- 5000."), r"income label.*'- 5000.'"),
        (
            lambda s: s.replace("38, Private", "thirty, Private"),
            r"'age' must be numeric.*'thirty'",
        ),
        (lambda s: s.rsplit(",", 3)[0], r"line 1 has fewer than 42 fields"),
        (lambda s: s + ", extra", r"line 1 has more than 42 fields"),
        (lambda s: s + ", extra, more", r"not in the census format"),
    ],
)
def test_malformed_lines_raise(tmp_path, edit, match):
    path = write_raw(tmp_path / "bad.data", [edit(RAW_LINES[0])] + RAW_LINES[1:])
    with pytest.raises(ValueError, match=match):
        load_census(path)


def test_empty_file_raises(tmp_path):
    (tmp_path / "census-income.test").write_text("")
    with pytest.raises(ValueError, match="no rows"):
        load_census(tmp_path / "census-income.test")


def make_fake_uci_zip(path):
    """A zip laid out like the UCI archive: census.tar.gz > census-income.*.gz."""
    inner = io.BytesIO()
    with tarfile.open(fileobj=inner, mode="w:gz") as tar:
        for name, lines in (
            ("census-income.data.gz", RAW_LINES[:3]),
            ("census-income.test.gz", RAW_LINES),
        ):
            payload = gzip.compress(("\n".join(lines) + "\n").encode())
            info = tarfile.TarInfo(name)
            info.size = len(payload)
            tar.addfile(info, io.BytesIO(payload))
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("census.tar.gz", inner.getvalue())
        z.writestr("census-income.names", "names")
    return path


def test_download_unpacks_the_uci_archive_without_network(
    tmp_path, monkeypatch, capsys
):
    """`load_census(path=None)` downloading a local archive (a file:// URL)."""
    archive = make_fake_uci_zip(tmp_path / "fake.zip")
    monkeypatch.setattr(census, "CENSUS_URL", archive.as_uri())
    calls = []

    def counted(url, target):
        calls.append(url)
        return download_file(url, target)

    monkeypatch.setattr(census, "download_file", counted)
    cache = tmp_path / "cache"
    assert len(load_census(cache_dir=cache).frame) == 3
    assert len(load_census(cache_dir=cache, split="test").frame) == 5
    assert calls == [archive.as_uri()]  # downloaded once, then read from the cache
    assert sorted(p.name for p in cache.glob("census-income.*")) == [
        "census-income.data.gz",
        "census-income.test.gz",
    ]
    err = capsys.readouterr().err  # progress goes to standard error
    assert err.startswith(f"downloading {archive.as_uri()} (0.0 MB) to {cache}")


@pytest.fixture(scope="module")
def census_test(shared_data):
    return load_census(shared_data / "census-income" / "census-income.test.gz")


@pytest.mark.shared_data
def test_official_test_file(census_test):
    frame = census_test.frame
    assert len(frame) == 99_762
    assert frame["income"].mean() * 100 == pytest.approx(6.20, abs=0.05)
    assert frame["marital"].mean() * 100 == pytest.approx(43.25, abs=0.05)
    assert not frame.isna().any().any()
    kinds = [type(f).__name__ for f in census_test.features]
    assert kinds.count("SparseFeature") == 31 and kinds.count("DenseFeature") == 7
    names = {f.name for f in census_test.features}
    assert "education" not in names and "marital_stat" not in names
    sparse = [f.name for f in census_test.features if isinstance(f, SparseFeature)]
    for name in sparse:  # every value in its vocabulary, or "?"
        values = set(frame[name])
        assert values <= {*census.VOCABULARIES[name], "?"}, name
    # "?" is frequent only where UCI documents it (migration, country of birth).
    unknown = (frame[sparse] == "?").mean()
    assert set(unknown[unknown > 0.01].index) == {
        "migration_code_change_in_msa",
        "migration_code_change_in_reg",
        "migration_code_move_within_reg",
        "migration_prev_res_in_sunbelt",
        "country_of_birth_father",
        "country_of_birth_mother",
        "country_of_birth_self",
    }
