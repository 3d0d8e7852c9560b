"""The byte parser of Ali-CCP's raw files: blocks of lines -> numpy arrays of ids.

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

`raw_blocks` cuts a file into blocks of whole lines, `Block` splits a block
into columns and checks its structure with a few vectorised passes, and
`Block.features` scatters the ids of the selected fields (`Layout`) into a
`(lines, width)` int64 matrix, one slot per id. No per-line Python on valid
data; errors name the file and line.
"""

from __future__ import annotations

import functools
import gzip
import pathlib
import re
from collections.abc import Iterator, Sequence

import numpy as np

from keras_mtl.data import _files
from keras_mtl.datasets.aliccp.fields import BY_NAME
from keras_mtl.features import INT_PAD, SparseFeature

# The skeleton is parsed in blocks of about this many bytes. Blocks stay small
# because the reader runs in a TensorFlow thread (it is `make_dataset`'s block
# source), where large numpy temporaries cost many page faults (multi-MB blocks
# parse much slower there than in Python's main thread; blocks of a few hundred
# KB do not). The common features file is parsed in the main thread, in larger blocks.
BLOCK_BYTES = 1 << 18
COMMON_BLOCK_BYTES = 1 << 22
_NUMBER_BYTES = np.zeros(256, dtype=bool)
_NUMBER_BYTES[list(b"0123456789.+-eE")] = True
_MAX_ID_DIGITS = 18  # any 18-digit number fits in int64
_MAX_VALUE_BYTES = 32


class Layout:
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
            if f.name not in BY_NAME:
                raise ValueError(
                    f"Feature {f.name!r} is not named after an Ali-CCP field; "
                    f"known names: {sorted(BY_NAME)} (see ALICCP_FIELDS)."
                )
            fields.append(BY_NAME[f.name].field)
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

    def columns(self, ids: np.ndarray) -> dict[str, np.ndarray]:
        """`(lines, width)` ids -> one column per feature (views, no copy):
        `(lines,)` for a single-valued feature, `(lines, max_len)` otherwise."""
        return {
            f.name: ids[:, start] if f.max_len is None else ids[:, start : start + n]
            for f, start, n in zip(
                self.features, self.offsets.tolist(), self.lengths.tolist()
            )
        }


def _pack(field: bytes) -> int:
    return int.from_bytes(field, "little") if len(field) <= 8 else 0


def _open(path: pathlib.Path):
    return gzip.open(path, "rb") if _files.compression(path.name) else open(path, "rb")


def raw_blocks(
    path: pathlib.Path, max_lines: int | None = None, size: int | None = None
) -> Iterator[tuple[bytes, np.ndarray]]:
    """`(data, numbers)`: whole lines (about `size` bytes, by default
    `BLOCK_BYTES`), each ending in a
    newline, and the line number (from 1) of each line.

    With `max_lines`, stops after that many non-blank lines.
    """
    number, seen, carry = 1, 0, b""
    size = size or BLOCK_BYTES
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


class Block:
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
                f"be a non-negative integer; got {excerpt(self.strings(column)[i])}."
            )
        return values

    def features(self, layout: Layout) -> np.ndarray:
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
                f"{excerpt(self.data[first[i] : end[i]])} is not "
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
                f"{excerpt(self.data[starts[k] : ends[k]])} is not "
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
                f"{excerpt(line)}"
            )
        for k, column in enumerate(columns[:-1]):
            if any(s in column for s in (b"\x01", b"\x02", b"\x03")):
                raise ValueError(
                    f"{str(path)!r}: line {number}: column {names[k]} holds a "
                    f"feature separator: {excerpt(column)}."
                )
        for token in columns[-1].split(b"\x01") if columns[-1] else []:
            parts = token.split(b"\x02")
            if len(parts) != 2 or len(parts[1].split(b"\x03")) != 2:
                raise ValueError(
                    f"{str(path)!r}: line {number}: feature {excerpt(token)} is "
                    "not field_id\\x02feature_id\\x03value."
                )
    raise AssertionError("no malformed line found")  # pragma: no cover


def excerpt(text: bytes, limit: int = 120) -> str:
    return repr(text[:limit]) + ("..." if len(text) > limit else "")


#: Columns of the two files.
COMMON_COLUMNS = ("common_feature_index", "num_features", "feature_list")
SKELETON_COLUMNS = (
    "sample_id",
    "click",
    "buy",
    "common_feature_index",
    "num_features",
    "feature_list",
)
