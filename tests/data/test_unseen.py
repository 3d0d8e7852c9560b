"""Unseen ids (outside [0, vocabulary_size)): sent to the OOV row by the data, the
model and the SavedModel alike, counted and reported once per dataset and
feature; `unseen_ids="error"` keeps them an error."""

import warnings

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

import keras_mtl as km
from keras_mtl.data import UnseenIdWarning, make_dataset, write_tfrecord
from keras_mtl.features import DenseFeature, SequenceFeature, SparseFeature
from keras_mtl.tasks import Task

USER = SparseFeature("user", vocabulary_size=5, embedding_dim=2)
TAGS = SparseFeature("tags", vocabulary_size=5, embedding_dim=2, max_len=3)
PRICE = DenseFeature("price")
FEATURES = [USER, TAGS, PRICE]
TASKS = [Task("click")]
# 10 rows. user: 3 unseen ids (7, -4, 9; -1 is padding) in 3 rows.
# tags: 12 ids, 3 unseen (6, 6, -3) in 2 rows.
ROWS = {
    "user": [0, 1, 7, 3, -4, 2, 9, -1, 1, 1],
    "tags": [[1, 2], [6, 6], [], [1], [1], [1], [1], [1, 4], [1], [-3]],
    "price": [0.5] * 10,
    "click": [0.0, 1.0] * 5,
}
#: The rows as `make_dataset` passes them on: unseen ids are id 5, the OOV row.
PASSED_USER = [0, 1, 5, 3, 5, 2, 5, -1, 1, 1]
PASSED_TAGS = [[1, 2, -1], [5, 5, -1], [-1] * 3, [1, -1, -1], [1, -1, -1]]
PASSED_TAGS += [[1, -1, -1], [1, -1, -1], [1, 4, -1], [1, -1, -1], [5, -1, -1]]
USER_REPORT = (
    "SparseFeature 'user': 3 of 9 ids (in 3 of 10 rows) of {source} lie outside "
    "[0, vocabulary_size=5) (unseen ids from -4 to 9); they go to the "
    "out-of-vocabulary row"
)
TAGS_REPORT = (
    "SparseFeature 'tags': 3 of 12 ids (in 2 of 10 rows) of {source} lie outside "
    "[0, vocabulary_size=5) (unseen ids from -3 to 6)"
)
STRICT = "unseen_ids='error'"


def reports(record) -> list[str]:
    return [str(w.message) for w in record if w.category is UnseenIdWarning]


def read(ds, epochs=1):
    out = []
    for _ in range(epochs):
        out.append({})
        for x, _ in ds:
            for k in ("user", "tags"):
                if k in x:
                    out[-1].setdefault(k, []).extend(x[k].numpy().tolist())
    return out


def test_in_memory_counts_pass_on_the_oov_id_and_report_once():
    with pytest.warns(UnseenIdWarning) as record:
        ds = make_dataset(ROWS, FEATURES, TASKS, batch_size=4, shuffle=False)
    got = reports(record)
    assert len(got) == 2
    assert got[0].startswith(USER_REPORT.format(source="the in-memory data"))
    assert got[1].startswith(TAGS_REPORT.format(source="the in-memory data"))
    assert STRICT in got[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenIdWarning)  # no report per epoch
        epochs = read(ds, epochs=2)
    assert epochs == [{"user": PASSED_USER, "tags": PASSED_TAGS}] * 2


def test_strict_mode_raises_the_data_rule_naming_the_feature():
    with pytest.raises(
        ValueError,
        match=r"SparseFeature 'user': ids must lie in \[0, vocabulary_size=5\) or "
        r"be the padding value -1; received ids from -4 to 9 \(3 out of range",
    ):
        make_dataset(ROWS, FEATURES, TASKS, unseen_ids="error")
    with pytest.raises(ValueError, match=r"unseen_ids must be one of \['oov', 'error'"):
        make_dataset(ROWS, FEATURES, TASKS, unseen_ids="drop")


