"""The data rules table: every rule rejects the same bad value, with the same message
core, in memory (at make_dataset time) and streamed (inside the tf.data graph)."""

import math
import re

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from keras_mtl.data import make_dataset
from keras_mtl.data._rules import RULES, check_array, check_tensor, rules_for
from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import Task

INF, NAN = float("inf"), float("nan")
USER = SparseFeature("user", vocabulary_size=10)


def case(spec, columns, features=(USER,), tasks=(), sample_weight=None):
    """Two rows: row 0 obeys the rule, row 1 breaks it."""
    return {
        "spec": spec,
        "columns": {"user": [1, 2], **columns},
        "features": list(features),
        "tasks": list(tasks),
        "sample_weight": sample_weight,
    }


BINARY = Task("click")
GENRE = Task("genre", "multiclass", num_classes=3)
RANK = Task("rank", "ranking", list_size=2)
CVR = Task("cvr", label="conversion", given="click")
PRICE = DenseFeature("price")
GAPPY_PRICE = DenseFeature("price", allow_missing=True)
AGE = SparseFeature("age", boundaries=[18, 30])
LOG_PRICE = DenseFeature("price", transform="log", allow_missing=True)
DWELL = Task("dwell", "regression", transform="log1p")

CASES = {
    "finite_label": case(
        Task("y", "regression"), {"y": [1.5, INF]}, tasks=[Task("y", "regression")]
    ),
    "binary_label": case(BINARY, {"click": [1.0, 2.0]}, tasks=[BINARY]),
    "class_index": case(GENRE, {"genre": [2.0, 3.0]}, tasks=[GENRE]),
    "class_weights": case(
        GENRE, {"genre": np.array([[1.0, 0, 0], [0, 0, 0]])}, tasks=[GENRE]
    ),
    "relevance_grade": case(
        RANK, {"rank": np.array([[1.0, 0], [2.0, -2.0]])}, tasks=[RANK]
    ),
    "transform_domain": case(DWELL, {"dwell": [0.0, -1.0]}, tasks=[DWELL]),
    "funnel_order": case(
        CVR, {"click": [1.0, 0.0], "conversion": [1.0, 1.0]}, tasks=[CVR]
    ),
    "sample_weight": case(
        None,
        {"click": [1.0, 0.0], "w": [0.5, -1.0]},
        tasks=[BINARY],
        sample_weight="w",
    ),
    "dense_finite": case(
        GAPPY_PRICE, {"price": [1.0, INF]}, features=[USER, GAPPY_PRICE]
    ),
    "dense_complete": case(PRICE, {"price": [1.0, NAN]}, features=[USER, PRICE]),
    "dense_domain": case(LOG_PRICE, {"price": [NAN, 0.0]}, features=[USER, LOG_PRICE]),
    "bucketised_finite": case(AGE, {"age": [30.0, INF]}, features=[USER, AGE]),
    "id_range": case(USER, {"user": [1, 10]}),
}
RULE = {rule.name: rule for rule in RULES}


def test_every_rule_has_a_case():
    assert len(RULE) == len(RULES)
    assert set(CASES) == set(RULE)


def _cell(value) -> str:
    return "" if isinstance(value, float) and math.isnan(value) else str(value)


def _csv(tmp_path, columns) -> str:
    names = list(columns)
    lines = [",".join(names)]
    lines += [
        ",".join(_cell(columns[n][i]) for n in names)
        for i in range(len(columns[names[0]]))
    ]
    path = tmp_path / "data.csv"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def _make(c, data):
    return make_dataset(
        data,
        c["features"],
        c["tasks"] or None,
        batch_size=2,
        shuffle=False,
        sample_weight=c["sample_weight"],
        unseen_ids="error",  # the id-range rule is asserted
    )


def _streamed_error(rule, c, tmp_path, rows) -> str:
    """Message of the streamed path: a CSV file where the readers support the
    column, else the rule's tf.data check on batches of the column."""
    columns = {k: v[rows] for k, v in c["columns"].items()}
    scalar = not any(t.label_shape for t in c["tasks"])  # what files can hold
    if scalar:
        ds = _make(c, _csv(tmp_path, columns))
    else:
        spec = c["spec"]
        values = np.asarray(columns[spec.label_column], "float32")
        what = f"Task `{spec.name}` (column `{spec.label_column}`)"
        ds = tf.data.Dataset.from_tensor_slices(values).batch(2)
        ds = ds.map(lambda v: check_tensor(rule.targets[0], spec, what, v))
    try:
        list(ds)
    except tf.errors.InvalidArgumentError as error:
        return error.message
    return ""


