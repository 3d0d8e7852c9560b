"""Block sources: `make_dataset` on a stream of row blocks held as numpy columns.

A block source is a callable that returns a fresh iterator of blocks (called once
per epoch), a re-iterable object, or a list of blocks. A block is a dict from
column name to a numpy array with one entry per row: the rows of one read of a
file, one query, one generated chunk. This is how a data set whose reader is
written in numpy (Ali-CCP's byte parser) reaches the one `make_dataset` pipeline.

Each block is checked in numpy for its layout (columns present, dtypes, shapes,
equal lengths; errors name the column and the block), packed into one matrix per
dtype, grouped into chunks of at least `_ROWS_PER_YIELD` rows, optionally drawn
through a shuffle buffer, and handed to `tf.data` once per chunk. The values are
checked per batch inside the pipeline by the same functions as the CSV and
TFRecord readers (`_tensors`: labels, funnels, dense values, weights).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl.data import _tensors, epochs
from keras_mtl.features import DenseFeature, Feature, SequenceFeature, SparseFeature
from keras_mtl.tasks import Task

#: Blocks are concatenated until a chunk handed to `tf.data` has this many rows
#: (fewer, larger hand-overs; `rebatch` then cuts the batches).
_ROWS_PER_YIELD = 16_384
_GROUPS = (("int64", tf.int64), ("string", tf.string), ("float32", tf.float32))

BlockSource = (
    Callable[[], Iterable[Mapping[str, Any]]]
    | Iterable[Mapping[str, Any]]
    | Sequence[Mapping[str, Any]]
)


def is_block_source(data: Any) -> bool:
    """True for a callable, an iterable that is no DataFrame / dict / path / array,
    or a list or tuple of dicts (one per block)."""
    if isinstance(data, (list, tuple)):
        return len(data) > 0 and all(isinstance(b, Mapping) for b in data)
    not_blocks = (pd.DataFrame, pd.Series, Mapping, str, bytes, os.PathLike)
    if isinstance(data, (*not_blocks, np.ndarray, tf.Tensor, tf.data.Dataset)):
        return False
    return callable(data) or isinstance(data, Iterable)


@dataclasses.dataclass(frozen=True)
class _Column:
    """One column read from the blocks and where it goes."""

    key: tuple[str, str]  # ("x" | "y" | "w", column name)
    role: str  # what the column is, e.g. "SparseFeature `user`"
    group: str  # "int64", "string" or "float32"
    width: int | None  # values per row; None: one scalar per row
    pad: Any = None  # multi-valued ids: padded with this, truncated to `width`

    @property
    def name(self) -> str:
        return self.key[1]

    def what(self, source: str) -> str:
        """Names the column in the pipeline's checks."""
        return f"{self.role} ({source}, column `{self.name}`)"


