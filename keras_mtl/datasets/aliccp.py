"""Ali-CCP (Alibaba Click and Conversion Prediction) loader for the raw public files.

The ESMM paper's public dataset (Ma et al., SIGIR 2018; tianchi.aliyun.com,
dataset 408) ships, per split, two comma-separated files without a header:

- `sample_skeleton_{split}.csv`: one impression per line,
  `sample_id,click,buy,common_feature_index,num_features,feature_list`.
- `common_features_{split}.csv`: `common_feature_index,num_features,feature_list`,
  the user-side features shared by many impressions; the skeleton's 4th column
  points at one of its lines.

A `feature_list` is `num_features` features joined by `\\x01`; a feature is
`field_id\\x02feature_id\\x03value`, where `field_id` names the field (`101`,
`109_14`, ...), `feature_id` is a global integer id and `value` a float (1.0
for plain ids). A field may occur several times in a line (multi-valued) or not
at all. Only the ids are read; the values are checked to look like numbers and
then dropped (they are counts for the behaviour and cross fields).
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import pathlib
import re
from collections.abc import Iterator, Mapping, Sequence
from itertools import repeat

import numpy as np
import tensorflow as tf

from keras_mtl._checks import check_positive_int
from keras_mtl.data import _files, _tensors
from keras_mtl.features import INT_PAD, SparseFeature, check_features
from keras_mtl.tasks import Task, check_tasks, esmm_tasks

#: Where the data is published (free, behind a login; ~40 GB unpacked).
ALICCP_URL = "https://tianchi.aliyun.com/dataset/408"
#: The two files of a split, by role.
ALICCP_FILES = {
    "skeleton": "sample_skeleton_{split}.csv",
    "common": "common_features_{split}.csv",
}
SPLITS = ("train", "test")
#: Label columns of the skeleton (the raw `buy` column is `conversion`).
LABEL_COLUMNS = ("click", "conversion")


@dataclasses.dataclass(frozen=True)
class AliCCPField:
    """One field of the raw data.

    Args:
        field: str. Raw field id, e.g. "101" or "109_14".
        name: str. Feature name used for it (the model input's name).
        side: "user" (in common_features), "item", "user_item" (cross
            features) or "context" (in the skeleton).
        description: str. Meaning, from the public description.
        max_len: int or None. Default length of a multi-valued field; None
            for single-valued fields.
        hash_bins: int. Default number of hash buckets.
        vocabulary_size: int or None. Published number of distinct ids (AITM's
            statistics), None where none is published.
    """

    field: str
    name: str
    side: str
    description: str
    max_len: int | None
    hash_bins: int
    vocabulary_size: int | None


# Hash buckets: about 2x the published vocabulary for the large fields (fewer
# collisions at a moderate table size) and at least 1,000 for the tiny ones (3 ids
# in 4 buckets would collide with probability ~0.6; in 1,000, ~0.003). The
# multi-valued fields have no published size; their buckets follow the item field
# of the same kind.
_FIELDS = (
    AliCCPField("101", "user_id", "user", "user id", None, 500_000, 238_635),
    AliCCPField(
        "109_14",
        "user_category_actions",
        "user",
        "categories of the user's past actions (with counts)",
        50,
        20_000,
        None,
    ),
    AliCCPField(
        "110_14",
        "user_shop_actions",
        "user",
        "shops of the user's past actions (with counts)",
        50,
        500_000,
        None,
    ),
    AliCCPField(
        "127_14",
        "user_brand_actions",
        "user",
        "brands of the user's past actions (with counts)",
        50,
        200_000,
        None,
    ),
    AliCCPField(
        "150_14",
        "user_intention_actions",
        "user",
        "intention nodes of the user's past actions (with counts)",
        50,
        100_000,
        None,
    ),
    AliCCPField("121", "user_cate1", "user", "user categorical id 1", None, 10_000, 98),
    AliCCPField("122", "user_cate2", "user", "user categorical id 2", None, 1_000, 14),
    AliCCPField("124", "user_gender", "user", "gender", None, 1_000, 3),
    AliCCPField("125", "user_age", "user", "age group", None, 1_000, 8),
    AliCCPField(
        "126", "user_consumption_1", "user", "consumption level 1", None, 1_000, 4
    ),
    AliCCPField(
        "127", "user_consumption_2", "user", "consumption level 2", None, 1_000, 4
    ),
    AliCCPField("128", "user_occupation", "user", "occupation", None, 1_000, 3),
    AliCCPField("129", "user_geography", "user", "geography", None, 1_000, 5),
    AliCCPField("205", "item_id", "item", "item id", None, 1_000_000, 467_298),
    AliCCPField("206", "item_category", "item", "item category", None, 20_000, 6_929),
    AliCCPField("207", "item_shop", "item", "shop id", None, 500_000, 263_942),
    AliCCPField(
        "210", "item_intention", "item", "intention node ids", 10, 100_000, None
    ),
    AliCCPField("216", "item_brand", "item", "brand id", None, 200_000, 106_399),
    AliCCPField(
        "508",
        "user_item_category",
        "user_item",
        "item category x user's category actions",
        None,
        20_000,
        5_888,
    ),
    AliCCPField(
        "509",
        "user_item_shop",
        "user_item",
        "item shop x user's shop actions",
        None,
        200_000,
        104_830,
    ),
    AliCCPField(
        "702",
        "user_item_brand",
        "user_item",
        "item brand x user's brand actions",
        None,
        100_000,
        51_878,
    ),
    AliCCPField(
        "853",
        "user_item_intention",
        "user_item",
        "item intention x user's intention actions",
        None,
        100_000,
        37_148,
    ),
    AliCCPField(
        "301", "scenario", "context", "scenario of the impression", None, 1_000, 4
    ),
)
#: The 23 fields, by raw field id: name, side, default `max_len` and hash buckets.
ALICCP_FIELDS: dict[str, AliCCPField] = {f.field: f for f in _FIELDS}
#: The 18 single-valued fields used by AITM's preprocessing (Xi et al., KDD 2021).
AITM_FIELDS = (
    "101",
    "121",
    "122",
    "124",
    "125",
    "126",
    "127",
    "128",
    "129",
    "205",
    "206",
    "207",
    "216",
    "508",
    "509",
    "702",
    "853",
    "301",
)
_BY_NAME = {f.name: f for f in _FIELDS}

# The skeleton is parsed in blocks of about this many bytes, and the rows handed
# to tf.data in groups of at least _ROWS_PER_YIELD. Blocks stay small because the
# generator runs in a TensorFlow thread, where large numpy temporaries cost many
# page faults (measured: 4 MB blocks parse 2.5x slower there than in Python's
# main thread; 256 KB blocks as fast). The common features file is parsed in the
# main thread, in larger blocks.
_BLOCK_BYTES = 1 << 18
_COMMON_BLOCK_BYTES = 1 << 22
_ROWS_PER_YIELD = 16_384
_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[list(b"0123456789.+-eE")] = True
_MAX_ID_DIGITS = 18  # any 18-digit number fits in int64
_MAX_VALUE_BYTES = 32


def _field_of(key: str, what: str) -> AliCCPField:
    """The field named by a raw field id or a feature name."""
    if key in ALICCP_FIELDS:
        return ALICCP_FIELDS[key]
    if key in _BY_NAME:
        return _BY_NAME[key]
    raise ValueError(
        f"{what}: {key!r} is no Ali-CCP field; known field ids and names: "
        f"{[(f.field, f.name) for f in _FIELDS]}."
    )


def aliccp_features(
    fields: Sequence[str] | None = None,
    embedding_dim: int = 18,
    hash_bins: int | Mapping[str, int] | None = None,
    max_len: Mapping[str, int | None] | None = None,
) -> list[SparseFeature]:
    """Feature specs of Ali-CCP fields: hashed int64 ids, multi-valued lists padded.

    Feature ids are global raw integers (not `[0, V)` per field), so each field
    is hashed inside the model (`SparseFeature(hash_bins=...)`, `dtype="int64"`)
    and its embeddings are sum-pooled (`FeatureEncoder`).

    Args:
        fields: field ids ("101") or feature names ("user_id"), in the order
            wanted. Defaults to all 23 fields of `ALICCP_FIELDS`; `AITM_FIELDS`
            selects the 18 single-valued ones.
        embedding_dim: int. Embedding width of every field. Defaults to 18.
        hash_bins: int for every field, or a dict from field id or feature
            name to buckets overriding `ALICCP_FIELDS`' defaults (about twice
            the published vocabulary size, >= 1,000). Defaults to None.
        max_len: dict from field id or feature name to a `max_len` (None:
            single-valued, the first id of the line) overriding the defaults
            (50 for the four user action lists, 10 for `item_intention`).
            Defaults to None.

    Returns:
        A list of `SparseFeature`, one per field, named after `ALICCP_FIELDS`.

    Example:

    >>> from keras_mtl.datasets.aliccp import AITM_FIELDS, aliccp_features
    >>> features = aliccp_features(AITM_FIELDS, embedding_dim=5)
    >>> [(f.name, f.hash_bins, f.max_len) for f in features[:2]]
    [('user_id', 500000, None), ('user_cate1', 10000, None)]
    """
    selected = [
        _field_of(k, "aliccp_features(fields=...)")
        for k in (ALICCP_FIELDS if fields is None else fields)
    ]
    if isinstance(hash_bins, Mapping):
        bins = {
            _field_of(k, "aliccp_features(hash_bins=...)").field: v
            for k, v in hash_bins.items()
        }
    else:
        bins = {f.field: hash_bins for f in selected} if hash_bins is not None else {}
    lengths = {
        _field_of(k, "aliccp_features(max_len=...)").field: v
        for k, v in (max_len or {}).items()
    }
    return check_features(
        [
            SparseFeature(
                f.name,
                hash_bins=bins.get(f.field, f.hash_bins),
                embedding_dim=embedding_dim,
                max_len=lengths.get(f.field, f.max_len),
                dtype="int64",
            )
            for f in selected
        ]
    )


def aliccp_tasks() -> list[Task]:
    """The ESMM tasks: CTR, CVR (on clicked impressions, metrics only) and CTCVR.

    `cvr` is conditional on a click (`given="click"`: unclicked rows have no
    label) and gets metrics but no loss, as in ESMM where it is trained
    through `ctcvr`. `ctcvr` is `conversion` over all impressions, which
    requires a click wherever there is a conversion.

    Returns:
        `[Task("ctr", label="click"), Task("cvr", label="conversion",
        given="click", metric_only=True), Task("ctcvr", label="conversion",
        requires="click")]`.
    """
    return esmm_tasks()


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

    The skeleton file is streamed block by block and parsed with vectorised
    numpy (measured ~1.4e5 impressions/s end to end with the default features
    on one busy CPU core, ~12 features per impression). The common features
    file is parsed once, when this is called (~4e6 features/s), into an
    in-memory table of the selected fields that occur in it (the user side):
    int32 ids (int64 if an id needs it), one row per user and one column per
    id slot (`max_len` or 1 per field), 209 columns or ~0.85 KB per user with
    the default features, i.e. ~85 MB per 100k users, plus a dict from index
    to row; about twice that while it is built. A field is read from the
    skeleton line when it occurs there, else from the common features.

    Each epoch re-reads the skeleton. `shuffle` draws examples from a buffer of
    `shuffle_buffer_size` parsed rows (like `Dataset.shuffle`, in numpy), in a
    new order every epoch, reproducibly given `seed`.

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

    Example:

    >>> import keras_mtl as km
    >>> from keras_mtl.datasets.aliccp import aliccp_features, aliccp_tasks, load_aliccp
    >>> features, tasks = aliccp_features(), aliccp_tasks()
    >>> train = load_aliccp("data/ali-ccp", "train", features, tasks,
    ...                     shuffle=True, seed=0, drop_conversions_without_click=True)
    >>> model = km.build_mmoe(features, tasks)
    >>> model.fit(train, epochs=1)

    References:
        Ma et al., "Entire Space Multi-Task Model: An Effective Approach for
        Estimating Post-Click Conversion Rate", SIGIR 2018.
    """
    skeleton_path, common_path = find_aliccp_files(path, split)
    features = check_features(aliccp_features() if features is None else features)
    tasks = aliccp_tasks() if tasks is None else (check_tasks(tasks) if tasks else [])
    layout = _Layout(features)
    for t in tasks:
        for column in t.data_columns:
            if column not in LABEL_COLUMNS:
                raise ValueError(
                    f"Task {t.name!r}: Ali-CCP has the label columns "
                    f"{LABEL_COLUMNS} (conversion is the raw `buy`); got {column!r}."
                )
    for name, value, _ in (
        ("batch_size", batch_size, 1),
        ("shuffle_buffer_size", shuffle_buffer_size, 1),
        ("max_rows", 1 if max_rows is None else max_rows, 1),
    ):
        check_positive_int("load_aliccp", name, value)

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
    first = reader.blocks()
    next(first, None)  # a file in the wrong format fails here, not in fit
    first.close()

    order_seeds = np.random.default_rng(seed)

    def generate():
        blocks = _grouped(reader.blocks(), _ROWS_PER_YIELD)
        if shuffle:
            rng = np.random.default_rng(order_seeds.integers(2**63))
            blocks = _shuffled(blocks, shuffle_buffer_size, rng)
        yield from blocks

    ds = tf.data.Dataset.from_generator(
        generate,
        output_signature=(
            tf.TensorSpec((None, layout.width), tf.int64),
            tf.TensorSpec((None,), tf.float32),
            tf.TensorSpec((None,), tf.float32),
        ),
    ).rebatch(batch_size)

    source = os.fspath(skeleton_path)

    def element(ids, click, conversion):
        x = layout.split(ids)
        if not tasks:
            return x
        y = _tensors.task_labels(
            {"click": click, "conversion": conversion},
            tasks,
            lambda t: f"Task `{t.name}` ({source}, label column `{t.label_column}`)",
        )
        return _tensors.assemble(x, y)

    return ds.map(element, num_parallel_calls=tf.data.AUTOTUNE).prefetch(
        tf.data.AUTOTUNE
    )


