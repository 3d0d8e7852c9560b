"""`load_aliccp`: Ali-CCP's two raw files joined into blocks for `make_dataset`.

The common features file (the user side) is parsed once into an in-memory
table; the skeleton (one impression per line) is re-read every epoch, block by
block, each block joined with its users' rows of the table. The reader is a
block source of `keras_mtl.data.make_dataset`, which does the batching,
shuffling and label checks as for any other source.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pathlib
from collections.abc import Iterator, Sequence
from itertools import repeat

import numpy as np
import tensorflow as tf

from keras_mtl._checks import check_positive_int
from keras_mtl.data import make_dataset
from keras_mtl.datasets.aliccp import parser
from keras_mtl.datasets.aliccp.fields import (
    LABEL_COLUMNS,
    aliccp_features,
    aliccp_tasks,
)
from keras_mtl.datasets.aliccp.parser import (
    COMMON_COLUMNS,
    SKELETON_COLUMNS,
    Block,
    Layout,
    raw_blocks,
)
from keras_mtl.features import INT_PAD, SparseFeature, check_features
from keras_mtl.tasks import Task, check_tasks

#: Where the data is published (free, behind a login; ~40 GB unpacked).
ALICCP_URL = "https://tianchi.aliyun.com/dataset/408"
#: The two files of a split, by role.
ALICCP_FILES = {
    "skeleton": "sample_skeleton_{split}.csv",
    "common": "common_features_{split}.csv",
}
#: The splits of the published data.
SPLITS = ("train", "test")


def find_aliccp_files(
    path: str | os.PathLike, split: str = "train"
) -> tuple[pathlib.Path, pathlib.Path]:
    """`(skeleton, common features)` files of `split` in `path` or `path/split`.

    Each file may be plain or gzipped (`.csv.gz`).

    Raises:
        FileNotFoundError: `path` is no directory, or a file is missing; the
            message says where to get the data.
        ValueError: `split` is not "train" or "test".
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}.")
    root = pathlib.Path(path).expanduser()
    how = (
        f"Download sample_{split}.tar.gz from {ALICCP_URL} (free, needs a login; "
        f"not downloaded automatically) and unpack it into {str(root)!r}."
    )
    if not root.is_dir():
        raise FileNotFoundError(f"Ali-CCP directory not found: {str(root)!r}. {how}")
    found = []
    for template in ALICCP_FILES.values():
        name = template.format(split=split)
        candidates = [d / n for d in (root, root / split) for n in (name, name + ".gz")]
        match = next((p for p in candidates if p.is_file()), None)
        if match is None:
            raise FileNotFoundError(
                f"No {name}[.gz] ({split} split of Ali-CCP) in {str(root)!r} or "
                f"{str(root / split)!r}; found {sorted(p.name for p in root.iterdir())}"
                f". {how}"
            )
        found.append(match)
    return found[0], found[1]