def block_dataset(
    source: BlockSource,
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
    """Batches of `(features, labels[, weights])` from a block source.

    Integer ids outside `[0, vocabulary_size)` are an error in the pipeline
    with `unseen_ids="error"`; with "oov" they pass (`make_dataset` counts them
    and sends them to the OOV row).

    The source is read once here, up to its first non-empty block, so that a
    source in the wrong layout fails at once with its Python exception; later
    blocks are read while iterating, and an error there stops the pipeline with
    a `tf.errors.InvalidArgumentError` carrying the same message.
    """
    epoch = _epochs(source)
    name = _describe(source)
    columns = _plan(features, tasks, sample_weight, name)

    first = epoch()
    try:
        if not any(_convert(b, columns, k, name)[0] for k, b in _numbered(first)):
            raise ValueError(f"{name} yielded no rows; at least one example is needed.")
    finally:
        close = getattr(first, "close", None)
        if close is not None:
            close()

    groups = [
        (group, dtype, [c for c in columns if c.group == group])
        for group, dtype in _GROUPS
    ]
    groups = [g for g in groups if g[2]]
    if shuffle:
        # The order of epoch k: a function of (seed, k) (`keras_mtl.data.epochs`).
        counter = epochs.new_counter() if epoch_counter is None else epoch_counter
        base = int(epochs.base_seed(seed))

    def generate():
        packed = (
            _pack(_convert(b, columns, k, name)[1], groups)
            for k, b in _numbered(epoch())
        )
        chunks = _grouped(packed, _ROWS_PER_YIELD)
        if shuffle:
            number = int(counter.assign_add(1)) - 1
            rng = np.random.default_rng([base % 2**63, number])
            chunks = _shuffled(chunks, shuffle_buffer_size, rng)
        yield from chunks

    signature = tuple(
        tf.TensorSpec((None, sum(c.width or 1 for c in cols)), dtype)
        for _, dtype, cols in groups
    )
    ds = tf.data.Dataset.from_generator(generate, output_signature=signature)
    ds = ds.rebatch(batch_size, drop_remainder=drop_remainder)
    by_key = {c.key: c for c in columns}

    def element(*matrices):
        out = {}
        for matrix, (_, _, cols) in zip(matrices, groups):
            widths = [c.width or 1 for c in cols]
            parts = tf.split(matrix, widths, axis=1) if len(cols) > 1 else [matrix]
            for c, part in zip(cols, parts):
                out[c.key] = part if c.width is not None else tf.reshape(part, [-1])
        x = {}
        for f in features:
            x[f.name] = out[("x", f.name)]
            if isinstance(f, DenseFeature):
                x[f.name] = _tensors.check_dense(
                    x[f.name], f, by_key[("x", f.name)].what(name)
                )
            elif f.dtype == "float32" or (  # bucketised numbers: finite or NaN
                unseen_ids == "error" and f.vocabulary_size is not None
            ):
                x[f.name] = _tensors.check_ids(
                    x[f.name], f, by_key[("x", f.name)].what(name)
                )
        if not tasks:
            return _tensors.assemble(x, None)
        numbers = {key[1]: v for key, v in out.items() if key[0] == "y"}
        y = _tensors.task_labels(
            numbers,
            tasks,
            lambda t: f"Task `{t.name}` ({name}, label column `{t.label_column}`)",
        )
        w = None
        if sample_weight is not None:
            w = _tensors.check_weight(
                out[("w", sample_weight)], by_key[("w", sample_weight)].what(name)
            )
        return _tensors.assemble(x, y, w)

    ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


# ----------------------------------------------------------------------------- source


def _epochs(source: BlockSource) -> Callable[[], Iterator]:
    """A function returning a fresh iterator of the source's blocks."""
    if isinstance(source, (list, tuple)):
        return lambda: iter(source)
    if isinstance(source, Iterator):
        raise TypeError(
            f"A block source is read once per epoch, but {type(source).__name__} "
            "is an iterator that can be read only once. Pass a callable that "
            "returns a new iterator of blocks, e.g. `lambda: read_blocks(path)`, "
            "or a list of blocks."
        )
    if callable(source):

        def call():
            blocks = source()
            if isinstance(blocks, Mapping) or not isinstance(blocks, Iterable):
                raise TypeError(
                    f"{_describe(source)} returned {type(blocks).__name__}; a "
                    "block source must return an iterable of blocks (dicts of "
                    "numpy columns), e.g. by yielding them."
                )
            return iter(blocks)

        return call
    return lambda: iter(source)


def _describe(source: BlockSource) -> str:
    """How messages name the source: its `name` (e.g. a file), else its function."""
    name = getattr(source, "name", None)
    if isinstance(name, (str, os.PathLike)):
        return os.fspath(name)
    qualname = getattr(source, "__name__", None)
    if callable(source) and isinstance(qualname, str) and "<lambda>" not in qualname:
        return f"block source {qualname}()"
    return "block source"


def _numbered(blocks: Iterator) -> Iterator[tuple[int, Any]]:
    return enumerate(blocks, start=1)


def _plan(
    features: Sequence[Feature],
    tasks: Sequence[Task],
    sample_weight: str | None,
    name: str,
) -> list[_Column]:
    """The columns to read: features, label (and funnel) columns, weights."""
    unsupported = [
        f"SequenceFeature {f.name!r}"
        for f in features
        if isinstance(f, SequenceFeature)
    ] + [f"{t.type} task {t.name!r}" for t in tasks if t.label_shape]
    if unsupported:
        raise ValueError(
            f"{', '.join(unsupported)}: supported for in-memory data (a DataFrame or "
            "dict of arrays) only, not for a block source."
        )
    columns = []
    for f in features:
        role = f"{type(f).__name__} `{f.name}`"
        if isinstance(f, SparseFeature):
            group = f.dtype  # "string", "int64", or "float32" (bucketised)
            columns.append(_Column(("x", f.name), role, group, f.max_len, f.pad_value))
        else:
            width = None if f.dim == 1 else f.dim
            columns.append(_Column(("x", f.name), role, "float32", width))
    for column in dict.fromkeys(c for t in tasks for c in t.data_columns):
        users = ", ".join(f"`{t.name}`" for t in tasks if column in t.data_columns)
        columns.append(
            _Column(("y", column), f"label of task {users}", "float32", None)
        )
    if sample_weight is not None:
        columns.append(_Column(("w", sample_weight), "sample_weight", "float32", None))
    return columns


# ----------------------------------------------------------------------------- blocks


def _convert(
    block: Any, columns: list[_Column], number: int, name: str
) -> tuple[int, dict[tuple[str, str], np.ndarray]]:
    """Rows of one block and its columns as 2-D arrays of their group's dtype."""
    where = f"block {number} of {name}"
    if not isinstance(block, Mapping):
        raise TypeError(
            f"{where} is {type(block).__name__}; expected a dict from column name "
            "to a numpy array (one entry per row)."
        )
    missing = [f"{c.role} (column {c.name!r})" for c in columns if c.name not in block]
    if missing:
        raise ValueError(
            f"Missing from {where}: {', '.join(missing)}. Available columns: "
            f"{sorted(map(str, block))}."
        )
    arrays = {c.name: np.asarray(block[c.name]) for c in columns}
    lengths = {k: len(a) if a.ndim else None for k, a in arrays.items()}
    if len(set(lengths.values())) > 1 or None in lengths.values():
        raise ValueError(
            f"Columns of {where} have different numbers of rows (None: a "
            f"scalar): {lengths}."
        )
    n = next(iter(lengths.values()), 0)
    return n, {c.key: _column(c, arrays[c.name], n, where) for c in columns}


def _column(column: _Column, array: np.ndarray, n: int, where: str) -> np.ndarray:
    """One column checked and shaped `(n, width or 1)`; multi-valued ids fitted."""
    what = f"{column.role} (column {column.name!r}, {where})"
    kind = array.dtype.kind
    if column.group == "int64":
        if kind not in "iu":
            raise TypeError(
                f"{what}: expected integer ids (int64, {column.pad} for none); "
                f"received dtype {array.dtype}."
            )
        array = array.astype(np.int64, copy=False)
    elif column.group == "string":
        # Object arrays: a fixed-width unicode dtype would truncate longer
        # strings of later blocks in the shuffle buffer.
        if kind in "US":
            array = array.astype(object)
        elif kind != "O":
            raise TypeError(f"{what}: expected strings; received dtype {array.dtype}.")
        else:
            bad = [v for v in array.flat if not isinstance(v, (str, bytes))]
            if bad:
                raise TypeError(
                    f"{what}: expected strings ('' for none); received a value of "
                    f"type {type(bad[0]).__name__}: {bad[0]!r}."
                )
    else:
        if kind not in "biuf":
            raise TypeError(f"{what}: expected numbers; received dtype {array.dtype}.")
        array = array.astype(np.float32, copy=False)

    if column.width is None:
        if array.shape not in ((n,), (n, 1)):
            raise ValueError(
                f"{what}: expected one value per row, shape ({n},); received shape "
                f"{array.shape}."
            )
        return array.reshape(n, 1)
    if array.ndim != 2 or (column.pad is None and array.shape[1] != column.width):
        raise ValueError(
            f"{what}: expected {column.width} values per row, shape ({n}, "
            f"{column.width}); received shape {array.shape}."
        )
    if array.shape[1] >= column.width:  # ids: the first `width`, or padded
        return array[:, : column.width]
    padded = np.full((n, column.width), column.pad, dtype=array.dtype)
    padded[:, : array.shape[1]] = array
    return padded


def _pack(arrays: dict, groups: list) -> tuple:
    """One matrix per dtype group, the group's columns side by side."""
    packed = []
    for _, _, cols in groups:
        parts = [arrays[c.key] for c in cols]
        packed.append(parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1))
    return tuple(packed)


