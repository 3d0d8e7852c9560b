"""The data rules: what a valid label, funnel, weight, dense value or id is, once.

Each `Rule` says which values are valid (`valid`, written once over an array
namespace so that the same expression runs on numpy arrays and on tensors) and
what is expected (`expected`, the core of the error message). Two evaluators
apply the table:

- `check_array`, for in-memory data: eagerly on whole numpy columns at
  `make_dataset` time, raising a ValueError that names the column, the
  expectation and the offending values and rows;
- `check_tensor`, for streamed data: inside the `tf.data` graph, per batch, as a
  `tf.debugging.Assert` with the same message core and the offending values and
  batch rows (an `InvalidArgumentError` when the batch is read).

Type and shape coercion (strings vs numbers, ragged lists, padding) happens
before, in `_validate` (in memory) and `_tensors` (streamed); the rules see
numbers: float32 labels, dense values and weights, int64 ids, and the raw
numbers (int64 or float32) of bucketised sparse features.
"""

from __future__ import annotations

import dataclasses
import types
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf

from keras_mtl.features import DenseFeature, SparseFeature
from keras_mtl.tasks import Task


def _rows(reduce):
    """`reduce` over every axis but the first (the rows)."""

    def over_rows(values):
        return reduce(np.reshape(values, (len(values), -1)), axis=1)

    return over_rows


def _tensor_rows(reduce):
    def over_rows(values):
        return reduce(tf.reshape(values, [tf.shape(values)[0], -1]), axis=1)

    return over_rows


#: The operations a rule may use besides `<`, `>=`, `&`, `|`, `~`, on numpy arrays.
NUMPY = types.SimpleNamespace(
    isnan=np.isnan,
    isinf=np.isinf,
    floor=np.floor,
    equal=lambda values, constant: values == np.asarray(constant, values.dtype),
    all_rows=_rows(np.all),
    any_rows=_rows(np.any),
    sum_rows=_rows(np.sum),
)
#: The same operations on tensors, inside a `tf.data` graph.
TENSORS = types.SimpleNamespace(
    isnan=tf.math.is_nan,
    isinf=tf.math.is_inf,
    floor=tf.math.floor,
    equal=tf.equal,
    all_rows=_tensor_rows(tf.reduce_all),
    any_rows=_tensor_rows(tf.reduce_any),
    sum_rows=_tensor_rows(tf.reduce_sum),
)


@dataclasses.dataclass(frozen=True)
class Rule:
    """One data rule.

    Args:
        name: str. Identifier of the rule.
        targets: tuple of str. What it checks: "label" (one number per row),
            "label_vector" (a vector label per row), "funnel" (a label and its
            `given` / `requires` column), "dense", "ids" or "weight".
        applies: callable `(spec) -> bool`. Whether the rule holds for a spec
            (a `Task`, `DenseFeature`, `SparseFeature`, or None for weights).
        valid: callable `(ops, spec, values, *more) -> bool array`. True where
            `values` is valid; `ops` is `NUMPY` or `TENSORS`.
        expected: callable `(spec) -> str`. The message core: what is valid.
        per_row: bool. `valid` judges whole rows (shape `(N,)`). Defaults to False.
        show_values: bool. The message quotes offending values. Defaults to True.
        describe: optional callable `(spec, values, valid) -> str`, a custom
            in-memory detail (after the core). Defaults to offending values and rows.
        spec_fields: tuple of str. The spec attributes `valid` reads. Several
            scalar columns are then checked at once, stacked `(batch, k)`, with
            each attribute an array over the k columns (None becomes NaN).
            Defaults to none.
    """

    name: str
    targets: tuple[str, ...]
    applies: Callable[[Any], bool]
    valid: Callable[..., Any]
    expected: Callable[[Any], str]
    per_row: bool = False
    show_values: bool = True
    describe: Callable[..., str] | None = None
    spec_fields: tuple[str, ...] = ()


def _binary_ok(ops, task: Task, y):
    ok = ops.isnan(y) | ops.equal(y, 0.0) | ops.equal(y, 1.0)
    if task.missing_value is not None:
        ok |= ops.equal(y, task.missing_value)
    return ok


