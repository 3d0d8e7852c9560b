"""Validation and conversion of in-memory data (pandas DataFrame or dict of arrays).

`validate_in_memory` is the single entry point used by every in-memory path
(`make_dataset` on a DataFrame or a dict, `write_tfrecord`). It looks up each
column, coerces its dtype and shape to the element format of `make_dataset` and
applies the data rules of `keras_mtl.data._rules` (the same table the streamed
readers apply per batch) to whole columns, so that bad input fails here with a
message naming the feature instead of deep inside TensorFlow or as a NaN loss.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from keras_mtl.data import _unseen
from keras_mtl.data._rules import check_array, labelled_rows, parent_task
from keras_mtl.features import DenseFeature, Feature, SequenceFeature, SparseFeature
from keras_mtl.tasks import Task


@dataclasses.dataclass(frozen=True)
class InMemoryColumns:
    """Checked numpy arrays, one per feature / task (keyed by task name)."""

    features: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]
    sample_weight: np.ndarray | None
    num_rows: int


def column_names(data: Any) -> list[str]:
    """Column names of a DataFrame or a mapping of arrays."""
    if isinstance(data, pd.DataFrame):
        return [str(c) for c in data.columns]
    return [str(c) for c in data.keys()]


def validate_in_memory(
    data: pd.DataFrame | Mapping[str, Any],
    features: Sequence[Feature],
    tasks: Sequence[Task],
    sample_weight: str | None = None,
    unseen_ids: str | None = "error",
) -> InMemoryColumns:
    """Look up, check and convert every column needed by `features` and `tasks`.

    Args:
        data: pandas DataFrame, or mapping of column name to numpy array / list.
        features: checked feature specs.
        tasks: checked task specs (may be empty).
        sample_weight: optional name of a column of per-row weights.
        unseen_ids: "error" (ids outside `[0, vocabulary_size)` are a
            ValueError), "oov" (they become `vocabulary_size`, the OOV row, and
            are reported once per feature: `keras_mtl.data._unseen`) or None
            (kept as they are). Defaults to "error".

    Returns:
        `InMemoryColumns` with int64 / string / float32 arrays in the element
        format of `make_dataset` (multi-valued sparse features padded and
        truncated to `max_len`; a float32 bucketised feature keeps its raw
        numbers, NaN for none).

    Raises:
        ValueError: missing column, wrong shape or length, no rows, ids outside
            the vocabulary, NaN/inf where not allowed, non-0/1 binary labels.
        TypeError: a column of the wrong dtype (e.g. strings for a dense feature).
    """
    if not isinstance(data, (pd.DataFrame, Mapping)):
        raise TypeError(
            "In-memory data must be a pandas DataFrame or a dict of arrays; got "
            f"{type(data).__name__}."
        )
    available = column_names(data)
    wanted = [
        (f"input {name!r} of SequenceFeature {f.name!r}", name)
        for f in features
        if isinstance(f, SequenceFeature)
        for name in f.input_names
    ]
    wanted += [
        (f"feature {f.name!r}", f.name)
        for f in features
        if not isinstance(f, SequenceFeature)
    ]
    wanted += [(f"label of task {t.name!r}", t.label_column) for t in tasks]
    wanted += [
        (f"{'given' if t.given else 'requires'} column of task {t.name!r}", col)
        for t in tasks
        if (col := t.parent_column) is not None
    ]
    if sample_weight is not None:
        wanted.append(("sample_weight", sample_weight))
    missing = [f"{what} (column {col!r})" for what, col in wanted if col not in data]
    if missing:
        raise ValueError(
            f"Missing from the data: {', '.join(missing)}. Available columns: "
            f"{available}."
        )

    lengths = {col: len(data[col]) for _, col in wanted}
    num_rows = next(iter(lengths.values()))
    if any(n != num_rows for n in lengths.values()):
        raise ValueError(f"Columns have different numbers of rows: {lengths}.")
    if num_rows == 0:
        raise ValueError("The data has no rows; at least one example is needed.")

    unseen = None
    if unseen_ids == "oov":
        specs = _unseen.counted_specs(features)
        unseen = _unseen.UnseenIds(specs, "the in-memory data") if specs else None
    out_features = {}
    for f in features:
        if isinstance(f, SequenceFeature):
            for field in f.fields:
                spec = f.input_spec(field)
                ids = _step_ids(spec, f.input_shape(field), _as_numpy(data[spec.name]))
                out_features[spec.name] = _vocabulary_ids(spec, ids, unseen_ids, unseen)
        else:
            values = _feature_array(f, _as_numpy(data[f.name]))
            if isinstance(f, SparseFeature):
                values = _vocabulary_ids(f, values, unseen_ids, unseen)
            out_features[f.name] = values
    if unseen is not None:
        unseen.end_pass(stacklevel=4)  # the caller of make_dataset
    check_ints_fit_the_backend(out_features)
    labels = {t.name: _label_array(t, _as_numpy(data[t.label_column])) for t in tasks}
    for t in tasks:
        if t.parent_column is not None:
            labels[t.name] = _funnel_labels(
                t, labels[t.name], _as_numpy(data[t.parent_column])
            )
    weight = None
    if sample_weight is not None:
        weight = _weight_array(sample_weight, _as_numpy(data[sample_weight]))
    return InMemoryColumns(out_features, labels, weight, num_rows)


def warn_unlabelled(tasks: Sequence[Task], labels: Mapping[str, np.ndarray]) -> None:
    """A `UserWarning` for each task without a label in any row.

    Such a task trains silently with a zero loss and empty metrics, which is
    almost always a wrong label column (or a `given` event that never occurs).

    Args:
        tasks: checked task specs.
        labels: the checked labels by task name (`InMemoryColumns.labels`).
    """
    for task in tasks:
        values = labels[task.name]
        if labelled_rows(task, values).any():
            continue
        missing = ["NaN"]
        if task.missing_value is not None:
            missing.append(f"missing_value={task.missing_value}")
        if task.type == "ranking":
            missing = ["-1 / NaN (padded candidates only)"]
        if task.given is not None:
            missing.append(f"masked where {task.given!r} is not 1")
        warnings.warn(
            f"Task {task.name!r} (label column {task.label_column!r}) has no label "
            f"in any of the {len(values)} rows (every one is {' or '.join(missing)}): "
            "it adds nothing to the loss and its metrics measure nothing. Check the "
            "column, or leave the task out.",
            UserWarning,
            stacklevel=3,
        )


# ----------------------------------------------------------------------------- columns


def _as_numpy(column: Any) -> np.ndarray:
    """A column as a numpy array; ragged lists become a 1-D object array."""
    if isinstance(column, pd.Series):
        dtype = column.dtype
        if isinstance(dtype, pd.api.extensions.ExtensionDtype):
            if pd.api.types.is_numeric_dtype(dtype) or pd.api.types.is_bool_dtype(
                dtype
            ):
                return column.to_numpy(dtype="float64", na_value=np.nan)
            return column.to_numpy(dtype=object, na_value=None)
        return column.to_numpy()
    if isinstance(column, np.ndarray):
        return column
    if hasattr(column, "numpy"):  # eager tf.Tensor
        return np.asarray(column.numpy())
    try:
        array = np.asarray(column)
    except ValueError:  # ragged nested lists
        array = None
    if array is None or (array.dtype == object and array.ndim > 1):
        array = np.empty(len(column), dtype=object)
        for i, value in enumerate(column):  # item by item: no broadcasting
            array[i] = value
    return array


def _describe(array: np.ndarray) -> str:
    if array.dtype != object:
        return f"dtype {array.dtype}"
    kinds = sorted({type(v).__name__ for v in array.ravel()[:1000]})
    return f"Python objects of type {', '.join(kinds)}"


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _has_strings(array: np.ndarray) -> bool:
    if array.dtype.kind in "USO" and array.dtype != object:
        return True
    if array.dtype == object:
        return any(isinstance(v, (str, bytes)) for v in array.ravel())
    return False


def _numeric(array: np.ndarray, what: str, expected: str) -> np.ndarray:
    """`array` as float64 (None -> NaN), or TypeError naming `what`."""
    if array.dtype.kind in "biuf":
        return array.astype(np.float64, copy=False)
    if array.dtype == object and not _has_strings(array):
        try:
            return np.array(
                [np.nan if _is_missing(v) else v for v in array.ravel()],
                dtype=np.float64,
            ).reshape(array.shape)
        except (TypeError, ValueError):
            pass
    raise TypeError(f"{what}: expected {expected}; received {_describe(array)}.")


# ----------------------------------------------------------------------------- features


def _vocabulary_ids(spec: SparseFeature, ids: np.ndarray, unseen_ids, unseen):
    """`ids` (checked, padded) after the id-range rule: an error, counted and
    sent to the OOV row (`unseen`, an `_unseen.UnseenIds`), or kept."""
    if spec.vocabulary_size is None or spec.dtype != "int64":
        return ids
    if unseen_ids == "error":
        check_array("ids", spec, f"SparseFeature {spec.name!r}", ids)
    elif unseen is not None:
        return unseen.apply_numpy(spec, ids)
    return ids


def check_ints_fit_the_backend(columns: Mapping[str, np.ndarray]) -> None:
    """ValueError for int64 values beyond int32 on JAX without 64-bit mode.

    JAX holds int64 as int32 unless `JAX_ENABLE_X64=1`: an id of 2**31 or
    more (a raw id hashed in the graph, a timestamp after 2038) would be
    truncated in training, into other rows than the exported model (which
    runs on TensorFlow) looks up.
    """
    import keras

    if keras.backend.backend() != "jax":
        return
    import jax

    if jax.config.read("jax_enable_x64"):
        return
    small = np.iinfo(np.int32)
    for name, values in columns.items():
        if values.dtype != np.int64 or not values.size:
            continue
        if values.max() > small.max or values.min() < small.min:
            raise ValueError(
                f"Feature {name!r} has int64 values beyond int32 ({values.min()} "
                f"to {values.max()}), which the JAX backend truncates to int32 "
                "without JAX_ENABLE_X64=1 (training would then look up other "
                "rows than the exported model). Map the ids below 2**31 (a "
                "vocabulary, or hash them first), or train on the TensorFlow or "
                "torch backend."
            )


def _feature_array(feature: Feature, array: np.ndarray) -> np.ndarray:
    if isinstance(feature, DenseFeature):
        return _dense_array(feature, array)
    if feature.max_len is None:
        return _single_ids(feature, _scalar_column(feature, array))
    return _multi_ids(feature, array)


def _scalar_column(feature: Feature, array: np.ndarray) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{_kind(feature)} {feature.name!r}: expected one value per row (shape "
            f"(N,)); received shape {array.shape}."
        )
    if array.dtype == object and any(
        isinstance(v, (list, tuple, np.ndarray)) for v in array
    ):
        raise ValueError(
            f"{_kind(feature)} {feature.name!r}: expected one value per row; "
            "received lists. Set max_len on the SparseFeature for a multi-valued "
            "field."
        )
    return array


def _kind(feature: Feature) -> str:
    return type(feature).__name__


def _single_ids(feature: SparseFeature, array: np.ndarray) -> np.ndarray:
    """Ids of a flat column, missing values replaced by the pad value."""
    what = f"SparseFeature {feature.name!r}"
    if feature.dtype == "string":
        if array.dtype.kind in "US":
            return array.astype(object)
        if array.dtype == object:
            bad = [
                v for v in array if not (isinstance(v, (str, bytes)) or _is_missing(v))
            ]
            if not bad:
                return np.array(
                    [feature.pad_value if _is_missing(v) else v for v in array],
                    dtype=object,
                )
            received = f"values of type {type(bad[0]).__name__}, e.g. {bad[0]!r}"
        else:
            received = f"dtype {array.dtype}"
        raise TypeError(
            f"{what}: expected strings (dtype 'string'); received {received}. Use "
            "an integer SparseFeature (vocabulary_size=...) for integer ids."
        )

    if feature.dtype == "float32":  # bucketised numbers, NaN for none
        if _has_strings(array):
            raise TypeError(
                f"{what}: expected numbers (float32, bucketised by boundaries); "
                f"received strings ({_describe(array)})."
            )
        values = _numeric(array, what, "numbers (float32)").astype(np.float32)
        check_array("ids", feature, what, values, skip=(_unseen.RULE_NAME,))
        return values
    if _has_strings(array):
        raise TypeError(
            f"{what}: expected integer ids (dtype int64); received strings "
            f"({_describe(array)}). Use SparseFeature(vocabulary=[...]) or "
            "hash_bins=... for string values."
        )
    if array.dtype.kind in "biu":
        ids = array.astype(np.int64)
    else:
        values = _numeric(array, what, "integer ids (dtype int64)")
        if np.isinf(values).any():
            raise ValueError(f"{what}: ids contain inf.")
        nan = np.isnan(values)
        whole = np.where(nan, 0.0, values)
        fractional = whole != np.floor(whole)
        if fractional.any():
            raise TypeError(
                f"{what}: expected integer ids (dtype int64); received floats with "
                f"a fractional part, e.g. {float(whole[fractional][0])}."
            )
        ids = np.where(nan, feature.pad_value, whole).astype(np.int64)
    # The id range is checked on the padded column (`_vocabulary_ids`).
    check_array("ids", feature, what, ids, skip=(_unseen.RULE_NAME,))
    return ids


def _multi_ids(feature: SparseFeature, array: np.ndarray) -> np.ndarray:
    """(N, max_len) ids: lists padded with the pad value, truncated to max_len."""
    num_rows, max_len = len(array), feature.max_len
    if array.ndim == 2:
        flat = _single_ids(feature, array.reshape(-1))
        lengths = np.full(num_rows, array.shape[1], dtype=np.int64)
    elif array.ndim == 1 and array.dtype != object:  # one id per row
        flat, lengths = _single_ids(feature, array), np.ones(num_rows, dtype=np.int64)
    elif array.ndim == 1:
        scalar = (str, bytes) if feature.dtype == "string" else ()
        rows = [
            [] if _is_missing(v) else [v] if isinstance(v, scalar) else v for v in array
        ]
        rows = [r if isinstance(r, (list, tuple, np.ndarray)) else [r] for r in rows]
        lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=num_rows)
        flat_raw = np.empty(int(lengths.sum()), dtype=object)
        flat_raw[:] = [v for r in rows for v in r]
        if feature.dtype != "string" and not _has_strings(flat_raw):
            flat_raw = _numeric(flat_raw, f"SparseFeature {feature.name!r}", "ids")
        flat = _single_ids(feature, flat_raw)
    else:
        raise ValueError(
            f"SparseFeature {feature.name!r}: expected lists of ids or a 2-D array "
            f"(N, L); received shape {array.shape}."
        )
    out = np.full(
        (num_rows, max_len),
        feature.pad_value,
        dtype={"string": object, "float32": np.float32}.get(feature.dtype, np.int64),
    )
    starts = np.repeat(np.cumsum(lengths) - lengths, lengths)
    position = np.arange(flat.size) - starts
    keep = position < max_len
    out[np.repeat(np.arange(num_rows), lengths)[keep], position[keep]] = flat[keep]
    return out


def _step_ids(spec: SparseFeature, shape: tuple, array: np.ndarray) -> np.ndarray:
    """Ids of one field of a `SequenceFeature`: a padded array `(N, *shape)`."""
    if array.ndim == 1 and array.dtype == object:  # a DataFrame column of arrays
        try:
            array = np.stack([np.asarray(v) for v in array])
        except ValueError:
            array = None
    if array is None or array.shape[1:] != shape:
        received = "rows of different lengths" if array is None else array.shape
        raise ValueError(
            f"Sequence input {spec.name!r}: expected a padded array of shape "
            f"(N, {', '.join(map(str, shape))}) (pad with {spec.pad_value!r}); "
            f"received {received}."
        )
    return _single_ids(spec, array.reshape(-1)).reshape(array.shape)


def _dense_array(feature: DenseFeature, array: np.ndarray) -> np.ndarray:
    what = f"DenseFeature {feature.name!r}"
    if array.ndim == 1 and array.dtype == object and feature.dim > 1:
        array = _stack_rows(feature, array)
    if feature.dim == 1:
        array = _scalar_column(feature, array)
    elif array.ndim != 2 or array.shape[1] != feature.dim:
        raise ValueError(
            f"{what}: expected shape (N, {feature.dim}) for dim={feature.dim}; "
            f"received shape {array.shape}."
        )
    values = _numeric(array, what, "numbers (float32)").astype(np.float32)
    check_array("dense", feature, what, values)
    return values


def _stack_rows(feature: DenseFeature, array: np.ndarray) -> np.ndarray:
    """Object column of per-row vectors -> (N, dim); a missing row -> NaNs."""
    rows = []
    for value in array:
        row = np.full(feature.dim, np.nan) if _is_missing(value) else value
        if np.ndim(row) != 1 or len(row) != feature.dim:
            raise ValueError(
                f"DenseFeature {feature.name!r}: expected vectors of length "
                f"{feature.dim}; received {value!r}."
            )
        rows.append(row)
    return np.array(rows)


# ----------------------------------------------------------------------------- labels


def _label_array(task: Task, array: np.ndarray) -> np.ndarray:
    what = f"Task {task.name!r} (label column {task.label_column!r})"
    if task.type == "multiclass":
        return _class_labels(task, array, what)
    if task.type == "ranking":
        return _relevance_labels(task, array, what)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"{what}: expected one label per row; received shape {array.shape}."
        )
    labels = _numeric(array, what, "numeric labels").astype(np.float32)
    check_array("label", task, what, labels)
    return labels


def _label_rows(task: Task, array: np.ndarray, what: str) -> np.ndarray:
    """A column of per-row label vectors as float32 `(N, width)`."""
    width = task.label_shape[0]
    if array.ndim == 1 and array.dtype == object:
        rows = [np.full(width, np.nan) if _is_missing(v) else v for v in array]
        if all(np.ndim(r) == 1 and len(r) == width for r in rows):
            array = np.array(rows, dtype=np.float64)
    if array.ndim != 2 or array.shape[1] != width:
        raise ValueError(
            f"{what}: expected a vector of {width} values per row (shape (N, "
            f"{width})); received shape {array.shape}."
        )
    return _numeric(array, what, "numeric labels").astype(np.float32)


def _class_labels(task: Task, array: np.ndarray, what: str) -> np.ndarray:
    """(N, num_classes) distributions from class indices or weight vectors.

    A missing label (NaN index, or any NaN in a row) becomes a row of NaN.
    """
    k = task.num_classes
    indices = array.ndim == 1 and array.dtype != object
    if indices or (array.ndim == 2 and array.shape[1] == 1):
        index = _numeric(array.reshape(-1), what, "class indices")
        check_array("label", task, what, index)
        known = ~np.isnan(index)
        labels = np.full((len(index), k), np.nan, dtype=np.float32)
        labels[known] = 0.0
        labels[np.flatnonzero(known), index[known].astype(np.int64)] = 1.0
        return labels
    labels = _label_rows(task, array, what)
    check_array("label_vector", task, what, labels)
    known = ~np.isnan(labels).any(axis=1)
    labels[~known] = np.nan
    labels[known] /= labels[known].sum(axis=1)[:, None]
    return labels


def _relevance_labels(task: Task, array: np.ndarray, what: str) -> np.ndarray:
    """(N, list_size) relevance grades; -1 marks a padded candidate (NaN -> -1)."""
    labels = _label_rows(task, array, what)
    labels = np.where(np.isnan(labels), np.float32(-1.0), labels)
    check_array("label_vector", task, what, labels)
    return labels


def _funnel_labels(task: Task, labels: np.ndarray, parent: np.ndarray) -> np.ndarray:
    """Check that the label is 1 only where its parent event is; mask if `given`."""
    what = f"Task {task.name!r} (label column {task.label_column!r})"
    parent = _label_array(parent_task(task), parent)
    check_array("funnel", task, what, labels, parent)
    if task.given is not None:
        labels = np.where(parent == 1, labels, np.float32("nan")).astype(np.float32)
    return labels


def _weight_array(column: str, array: np.ndarray) -> np.ndarray:
    what = f"sample_weight column {column!r}"
    if array.ndim != 1:
        raise ValueError(f"{what}: expected shape (N,); received {array.shape}.")
    weights = _numeric(array, what, "numbers").astype(np.float32)
    check_array("weight", None, what, weights)
    return weights
