"""TensorFlow-side conversions and checks shared by the streamed readers (CSV, TFRecord).

Streamed data is never held in memory, so the data rules (`keras_mtl.data._rules`)
that `validate_in_memory` applies to whole columns up front are asserted here per
batch, inside the `tf.data` map, with the same message cores naming the feature
and its file column.
"""

from __future__ import annotations

import tensorflow as tf

from keras_mtl.data._rules import check_tensor, check_tensors, parent_task
from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import Task

#: Separator of the values of a multi-valued field in one CSV cell.
MULTI_VALUE_SEPARATOR = "|"

_INT_PATTERN = r"\s*[+-]?\d+(\.0*)?\s*"
_FLOAT_PATTERN = (
    r"\s*[+-]?(((\d+\.?\d*)|(\.\d+))([eE][+-]?\d+)?|(?i:nan|inf|infinity))\s*"
)


def with_check(value, ok, message: str, offending):
    """`value`, after asserting that `ok` holds everywhere (else InvalidArgumentError)."""
    assertion = tf.debugging.Assert(
        tf.reduce_all(ok), [message, offending], summarize=5
    )
    with tf.control_dependencies([assertion]):
        return tf.identity(value)


def parse_number_columns(
    columns: list[tf.Tensor],
    dtype: tf.DType,
    whats: list[str],
    empty: str | None,
) -> list[tf.Tensor]:
    """Parse same-shaped string columns at once (one op chain for all of them).

    Args:
        columns: list of k string tensors of shape (n,).
        dtype: tf.int64 or tf.float32.
        whats: k descriptions naming each column, used in the error message.
        empty: text that an empty cell stands for ("nan", "-1"), or None if an
            empty cell is an error.

    Returns:
        k tensors of `dtype` and shape (n,). A value that does not parse fails
        the pipeline with an InvalidArgumentError naming its column.
    """
    cells = tf.strings.strip(tf.stack(columns, axis=1))
    pattern = _INT_PATTERN if dtype.is_integer else _FLOAT_PATTERN
    ok = tf.strings.regex_full_match(cells, pattern)
    if empty is not None:
        is_empty = tf.equal(cells, "")
        ok |= is_empty
        cells = tf.where(is_empty, empty, cells)
    if dtype.is_integer:
        cells = tf.strings.regex_replace(cells, r"\.0*$", "")
    column_ok = tf.reduce_all(ok, axis=0)
    first_bad = tf.argmin(tf.cast(column_ok, tf.int32))
    assertion = tf.debugging.Assert(
        tf.reduce_all(column_ok),
        [
            tf.gather(tf.constant(whats), first_bad),
            f": expected {'integers' if dtype.is_integer else 'numbers'}; received",
            tf.boolean_mask(
                tf.gather(cells, first_bad, axis=1),
                tf.logical_not(tf.gather(ok, first_bad, axis=1)),
            ),
        ],
        summarize=5,
    )
    with tf.control_dependencies([assertion]):
        values = tf.strings.to_number(cells, out_type=dtype)
    return tf.unstack(values, num=len(columns), axis=1)


def parse_numbers(
    cells: tf.Tensor, dtype: tf.DType, what: str, empty: str | None = "nan"
) -> tf.Tensor:
    """One string column (n,) -> numbers; see `parse_number_columns`."""
    return parse_number_columns([cells], dtype, [what], empty)[0]


def cells_to_ids(cells: tf.Tensor, feature: SparseFeature, what: str) -> tf.Tensor:
    """Batch of CSV cells -> ids (batch,) or (batch, max_len), empty -> pad
    (the raw numbers of a bucketised feature: int64, or float32 with NaN)."""
    if feature.max_len is None:
        if feature.dtype == "string":
            return cells
        dtype = tf.as_dtype(feature.dtype)
        return parse_numbers(cells, dtype, what, empty=str(feature.pad_value))
    tokens = tf.strings.split(cells, sep=MULTI_VALUE_SEPARATOR)
    if feature.dtype != "string":
        tokens = tf.strings.strip(tokens)
    tokens = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
    if feature.dtype != "string":
        tokens = tokens.with_flat_values(
            parse_numbers(
                tokens.flat_values, tf.as_dtype(feature.dtype), what, empty=None
            )
        )
    return pad_ragged(tokens, feature)


def pad_ragged(values: tf.RaggedTensor, feature: SparseFeature) -> tf.Tensor:
    """(batch, None) ragged ids -> (batch, max_len), padded and truncated."""
    return values.to_tensor(
        default_value=feature.pad_value, shape=[None, feature.max_len]
    )