def test_no_report_without_unseen_ids():
    seen = {**ROWS, "user": [1] * 10, "tags": [[1]] * 10}
    with warnings.catch_warnings():
        warnings.simplefilter("error", UnseenIdWarning)
        make_dataset(seen, FEATURES, TASKS)


def test_sequence_fields_are_counted_under_their_input_names():
    history = SequenceFeature(
        "history",
        item=[SparseFeature("item", vocabulary_size=4)],
        properties=[SparseFeature("action", vocabulary=["view", "buy"])],
        max_len=3,
    )
    rows = {
        "history_item": np.array([[1, 8, -1], [3, -1, -1]]),  # 8: unseen
        "history_action": np.array([["view", "buy", ""], ["buy", "", ""]]),
    }
    with pytest.warns(UnseenIdWarning, match=r"'history_item': 1 of 3 ids \(in 1 of"):
        ds = make_dataset(rows, [history], batch_size=2, shuffle=False)
    assert next(iter(ds))["history_item"].numpy().tolist() == [[1, 4, -1], [3, -1, -1]]
    with pytest.raises(ValueError, match=r"'history_item': ids must lie in"):
        make_dataset(rows, [history], unseen_ids="error")


def _csv(tmp_path):
    frame = pd.DataFrame(ROWS)
    frame["tags"] = ["|".join(map(str, t)) for t in ROWS["tags"]]
    frame["user"] = [str(u) if u != -1 else "" for u in ROWS["user"]]
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    return str(path), f"the CSV file {str(path)!r}"


def _tfrecord(tmp_path):
    path = tmp_path / "rows.tfrecord"
    write_tfrecord(ROWS, path, FEATURES, TASKS)  # written as given: no check
    return str(path), f"the TFRECORD file {str(path)!r}"


def _blocks(tmp_path):
    def blocks():
        for rows in (slice(0, 6), slice(6, 10)):
            yield {
                "user": np.array(ROWS["user"][rows]),
                "price": np.array(ROWS["price"][rows]),
                "click": np.array(ROWS["click"][rows]),
            }

    return blocks, "the block source blocks()"


@pytest.mark.parametrize("source", [_csv, _tfrecord, _blocks])
def test_streamed_sources_report_once_at_the_end_of_the_first_pass(source, tmp_path):
    data, name = source(tmp_path)
    features = FEATURES if source is not _blocks else [USER, PRICE]
    ds = make_dataset(data, features, TASKS, batch_size=4, shuffle=False)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        epochs = read(ds, epochs=2)
    got = reports(record)
    assert len(got) == len(features) - 1, got  # once, after the first pass
    assert got[0].startswith(USER_REPORT.format(source=name))
    if source is not _blocks:
        assert got[1].startswith(TAGS_REPORT.format(source=name))
        assert epochs[0]["tags"] == PASSED_TAGS
    assert epochs[0]["user"] == epochs[1]["user"] == PASSED_USER

    if source is not _blocks:
        return  # (the CSV and TFRecord readers' strict checks: test_rules.py)
    # Blocks: a new check (ids were not range-checked before `unseen_ids`).
    strict = make_dataset(data, features, TASKS, shuffle=False, unseen_ids="error")
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"SparseFeature `user` \(.*\): ids must lie in \[0, vocabulary_size=5\)",
    ):
        list(strict)


def test_streamed_range_of_unseen_ids_is_theirs_alone(tmp_path):
    """Unseen ids all above the vocabulary (no 0 between them): the streamed
    report gives their own range, as the in-memory one does (the end-of-pass
    marker adds nothing to it)."""
    rows = {"user": [3, 12, 15, 4], "click": [0.0, 1.0, 0.0, 1.0]}
    path = tmp_path / "high.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    expected = r"2 of 4 ids \(in 2 of 4 rows\) of .* \(unseen ids from 12 to 15\)"
    with pytest.warns(UnseenIdWarning, match=expected):
        make_dataset(rows, [USER], TASKS, batch_size=2, shuffle=False)
    ds = make_dataset(str(path), [USER], TASKS, batch_size=2, shuffle=False)
    with pytest.warns(UnseenIdWarning, match=expected):
        assert read(ds)[0]["user"] == [3, 5, 5, 4]


