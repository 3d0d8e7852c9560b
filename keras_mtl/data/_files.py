"""File-path helpers for the streamed readers: globbing, format and compression."""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator, Sequence

import tensorflow as tf

from keras_mtl.data import epochs

FORMATS = ("csv", "tfrecord")
_TFRECORD_SUFFIXES = (".tfrecord", ".tfrecords")


def is_path_like(data) -> bool:
    """True for a path, or a non-empty list/tuple of paths."""
    if isinstance(data, (str, os.PathLike)):
        return True
    return (
        isinstance(data, (list, tuple))
        and len(data) > 0
        and all(isinstance(p, (str, os.PathLike)) for p in data)
    )


def expand_paths(data: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """Paths and glob patterns -> existing files (each pattern's matches sorted)."""
    patterns = [data] if isinstance(data, (str, os.PathLike)) else list(data)
    files = []
    for pattern in map(os.fspath, patterns):
        if any(ch in pattern for ch in "*?["):
            matches = sorted(tf.io.gfile.glob(pattern))
            if not matches:
                raise FileNotFoundError(f"No file matches the pattern {pattern!r}.")
            files.extend(matches)
        elif tf.io.gfile.isdir(pattern):
            raise ValueError(
                f"{pattern!r} is a directory; pass file paths or a glob such as "
                f"'{pattern}/*.csv'."
            )
        elif not tf.io.gfile.exists(pattern):
            raise FileNotFoundError(f"Data file not found: {pattern!r}.")
        else:
            files.append(pattern)
    return files


def compression(path: str) -> str:
    """'GZIP' for a `.gz` file, else ''."""
    return "GZIP" if path.endswith(".gz") else ""


def detect_format(files: list[str], format: str | None) -> str:
    """'tfrecord' for .tfrecord(s)[.gz] files, 'csv' otherwise, unless `format` says."""
    if format is not None:
        if format not in FORMATS:
            raise ValueError(
                f"format must be one of {FORMATS} or None; got {format!r}."
            )
        return format
    kinds = {
        "tfrecord" if f.removesuffix(".gz").endswith(_TFRECORD_SUFFIXES) else "csv"
        for f in files
    }
    if len(kinds) > 1:
        raise ValueError(
            f"Mixed CSV and TFRecord files: {files}. Pass files of one format."
        )
    return kinds.pop()


def iter_lines(path: str) -> Iterator[str]:
    """Lines of a (possibly gzipped) text file, read lazily."""
    with tf.io.gfile.GFile(path, "rb") as raw:
        stream = gzip.GzipFile(fileobj=raw) if compression(path) else raw
        encoding = "utf-8-sig"  # drop a byte-order mark before the header
        while line := stream.readline():
            yield line.decode(encoding)
            encoding = "utf-8"


def read_files(
    files: list[str],
    reader,
    *,
    shuffle: bool,
    seed: int | None,
    shuffle_buffer_size: int,
    epoch_counter: tf.Variable | None = None,
) -> tf.data.Dataset:
    """The records of all `files` (`reader(path)` -> dataset), interleaved.

    Several files are read in parallel with a deterministic order; with
    `shuffle`, the file order is reshuffled every epoch and the records pass
    through a buffer of `shuffle_buffer_size`, both seeded by `(seed, epoch)`
    with the epoch read from `epoch_counter` (`keras_mtl.data.epochs`; a new
    counter when None).
    """
    if not shuffle:
        return _interleaved(tf.data.Dataset.from_tensor_slices(files), reader, files)
    counter = epochs.new_counter() if epoch_counter is None else epoch_counter
    base = epochs.base_seed(seed)

    def epoch_records(epoch):
        op_seed = epochs.epoch_op_seed(base, epoch)
        ds = tf.data.Dataset.from_tensor_slices(files)
        if len(files) > 1:
            ds = ds.shuffle(len(files), seed=op_seed, reshuffle_each_iteration=False)
        ds = _interleaved(ds, reader, files)
        return ds.shuffle(
            shuffle_buffer_size, seed=op_seed, reshuffle_each_iteration=False
        )

    return epochs.next_epoch(counter).flat_map(epoch_records)


def _interleaved(ds: tf.data.Dataset, reader, files: list[str]) -> tf.data.Dataset:
    parallel = (
        {"num_parallel_calls": tf.data.AUTOTUNE, "deterministic": True}
        if len(files) > 1
        else {}
    )
    return ds.interleave(reader, cycle_length=min(len(files), 4), **parallel)