def load_aliccp(
    path: str | os.PathLike,
    split: str = "train",
    features: Sequence[SparseFeature] | None = None,
    tasks: Sequence[Task] | None = None,
    batch_size: int = 1024,
    shuffle: bool = False,
    seed: int | None = None,
    drop_conversions_without_click: bool = False,
    max_rows: int | None = None,
    *,
    shuffle_buffer_size: int = 100_000,
) -> tf.data.Dataset:
    """Stream Ali-CCP impressions as `(x, y)` batches in `make_dataset`'s format.

    `x` maps each feature name to int64 ids: `(batch,)` for a single-valued
    feature (-1 where the field is absent from the line), `(batch, max_len)`
    for one with `max_len` (the first `max_len` ids in file order, padded with
    -1). `y` maps each task name to float32 `(batch,)` labels from the columns
    `click` and `conversion` (the raw `buy`), with `given` masking and
    `requires` checks as in `make_dataset`. With `tasks=[]` the elements are
    `x` only (for `predict`).

    The skeleton file is streamed block by block, parsed with vectorised numpy
    and handed to `make_dataset` as a block source (one column per feature,
    plus `click` and `conversion`). The common features file is parsed once,
    when this is called, into an in-memory table of the selected fields that occur in it (the user side):
    int32 ids (int64 if an id needs it), one row per user and one column per
    id slot (`max_len` or 1 per field), 209 columns or ~0.85 KB per user with
    the default features, i.e. ~85 MB per 100k users, plus a dict from index
    to row; about twice that while it is built. A field is read from the
    skeleton line when it occurs there, else from the common features.

    Each epoch re-reads the skeleton. `shuffle` draws examples from
    `make_dataset`'s buffer of `shuffle_buffer_size` parsed rows (like
    `Dataset.shuffle`, in numpy), in a new order every epoch, reproducibly given
    `seed`.

    Errors: missing files, a malformed common features file, or a malformed
    first block of the skeleton raise here. Later skeleton lines are parsed
    while iterating; an error there stops the pipeline with a
    `tf.errors.InvalidArgumentError` carrying the same message. Errors are:
    a line without the right number of columns, a feature not shaped
    `field\\x02id\\x03value` (or with a non-integer id or non-numeric value),
    `num_features` not matching the features of the line, a click or buy
    that is not a non-negative integer (values other than 0/1 fail in the
    task check), a `common_feature_index` that is not in the common features file
    (the two files of a split belong together, so this is not read as "no
    user features"), and a conversion without a click when a task has
    `given` / `requires` (unless `drop_conversions_without_click`). Messages
    name the file and line.

    Args:
        path: str or path-like. Directory holding `sample_skeleton_{split}.csv`
            and `common_features_{split}.csv` (each optionally `.gz`), directly
            or in a `{split}/` subdirectory. Nothing is downloaded.
        split: "train" or "test". Defaults to "train".
        features: `SparseFeature`s named after Ali-CCP fields (int64 ids).
            Defaults to `aliccp_features()` (all 23 fields).
        tasks: `Task`s whose label (and `given` / `requires`) columns are
            "click" or "conversion". Defaults to `aliccp_tasks()` (ctr, cvr,
            ctcvr).
        batch_size: int. Examples per batch. Defaults to 1024.
        shuffle: bool. Shuffle through a buffer. Defaults to False.
        seed: int or None. Makes the shuffle orders reproducible. Defaults to
            None.
        drop_conversions_without_click: bool. Drop impressions with buy=1 and
            click=0 (as AITM's preprocessing does) instead of failing on them.
            Defaults to False.
        max_rows: int or None. Read only the first `max_rows` lines of the
            skeleton (dropped rows included); only the users they need are
            then kept from the common features. Defaults to None (all).
        shuffle_buffer_size: int. Rows held by the shuffle buffer. Defaults to
            100000.

    Returns:
        A `tf.data.Dataset` of `(x, y)` batches (or `x` for `tasks=[]`),
        prefetched, of unknown cardinality.

    Raises:
        FileNotFoundError: `path` or one of its files is missing.
        ValueError: bad arguments, or malformed data as listed above.

    Example (needs the Ali-CCP files, which are not downloaded automatically,
    so it is a plain code block):

        import keras_mtl as km
        from keras_mtl.datasets import aliccp_features, aliccp_tasks, load_aliccp

        features, tasks = aliccp_features(), aliccp_tasks()
        train = load_aliccp("data/ali-ccp", "train", features, tasks,
                            shuffle=True, seed=0, drop_conversions_without_click=True)
        model = km.build_mmoe(features, tasks)
        model.fit(train, epochs=1)

    References:
        Ma et al., "Entire Space Multi-Task Model: An Effective Approach for
        Estimating Post-Click Conversion Rate", SIGIR 2018.
    """
    skeleton_path, common_path = find_aliccp_files(path, split)
    features = check_features(aliccp_features() if features is None else features)
    tasks = aliccp_tasks() if tasks is None else (check_tasks(tasks) if tasks else [])
    layout = Layout(features)
    for t in tasks:
        for column in t.data_columns:
            if column not in LABEL_COLUMNS:
                raise ValueError(
                    f"Task {t.name!r}: Ali-CCP has the label columns "
                    f"{LABEL_COLUMNS} (conversion is the raw `buy`); got {column!r}."
                )
    check_positive_int("load_aliccp", "batch_size", batch_size)
    check_positive_int("load_aliccp", "shuffle_buffer_size", shuffle_buffer_size)
    check_positive_int("load_aliccp", "max_rows", max_rows, allow_none=True)

    needed = None
    if max_rows is not None:
        needed = _skeleton_indices(skeleton_path, max_rows)
    common = _CommonTable.read(common_path, layout, needed)
    reader = _SkeletonReader(
        skeleton_path,
        layout,
        common,
        tasks,
        drop_conversions_without_click=drop_conversions_without_click,
        max_rows=max_rows,
    )
    return make_dataset(
        reader,
        features,
        tasks,
        batch_size,
        shuffle=shuffle,
        seed=seed,
        shuffle_buffer_size=shuffle_buffer_size,
    )