# ----------------------------------------------------------------- the model


@pytest.fixture(scope="module")
def model():
    model = km.build_shared_bottom(FEATURES, TASKS, hidden_units=(4,), tower_units=(2,))
    rng = np.random.default_rng(0)  # weights that make every input count
    for variable in model.trainable_variables:
        variable.assign(rng.normal(size=variable.shape).astype("float32"))
    return model


def test_prediction_parity_with_the_oov_id(model):
    """The dataset's unseen ids, the same raw ids given to the model, and the
    OOV id itself give one prediction; padding gives another."""
    with pytest.warns(UnseenIdWarning):
        ds = make_dataset(ROWS, FEATURES, batch_size=4, shuffle=False)
    from_dataset = model.predict(ds, verbose=0)["click"]
    padded = np.full((10, 3), -1)
    for i, tags in enumerate(ROWS["tags"]):
        padded[i, : len(tags)] = tags
    x = {
        "user": np.array(ROWS["user"]),
        "tags": padded,
        "price": np.float32(ROWS["price"]),
    }
    oov = dict(x, user=np.array(PASSED_USER), tags=np.array(PASSED_TAGS))
    np.testing.assert_allclose(
        from_dataset, model.predict(oov, verbose=0)["click"], rtol=1e-6
    )
    np.testing.assert_allclose(
        from_dataset, model.predict(x, verbose=0)["click"], rtol=1e-6
    )
    assert from_dataset[4] == pytest.approx(from_dataset[6])  # users -4 and 9
    # The OOV row is a row of its own: padding (no user) predicts otherwise.
    two = {"user": np.array([-4, -1]), "tags": padded[[4, 4]], "price": x["price"][:2]}
    unseen, padding = model.predict(two, verbose=0)["click"]
    assert unseen == pytest.approx(from_dataset[4], rel=1e-6)
    assert unseen != pytest.approx(padding, rel=1e-4)


def test_the_saved_model_answers_unseen_ids_with_the_oov_row(model, tmp_path):
    path = km.export_saved_model(model, tmp_path)
    served = tf.saved_model.load(str(path)).signatures
    users = np.array([5, 7, -4, 2**40, 99], np.int64)  # 5: the OOV id itself
    x = {
        "user": tf.constant(users),
        "tags": tf.constant(np.array([[6, -3, 1]] * 5, np.int64)),
        "price": tf.constant(np.full(5, 0.5, np.float32)),
    }
    out = served["serving_default"](**x)["click"].numpy()
    assert np.isfinite(out).all()
    np.testing.assert_allclose(out, np.full(5, out[0]), rtol=1e-6)
    oov = {
        "user": np.full(5, 5),
        "tags": np.array([[5, 5, 1]] * 5),
        "price": x["price"],
    }
    np.testing.assert_allclose(out, model.predict(oov, verbose=0)["click"], rtol=1e-5)

    def example(user):
        feature = {
            "user": tf.train.Feature(int64_list=tf.train.Int64List(value=[user])),
            "tags": tf.train.Feature(int64_list=tf.train.Int64List(value=[6, -3, 1])),
            "price": tf.train.Feature(float_list=tf.train.FloatList(value=[0.5])),
        }
        return tf.train.Example(
            features=tf.train.Features(feature=feature)
        ).SerializeToString()

    parsed = served["serving_examples"](examples=[example(int(u)) for u in users])
    np.testing.assert_allclose(parsed["click"].numpy(), out, rtol=1e-6)