def _grouped(blocks: Iterable[tuple], rows: int) -> Iterator[tuple]:
    """Blocks of matrices concatenated until each has at least `rows` rows."""
    parts, count = [], 0
    for block in blocks:
        if not len(block[0]):
            continue
        parts.append(block)
        count += len(block[0])
        if count >= rows:
            yield tuple(np.concatenate(arrays) for arrays in zip(*parts))
            parts, count = [], 0
    if parts:
        yield tuple(np.concatenate(arrays) for arrays in zip(*parts))


def _shuffled(
    blocks: Iterable[tuple], buffer_size: int, rng: np.random.Generator
) -> Iterator[tuple]:
    """Blocks of rows drawn at random from a buffer of `buffer_size` rows.

    Like `Dataset.shuffle`, in numpy: the buffer fills up, then every incoming
    row takes the place of a random row, which is emitted; at the end the rest
    is emitted in random order.
    """
    buffer = None
    filled = 0
    for block in blocks:
        if buffer is None:
            buffer = [np.empty((buffer_size, *a.shape[1:]), a.dtype) for a in block]
        take = min(buffer_size - filled, len(block[0]))
        for b, a in zip(buffer, block):
            b[filled : filled + take] = a[:take]
        filled += take
        for start in range(take, len(block[0]), buffer_size):
            piece = [a[start : start + buffer_size] for a in block]
            slots = rng.choice(buffer_size, len(piece[0]), replace=False)
            yield tuple(b[slots] for b in buffer)
            for b, a in zip(buffer, piece):
                b[slots] = a
    if filled:
        order = rng.permutation(filled)
        for start in range(0, filled, 8192):
            yield tuple(b[order[start : start + 8192]] for b in buffer)