def _skeleton_indices(path: pathlib.Path, max_rows: int) -> set:
    """The common_feature_index values of the first `max_rows` skeleton lines."""
    needed: set = set()
    for data, numbers in raw_blocks(path, max_rows):
        block = Block(path, data, numbers, SKELETON_COLUMNS)
        needed.update(block.strings("common_feature_index"))
    return needed


@dataclasses.dataclass
class _CommonTable:
    """The common features: index -> row of a matrix of the fields found in it.

    `fields` lists, per layout field present in the file, `(layout offset,
    length, column in matrix)`.
    """

    path: pathlib.Path
    index: dict
    matrix: np.ndarray
    fields: list

    @classmethod
    def read(cls, path: pathlib.Path, layout: Layout, needed: set | None):
        index: dict = {}
        blocks = []
        present = np.zeros(len(layout.fields), dtype=bool)
        for data, numbers in raw_blocks(path, size=parser.COMMON_BLOCK_BYTES):
            block = Block(path, data, numbers, COMMON_COLUMNS)
            keys = block.strings("common_feature_index")
            if needed is not None:
                wanted = np.fromiter(map(needed.__contains__, keys), bool, len(keys))
                if not wanted.any():
                    continue
                if not wanted.all():
                    lines = data.split(b"\n")
                    data = b"".join(
                        lines[i] + b"\n" for i in (block.numbers[wanted] - numbers[0])
                    )
                    block = Block(path, data, block.numbers[wanted], COMMON_COLUMNS)
                    keys = [k for k, w in zip(keys, wanted) if w]
            numbers = block.numbers
            ids = block.features(layout)
            present |= (ids[:, layout.offsets] != INT_PAD).any(axis=0)
            if len(set(keys)) != len(keys) or not index.keys().isdisjoint(keys):
                seen: set = set()
                for n, key in zip(numbers, keys):
                    if key in index or key in seen:
                        raise ValueError(
                            f"{str(path)!r}: line {n}: common_feature_index "
                            f"{key.decode(errors='replace')!r} already appears "
                            "on an earlier line."
                        )
                    seen.add(key)
            size = len(index)
            index.update(zip(keys, range(size, size + len(keys))))
            # int32 halves the table when the ids allow it (Ali-CCP's do).
            small = ids.max(initial=0) < 2**31
            blocks.append(ids.astype(np.int32) if small else ids)
        if not index:
            raise ValueError(f"Common features file {str(path)!r} has no rows.")
        fields, columns = [], []
        for k in np.flatnonzero(present):
            start, length = int(layout.offsets[k]), int(layout.lengths[k])
            fields.append((start, length, len(columns)))
            columns.extend(range(start, start + length))
        matrix = np.empty((len(index), len(columns)), np.result_type(*blocks))
        done = 0
        while blocks:  # free each parsed block once copied
            block = blocks.pop(0)[:, columns]
            matrix[done : done + len(block)] = block
            done += len(block)
        return cls(path, index, matrix, fields)

    @functools.cached_property
    def runs(self) -> list:
        """`(start, length, column)` of `fields`, adjacent ones merged."""
        runs: list = []
        for start, length, column in self.fields:
            if runs and runs[-1][0] + runs[-1][1] == start:
                runs[-1][1] += length
            else:
                runs.append([start, length, column])
        return runs

    def rows(self, skeleton_path, numbers, keys) -> np.ndarray:
        """Row of each key, or a ValueError naming the first skeleton line without."""
        rows = np.fromiter(map(self.index.get, keys, repeat(-1)), np.int64, len(keys))
        if (rows < 0).any():
            i = int(np.flatnonzero(rows < 0)[0])
            raise ValueError(
                f"{str(skeleton_path)!r}: line {numbers[i]}: common_feature_index "
                f"{keys[i].decode(errors='replace')!r} is not in "
                f"{str(self.path)!r}; the skeleton and common features files must "
                "be of the same split."
            )
        return rows

    def fill(self, ids: np.ndarray, rows: np.ndarray) -> None:
        """Fields absent from the skeleton line take their common feature ids."""
        if not self.fields:
            return
        user = self.matrix[rows]
        starts = [start for start, _, _ in self.fields]
        own = ids[:, starts] != INT_PAD
        if not own.any():  # as in the public data: no user field in the skeleton
            for start, length, column in self.runs:
                ids[:, start : start + length] = user[:, column : column + length]
            return
        for (start, length, column), mine in zip(self.fields, own.T):
            theirs = user[:, column : column + length]
            ids[~mine, start : start + length] = theirs[~mine]