# ----------------------------------------------------------------------------- parsing


class _Layout:
    """Where each selected field goes in a row of ids: one slot per id."""

    def __init__(self, features: Sequence[SparseFeature]):
        self.features = list(features)
        fields = []
        for f in self.features:
            if not isinstance(f, SparseFeature) or f.dtype != "int64":
                raise ValueError(
                    f"Ali-CCP features are int64 SparseFeatures (raw ids); got "
                    f"{f!r}. Use aliccp_features() or hash_bins=..., dtype='int64'."
                )
            if f.name not in _BY_NAME:
                raise ValueError(
                    f"Feature {f.name!r} is not named after an Ali-CCP field; "
                    f"known names: {sorted(_BY_NAME)} (see ALICCP_FIELDS)."
                )
            fields.append(_BY_NAME[f.name].field)
        self.fields = fields
        self.lengths = np.array([f.length for f in self.features], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.width = int(self.lengths.sum())
        # Field ids packed little-endian into uint64 (all are <= 8 bytes), sorted.
        codes = np.array([_pack(f.encode()) for f in fields], dtype=np.uint64)
        self.code_order = np.argsort(codes)
        self.sorted_codes = codes[self.code_order]

    def field_index(self, codes: np.ndarray) -> np.ndarray:
        """Index of each packed field id in `self.fields`, or -1 if not selected."""
        at = np.searchsorted(self.sorted_codes, codes)
        at = np.minimum(at, len(self.sorted_codes) - 1)
        hit = self.sorted_codes[at] == codes
        return np.where(hit, self.code_order[at], -1)

    def split(self, ids: tf.Tensor) -> dict:
        """(batch, width) ids -> dict of (batch,) / (batch, max_len) per feature."""
        parts = tf.split(ids, [int(n) for n in self.lengths], axis=1)
        return {
            f.name: part if f.max_len is not None else tf.reshape(part, [-1])
            for f, part in zip(self.features, parts)
        }


def _pack(field: bytes) -> int:
    return int.from_bytes(field, "little") if len(field) <= 8 else 0


def _open(path: pathlib.Path):
    return gzip.open(path, "rb") if _files.compression(path.name) else open(path, "rb")


def _raw_blocks(
    path: pathlib.Path, max_lines: int | None = None, size: int | None = None
) -> Iterator[tuple[bytes, np.ndarray]]:
    """`(data, numbers)`: whole lines (about `size` bytes, by default
    `_BLOCK_BYTES`), each ending in a
    newline, and the line number (from 1) of each line.

    With `max_lines`, stops after that many non-blank lines.
    """
    number, seen, carry = 1, 0, b""
    size = size or _BLOCK_BYTES
    with _open(path) as stream:
        while max_lines is None or seen < max_lines:
            chunk = stream.read(size)
            if chunk:
                data = carry + chunk
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # a line longer than a block: read on
                    carry = data
                    continue
                data, carry = data[:cut], data[cut:]
            elif carry:
                data, carry = carry + b"\n", b""
            else:
                return
            if b"\r" in data:
                data = data.replace(b"\r\n", b"\n")
            ends = np.flatnonzero(np.frombuffer(data, np.uint8) == 10)
            numbers = np.arange(number, number + len(ends))
            number += len(ends)
            if max_lines is not None:
                filled = np.diff(ends, prepend=-1) > 1
                if seen + int(filled.sum()) > max_lines:
                    last = int(np.flatnonzero(filled)[max_lines - seen - 1])
                    data, numbers = data[: ends[last] + 1], numbers[: last + 1]
                    filled = filled[: last + 1]
                seen += int(filled.sum())
            yield data, numbers


# What remains of valid lines once all but the separators is deleted.
_NOT_SEPARATORS = bytes(b for b in range(256) if b not in b"\x01\x02\x03,\n")


@functools.cache
def _structure(columns: int) -> re.Pattern:
    return re.compile(
        rb"(?:(?:,{%d}(?:\x02\x03(?:\x01\x02\x03)*)?)?\n)*" % (columns - 1)
    )


class _Block:
    """The non-blank lines of a block, split into columns (vectorised).

    Column `k` of line `i` is `data[bounds[i, k] + 1 : bounds[i, k + 1]]`.
    """

    def __init__(self, path, data: bytes, numbers: np.ndarray, names: tuple):
        self.path, self.data, self.names = path, data, names
        self.buf = np.frombuffer(data, np.uint8)
        ends = np.flatnonzero(self.buf == 10)
        starts = np.concatenate([[0], ends[:-1] + 1])
        filled = ends > starts
        commas = np.flatnonzero(self.buf == 44)
        # Every line is blank or has its commas, then tokens \x02\x03 joined by
        # \x01; the count also catches non-blank lines without any separator.
        separators = data.translate(None, _NOT_SEPARATORS)
        if not _structure(len(names)).fullmatch(separators) or len(commas) != (
            len(names) - 1
        ) * int(filled.sum()):
            _raise_first_bad_line(path, data, numbers, names)
        self.numbers = numbers[filled]
        commas = commas.reshape(-1, len(names) - 1)
        self.bounds = np.column_stack([starts[filled] - 1, commas, ends[filled]])

    def __len__(self) -> int:
        return len(self.numbers)

    def strings(self, column: str) -> list[bytes]:
        k = self.names.index(column)
        data = self.data
        return [
            data[a + 1 : b]
            for a, b in zip(self.bounds[:, k].tolist(), self.bounds[:, k + 1].tolist())
        ]

    def integers(self, column: str) -> np.ndarray:
        """A column of non-negative integers (int64)."""
        k = self.names.index(column)
        start = self.bounds[:, k] + 1
        values, bad = _digits(self.buf, start, self.bounds[:, k + 1] - start)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{str(self.path)!r}: line {self.numbers[i]}: column {column} must "
                f"be a non-negative integer; got {_excerpt(self.strings(column)[i])}."
            )
        return values

    def features(self, layout: _Layout) -> np.ndarray:
        """`(lines, layout.width)` int64 ids of the selected fields, -1 = none.

        Checks `num_features` and every `field\\x02id\\x03value` token.
        """
        buf, n = self.buf, len(self)
        out = np.full((n, layout.width), INT_PAD, dtype=np.int64)
        declared = self.integers("num_features")
        first, end = self.bounds[:, -2] + 1, self.bounds[:, -1]
        p2 = np.flatnonzero(buf == 2)  # the structure check put them in order:
        p3 = np.flatnonzero(buf == 3)  # token k is [starts[k], p2[k]) field,
        p1 = np.flatnonzero(buf == 1)  # (p2, p3) id, (p3, ends[k]) value
        filled = end > first
        total = np.searchsorted(p2, end)  # tokens up to the end of each line
        counts = np.diff(total, prepend=0)
        if (filled & (counts == 0)).any():  # text without any separator
            i = int(np.flatnonzero(filled & (counts == 0))[0])
            raise ValueError(
                f"{str(self.path)!r}: line {self.numbers[i]}: feature "
                f"{_excerpt(self.data[first[i] : end[i]])} is not "
                "field_id\\x02feature_id\\x03value."
            )
        if (counts != declared).any():
            i = int(np.flatnonzero(counts != declared)[0])
            raise ValueError(
                f"{str(self.path)!r}: line {self.numbers[i]}: num_features is "
                f"{declared[i]} but the feature list has {counts[i]} features."
            )
        if not len(p2):
            return out
        # Token k of line i: the first one starts after the last comma, the
        # others after a \x01; a line of c tokens holds c - 1 of the \x01s.
        row = np.repeat(np.arange(n), counts)
        k = np.arange(len(p2))
        after = k - np.cumsum(counts > 0)[row]  # p1[after] precedes token k
        if len(p1):
            starts = np.where(
                k == (total - counts)[row], first[row], p1[np.maximum(after, 0)] + 1
            )
            ends = np.where(
                k == total[row] - 1, end[row], p1[np.minimum(after + 1, len(p1) - 1)]
            )
        else:
            starts, ends = first[row], end[row]

        field_len = p2 - starts
        ids, bad = _digits(buf, p2 + 1, p3 - p2 - 1)
        value_start, value_len = p3 + 1, ends - p3 - 1
        bad |= (field_len < 1) | (value_len < 1) | (value_len > _MAX_VALUE_BYTES)
        last = len(buf) - 1
        for j in range(min(int(value_len.max()), _MAX_VALUE_BYTES)):
            byte = buf[np.minimum(value_start + j, last)]
            bad |= (j < value_len) & ~_NUMBER_BYTES[byte]
        if bad.any():
            k = int(np.flatnonzero(bad)[0])
            raise ValueError(
                f"{str(self.path)!r}: line {self.numbers[row[k]]}: feature "
                f"{_excerpt(self.data[starts[k] : ends[k]])} is not "
                "field_id\\x02feature_id\\x03value with an integer feature_id and "
                "a numeric value."
            )
        # Field ids packed little-endian into uint64, as `_pack` does.
        codes = np.zeros(len(p2), dtype=np.uint64)
        for j in range(min(int(field_len.max()), 8)):
            byte = buf[np.minimum(starts + j, last)].astype(np.uint64)
            codes |= np.where(j < field_len, byte << np.uint64(8 * j), np.uint64(0))
        codes[field_len > 8] = 0  # longer than any known field: never selected

        # Scatter: the r-th occurrence of a field in a line goes to its r-th slot.
        field = layout.field_index(codes)
        keep = np.flatnonzero(field >= 0)
        key = row[keep] * len(layout.fields) + field[keep]
        order = keep[np.argsort(key, kind="stable")]
        key = row[order] * len(layout.fields) + field[order]
        position = np.arange(len(key))
        new = np.concatenate([[True], key[1:] != key[:-1]])
        rank = position - np.maximum.accumulate(np.where(new, position, 0))
        field = field[order]
        fits = rank < layout.lengths[field]
        out[row[order][fits], layout.offsets[field[fits]] + rank[fits]] = ids[
            order[fits]
        ]
        return out


