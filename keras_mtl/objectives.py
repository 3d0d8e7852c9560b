"""Other objectives as sample weights of a main task (weighted logistic regression)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from keras import ops

from keras_mtl.data._validate import column_names
from keras_mtl.transforms import Transform, get_transform


def objective_weights(
    data: Any,
    main: str,
    boosts: Mapping[str, float],
    *,
    transforms: Mapping[str, str | Transform] | None = None,
    base: float = 1.0,
) -> np.ndarray:
    """Per-row sample weights of a binary main task from other objectives' labels.

    Every positive row of the main task (`data[main] == 1`, e.g. a click) is
    weighted by what followed it; every other row keeps `base`:

        w = base + sum_k boosts[k] * f_k(data[k])   where data[main] == 1
        w = base                                    elsewhere

    with `f_k` the forward of `transforms[k]` (e.g. "log1p") or the identity.
    A missing value (NaN) of another objective adds nothing. A click model
    trained with these weights (`make_dataset(..., sample_weight=column)`)
    learns odds proportional to the expected weight of a click, e.g. to
    `E[1 + log(1 + dwell) | x] * p(click | x) / (1 - p(click | x))` (YouTube's
    weighted logistic regression): one model ranking by a blend of the
    objectives, with no extra head to serve.

    Args:
        data: pandas DataFrame or dict of 1-D arrays.
        main: str. Column of the main task's 0/1 label (NaN for a missing label).
        boosts: dict. Weight per column of another objective, e.g.
            `{"dwell": 1.0, "conversion": 2.0}`.
        transforms: dict or None. Transform of each column (a name in
            `keras_mtl.transforms.TRANSFORMS` or a `Transform`) before its boost.
            Defaults to None (none).
        base: float. Weight of a row without a boost (> 0). Defaults to 1.

    Returns:
        float32 array `(N,)` of finite weights >= 0: add it to the data as a
        column and name it in `make_dataset(..., sample_weight=...)`.

    Raises:
        ValueError: a missing column, a main label other than 0, 1 or NaN, a
            value outside a transform's domain, or a negative weight.

    Example:
    >>> data = {"click": [1.0, 1.0, 0.0, 1.0],
    ...         "dwell": [np.e - 1, np.nan, np.nan, 0.0],
    ...         "conversion": [1.0, 0.0, 0.0, 0.0]}
    >>> objective_weights(data, "click", {"dwell": 1.0, "conversion": 2.0},
    ...                   transforms={"dwell": "log1p"})
    array([4., 1., 1., 1.], dtype=float32)

    The first click: 1 + log(e) + 2 (a conversion); the second has no dwell
    (NaN adds nothing); the impression without a click keeps 1.
    """
    transforms = dict(transforms or {})
    available = column_names(data)
    unknown = [c for c in (main, *boosts, *transforms) if c not in available]
    if unknown:
        raise ValueError(
            f"objective_weights: columns {unknown} are not in the data; its columns "
            f"are {available}."
        )
    extra = sorted(set(transforms) - set(boosts))
    if extra:
        raise ValueError(
            f"objective_weights: transforms for {extra}, which have no boost; the "
            f"boosts are for {sorted(boosts)}."
        )
    if not (np.isfinite(base) and base > 0):
        raise ValueError(f"objective_weights: base must be > 0; got {base!r}.")
    label = _column(data, main, "the main label")
    bad = ~(np.isnan(label) | (label == 0) | (label == 1))
    if bad.any():
        raise ValueError(
            f"objective_weights: the main label {main!r} must be 0, 1 or NaN; "
            f"received {np.unique(label[bad])[:5].tolist()}."
        )
    positive = label == 1
    weights = np.full(len(label), float(base))
    for column, boost in boosts.items():
        if not np.isfinite(boost):
            raise ValueError(
                f"objective_weights: the boost of {column!r} must be a finite "
                f"number; got {boost!r}."
            )
        values = _column(data, column, "an objective")
        if len(values) != len(label):
            raise ValueError(
                f"objective_weights: column {column!r} has {len(values)} rows, the "
                f"main label {main!r} {len(label)}."
            )
        known = positive & ~np.isnan(values)
        transform = get_transform(transforms.get(column))
        if transform is not None:
            floor = transform.domain_floor
            if floor is not None and (values[known] <= floor).any():
                raise ValueError(
                    f"objective_weights: column {column!r} must be > {floor:g} on "
                    f"the positive rows (its transform is {transform!r}); received "
                    f"{np.unique(values[known][values[known] <= floor])[:5].tolist()}."
                )
            values = np.asarray(
                ops.convert_to_numpy(transform.forward(ops.convert_to_tensor(values)))
            ).astype(np.float64)
        weights[known] += boost * values[known]
    if not np.isfinite(weights).all() or (weights < 0).any():
        rows = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
        raise ValueError(
            "objective_weights: weights must be finite and >= 0; rows "
            f"{rows[:5].tolist()} get {weights[rows[:5]].tolist()} (check the "
            "boosts' signs and the columns' values)."
        )
    return weights.astype(np.float32)


def _column(data: Any, name: str, what: str) -> np.ndarray:
    values = np.asarray(data[name])
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
        raise ValueError(
            f"objective_weights: {what} {name!r} must be a numeric column of shape "
            f"(N,); got dtype {values.dtype} and shape {values.shape}."
        )
    return values.astype(np.float64)