def _domain_ok(ops, task: Task, y):
    ok = (y > task.label_floor) | ops.isnan(y)
    if task.missing_value is not None:
        ok |= ops.equal(y, task.missing_value)
    return ok


def _binary_expected(task: Task) -> str:
    missing = (
        "" if task.missing_value is None else f" or missing_value={task.missing_value}"
    )
    return f"binary labels must be 0 or 1 (NaN{missing} for a missing label)"


def _class_index_ok(ops, task: Task, y):
    whole = ops.equal(y, ops.floor(y)) & (y >= 0) & (y < task.num_classes)
    return ops.isnan(y) | whole


def _class_weights_ok(ops, task: Task, y):
    known = ~ops.any_rows(ops.isnan(y))
    return ~known | (ops.all_rows(y >= 0) & (ops.sum_rows(y) > 0))


def _ids_ok(ops, feature: SparseFeature, ids):
    in_range = (ids >= 0) & (ids < feature.vocabulary_size)
    return ops.equal(ids, feature.pad_value) | in_range


def _ids_detail(feature: SparseFeature, ids: np.ndarray, valid: np.ndarray) -> str:
    present = ids[ids != feature.pad_value]
    bad = ids[~valid]
    return (
        f"received ids from {present.min()} to {present.max()} ({bad.size} out of "
        f"range, e.g. {bad[0]})"
    )


def _funnel_expected(task: Task) -> str:
    label, parent = task.label_column, task.parent_column
    return (
        f"{label}=1 where {parent}!=1 (a {label} needs a {parent} first; fix or "
        "drop those rows)"
    )


def _is_task_type(*types_: str) -> Callable[[Task], bool]:
    return lambda task: task.type in types_


#: Every data rule, in the order they are checked.
RULES = (
    Rule(
        "finite_label",
        ("label", "label_vector"),
        lambda task: True,
        lambda ops, task, y: ~ops.isinf(y),
        lambda task: "labels must be finite numbers (or NaN for a missing label)",
    ),
    Rule(
        "binary_label",
        ("label",),
        _is_task_type("binary"),
        _binary_ok,
        _binary_expected,
        spec_fields=("missing_value",),
    ),
    Rule(
        "class_index",
        ("label",),
        _is_task_type("multiclass"),
        _class_index_ok,
        lambda task: (
            f"class indices must be integers in [0, num_classes={task.num_classes}) "
            "or NaN"
        ),
        spec_fields=("num_classes",),
    ),
    Rule(
        "class_weights",
        ("label_vector",),
        _is_task_type("multiclass"),
        _class_weights_ok,
        lambda task: (
            "a label vector needs non-negative weights with a positive sum (a "
            "one-hot, multi-hot or probability vector), or NaN for a missing label"
        ),
        per_row=True,
    ),
    Rule(
        "relevance_grade",
        ("label_vector",),
        _is_task_type("ranking"),
        lambda ops, task, y: (y >= 0) | ops.equal(y, -1.0),
        lambda task: (
            "relevance grades must be >= 0, or -1 / NaN for a padded candidate"
        ),
    ),
    Rule(
        "transform_domain",
        ("label",),
        lambda task: task.label_floor is not None,
        _domain_ok,
        lambda task: (
            f"labels must be > {task.label_floor:g} (the task is trained on their "
            f"{task.transform!r}; NaN for a missing label)"
        ),
        spec_fields=("label_floor", "missing_value"),
    ),
    Rule(
        "funnel_order",
        ("funnel",),
        lambda task: task.parent_column is not None,
        lambda ops, task, y, parent: ~(ops.equal(y, 1.0) & ~ops.equal(parent, 1.0)),
        _funnel_expected,
        show_values=False,
    ),
    Rule(
        "sample_weight",
        ("weight",),
        lambda spec: True,
        lambda ops, spec, w: ~ops.isnan(w) & ~ops.isinf(w) & (w >= 0),
        lambda spec: "weights must be finite and >= 0",
    ),
    Rule(
        "dense_finite",
        ("dense",),
        lambda feature: True,
        lambda ops, feature, x: ~ops.isinf(x),
        lambda feature: (
            "contains inf (or values too large for float32); only finite values "
            "(and NaN with allow_missing=True) are allowed"
        ),
    ),
    Rule(
        "dense_complete",
        ("dense",),
        lambda feature: not feature.allow_missing,
        lambda ops, feature, x: ~ops.isnan(x),
        lambda feature: (
            "contains NaN but allow_missing=False; fill the gaps or declare "
            "DenseFeature(..., allow_missing=True)"
        ),
    ),
    Rule(
        "dense_domain",
        ("dense",),
        lambda feature: feature.transform is not None,
        lambda ops, feature, x: (x > feature.domain_floor) | ops.isnan(x),
        lambda feature: (
            f"values must be > {feature.domain_floor:g} (the model takes their "
            f"{feature.transform})"
        ),
        spec_fields=("domain_floor",),
    ),
    Rule(
        "bucketised_finite",
        ("ids",),
        lambda feature: feature.dtype == "float32",
        lambda ops, feature, x: ~ops.isinf(x),
        lambda feature: (
            "bucketised values must be finite numbers (NaN for no value; inf "
            "or values too large for float32 are errors)"
        ),
    ),
    Rule(
        "id_range",
        ("ids",),
        lambda feature: feature.vocabulary_size is not None,
        _ids_ok,
        lambda feature: (
            f"ids must lie in [0, vocabulary_size={feature.vocabulary_size}) or be "
            f"the padding value {feature.pad_value}"
        ),
        describe=_ids_detail,
        spec_fields=("vocabulary_size", "pad_value"),
    ),
)