def _digits(buf: np.ndarray, start: np.ndarray, length: np.ndarray):
    """Non-negative integers written at `buf[start : start + length]`, and a mask
    of the ones that are empty, too long or not all digits."""
    values = np.zeros(len(start), dtype=np.int64)
    bad = (length < 1) | (length > _MAX_ID_DIGITS)
    last = len(buf) - 1
    for j in range(min(int(length.max(initial=0)), _MAX_ID_DIGITS)):
        inside = j < length
        digit = buf[np.minimum(start + j, last)].astype(np.int64) - 48
        bad |= inside & ((digit < 0) | (digit > 9))
        values = np.where(inside, values * 10 + digit, values)
    return values, bad


def _raise_first_bad_line(path, data: bytes, numbers: np.ndarray, names: tuple):
    """The first line with a wrong column count or a malformed token: raise."""
    for number, line in zip(numbers.tolist(), data.split(b"\n")):
        if not line:
            continue
        columns = line.split(b",")
        if len(columns) != len(names):
            raise ValueError(
                f"{str(path)!r}: line {number} has {len(columns)} comma-separated "
                f"columns, expected {len(names)} ({','.join(names)}): "
                f"{_excerpt(line)}"
            )
        for k, column in enumerate(columns[:-1]):
            if any(s in column for s in (b"\x01", b"\x02", b"\x03")):
                raise ValueError(
                    f"{str(path)!r}: line {number}: column {names[k]} holds a "
                    f"feature separator: {_excerpt(column)}."
                )
        for token in columns[-1].split(b"\x01") if columns[-1] else []:
            parts = token.split(b"\x02")
            if len(parts) != 2 or len(parts[1].split(b"\x03")) != 2:
                raise ValueError(
                    f"{str(path)!r}: line {number}: feature {_excerpt(token)} is "
                    "not field_id\\x02feature_id\\x03value."
                )
    raise AssertionError("no malformed line found")  # pragma: no cover


