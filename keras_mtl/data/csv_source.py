"""Streamed CSV reading: header check in Python, then TextLineDataset + decode_csv."""

from __future__ import annotations

import csv
import itertools
from collections.abc import Sequence

import tensorflow as tf

from keras_mtl.data import _files, _tensors, _unseen
from keras_mtl.features import DenseFeature, Feature, SparseFeature
from keras_mtl.tasks import Task


def read_header(path: str) -> tuple[list[str], bool]:
    """Column names of a CSV file and whether at least one data line follows."""
    lines = _files.iter_lines(path)
    first = next(lines, "")
    if not first.strip():
        raise ValueError(
            f"CSV file {path!r} is empty; a header row naming the columns is needed."
        )
    header = [name.strip() for name in next(csv.reader([first]))]
    has_rows = any(line.strip() for line in itertools.islice(lines, 10_000))
    lines.close()
    return header, has_rows


def csv_dataset(
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
    """Batches of (features, labels[, weights]) streamed from CSV `files`.

    With `unseen_ids="oov"` the id-range rule is not asserted (`make_dataset`
    counts the unseen ids and sends them to the OOV row)."""
    header, has_rows = read_header(files[0])
    for path in files[1:]:
        other, more_rows = read_header(path)
        if other != header:
            raise ValueError(
                f"CSV files have different headers: {files[0]!r} has {header}, "
                f"{path!r} has {other}."
            )
        has_rows = has_rows or more_rows
    if not has_rows:
        raise ValueError(f"CSV file(s) {files} have a header but no data rows.")

    wanted = {f.name: f"feature {f.name!r}" for f in features}
    for t in tasks:
        wanted.setdefault(t.label_column, f"label of task {t.name!r}")
        if t.parent_column is not None:
            wanted.setdefault(t.parent_column, f"funnel column of task {t.name!r}")
    if sample_weight is not None:
        wanted.setdefault(sample_weight, "sample_weight")
    missing = [
        f"{what} (column {col!r})" for col, what in wanted.items() if col not in header
    ]
    if missing:
        raise ValueError(
            f"Missing from the CSV header of {files[0]!r}: {', '.join(missing)}. "
            f"Available columns: {header}."
        )
    select = sorted({header.index(col) for col in wanted})
    position = {header[i]: k for k, i in enumerate(select)}

    # Scalar numeric columns are parsed together, one op chain per dtype.
    int_columns = [
        (f.name, f"SparseFeature `{f.name}` (CSV column `{f.name}`)")
        for f in features
        if isinstance(f, SparseFeature) and f.max_len is None and f.dtype == "int64"
    ]
    float_columns = [
        (f.name, f"{type(f).__name__} `{f.name}` (CSV column `{f.name}`)")
        for f in features
        if (isinstance(f, DenseFeature) and f.dim == 1)
        or (isinstance(f, SparseFeature) and f.max_len is None and f.dtype == "float32")
    ]
    float_columns += [
        (column, f"Task `{t.name}` (CSV column `{column}`)")
        for t in tasks
        for column in t.data_columns
    ]
    if sample_weight is not None:
        float_columns.append(
            (sample_weight, f"sample_weight (CSV column `{sample_weight}`)")
        )
    float_columns = list(dict.fromkeys(float_columns))  # a label may serve 2 tasks

    def parse(lines):
        cells = tf.io.decode_csv(
            lines, record_defaults=[""] * len(select), select_cols=select
        )
        ints, floats = (
            dict(
                zip(
                    [name for name, _ in columns],
                    _tensors.parse_number_columns(
                        [cells[position[name]] for name, _ in columns],
                        dtype,
                        [what for _, what in columns],
                        empty,
                    ),
                )
            )
            if columns
            else {}
            for columns, dtype, empty in (
                (int_columns, tf.int64, "-1"),
                (float_columns, tf.float32, "nan"),
            )
        )
        x = {}
        for f in features:
            what = f"{type(f).__name__} `{f.name}` (CSV column `{f.name}`)"
            scalars = floats if f.dtype == "float32" else ints
            if f.name in scalars:
                x[f.name] = scalars[f.name]
            elif isinstance(f, SparseFeature):
                x[f.name] = _tensors.cells_to_ids(cells[position[f.name]], f, what)
            else:
                x[f.name] = _tensors.cells_to_dense(cells[position[f.name]], f, what)
        x = _tensors.check_feature_values(
            x,
            features,
            lambda f: f"{type(f).__name__} `{f.name}` (CSV column `{f.name}`)",
            skip=_unseen.skipped_rules(unseen_ids),
        )
        if not tasks:
            return _tensors.assemble(x, None)
        y = _tensors.task_labels(
            floats, tasks, lambda t: f"Task `{t.name}` (CSV column `{t.label_column}`)"
        )
        w = None
        if sample_weight is not None:
            w = _tensors.check_weight(
                floats[sample_weight], f"sample_weight (CSV column `{sample_weight}`)"
            )
        return _tensors.assemble(x, y, w)

    ds = _files.read_files(
        files,
        _lines_of,
        shuffle=shuffle,
        seed=seed,
        shuffle_buffer_size=shuffle_buffer_size,
        epoch_counter=epoch_counter,
    )
    # Blank lines are dropped batch-wise and the batches refilled: a per-line
    # `filter` would cost more than the whole parse.
    ds = ds.batch(batch_size).map(_drop_blank_lines)
    ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    return ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def _lines_of(path: tf.Tensor) -> tf.data.Dataset:
    """Data lines of one CSV file (header skipped), gunzipped for a `.gz` name."""
    gzipped = tf.strings.regex_full_match(path, r".*\.gz")
    return tf.data.TextLineDataset(
        path, compression_type=tf.where(gzipped, "GZIP", "")
    ).skip(1)


def _drop_blank_lines(lines: tf.Tensor) -> tf.Tensor:
    return tf.boolean_mask(lines, tf.strings.length(tf.strings.strip(lines)) > 0)
