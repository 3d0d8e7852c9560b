"""A warning for dense features whose values the spec does not standardise.

A `DenseFeature` is standardised inside the model as `(f(x) - mean) / std`;
left at the defaults (`mean=0, std=1`) on a column in the thousands, the model
sees inputs in the thousands and training stalls (issue 16). `make_dataset`
looks at the in-memory values it is given and warns once, naming the features,
when they are far from standardised.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np

from keras_mtl.features import DenseFeature

#: Warn when the standardised values' mean is further than this from 0, ...
MAX_ABS_MEAN = 3.0
#: ... or their standard deviation is larger than this.
MAX_STD = 10.0
#: Fewer values than this are not judged (a few rows of a prediction request
#: may well be outliers).
MIN_VALUES = 20


def transformed_values(feature: DenseFeature, values: np.ndarray) -> np.ndarray:
    """`f(x)`, the spec's `transform` of the non-NaN values, flat, in float64
    (what the spec's `mean` and `std` standardise)."""
    x = np.asarray(values, np.float64).ravel()
    x = x[~np.isnan(x)]
    if feature.transform == "log":
        return np.log(x)
    if feature.transform == "log1p":
        return np.log1p(x)
    return x


def standardised_moments(
    feature: DenseFeature, values: np.ndarray
) -> tuple[float, float, int]:
    """Mean and standard deviation of `(f(x) - mean) / std` over the non-NaN
    values, and their number."""
    x = transformed_values(feature, values)
    if x.size == 0:
        return 0.0, 1.0, 0
    z = (x - feature.mean) / feature.std
    return float(z.mean()), float(z.std()), int(x.size)


def unstandardised(
    features: Sequence, columns: Mapping[str, np.ndarray]
) -> list[tuple[str, float, float]]:
    """`(name, mean, std)` of the standardised values of each dense feature
    beyond the thresholds (`MAX_ABS_MEAN`, `MAX_STD`), judged on at least
    `MIN_VALUES` values."""
    found = []
    for f in features:
        if not isinstance(f, DenseFeature) or f.name not in columns:
            continue
        mean, std, n = standardised_moments(f, columns[f.name])
        if n >= MIN_VALUES and (abs(mean) > MAX_ABS_MEAN or std > MAX_STD):
            found.append((f.name, mean, std))
    return found


def warn_unstandardised(features: Sequence, columns: Mapping[str, np.ndarray]) -> None:
    """One `UserWarning` naming the dense features that `unstandardised` finds."""
    found = unstandardised(features, columns)
    if not found:
        return
    listed = ", ".join(
        f"{name!r} (mean {mean:.3g}, std {std:.3g})" for name, mean, std in found
    )
    warnings.warn(
        f"DenseFeature {listed}: after the spec's (x - mean) / std the values are "
        "far from standardised (expected mean near 0 and std near 1), which can "
        "stall training. Fit mean and std to the training data with "
        "keras_mtl.adapt_features(features, train_data), or set them on the spec.",
        UserWarning,
        stacklevel=3,
    )