def labelled_rows(task: Task, labels: np.ndarray) -> np.ndarray:
    """Which rows of a task's checked labels (as `make_dataset` yields them)
    carry a label, i.e. are not masked out of its loss and metrics.

    A missing label is NaN or the task's `missing_value`; a multiclass row of
    NaN; a ranking row of padded candidates only (-1). A `given` task's rows
    whose event is not 1 are NaN by then.
    """
    if task.type == "ranking":
        return (labels >= 0).any(axis=1)
    known = ~np.isnan(labels)
    if task.type == "multiclass":
        return known.all(axis=1)
    if task.missing_value is not None:
        known &= labels != np.float32(task.missing_value)
    return known


def parent_task(task: Task) -> Task:
    """The binary task whose label is `task`'s `given` / `requires` column.

    Its values are checked as binary labels before the funnel order, under the
    name `"{task} (given)"` or `"{task} (requires)"`.
    """
    role = "given" if task.given is not None else "requires"
    return Task(f"{task.name} ({role})", label=task.parent_column)


def rules_for(
    target: str,
    spec: Task | DenseFeature | SparseFeature | None,
    skip: tuple[str, ...] = (),
) -> list:
    """The rules of `RULES` that check `target` values of `spec`, in order
    (without the rules named in `skip`)."""
    if target == "ids" and spec.dtype == "string":
        return []
    return [
        r
        for r in RULES
        if target in r.targets and r.applies(spec) and r.name not in skip
    ]


def check_array(
    target: str, spec, what: str, values: np.ndarray, *more, skip: tuple = ()
) -> None:
    """Apply the rules of `target` to a whole in-memory column.

    Args:
        target: "label", "label_vector", "funnel", "dense", "ids" or "weight".
        spec: the column's `Task`, `DenseFeature`, `SparseFeature` (None for weights).
        what: str. Names the column in the message, e.g. "Task 'ctr' (label
            column 'click')".
        values: numpy array, one entry (or row) per example.
        *more: further columns a rule reads (the funnel's parent column).
        skip: tuple of str. Names of rules not to check (e.g. "id_range" when
            unseen ids go to the OOV row). Defaults to none.

    Raises:
        ValueError: `"{what}: {expected}; received {values} in {n} row(s) (first
            rows [...])."` for the first rule broken.
    """
    for rule in rules_for(target, spec, skip):
        valid = np.asarray(rule.valid(NUMPY, spec, values, *more))
        if not valid.all():
            detail = _detail(rule, spec, values, valid)
            raise ValueError(f"{what}: {rule.expected(spec)}; {detail}.")