def _excerpt(text: bytes, limit: int = 120) -> str:
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


_COMMON_COLUMNS = ("common_feature_index", "num_features", "feature_list")
_SKELETON_COLUMNS = (
    "sample_id",
    "click",
    "buy",
    "common_feature_index",
    "num_features",
    "feature_list",
)


def _skeleton_indices(path: pathlib.Path, max_rows: int) -> set:
    """The common_feature_index values of the first `max_rows` skeleton lines."""
    needed: set = set()
    for data, numbers in _raw_blocks(path, max_rows):
        block = _Block(path, data, numbers, _SKELETON_COLUMNS)
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
    def read(cls, path: pathlib.Path, layout: _Layout, needed: set | None):
        index: dict = {}
        blocks = []
        present = np.zeros(len(layout.fields), dtype=bool)
        for data, numbers in _raw_blocks(path, size=_COMMON_BLOCK_BYTES):
            block = _Block(path, data, numbers, _COMMON_COLUMNS)
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
                    block = _Block(path, data, block.numbers[wanted], _COMMON_COLUMNS)
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
    """Parsed blocks `(ids, click, conversion)` of the skeleton, joined and checked."""

    def __init__(
        self,
        path: pathlib.Path,
        layout: _Layout,
        common: _CommonTable,
        tasks: Sequence[Task],
        *,
        drop_conversions_without_click: bool,
        max_rows: int | None,
    ):
        self.path = path
        self.layout = layout
        self.common = common
        self.funnel = [t for t in tasks if t.parent_column is not None]
        self.drop = drop_conversions_without_click
        self.max_rows = max_rows

    def blocks(self) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        path = self.path
        for data, numbers in _raw_blocks(path, self.max_rows):
            block = _Block(path, data, numbers, _SKELETON_COLUMNS)
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
                    ids = ids[keep]
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
                yield ids, labels["click"], labels["conversion"]


def _grouped(blocks, rows: int):
    """Blocks of arrays concatenated until each has at least `rows` rows."""
    parts, count = [], 0
    for block in blocks:
        parts.append(block)
        count += len(block[0])
        if count >= rows:
            yield tuple(np.concatenate(arrays) for arrays in zip(*parts))
            parts, count = [], 0
    if parts:
        yield tuple(np.concatenate(arrays) for arrays in zip(*parts))


def _shuffled(blocks, buffer_size: int, rng: np.random.Generator):
    """Blocks of rows drawn at random from a buffer of `buffer_size` rows.

    Like `Dataset.shuffle`: the buffer fills up, then every incoming row takes
    the place of a random row, which is emitted; at the end the rest is
    emitted in random order.
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
