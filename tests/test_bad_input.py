"""The issue's bad-input list, end to end: each case is a clear error naming the
feature, or handled by design (OOV row, learned fill, masked label)."""

import numpy as np
import pytest

import keras_mtl as km
from keras_mtl.data import make_dataset

FEATURES = [
    km.SparseFeature("occupation", vocabulary_size=5, embedding_dim=2),
    km.DenseFeature("age"),
    km.DenseFeature("gains", allow_missing=True),
]
TASKS = [km.Task("income")]


def rows(**overrides):
    data = {
        "occupation": np.array([0, 4, 2]),
        "age": np.array([30.0, 41.0, 52.0], "float32"),
        "gains": np.array([0.0, np.nan, 3.0], "float32"),
        "income": np.array([0.0, 1.0, np.nan], "float32"),
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


@pytest.mark.parametrize(
    "overrides, error, match",
    [
        ({"age": None}, ValueError, "'age'.*Available columns"),
        ({"income": None}, ValueError, "'income'"),
        ({"age": np.array(["30", "41", "x"], dtype=object)}, TypeError, "'age'"),
        ({"occupation": np.array([0.5, 1.0, 2.0])}, TypeError, "'occupation'"),
        ({"occupation": np.array([0, 5, 9])}, ValueError, "'occupation'.*5"),
        ({"age": np.array([30.0, np.nan, 1.0])}, ValueError, "'age'.*allow_missing"),
        ({"income": np.array([0.0, 2.0, 1.0])}, ValueError, "'income'"),
    ],
)
def test_make_dataset_names_the_feature(overrides, error, match):
    with pytest.raises(error, match=match):  # strict: unseen ids are errors too
        make_dataset(rows(**overrides), FEATURES, TASKS, unseen_ids="error")


def test_empty_dataset():
    empty = {k: v[:0] for k, v in rows().items()}
    with pytest.raises(ValueError, match="no rows"):
        make_dataset(empty, FEATURES, TASKS)


def test_handled_by_design_in_the_model():
    """Out-of-range ids hit the OOV row, NaN in an allow_missing feature gets the
    learned fill, a missing label is masked: finite predictions and loss."""
    model = km.build_shared_bottom(FEATURES, TASKS)
    x = {
        "occupation": np.array([99, -7, 3]),
        "age": np.array([1.0, 2.0, 3.0], "float32"),
        "gains": np.array([np.nan, np.nan, 1.0], "float32"),
    }
    out = model.predict(x, verbose=0)["income"]
    assert np.isfinite(out).all()
    # Both out-of-range ids use the same OOV row: same output for same dense input.
    twin = dict(x, occupation=np.array([99, 12345, 3]), age=np.array([1.0, 1.0, 3.0]))
    out = model.predict(twin, verbose=0)["income"]
    assert out[0] == pytest.approx(out[1])
    logs = model.fit(make_dataset(rows(), FEATURES, TASKS), verbose=0).history
    assert np.isfinite(logs["loss"][0])


def test_unknown_names_in_specs_and_compile():
    with pytest.raises(ValueError, match="'nope'"):
        km.build_mmoe(
            FEATURES
            + [km.SparseFeature("x", vocabulary_size=5, share_embedding_with="nope")],
            TASKS,
        )
    model = km.build_mmoe(FEATURES, TASKS, compile=False)
    with pytest.raises(ValueError, match=r"tasks \['ctr'\] are not outputs"):
        km.MultiTaskModel(model.input, model.output, tasks=[km.Task("ctr")])
    with pytest.raises(ValueError, match=r"loss for \['ctr'\], which are not tasks"):
        model.compile(loss={"ctr": "mse"})
    with pytest.raises(TypeError, match="loss_weights must be a dict keyed by task"):
        model.compile(loss_weights=[1.0, 2.0])


@pytest.mark.parametrize(
    "builder, kwargs",
    [
        (km.build_mmoe, {"num_experts": 2}),
        (km.build_shared_bottom, {}),
        (km.build_ple, {}),
        (km.build_esmm, {}),
    ],
)
def test_features_or_tasks_given_as_a_dict_are_refused_clearly(builder, kwargs):
    tasks = km.esmm_tasks() if builder is km.build_esmm else TASKS
    by_name = {f.name: f for f in FEATURES}
    with pytest.raises(
        TypeError,
        match=r"features must be a list of SparseFeature / DenseFeature / "
        r"SequenceFeature specs; got a dict with keys \['occupation', 'age', "
        r"'gains'\]\. Instead, each spec carries its own name: pass "
        r"list\(features\.values\(\)\)",
    ):
        builder(by_name, tasks, **kwargs)
    names = [t.name for t in tasks]
    with pytest.raises(
        TypeError,
        match=rf"tasks must be a list of Task specs; got a dict with keys "
        rf"\[{', '.join(map(repr, names))}\].*pass list\(tasks\.values\(\)\)",
    ):
        builder(FEATURES, {t.name: t for t in tasks}, **kwargs)
    with pytest.raises(TypeError, match=r"got DenseFeature\(name='age'.*pass a list"):
        builder(FEATURES[1], tasks, **kwargs)


def test_make_dataset_refuses_a_dict_of_features_too():
    with pytest.raises(TypeError, match=r"got a dict with keys \['occupation'"):
        make_dataset(rows(), {f.name: f for f in FEATURES}, TASKS)


@pytest.fixture(scope="module")
def string_model():
    """Integer ids (occupation), dense values (age) and a string vocabulary."""
    city = km.SparseFeature("city", vocabulary=["paris", "rome"], embedding_dim=2)
    return km.build_shared_bottom(
        [*FEATURES, city], TASKS, hidden_units=(4,), tower_units=(2,)
    )


def string_rows(**overrides):
    return {**rows(income=None), "city": np.array(["rome", "oslo", "paris"])} | {
        k: v for k, v in overrides.items()
    }


@pytest.mark.parametrize(
    "overrides, match",
    [
        (
            {"occupation": np.array(["nurse", "clerk", "cook"])},
            r"SparseFeature 'occupation' takes integer ids \(dtype int64\); "
            r"received strings \(e\.g\. 'nurse'\)\. Map the strings to their "
            r"integer ids first, or declare the feature SparseFeature\('occupation', "
            r"vocabulary=\[\.\.\.\]\) or hash_bins=\.\.\..*make_dataset",
        ),
        (  # a list, with a number among the strings
            {"occupation": [1, "clerk", "cook"]},
            r"SparseFeature 'occupation' takes integer ids.*\(e\.g\. 'clerk'\)",
        ),
        (
            {"age": np.array(["30", "41", "52"])},
            r"DenseFeature 'age' takes numbers \(dtype float32\); received strings "
            r"\(e\.g\. '30'\)\. Convert the column to numbers",
        ),
    ],
)
def test_strings_for_an_input_that_takes_numbers_name_the_feature(
    string_model, overrides, match
):
    x = string_rows(**overrides)
    y = {"income": np.array([0.0, 1.0, 1.0], "float32")}
    with pytest.raises(TypeError, match=match):
        string_model.predict(x, verbose=0)
    with pytest.raises(TypeError, match=match):
        string_model.evaluate(x, y, verbose=0)
    with pytest.raises(TypeError, match=match):
        string_model.fit(x, y, verbose=0)


def test_a_dataset_of_strings_for_integer_ids_names_the_feature(string_model):
    import tensorflow as tf

    x = string_rows(occupation=np.array(["nurse", "clerk", "cook"]))
    ds = tf.data.Dataset.from_tensor_slices(x).batch(3)
    with pytest.raises(TypeError, match="'occupation' takes integer ids.*a string"):
        string_model.predict(ds, verbose=0)


def test_strings_for_a_string_vocabulary_still_work(string_model):
    """The check refuses strings only where numbers are declared: the string
    feature takes them, an unknown city ("oslo") going to its OOV row."""
    out = string_model.predict(string_rows(), verbose=0)["income"]
    lima = string_model.predict(
        string_rows(city=np.array(["rome", "lima", "paris"])), verbose=0
    )["income"]
    np.testing.assert_allclose(out, lima, rtol=1e-6)  # oslo and lima: OOV row
    assert np.isfinite(out).all()
