"""`make_dataset`: one `tf.data` pipeline for DataFrames, dicts, CSV and TFRecord
files, and block sources (streams of numpy column blocks)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import tensorflow as tf

from keras_mtl._checks import check_positive_int
from keras_mtl.data import _files, _unseen, epochs
from keras_mtl.data._scale import warn_unstandardised
from keras_mtl.data._validate import (
    InMemoryColumns,
    validate_in_memory,
    warn_unlabelled,
)
from keras_mtl.data.csv_source import csv_dataset
from keras_mtl.data.packed import PackedColumns, attach
from keras_mtl.data.stream_source import BlockSource, block_dataset, is_block_source
from keras_mtl.data.stream_source import _describe as describe_source
from keras_mtl.data.tfrecord import tfrecord_dataset
from keras_mtl.features import Feature, SequenceFeature, check_features
from keras_mtl.tasks import Task, check_tasks

DataSource = (
    pd.DataFrame
    | Mapping[str, Any]
    | str
    | os.PathLike
    | Sequence[str | os.PathLike]
    | BlockSource
)


def make_dataset(
    data: DataSource,
    features: Sequence[Feature],
    tasks: Sequence[Task] | None = None,
    batch_size: int = 1024,
    shuffle: bool = True,
    seed: int | None = None,
    *,
    drop_remainder: bool = False,
    sample_weight: str | None = None,
    format: str | None = None,
    shuffle_buffer_size: int = 100_000,
    unseen_ids: str = "oov",
) -> tf.data.Dataset:
    """Batches of `(features, labels)` for `model.fit`, from memory, files or blocks.

    Each feature is read from the column named after it, each task's label from
    `task.label_column`. Elements are dicts keyed by feature name and by task
    name:

    - `SparseFeature`, single-valued: int64 or string, shape `(batch,)`.
    - `SparseFeature` with `max_len`: shape `(batch, max_len)`, truncated to the
      first `max_len` values and padded with `feature.pad_value` (-1 / "").
    - `DenseFeature`: float32, shape `(batch,)` if `dim == 1` else
      `(batch, dim)`; NaN marks a missing value.
    - `SequenceFeature`: one int64 / string input per field, named
      `f"{sequence}_{field}"`, shape `(batch, max_len)` or
      `(batch, max_len, field.max_len)`; the data holds these padded arrays.
    - Labels: float32 `(batch,)`, passed through unchanged (NaN and a task's
      `missing_value` are kept; the losses mask them). A "multiclass" task's
      label is `(batch, num_classes)`, a distribution (from a class index or a
      normalised weight vector; NaN rows are missing); a "ranking" task's is
      `(batch, list_size)` relevance grades with -1 for padded candidates.
      Sequences, multiclass and ranking tasks need in-memory data.

    Sources:

    - pandas DataFrame, or dict of numpy arrays / lists. Multi-valued columns
      hold lists or arrays per row (or a 2-D array `(N, L)`). The data is
      checked up front (see Raises) and kept as tensors; batches are gathered
      from a fresh seeded permutation each epoch, with no per-row Python.
    - CSV file(s): a path, a list of paths or a glob, with a header row;
      `.gz` files are read gunzipped. Streamed with `TextLineDataset` and a
      batched `tf.io.decode_csv`, never loaded whole. A multi-valued (or
      `dim > 1` dense) cell holds its values separated by `|`, e.g. `3|17|42`.
      An empty cell is NaN for dense values and labels, the pad value for
      sparse features. Blank lines and extra columns are ignored.
    - TFRecord file(s) of `tf.train.Example` (`.tfrecord`/`.tfrecords`[`.gz`],
      or `format="tfrecord"`), in the layout `write_tfrecord` writes; an absent
      key is NaN (numbers) or the pad value (sparse).
    - A block source: a callable returning a new iterator of blocks each epoch
      (e.g. a generator function), a re-iterable object, or a list of blocks. A
      block is a dict of numpy columns with one entry per row, in the element
      format above: int64 (or string) ids `(n,)`, multi-valued ids `(n, L)`
      (truncated or padded to `max_len`), dense float `(n,)` / `(n, dim)`,
      labels and weights `(n,)`. Blocks of any size are grouped into chunks,
      shuffled through a buffer of `shuffle_buffer_size` rows (a new order each
      epoch, reproducible given `seed`) and cut into batches. The first block
      is read when `make_dataset` is called, so a source in the wrong layout
      fails at once; a column missing from a block or of the wrong dtype or
      shape fails with an error naming the column and the block (and the
      source's `name` attribute, e.g. a file, when it has one). This is how
      readers written in numpy (`keras_mtl.datasets.load_aliccp`) feed the
      pipeline.

    In-memory data and streamed sources obey the same data rules (one table,
    `keras_mtl.data._rules`): finite labels, 0/1 (or missing) binary labels,
    funnel order (`given` / `requires`), finite non-negative sample weights, no
    inf in dense values and no NaN without `allow_missing`. In-memory columns
    are checked whole, up front (see Raises); streamed sources are checked per
    batch inside the pipeline, together with numbers that do not parse, and
    fail with a `tf.errors.InvalidArgumentError` with the same message, naming
    the feature and its file column.

    Unseen ids: an integer id outside `[0, vocabulary_size)` (other than the
    padding value -1), e.g. in test data whose vocabulary was sized on the
    training data, goes to the feature's out-of-vocabulary (OOV) row, as the
    model (and its SavedModel) sends it: the dataset passes it on as the id
    `vocabulary_size`, the OOV row. Such ids are counted per feature and
    reported once per dataset with a `keras_mtl.data.UnseenIdWarning` naming
    the feature, how many ids and rows out of how many, and the range: for
    in-memory data when `make_dataset` is called, for a streamed source at the
    end of its first complete pass (a pass cut short reports nothing). With
    `unseen_ids="error"` they are an error instead (the data rule, as above).

    A task whose label is missing in every in-memory row (all NaN or
    `missing_value`, or masked by `given`) gets a `UserWarning` naming the task
    and its column: it would train silently with a zero loss. Streamed sources
    are not checked for it: knowing needs a pass over all the data before
    training, and a batch (or block) without labels is normal on its own, e.g.
    the CVR labels of a batch without a click.

    In-memory dense values far from standardised by their spec (after
    `(f(x) - mean) / std`, a mean beyond +-3 or a standard deviation above 10,
    judged on 20 values or more: typically `mean` and `std` left at 0 and 1 on a
    column in the thousands) get one `UserWarning` per dataset naming the
    features and pointing at `keras_mtl.adapt_features`.

    Args:
        data: DataFrame, dict of arrays, CSV / TFRecord path(s) or glob, or a
            block source.
        features: list of `SparseFeature` / `DenseFeature` / `SequenceFeature`.
        tasks: list of `Task`, or None/empty for a features-only dataset (for
            `model.predict`). Defaults to None.
        batch_size: int. Examples per batch. Defaults to 1024.
        shuffle: bool. Shuffle the examples, differently in each epoch. In
            memory this is a full permutation; for files, the file order and a
            buffer of `shuffle_buffer_size` examples; for a block source, a
            buffer of `shuffle_buffer_size` rows. The order of epoch k is a
            function of `seed` and k alone: each pass over the dataset reads
            the next epoch's order, and `MultiTaskModel.fit` numbers the
            passes by its epochs, so a run resumed at epoch k (e.g. by
            `keras.callbacks.BackupAndRestore`) on a new dataset sees the
            orders of a run never stopped (`keras_mtl.data.set_shuffle_epoch`).
            Defaults to True.
        seed: int or None. Makes the sequence of epoch orders reproducible
            (None: drawn from TensorFlow's global seed). Defaults to None.
        drop_remainder: bool. Drop the last partial batch (static batch
            size). Defaults to False.
        sample_weight: str or None. Column of per-example weights (finite,
            >= 0); elements become `(features, labels, weights)` and Keras
            applies the weights to every task. Defaults to None.
        format: "csv", "tfrecord" or None (guess from the file extension).
            Defaults to None.
        shuffle_buffer_size: int. Examples held by the shuffle buffer of a
            streamed source. Defaults to 100000.
        unseen_ids: "oov" or "error". What an integer id outside
            `[0, vocabulary_size)` (not padding) does: "oov" sends it to the OOV
            row (passed on as the id `vocabulary_size`) and reports the count
            once per feature (`UnseenIdWarning`); "error" makes it a data error
            naming the feature. Defaults to "oov".

    Returns:
        A `tf.data.Dataset` of `features` dicts (no tasks), `(features, labels)`
        or `(features, labels, weights)` batches, prefetched.

    Raises:
        ValueError: a feature or label column is missing (the message lists the
            available columns), no rows, a wrong shape, ids out of vocabulary
            (with `unseen_ids="error"`), NaN/inf in a dense feature without `allow_missing`, binary labels
            other than 0/1.
        TypeError: a column of the wrong dtype (e.g. strings for a dense or
            integer sparse feature, floats with a fractional part as ids).
        FileNotFoundError: a path or glob that matches no file.
        TypeError: a block source that is a one-shot iterator (pass a callable
            returning a new one each epoch), or a block that is no dict.

    Example:

    >>> import pandas as pd
    >>> from keras_mtl.data import make_dataset
    >>> from keras_mtl.features import DenseFeature, SparseFeature
    >>> from keras_mtl.tasks import Task
    >>> frame = pd.DataFrame({"user": [3, 1], "price": [9.5, 2.0],
    ...                       "tags": [[1, 2, 3], [4]], "click": [1, 0]})
    >>> ds = make_dataset(
    ...     frame,
    ...     [SparseFeature("user", vocabulary_size=10), DenseFeature("price"),
    ...      SparseFeature("tags", vocabulary_size=10, max_len=2)],
    ...     [Task("click")], batch_size=2, shuffle=False)
    >>> x, y = next(iter(ds))
    >>> x["tags"].numpy().tolist()
    [[1, 2], [4, -1]]

    A block source, here a generator function of two blocks:

    >>> import numpy as np
    >>> def blocks():
    ...     for start in (0, 3):
    ...         ids = np.arange(start, start + 3)
    ...         yield {"user": ids, "price": ids * 0.5, "click": ids % 2}
    >>> ds = make_dataset(blocks, [SparseFeature("user", vocabulary_size=10),
    ...                            DenseFeature("price")], [Task("click")],
    ...                   batch_size=4, shuffle=False)
    >>> [x["user"].numpy().tolist() for x, y in ds]
    [[0, 1, 2, 3], [4, 5]]

    Unseen ids go to the OOV row (id `vocabulary_size`), reported once:

    >>> import warnings
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     ds = make_dataset({"user": [3, 12, -1]},
    ...                       [SparseFeature("user", vocabulary_size=10)],
    ...                       shuffle=False)
    >>> next(iter(ds))["user"].numpy().tolist()
    [3, 10, -1]
    >>> print(caught[0].message)
    SparseFeature 'user': 1 of 2 ids (in 1 of 3 rows) of the in-memory data lie
    outside [0, vocabulary_size=10) (unseen ids 12); they go to the
    out-of-vocabulary row, ... unseen_ids='error') to refuse them instead.
    """
    features = check_features(features, allow_sequences=True)
    tasks = check_tasks(tasks) if tasks else []
    check_positive_int("make_dataset", "batch_size", batch_size)
    check_positive_int("make_dataset", "shuffle_buffer_size", shuffle_buffer_size)
    _unseen.check_unseen_ids(unseen_ids)
    counted = _unseen.counted_specs(features) if unseen_ids == "oov" else []
    if sample_weight is not None and not tasks:
        raise ValueError("sample_weight needs tasks: weights go with labels.")

    if _files.is_path_like(data):
        in_memory_only = [
            f"SequenceFeature {f.name!r}"
            for f in features
            if isinstance(f, SequenceFeature)
        ] + [f"{t.type} task {t.name!r}" for t in tasks if t.label_shape]
        if in_memory_only:
            raise ValueError(
                f"{', '.join(in_memory_only)}: supported for in-memory data (a "
                "DataFrame or dict of arrays) only, not for CSV / TFRecord files."
            )
        files = _files.expand_paths(data)
        kind = _files.detect_format(files, format)
        reader = {"csv": csv_dataset, "tfrecord": tfrecord_dataset}[kind]
        counter = epochs.new_counter() if shuffle else None
        ds = reader(
            files,
            features,
            tasks,
            sample_weight=sample_weight,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_remainder=drop_remainder,
            shuffle_buffer_size=shuffle_buffer_size,
            unseen_ids=unseen_ids,
            epoch_counter=counter,
        )
        more = f" and {len(files) - 1} more" if len(files) > 1 else ""
        source = f"the {kind.upper()} file {files[0]!r}{more}"
        return _streamed(ds, counted, source, counter)
    if is_block_source(data):
        if format is not None:
            raise ValueError(f"format={format!r} applies to file paths, not blocks.")
        counter = epochs.new_counter() if shuffle else None
        ds = block_dataset(
            data,
            features,
            tasks,
            sample_weight=sample_weight,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            drop_remainder=drop_remainder,
            shuffle_buffer_size=shuffle_buffer_size,
            unseen_ids=unseen_ids,
            epoch_counter=counter,
        )
        return _streamed(ds, counted, f"the {describe_source(data)}", counter)
    if format is not None:
        raise ValueError(
            f"format={format!r} applies to file paths; got in-memory "
            f"{type(data).__name__}."
        )
    columns = validate_in_memory(data, features, tasks, sample_weight, unseen_ids)
    warn_unlabelled(tasks, columns.labels)
    warn_unstandardised(features, columns.features)
    return _in_memory_dataset(
        columns,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        drop_remainder=drop_remainder,
    )


def _streamed(ds, counted, source: str, counter):
    """A file or block pipeline with its unseen ids counted (`counted`: the
    specs to count, reported as from `source`) and its epoch counter attached
    (None: not shuffled). The counter goes on last: it rides on the returned
    object."""
    if counted:
        ds = _unseen.UnseenIds(counted, source).attach(ds)
    return ds if counter is None else epochs.attach(ds, counter)


def _in_memory_dataset(
    columns: InMemoryColumns,
    *,
    batch_size: int,
    shuffle: bool,
    seed: int | None,
    drop_remainder: bool,
) -> tf.data.Dataset:
    """Batches gathered from in-memory tensors by batches of row indices.

    Columns of one dtype are packed side by side into one matrix, so a batch
    costs one `tf.gather` per dtype rather than one per column.
    """
    entries = [(("x", k), v) for k, v in columns.features.items()]
    entries += [(("y", k), v) for k, v in columns.labels.items()]
    if columns.sample_weight is not None:
        entries.append((("w", ""), columns.sample_weight))
    counter = epochs.new_counter() if shuffle else None
    index = _index_batches(columns.num_rows, batch_size, counter, seed, drop_remainder)
    packed = PackedColumns.pack(entries, columns.features, columns.labels, index)
    # Without shuffling every epoch is the same: gather once, then replay (one
    # more copy of the data in memory, and faster than gathering every epoch).
    dataset = attach(packed.dataset(cache=not shuffle), packed)
    return dataset if counter is None else epochs.attach(dataset, counter)


def _index_batches(
    n: int,
    batch_size: int,
    counter: tf.Variable | None,
    seed: int | None,
    drop_remainder: bool,
) -> tf.data.Dataset:
    """Batches of row indices; with an epoch `counter`, a new permutation every
    epoch.

    Each pass reads its epoch number from the counter (`keras_mtl.data.epochs`)
    and permutes all rows with one stateless op seeded by `(seed, epoch)`; this
    is several times faster than `Dataset.shuffle` over single indices.
    """
    full = n // batch_size
    if full == 0 and drop_remainder:
        raise ValueError(
            f"drop_remainder=True with batch_size={batch_size} > {n} rows would "
            "give no batch."
        )
    rest = 0 if drop_remainder else n - full * batch_size

    def batches(order):
        ds = tf.data.Dataset.from_tensor_slices(
            tf.reshape(order[: full * batch_size], [full, batch_size])
        )
        if rest:
            ds = ds.concatenate(
                tf.data.Dataset.from_tensors(order[full * batch_size :])
            )
        return ds

    rows = tf.range(n, dtype=tf.int64)
    if counter is None:
        return batches(rows)
    base = epochs.base_seed(seed)
    shuffled = epochs.next_epoch(counter).flat_map(
        lambda epoch: batches(
            tf.random.experimental.stateless_shuffle(
                rows, seed=epochs.epoch_seed(base, epoch)
            )
        )
    )
    # flat_map hides the length; stating it lets Keras show a progress bar with a
    # total and end each epoch without an "input ran out of data" warning.
    return shuffled.apply(tf.data.experimental.assert_cardinality(full + bool(rest)))