def cells_to_dense(cells: tf.Tensor, feature: DenseFeature, what: str) -> tf.Tensor:
    """Batch of CSV cells -> float32 (batch,) or (batch, dim); empty -> NaN."""
    if feature.dim == 1:
        return parse_numbers(cells, tf.float32, what)
    empty = tf.equal(tf.strings.strip(cells), "")
    nan_row = tf.strings.reduce_join(
        tf.fill([feature.dim], "nan"), separator=MULTI_VALUE_SEPARATOR
    )
    cells = tf.where(empty, nan_row, cells)
    tokens = tf.strings.split(cells, sep=MULTI_VALUE_SEPARATOR)
    return ragged_to_vectors(
        tokens.with_flat_values(parse_numbers(tokens.flat_values, tf.float32, what)),
        feature,
        what,
    )


def ragged_to_vectors(
    values: tf.RaggedTensor, feature: DenseFeature, what: str
) -> tf.Tensor:
    """(batch, None) ragged floats that must have exactly `dim` values per row."""
    lengths = values.row_lengths()
    values = with_check(
        values.to_tensor(default_value=float("nan"), shape=[None, feature.dim]),
        tf.equal(lengths, feature.dim),
        f"{what}: expected {feature.dim} values per row; received row lengths:",
        tf.boolean_mask(lengths, tf.not_equal(lengths, feature.dim)),
    )
    return values


def check_weight(weights: tf.Tensor, what: str) -> tf.Tensor:
    """Assert the sample-weight rule (finite, >= 0) on a batch of weights."""
    return check_tensor("weight", None, what, weights)


def check_dense(values: tf.Tensor, feature: DenseFeature, what: str) -> tf.Tensor:
    """Assert the dense-value rules (no inf; no NaN unless `allow_missing`)."""
    return check_tensor("dense", feature, what, values)


def check_ids(ids: tf.Tensor, feature: SparseFeature, what: str) -> tf.Tensor:
    """Assert the id-range rule (`[0, vocabulary_size)` or padding) on a batch."""
    return check_tensor("ids", feature, what, ids)


def check_label(labels: tf.Tensor, task: Task, what: str) -> tf.Tensor:
    """Assert the label rules of `task` (finite; 0/1 or missing for binary tasks)."""
    return check_tensor("label", task, what, labels)


def funnel_label(labels: tf.Tensor, parent: tf.Tensor, task: Task, what: str):
    """Assert the funnel-order rule (label 1 only where `parent` is 1); with
    `given`, mask the label where `parent` is not 1."""
    labels = check_tensor("funnel", task, what, labels, parent)
    if task.given is None:
        return labels
    return tf.where(
        tf.equal(parent, 1.0), labels, tf.fill(tf.shape(labels), float("nan"))
    )


def check_feature_values(x: dict, features, what, skip: tuple = ()) -> dict:
    """`x` after the dense-value and id-range rules, one assertion per rule and
    column shape for all `features` (`what(feature)` names the source; the
    rules named in `skip` are left out)."""
    items = {"dense": [], "ids": []}
    for f in features:
        target = "dense" if isinstance(f, DenseFeature) else "ids"
        items[target].append((f, what(f), x[f.name]))
    out = dict(x)
    for target, chosen in items.items():
        for (f, _, _), value in zip(chosen, check_tensors(target, chosen, skip)):
            out[f.name] = value
    return out


def task_labels(numbers: dict, tasks, what) -> dict:
    """Labels of `tasks` from parsed float columns; `what(task)` names the source.

    A `given` / `requires` column is checked as the binary label of
    `parent_task(task)` (as in memory), then the funnel order; a `given` label
    is masked (NaN) where its parent event did not happen.
    """
    funnels = [t for t in tasks if t.parent_column is not None]
    parents = [parent_task(t) for t in funnels]
    columns = [t.label_column for t in tasks] + [t.parent_column for t in funnels]
    checked = check_tensors(
        "label",
        [(t, what(t), numbers[c]) for t, c in zip([*tasks, *parents], columns)],
    )
    y = {t.name: value for t, value in zip(tasks, checked)}
    happened = dict(zip([t.name for t in funnels], checked[len(tasks) :]))
    for t in funnels:
        y[t.name] = funnel_label(y[t.name], happened[t.name], t, what(t))
    return y


def assemble(features: dict, labels: dict | None, weights=None):
    """Dataset element: features only, (features, labels) or (x, y, weights)."""
    if labels is None:
        return features
    if weights is None:
        return features, labels
    return features, labels, weights