def _detail(rule: Rule, spec, values: np.ndarray, valid: np.ndarray) -> str:
    if rule.describe is not None:
        return rule.describe(spec, values, valid)
    bad_rows = ~valid if rule.per_row else ~NUMPY.all_rows(valid)
    rows = np.flatnonzero(bad_rows)
    where = f"in {rows.size} row(s) (first rows {rows[:5].tolist()})"
    if not rule.show_values:
        return f"found {where}"
    if rule.per_row:
        return f"received e.g. {values[rows[0]].tolist()} {where}"
    return f"received {np.unique(values[~valid])[:5].tolist()} {where}"


def check_tensor(target: str, spec, what: str, values: tf.Tensor, *more) -> tf.Tensor:
    """`values`, after asserting the rules of `target` on a batch (graph-safe).

    The arguments are those of `check_array`, with tensors for a batch. A broken
    rule fails the pipeline with an `InvalidArgumentError` whose message is
    `"{what}: {expected}; received"` followed by the offending values and their
    rows in the batch. The rules are checked in table order.
    """
    return check_tensors(target, [(spec, what, values, *more)])[0]


def check_tensors(target: str, items: list, skip: tuple = ()) -> list:
    """`check_tensor` for several columns at once, e.g. every id column of a batch.

    Scalar columns `(batch,)` of one dtype are stacked and checked together:
    one assertion per rule, whose message names the first column that breaks
    it, so that wide data costs a few ops per rule rather than per column.

    Args:
        target: as for `check_array`.
        items: list of `(spec, what, values, *more)` tuples.
        skip: tuple of str. Names of rules not to assert. Defaults to none.

    Returns:
        The `values` of each item, in order, after the assertions.
    """
    assertions = []
    for rule in RULES:
        chosen = [item for item in items if rule in rules_for(target, item[0], skip)]
        groups: dict = {}
        for item in chosen:
            values = item[2]
            stackable = values.shape.rank == 1 and not rule.per_row
            key = (values.dtype, len(item)) if stackable else id(item)
            groups.setdefault(key, []).append(item)
        for group in groups.values():
            with tf.control_dependencies(assertions[-1:]):
                assertions.append(_assert_rule(rule, group))
    values = [item[2] for item in items]
    if not assertions:
        return values
    with tf.control_dependencies(assertions[-1:]):
        return tf.identity_n(values)


def _assert_rule(rule: Rule, items: list):
    """One assertion of `rule` on one column, or on scalar columns stacked."""
    after = "received" if rule.show_values else "found in batch rows"
    messages = [f"{what}: {rule.expected(spec)}; {after}" for spec, what, *_ in items]
    if len(items) == 1:
        spec, _, values, *more = items[0]
        valid = rule.valid(TENSORS, spec, values, *more)
        message = messages[0]
    else:
        values = tf.stack([item[2] for item in items], axis=1)
        more = [tf.stack(column, axis=1) for column in zip(*(it[3:] for it in items))]
        spec = _stacked_spec(rule, [item[0] for item in items], values.dtype)
        table = rule.valid(TENSORS, spec, values, *more)  # (batch, k)
        first = tf.argmin(tf.cast(tf.reduce_all(table, axis=0), tf.int32))
        valid = tf.gather(table, first, axis=1)
        values = tf.gather(values, first, axis=1)
        message = tf.gather(tf.constant(messages), first)
    rows_ok = valid if rule.per_row else TENSORS.all_rows(valid)
    rows = tf.where(tf.logical_not(rows_ok))[:, 0]
    data = [message, rows]
    if rule.show_values:
        bad = tf.logical_not(rows_ok if rule.per_row else valid)
        data = [message, tf.boolean_mask(values, bad), "in batch rows", rows]
    return tf.debugging.Assert(tf.reduce_all(valid), data, summarize=5)


def _stacked_spec(rule: Rule, specs: list, dtype: tf.DType) -> types.SimpleNamespace:
    """The `spec_fields` of k specs as arrays over the k columns (None -> NaN)."""
    fields = {}
    for field in rule.spec_fields:
        column = [getattr(spec, field) for spec in specs]
        column = [np.nan if value is None else value for value in column]
        fields[field] = np.array(column, dtype=dtype.as_numpy_dtype)
    return types.SimpleNamespace(**fields)
