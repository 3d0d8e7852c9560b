"""TensorFlow-side conversions and checks shared by the streamed readers (CSV, TFRecord).

Streamed data is never held in memory, so the checks that `validate_in_memory`
does up front happen here per batch, inside the `tf.data` map, as assertions
whose message names the feature.
"""

from __future__ import annotations

import tensorflow as tf

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
    """Batch of CSV cells -> ids (batch,) or (batch, max_len), empty -> pad."""
    if feature.max_len is None:
        if feature.dtype == "string":
            return cells
        return parse_numbers(cells, tf.int64, what, empty=str(feature.pad_value))
    tokens = tf.strings.split(cells, sep=MULTI_VALUE_SEPARATOR)
    if feature.dtype == "int64":
        tokens = tf.strings.strip(tokens)
    tokens = tf.ragged.boolean_mask(tokens, tf.not_equal(tokens, ""))
    if feature.dtype == "int64":
        tokens = tokens.with_flat_values(
            parse_numbers(tokens.flat_values, tf.int64, what, empty=None)
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
    """Assert per-example weights are finite and >= 0."""
    return with_check(
        weights,
        tf.math.is_finite(weights) & (weights >= 0),
        f"{what}: need finite >= 0",
        weights,
    )


def check_dense(values: tf.Tensor, feature: DenseFeature, what: str) -> tf.Tensor:
    """Assert no inf, and no NaN unless `allow_missing` (the model cannot take them)."""
    if feature.allow_missing:
        return with_check(
            values,
            tf.logical_not(tf.math.is_inf(values)),
            f"{what}: contains inf; only finite values or NaN (missing) allowed.",
            tf.shape(values),
        )
    return tf.debugging.check_numerics(
        values,
        f"{what}: NaN or inf (an empty cell or absent value is NaN) but "
        "allow_missing=False",
    )


def check_label(labels: tf.Tensor, task: Task, what: str) -> tf.Tensor:
    """Assert finite-or-NaN labels, and 0/1 (or missing) for binary tasks."""
    ok = tf.logical_not(tf.math.is_inf(labels))
    expected = "finite labels or NaN"
    if task.type == "binary":
        missing = tf.math.is_nan(labels)
        if task.missing_value is not None:
            missing |= tf.equal(labels, task.missing_value)
        ok = missing | tf.equal(labels, 0.0) | tf.equal(labels, 1.0)
        expected = "binary labels 0 or 1 (NaN or missing_value for missing)"
    return with_check(
        labels,
        ok,
        f"{what}: expected {expected}; received:",
        tf.boolean_mask(labels, tf.logical_not(ok)),
    )


def funnel_label(labels: tf.Tensor, parent: tf.Tensor, task: Task, what: str):
    """Assert the label is 1 only where `parent` is 1; mask other rows if `given`."""
    happened = tf.equal(parent, 1.0)
    ok = tf.logical_not(tf.equal(labels, 1.0) & tf.logical_not(happened))
    labels = with_check(
        labels,
        ok,
        f"{what}: {task.label_column}=1 where {task.parent_column}!=1 (a "
        f"{task.label_column} needs a {task.parent_column} first); in the batch, "
        "rows",
        tf.where(tf.logical_not(ok))[:, 0],
    )
    if task.given is None:
        return labels
    return tf.where(happened, labels, tf.fill(tf.shape(labels), float("nan")))


def task_labels(numbers: dict, tasks, what) -> dict:
    """Labels of `tasks` from parsed float columns; `what(task)` names the source."""
    y = {}
    for t in tasks:
        y[t.name] = check_label(numbers[t.label_column], t, what(t))
        if t.parent_column is not None:
            y[t.name] = funnel_label(y[t.name], numbers[t.parent_column], t, what(t))
    return y


def assemble(features: dict, labels: dict | None, weights=None):
    """Dataset element: features only, (features, labels) or (x, y, weights)."""
    if labels is None:
        return features
    if weights is None:
        return features, labels
    return features, labels, weights
