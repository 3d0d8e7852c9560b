"""TFRecord files of `tf.train.Example`: writing (`write_tfrecord`) and streamed reading.

Layout, one `tf.train.Example` per row, one key per feature / label column:

- SparseFeature: `int64_list` (integer ids) or `bytes_list` (strings). A
  single-valued feature holds one value (the pad value for "no value"); a
  multi-valued one holds its ids without padding (any length, possibly empty).
- DenseFeature: `float_list` of `dim` values (NaN for missing).
- Labels and sample weights: `float_list` of one value (NaN for a missing label).

The reader also accepts `int64_list` for dense values, labels and weights, and
an absent key: a missing sparse value is the pad value, a missing number is NaN.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl.data import _files, _tensors, _unseen
from keras_mtl.data._validate import validate_in_memory
from keras_mtl.features import DenseFeature, Feature, SparseFeature, check_features
from keras_mtl.tasks import Task, check_tasks

_PEEK_RECORDS = 64


def write_tfrecord(
    data: pd.DataFrame | Mapping[str, Any],
    path: str | os.PathLike,
    features: Sequence[Feature],
    tasks: Sequence[Task] | None = None,
    sample_weight: str | None = None,
) -> int:
    """Write in-memory rows as a TFRecord file that `make_dataset` reads back.

    The data is validated exactly as `make_dataset` validates in-memory data, so
    the file holds only well-formed values. A path ending in `.gz` is written
    GZIP-compressed. Writing builds one proto per row in Python, which is slow:
    fine for fixtures and exports of moderate size, not for a whole data set.

    Args:
        data: pandas DataFrame or dict of arrays / lists (as for `make_dataset`).
        path: str or path-like. Output file, e.g. `"train.tfrecord"`.
        features: list of `SparseFeature` / `DenseFeature`. Columns to write.
        tasks: list of `Task` or None. Label columns to write (under
            `task.label_column`). Defaults to None.
        sample_weight: str or None. Name of a weight column to write too.
            Defaults to None.

    Returns:
        The number of examples written.

    Example:

    >>> import os, shutil, tempfile
    >>> import keras_mtl.data as kd
    >>> from keras_mtl.features import SparseFeature
    >>> from keras_mtl.tasks import Task
    >>> features, tasks = [SparseFeature("item", vocabulary_size=5)], [Task("click")]
    >>> tmp = tempfile.mkdtemp()
    >>> path = os.path.join(tmp, "train.tfrecord.gz")  # GZIP-compressed
    >>> kd.write_tfrecord({"item": [1, 2], "click": [0, 1]}, path, features, tasks)
    2
    >>> ds = kd.make_dataset(path, features, tasks, batch_size=2, shuffle=False)
    >>> x, y = next(iter(ds))
    >>> x["item"].numpy(), y["click"].numpy()
    (array([1, 2]), array([0., 1.], dtype=float32))
    >>> shutil.rmtree(tmp)
    """
    features = check_features(features)
    tasks = check_tasks(tasks) if tasks else []
    if any(t.parent_column for t in tasks):
        validate_in_memory(data, [], tasks)  # funnel order (given / requires)
    # Label columns are written raw (a `given` mask is applied again on reading),
    # one entry per column, together with the columns they are conditional on.
    raw_labels = {
        t.label_column: dataclasses.replace(
            t, name=t.label_column, given=None, requires=None
        )
        for t in tasks
    }
    for column in {t.parent_column for t in tasks} - {None} - set(raw_labels):
        raw_labels[column] = Task(column)
    columns = validate_in_memory(  # ids written as given, unseen ones too
        data, features, list(raw_labels.values()), sample_weight, unseen_ids=None
    )

    def as_bytes(values):
        return [v if isinstance(v, bytes) else str(v).encode("utf-8") for v in values]

    columns_out = []  # (key, proto list field, one list of values per row)
    for f in features:
        values = columns.features[f.name]
        if isinstance(f, DenseFeature):
            columns_out.append((f.name, "float_list", values.reshape(len(values), -1)))
            continue
        rows = values.tolist()
        if f.max_len is None:
            rows = [[v] for v in rows]
        elif f.dtype == "float32":  # NaN pads (and NaN != NaN)
            rows = [[v for v in row if v == v] for row in rows]
        else:
            rows = [[v for v in row if v != f.pad_value] for row in rows]
        if f.dtype == "string":
            columns_out.append((f.name, "bytes_list", [as_bytes(r) for r in rows]))
        elif f.dtype == "float32":
            columns_out.append((f.name, "float_list", rows))
        else:
            columns_out.append((f.name, "int64_list", rows))
    for column, labels in columns.labels.items():
        columns_out.append((column, "float_list", labels[:, None]))
    if sample_weight is not None:
        weights = columns.sample_weight[:, None]
        columns_out.append((sample_weight, "float_list", weights))
    columns_out = {  # one key per column, e.g. a label that is also the weight
        key: (kind, col.tolist() if isinstance(col, np.ndarray) else col)
        for key, kind, col in columns_out
    }

    path = os.fspath(path)
    options = tf.io.TFRecordOptions(compression_type=_files.compression(path))
    with tf.io.TFRecordWriter(path, options) as writer:
        for i in range(columns.num_rows):
            example = tf.train.Example()
            slots = example.features.feature
            for key, (kind, col) in columns_out.items():
                getattr(slots[key], kind).value.extend(col[i])
            writer.write(example.SerializeToString())
    return columns.num_rows


# ----------------------------------------------------------------------------- reading


def _peek(files: list[str]) -> list[tf.train.Example]:
    """Up to `_PEEK_RECORDS` examples from the first non-empty file."""
    for path in files:
        ds = tf.data.TFRecordDataset(path, compression_type=_files.compression(path))
        records = [
            tf.train.Example.FromString(r.numpy()) for r in ds.take(_PEEK_RECORDS)
        ]
        if records:
            return records
    raise ValueError(f"TFRecord file(s) {files} contain no records.")


def _stored_kinds(records: list[tf.train.Example], keys) -> dict[str, str | None]:
    """Proto list kind ('int64_list', 'float_list', 'bytes_list') of each key."""
    kinds = {}
    for key in keys:
        found = [
            r.features.feature[key].WhichOneof("kind")
            for r in records
            if key in r.features.feature
        ]
        kinds[key] = next((k for k in found if k is not None), None)
    return kinds


def tfrecord_dataset(
    files: list[str],
    features: Sequence[Feature],
    tasks: Sequence[Task],
    *,
    sample_weight: str | None,
    batch_size: int,
    shuffle: bool,
    seed: int | None,
    drop_remainder: bool,
    shuffle_buffer_size: int,
    unseen_ids: str = "error",
    epoch_counter: tf.Variable | None = None,
) -> tf.data.Dataset:
    """Batches of (features, labels[, weights]) streamed from TFRecord `files`.

    With `unseen_ids="oov"` the id-range rule is not asserted (`make_dataset`
    counts the unseen ids and sends them to the OOV row)."""
    records = _peek(files)
    numeric = [(column, f"Task {t.name!r}") for t in tasks for column in t.data_columns]
    numeric = list(dict(numeric).items())  # one entry per key
    if sample_weight is not None:
        numeric.append((sample_weight, "sample_weight"))
    keys = [f.name for f in features] + [key for key, _ in numeric]
    kinds = _stored_kinds(records, keys)
    absent = [key for key in keys if kinds[key] is None]
    if absent:
        logging.warning(
            "TFRecord keys %s are absent from the first %d records of %s; they "
            "are read as padding / NaN where absent.",
            absent,
            len(records),
            files[0],
        )

    def expect(key, what, allowed):
        if kinds[key] is not None and kinds[key] not in allowed:
            raise TypeError(
                f"{what} (TFRecord key {key!r}): expected {' or '.join(allowed)}; "
                f"received {kinds[key]}."
            )

    spec = {}
    for f in features:
        what = f"{type(f).__name__} {f.name!r}"
        if isinstance(f, SparseFeature):
            kind = {"string": "bytes_list", "float32": "float_list"}
            expect(f.name, what, [kind.get(f.dtype, "int64_list")])
            dtype = tf.as_dtype(f.dtype)
            if f.max_len is None:
                spec[f.name] = tf.io.FixedLenFeature([], dtype, f.pad_value)
            else:
                spec[f.name] = tf.io.VarLenFeature(dtype)
        else:
            spec[f.name] = _number_spec(kinds, f.name, f.dim, what, expect)
    for key, what in numeric:
        spec[key] = _number_spec(kinds, key, 1, what, expect)

    def parse(serialized):
        parsed = tf.io.parse_example(serialized, spec)
        x = {}
        for f in features:
            what = f"{type(f).__name__} `{f.name}` (TFRecord key `{f.name}`)"
            value = parsed[f.name]
            if isinstance(f, SparseFeature):
                if f.max_len is not None:
                    value = _tensors.pad_ragged(tf.RaggedTensor.from_sparse(value), f)
                x[f.name] = value
            else:
                x[f.name] = _numbers(value, f.dim, what)
        x = _tensors.check_feature_values(
            x,
            features,
            lambda f: f"{type(f).__name__} `{f.name}` (TFRecord key `{f.name}`)",
            skip=_unseen.skipped_rules(unseen_ids),
        )
        if not tasks:
            return _tensors.assemble(x, None)
        numbers = {
            key: _numbers(parsed[key], 1, f"{what} (TFRecord key `{key}`)")
            for key, what in numeric
        }
        y = _tensors.task_labels(
            numbers,
            tasks,
            lambda t: f"Task `{t.name}` (TFRecord key `{t.label_column}`)",
        )
        w = None
        if sample_weight is not None:
            w = _tensors.check_weight(
                numbers[sample_weight],
                f"sample_weight (TFRecord key `{sample_weight}`)",
            )
        return _tensors.assemble(x, y, w)

    ds = _files.read_files(
        files,
        _records_of,
        shuffle=shuffle,
        seed=seed,
        shuffle_buffer_size=shuffle_buffer_size,
        epoch_counter=epoch_counter,
    )
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _records_of(path: tf.Tensor) -> tf.data.Dataset:
    gzipped = tf.strings.regex_full_match(path, r".*\.gz")
    return tf.data.TFRecordDataset(path, compression_type=tf.where(gzipped, "GZIP", ""))


def _number_spec(kinds, key, dim, what, expect):
    """Parse spec of a float column: fixed-length floats, or integers (VarLen)."""
    expect(key, what, ["float_list", "int64_list"])
    if kinds[key] == "int64_list":
        return tf.io.VarLenFeature(tf.int64)
    if dim == 1:
        return tf.io.FixedLenFeature([], tf.float32, float("nan"))
    return tf.io.FixedLenFeature([dim], tf.float32, [float("nan")] * dim)


def _numbers(value, dim: int, what: str) -> tf.Tensor:
    """float32 (batch,) or (batch, dim) from a parsed float or int64 column."""
    if isinstance(value, tf.SparseTensor):  # stored as int64_list
        ragged = tf.cast(tf.RaggedTensor.from_sparse(value), tf.float32)
        lengths = ragged.row_lengths()
        ok = tf.equal(lengths, dim) | tf.equal(lengths, 0)
        value = _tensors.with_check(
            ragged.to_tensor(default_value=float("nan"), shape=[None, dim]),
            ok,
            f"{what}: expected {dim} value(s) per example; received row lengths:",
            tf.boolean_mask(lengths, tf.logical_not(ok)),
        )
        if dim == 1:
            value = tf.reshape(value, [-1])
    return value