class _SkeletonReader:
    """The block source of `make_dataset`: the skeleton's parsed blocks, joined
    with the common features and checked; one dict of columns per block.

    Calling it starts a new pass over the file (one per epoch). `name` (the
    skeleton's path) names the file in the pipeline's error messages.
    """

    def __init__(
        self,
        path: pathlib.Path,
        layout: Layout,
        common: _CommonTable,
        tasks: Sequence[Task],
        *,
        drop_conversions_without_click: bool,
        max_rows: int | None,
    ):
        self.path = path
        self.name = os.fspath(path)
        self.layout = layout
        self.common = common
        self.funnel = [t for t in tasks if t.parent_column is not None]
        self.drop = drop_conversions_without_click
        self.max_rows = max_rows

    def __call__(self) -> Iterator[dict[str, np.ndarray]]:
        path = self.path
        for data, numbers in raw_blocks(path, self.max_rows):
            block = Block(path, data, numbers, SKELETON_COLUMNS)
            if not len(block):
                continue
            numbers = block.numbers
            labels = {
                "click": block.integers("click").astype(np.float32),
                "conversion": block.integers("buy").astype(np.float32),
            }
            rows = self.common.rows(
                path, numbers, block.strings("common_feature_index")
            )
            ids = block.features(self.layout)
            self.common.fill(ids, rows)
            if self.drop:
                keep = ~((labels["conversion"] == 1) & (labels["click"] != 1))
                if not keep.all():
                    ids, numbers = ids[keep], numbers[keep]
                    labels = {k: v[keep] for k, v in labels.items()}
            for t in self.funnel:
                wrong = (labels[t.label_column] == 1) & (labels[t.parent_column] != 1)
                if wrong.any():
                    i = int(np.flatnonzero(wrong)[0])
                    raise ValueError(
                        f"{str(path)!r}: line {numbers[i]}: {t.label_column}=1 "
                        f"without {t.parent_column}=1, but task {t.name!r} needs a "
                        f"{t.parent_column} first. Pass "
                        "drop_conversions_without_click=True to drop such rows "
                        "(as AITM's preprocessing does)."
                    )
            if len(ids):
                yield {**self.layout.columns(ids), **labels}