@pytest.mark.parametrize("name", sorted(CASES))
def test_in_memory_and_streamed_reject_the_same_value(name, tmp_path):
    rule, c = RULE[name], CASES[name]
    core = rule.expected(c["spec"])
    assert rule in rules_for(rule.targets[0], c["spec"])

    with pytest.raises(ValueError) as in_memory:  # at make_dataset time
        _make(c, c["columns"])
    assert core in str(in_memory.value)
    streamed = _streamed_error(rule, c, tmp_path, slice(None))
    assert core in streamed
    if rule.describe is None:  # both paths point at row 1
        assert "(first rows [1])" in str(in_memory.value)
        assert re.search(r"batch rows\] \[1\]", streamed)

    # The good row alone passes both paths (the rule is not always false).
    good = {k: v[:1] for k, v in c["columns"].items()}
    assert sum(1 for _ in _make(c, good)) == 1
    assert _streamed_error(rule, c, tmp_path, slice(0, 1)) == ""


def test_dataframes_are_checked_by_the_same_rules():
    c = CASES["binary_label"]
    with pytest.raises(ValueError, match=r"received \[2.0\] in 1 row\(s\)"):
        _make(c, pd.DataFrame(c["columns"]))


def test_rules_are_checked_in_table_order_on_both_paths():
    """inf breaks finite_label and binary_label: both paths report the first."""
    labels = np.array([0.0, INF, 1.0], "float32")
    core = RULE["finite_label"].expected(BINARY)
    with pytest.raises(ValueError) as in_memory:
        check_array("label", BINARY, "Task 'click'", labels)
    assert core in str(in_memory.value) and "received [inf]" in str(in_memory.value)
    ds = tf.data.Dataset.from_tensors(labels).map(
        lambda y: check_tensor("label", BINARY, "Task `click`", y)
    )
    with pytest.raises(tf.errors.InvalidArgumentError) as streamed:
        list(ds)
    assert core in streamed.value.message
    assert RULE["binary_label"].expected(BINARY) not in streamed.value.message


def test_missing_value_and_nan_are_valid_binary_labels():
    task = Task("click", missing_value=-1.0)
    labels = np.array([0.0, 1.0, NAN, -1.0], "float32")
    check_array("label", task, "Task 'click'", labels)  # no error
    out = check_tensor("label", task, "Task `click`", tf.constant(labels))
    np.testing.assert_array_equal(out.numpy(), labels)
    with pytest.raises(ValueError, match=r"missing_value=-1.0.*received \[-2.0\]"):
        check_array("label", task, "Task 'click'", labels - 1.0)


def test_funnel_parent_column_is_a_binary_label_in_both_paths(tmp_path):
    columns = {"user": [1, 2], "click": [1.0, 2.0], "conversion": [1.0, 0.0]}
    name = r"'cvr \(given\)' \(label column 'click'\): binary labels must be 0 or 1"
    with pytest.raises(ValueError, match=name):
        make_dataset(columns, [USER], [CVR])
    ds = make_dataset(_csv(tmp_path, columns), [USER], [CVR], shuffle=False)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Task `cvr \(given\)` \(CSV column `click`\): binary labels must be 0",
    ):
        list(ds)


def test_streamed_multi_valued_ids_are_range_checked(tmp_path):
    path = tmp_path / "tags.csv"
    path.write_text("tags\n1|2\n3|12|4\n")
    tags = SparseFeature("tags", vocabulary_size=10, max_len=3)
    ds = make_dataset(str(path), [tags], shuffle=False, unseen_ids="error")
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"\[12\]"):
        list(ds)
    with pytest.raises(ValueError, match=r"'tags'.*from 1 to 12 \(1 out of range"):
        make_dataset({"tags": [[1, 2], [3, 12, 4]]}, [tags], unseen_ids="error")


def test_stacked_columns_name_the_column_that_breaks_the_rule(tmp_path):
    """Scalar columns are checked together; each keeps its own spec and name."""
    path = tmp_path / "two.csv"
    path.write_text("a,b,c\n9,4,-1\n9,7,0\n")
    features = [SparseFeature(n, vocabulary_size=s) for n, s in zip("ab", (10, 5))]
    ds = make_dataset(str(path), features, shuffle=False, unseen_ids="error")
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"SparseFeature `b` \(CSV column `b`\): ids must lie in "
        r"\[0, vocabulary_size=5\).*\[7\] \[in batch rows\] \[1\]",
    ):
        list(ds)
    # missing_value=-1 is a valid label of "c" only; "c2" reads the same column.
    tasks = [Task("c", missing_value=-1.0), Task("c2", label="c")]
    ds = make_dataset(str(path), features[:1], tasks, shuffle=False)
    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match=r"Task `c2` \(CSV column `c`\): binary labels must be 0 or 1 "
        r"\(NaN for a missing label\); received\] \[-1\] \[in batch rows\] \[0\]",
    ):
        list(ds)
    ok = make_dataset(str(path), features[:1], tasks[:1], shuffle=False)
    assert [y["c"].numpy().tolist() for _, y in ok] == [[-1.0, 0.0]]
