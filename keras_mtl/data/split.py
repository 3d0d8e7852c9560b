"""Seeded random train/validation/test split of in-memory data."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


def split_frame(
    frame: pd.DataFrame | Mapping[str, Any],
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    seed: int = 0,
) -> tuple:
    """Split rows at random into parts of the given fractions (seeded, disjoint).

    Part sizes are `floor(fraction * N)` and the last part takes the leftover
    rows, so every row lands in exactly one part. Rows keep their original
    order inside each part.

    Args:
        frame: pandas DataFrame, or dict of equal-length arrays.
        fractions: sequence of floats > 0 summing to 1. Defaults to
            (0.8, 0.1, 0.1).
        seed: int. Seed of the permutation. Defaults to 0.

    Returns:
        A tuple with one part per fraction, of the input's type (DataFrames
        get a fresh 0..n-1 index; dicts hold numpy arrays, or lists for list columns).

    Example:

    >>> import pandas as pd
    >>> from keras_mtl.data import split_frame
    >>> train, val, test = split_frame(pd.DataFrame({"a": range(10)}), seed=1)
    >>> len(train), len(val), len(test)
    (8, 1, 1)
    >>> a, b = split_frame({"x": np.arange(5)}, fractions=(0.6, 0.4))
    >>> len(a["x"]), len(b["x"]), sorted(np.concatenate([a["x"], b["x"]]).tolist())
    (3, 2, [0, 1, 2, 3, 4])
    """
    fractions = [float(f) for f in fractions]
    if not fractions or min(fractions) <= 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise ValueError(
            f"fractions must be positive and sum to 1; got {tuple(fractions)}."
        )
    if isinstance(frame, pd.DataFrame):
        n = len(frame)
    elif isinstance(frame, Mapping):
        lengths = {k: len(v) for k, v in frame.items()}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"Columns have different lengths: {lengths}.")
        n = next(iter(lengths.values()), 0)
    else:
        raise TypeError(
            f"split_frame takes a DataFrame or a dict of arrays; got "
            f"{type(frame).__name__}."
        )
    order = np.random.default_rng(seed).permutation(n)
    bounds = np.floor(np.cumsum(fractions[:-1]) * n).astype(int)
    parts = [np.sort(rows) for rows in np.split(order, bounds)]
    if isinstance(frame, pd.DataFrame):
        return tuple(frame.iloc[rows].reset_index(drop=True) for rows in parts)
    return tuple({k: _take(v, rows) for k, v in frame.items()} for rows in parts)


def _take(column: Any, rows: np.ndarray) -> Any:
    if isinstance(column, (np.ndarray, pd.Series)):
        return np.asarray(column)[rows]
    return [column[i] for i in rows]  # lists, possibly ragged
