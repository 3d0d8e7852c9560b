"""`adapt_features`: feature specs fitted to training data (the Keras `adapt` idea).

Dense means and standard deviations, vocabularies (with a minimum count; rare
and unseen values share the out-of-vocabulary row), vocabulary sizes and
quantile bucket boundaries are read off a training frame once, and written
into new specs. The specs carry them into the model, its `.keras` file and its
SavedModel, so nothing is computed again at serving time.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import tensorflow as tf

from keras_mtl.data import _files
from keras_mtl.data._scale import transformed_values
from keras_mtl.data._validate import (
    _as_numpy,
    _dense_array,
    _feature_array,
    _step_ids,
    column_names,
)
from keras_mtl.data.dataset import make_dataset
from keras_mtl.data.stream_source import is_block_source
from keras_mtl.features import (
    DenseFeature,
    Feature,
    SequenceFeature,
    SparseFeature,
    check_features,
)

#: Rows per batch when an unbatched `tf.data.Dataset` is read.
_READ_BATCH = 4096


def adapt_features(
    features: Sequence[Feature | SequenceFeature],
    data: pd.DataFrame | Mapping[str, Any] | tf.data.Dataset,
    *,
    min_count: int | Mapping[str, int] = 1,
    num_buckets: int | Mapping[str, int] | None = None,
    only: Sequence[str] | None = None,
    refit: bool = False,
) -> list:
    """New feature specs with statistics, vocabularies and buckets from `data`.

    Like a Keras preprocessing layer's `adapt`, one pass over training data
    fills what the specs leave open, and returns new specs (the specs are
    frozen; the ones given are not changed):

    - `DenseFeature` left at `mean=0, std=1`: the mean and the (population)
      standard deviation of its values, after its `transform`, over every row
      and component, NaN (missing) values left out. A constant column gets
      `std=1` (with a warning). `allow_missing` and `transform` are kept and
      enforced: NaN without `allow_missing`, or a value outside the
      transform's domain, is an error naming the feature, as in `make_dataset`.
    - `SparseFeature` without `vocabulary_size`, `vocabulary`, `hash_bins` or
      `boundaries` (e.g. `SparseFeature("city", embedding_dim=4)`): strings
      get a `vocabulary` of the values seen at least `min_count` times, most
      frequent first (ties in ascending order); the others share the
      out-of-vocabulary row, which the model keeps. Integer ids get
      `vocabulary_size` = the largest id + 1 (XLA-compilable), unless the ids
      are sparse (largest id + 1 more than twice the number of distinct ids,
      e.g. raw user ids) or `min_count > 1`: then an integer `vocabulary` (a
      host lookup: XLA is off for such a model). Numbers asked to be
      bucketised (`num_buckets`, or `dtype="float32"`) get `boundaries`: the
      quantiles `i / num_buckets`, `i = 1 .. num_buckets - 1` (linear
      interpolation), without repeats and above the smallest value, so heavy
      ties give fewer, never empty, buckets. The spec's `dtype`, if given, is
      kept; otherwise strings make a "string" feature, integers "int64" and
      bucketised numbers "float32".
    - `SequenceFeature` fields the same, from every position of their input
      (`f"{sequence}_{field}"`), padding left out.
    - A feature that shares an embedding table (`share_embedding_with`) gets
      the rows of its table's owner, fitted on both columns.
    - `hash_bins` features are left as they are.

    Specs already filled (a dense mean or std set, a sparse lookup given) are
    left alone unless `refit=True`, which fits them again, keeping their kind
    (a vocabulary stays a vocabulary, a vocabulary size a size, boundaries
    boundaries, as many buckets unless `num_buckets` says otherwise). So
    adapting adapted specs on the same data changes nothing.

    Args:
        features: list of `SparseFeature` / `DenseFeature` / `SequenceFeature`.
        data: pandas DataFrame or dict of arrays in the layout of
            `make_dataset` (a column per feature, per sequence field); a
            `tf.data.Dataset` of feature dicts (or `(features, labels)`
            tuples), batched or not; or CSV / TFRecord path(s) or a block
            source as `make_dataset` takes them (every sparse spec to fit then
            needs its `dtype`: the readers parse by it). Streamed data is read
            to its end once (a dataset: `.take(n)` for a sample).
        min_count: int or dict of feature name to int. Least number of
            occurrences of a value to get its own row. Defaults to 1.
        num_buckets: int, dict of feature name to int, or None. Buckets of a
            bucketised feature (`num_buckets - 1` boundaries at most); an int
            applies to every bucketised feature (float32 or with
            `boundaries`), a dict entry also makes integer data bucketised.
            Defaults to None (a float32 feature then needs an entry; a refit
            keeps the number of buckets).
        only: sequence of str or None. Names of the features to fit (a
            sequence's name stands for all its fields, `f"{sequence}_{field}"`
            for one); the others are returned unchanged. Defaults to None
            (all).
        refit: bool. Fit specs already filled, too. Defaults to False.

    Returns:
        A list of new specs, in the order given.

    Raises:
        ValueError: a column missing from the data, no value to fit on (e.g.
            every value rarer than `min_count`), fractional numbers for a
            sparse feature with no `num_buckets`, a name in `only` /
            `min_count` / `num_buckets` that is no feature, and the data errors
            of `make_dataset` (NaN without `allow_missing`, ...).
        TypeError: a column of the wrong dtype.

    Example:
    >>> import pandas as pd
    >>> frame = pd.DataFrame({
    ...     "city": ["rome", "paris", "rome", "oslo", "paris", "rome"],
    ...     "shop": [3, 0, 3, 7, 2, 3],
    ...     "price": [1.0, 3.0, float("nan"), 5.0, 7.0, 9.0],
    ...     "age": [18.0, 25.0, 31.0, 40.0, 52.0, 67.0]})
    >>> specs = km.adapt_features(
    ...     [km.SparseFeature("city"), km.SparseFeature("shop"),
    ...      km.DenseFeature("price", allow_missing=True), km.SparseFeature("age")],
    ...     frame, min_count={"city": 2}, num_buckets={"age": 3})
    >>> specs[0].vocabulary, specs[0].num_rows  # "oslo" is rare: the OOV row
    (('rome', 'paris'), 3)
    >>> specs[1].vocabulary_size, specs[1].dtype
    (8, 'int64')
    >>> specs[2].mean, round(specs[2].std, 4)  # NaN left out
    (5.0, 2.8284)
    >>> specs[3].boundaries  # the 1/3 and 2/3 quantiles
    (29.0, 44.0)
    """
    features = check_features(features, allow_sequences=True, allow_unfitted=True)
    if not isinstance(refit, (bool, np.bool_)):
        raise TypeError(f"adapt_features: refit must be a bool; got {refit!r}.")
    names = _names(features)
    selected = _selection(only, names)
    dense = {f.name for f in features if isinstance(f, DenseFeature)}
    for arg, value in (("min_count", min_count), ("num_buckets", num_buckets)):
        named = sorted(dense & set(value)) if isinstance(value, Mapping) else []
        if named:
            raise ValueError(
                f"adapt_features: {arg} is for sparse features; {named} are "
                "DenseFeatures (a number to bucketise is a SparseFeature)."
            )
    min_counts = _per_feature("min_count", min_count, names, 1)
    buckets = _per_feature("num_buckets", num_buckets, names, None, minimum=2)
    if _files.is_path_like(data) or is_block_source(data):
        data = make_dataset(
            data,
            [_reading_spec(f) for f in features],
            shuffle=False,
            batch_size=_READ_BATCH,
        )
    if isinstance(data, tf.data.Dataset):
        data = _read_dataset(data, features)
    elif not isinstance(data, (pd.DataFrame, Mapping)):
        raise TypeError(
            "adapt_features: data must be a pandas DataFrame, a dict of arrays, a "
            "tf.data.Dataset, CSV / TFRecord path(s) or a block source; got "
            f"{type(data).__name__}."
        )
    fitter = _Fitter(data, features, min_counts, buckets, refit, selected)
    return check_features(fitter.fit(), allow_sequences=True, allow_unfitted=True)


# ----------------------------------------------------------------------------- options


def _names(features: list) -> dict[str, list[str]]:
    """Each name a user may give -> the input names it stands for."""
    names = {}
    for f in features:
        if isinstance(f, SequenceFeature):
            names[f.name] = f.input_names
            names.update({n: [n] for n in f.input_names})
        else:
            names[f.name] = [f.name]
    return names


def _selection(only, names: dict) -> set[str] | None:
    if only is None:
        return None
    if isinstance(only, str):
        only = [only]
    unknown = [n for n in only if n not in names]
    if unknown:
        raise ValueError(
            f"adapt_features: only= names no feature: {unknown}; known: {list(names)}."
        )
    return {n for name in only for n in names[name]}


def _per_feature(arg, value, names: dict, default, minimum: int = 1):
    """`{input name: value}` from an int (every input) or a dict of names."""

    def checked(v, where):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
            raise ValueError(
                f"adapt_features: {arg}{where} must be an int >= {minimum}; got {v!r}."
            )
        return int(v)

    if value is None:
        return {"*": default}
    if not isinstance(value, Mapping):
        return {"*": checked(value, "")}
    unknown = [n for n in value if n not in names]
    if unknown:
        raise ValueError(
            f"adapt_features: {arg} names no feature: {unknown}; known: {list(names)}."
        )
    out = {"*": default, "explicit": set()}
    for name, v in value.items():
        for n in names[name]:
            out[n] = checked(v, f"[{name!r}]")
            out["explicit"].add(n)
    return out


def _option(options: dict, name: str):
    return options.get(name, options["*"])


# ----------------------------------------------------------------------------- reading


def _read_dataset(ds: tf.data.Dataset, features: list) -> dict[str, np.ndarray]:
    """The feature columns of a dataset, concatenated (read to its end)."""
    spec = ds.element_spec
    if isinstance(spec, tuple):
        ds = ds.map(lambda *element: element[0])
        spec = spec[0]
    if not isinstance(spec, Mapping):
        raise TypeError(
            "adapt_features: a tf.data.Dataset must yield dicts of features (or "
            f"(features, labels) tuples); its elements are {spec}."
        )
    wanted = [n for f in features for n in _inputs(f)]
    missing = [n for n in wanted if n not in spec]
    if missing:
        raise ValueError(
            f"adapt_features: {missing} missing from the dataset; its keys: "
            f"{sorted(spec)}."
        )
    first = wanted[0]
    example_rank = len(_example_shape(features, first))
    if spec[first].shape.rank == example_rank:  # unbatched
        ds = ds.batch(_READ_BATCH)
    ds = ds.map(lambda element: {n: element[n] for n in wanted})
    parts: dict[str, list] = {n: [] for n in wanted}
    for batch in ds.as_numpy_iterator():
        for n in wanted:
            parts[n].append(batch[n])
    if not parts[first]:
        raise ValueError("adapt_features: the dataset has no elements.")
    return {n: np.concatenate(p) for n, p in parts.items()}


def _reading_spec(f):
    """The spec `make_dataset` reads `f`'s column of a file or block source with:
    its dtype, and no vocabulary (no id range to check yet)."""
    if not isinstance(f, SparseFeature) or f.hash_bins is not None:
        return f  # dense, hashed; a SequenceFeature: make_dataset refuses it
    if f.dtype is None:
        raise ValueError(
            f"adapt_features: SparseFeature {f.name!r} needs a dtype ('string', "
            "'int64' or 'float32') to be read from files or blocks; declare it, "
            "or pass the data in memory."
        )
    bucketised = f.dtype == "float32" or f.boundaries is not None
    return _placeholder(f, f.dtype, "boundaries" if bucketised else "ids")


def _inputs(feature) -> list[str]:
    if isinstance(feature, SequenceFeature):
        return feature.input_names
    return [feature.name]


def _example_shape(features: list, name: str) -> tuple:
    for f in features:
        if isinstance(f, SequenceFeature):
            for field in f.fields:
                if f.input_name(field) == name:
                    return f.input_shape(field)
        elif f.name == name:
            return f.shape
    raise KeyError(name)


def _decoded(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value


# ----------------------------------------------------------------------------- fitting


class _Fitter:
    def __init__(self, data, features, min_counts, buckets, refit, selected):
        self.data = data
        self.features = features
        self.min_counts = min_counts
        self.buckets = buckets
        self.refit = refit
        self.selected = selected
        self.notes: list[str] = []
        self.fitted: dict[str, SparseFeature] = {}  # flat sparse, by name

    def fit(self) -> list:
        out = []
        for f in self.features:
            if isinstance(f, DenseFeature):
                out.append(self._dense(f) if self._wanted(f, f.name) else f)
            elif isinstance(f, SequenceFeature):
                out.append(self._sequence(f))
            else:
                out.append(self._flat_sparse(f))
        out = [self._shared(f) for f in out]
        if self.notes:
            warnings.warn(
                "adapt_features: " + "; ".join(self.notes) + ".",
                UserWarning,
                stacklevel=3,
            )
        return out

    def _wanted(self, f, name: str) -> bool:
        if self.selected is not None and name not in self.selected:
            return False
        if isinstance(f, DenseFeature):
            return self.refit or (f.mean == 0.0 and f.std == 1.0)
        if f.hash_bins is not None:
            return False
        return self.refit or not f.fitted

    def _column(self, name: str, what: str) -> np.ndarray:
        if name not in self.data:
            raise ValueError(
                f"adapt_features: {what} (column {name!r}) is missing from the "
                f"data. Available columns: {column_names(self.data)}."
            )
        return _as_numpy(self.data[name])

    # -- dense

    def _dense(self, f: DenseFeature) -> DenseFeature:
        values = _dense_array(f, self._column(f.name, f"DenseFeature {f.name!r}"))
        values = transformed_values(f, values)
        if values.size == 0:
            self.notes.append(
                f"DenseFeature {f.name!r} has no value (all missing): left as it is"
            )
            return f
        mean, std = float(values.mean()), float(values.std())
        if not std > 0:
            self.notes.append(
                f"DenseFeature {f.name!r} is constant ({mean:g}) in the data: std=1"
            )
            std = 1.0
        return dataclasses.replace(f, mean=mean, std=std)

    # -- sparse

    def _flat_sparse(self, f: SparseFeature) -> SparseFeature:
        if f.share_embedding_with is not None or not self._wanted(f, f.name):
            return f  # a sharer takes its owner's rows (`_shared`)
        sharers = [
            g
            for g in self.features
            if isinstance(g, SparseFeature)
            and g.share_embedding_with == f.name
            and g.name in self.data
        ]
        raw = [(f, self._column(f.name, f"SparseFeature {f.name!r}"))]
        raw += [(g, self._column(g.name, f"SparseFeature {g.name!r}")) for g in sharers]

        def read(spec):  # each column with its own name and max_len
            return [
                _feature_array(
                    dataclasses.replace(spec, name=g.name, max_len=g.max_len), a
                )
                for g, a in raw
            ]

        fitted = self._sparse(f, f.name, read)
        self.fitted[f.name] = fitted
        return fitted

    def _sequence(self, seq: SequenceFeature) -> SequenceFeature:
        def field_fitted(field: SparseFeature) -> SparseFeature:
            name = seq.input_name(field)
            if not self._wanted(field, name):
                return field
            shape = seq.input_shape(field)
            raw = self._column(name, f"input {name!r} of SequenceFeature {seq.name!r}")

            def read(spec):
                return [_step_ids(dataclasses.replace(spec, name=name), shape, raw)]

            return self._sparse(field, name, read)

        return dataclasses.replace(
            seq,
            item=tuple(field_fitted(f) for f in seq.item),
            properties=tuple(field_fitted(f) for f in seq.properties),
        )

    def _shared(self, f):
        if not isinstance(f, SparseFeature) or f.share_embedding_with is None:
            return f
        owner = self.fitted.get(f.share_embedding_with)
        if owner is None and f.fitted:
            return f
        if owner is None:  # the owner was given fitted: take its rows
            owner = next(
                g
                for g in self.features
                if isinstance(g, SparseFeature) and g.name == f.share_embedding_with
            )
        return dataclasses.replace(
            f,
            vocabulary_size=owner.vocabulary_size,
            vocabulary=owner.vocabulary,
            boundaries=owner.boundaries,
            hash_bins=owner.hash_bins,
            dtype=owner.dtype,
            hash_function=owner.hash_function,
        )

    def _sparse(self, f: SparseFeature, name: str, read) -> SparseFeature:
        """`f` fitted to the values `read(spec)` gives, spec a placeholder."""
        what = f"SparseFeature {name!r}"
        min_count = _option(self.min_counts, name)
        buckets = _option(self.buckets, name)
        asked = name in self.buckets.get("explicit", ())
        if f.boundaries is not None:  # refit: stays bucketised
            kind, dtype = "boundaries", f.dtype
            buckets = buckets or len(f.boundaries) + 1
        elif f.vocabulary_size is not None:
            kind, dtype = "size", "int64"
        elif f.vocabulary is not None:
            kind, dtype = "vocabulary", f.dtype
        elif asked or f.dtype == "float32":
            kind, dtype = "boundaries", f.dtype or "float32"
        else:
            kind, dtype = None, f.dtype
        values = None
        if dtype is None:  # infer from the data: strings, else integer ids
            for dtype in ("string", "int64"):
                try:
                    values = read(_placeholder(f, dtype, "ids"))
                    break
                except TypeError:
                    values = None
            if values is None:
                raise ValueError(
                    f"adapt_features: {what} holds numbers with a fractional part; "
                    f"give num_buckets={{{name!r}: n}} to bucketise them (or "
                    "declare a DenseFeature)."
                )
        if kind == "boundaries":
            if buckets is None:
                raise ValueError(
                    f"adapt_features: {what} is bucketised (dtype {dtype!r}); give "
                    f"num_buckets={{{name!r}: n}}."
                )
            values = read(_placeholder(f, dtype, "boundaries"))
            return self._boundaries(f, name, values, dtype, buckets)
        if values is None:
            values = read(_placeholder(f, dtype, "ids"))
        flat = np.concatenate([np.asarray(v).ravel() for v in values])
        if dtype == "string":  # bytes from a tf.data.Dataset
            flat = np.array([_decoded(v) for v in flat], dtype=object)
        flat = flat[flat != _placeholder(f, dtype, "ids").pad_value]
        if flat.size == 0:
            raise ValueError(
                f"adapt_features: {what} has no value in the data (every entry is "
                "padding / missing): nothing to fit."
            )
        if kind is None and dtype == "int64":
            distinct = np.unique(flat[flat >= 0]).size
            dense_ids = flat.min() >= 0 and flat.max() + 1 <= 2 * distinct
            kind = "size" if min_count == 1 and dense_ids else "vocabulary"
            if kind == "vocabulary":
                self.notes.append(
                    f"{what}: integer ids "
                    + (
                        "rarer than min_count"
                        if min_count > 1
                        else "spread thinly or negative"
                    )
                    + " get an integer vocabulary (a host lookup, so no XLA)"
                )
        if kind == "size":
            top = int(flat.max())
            if top < 0:
                raise ValueError(
                    f"adapt_features: {what} has no id >= 0 in the data: nothing "
                    "to fit a vocabulary_size to."
                )
            return _lookup(f, dtype="int64", vocabulary_size=top + 1)
        return _lookup(
            f, dtype=dtype, vocabulary=_vocabulary(flat, min_count, what, dtype)
        )

    def _boundaries(self, f, name, values, dtype, buckets) -> SparseFeature:
        flat = np.concatenate([np.asarray(v, np.float64).ravel() for v in values])
        pad = np.nan if dtype == "float32" else -1
        flat = flat[~np.isnan(flat)] if dtype == "float32" else flat[flat != pad]
        if flat.size == 0:
            raise ValueError(
                f"adapt_features: SparseFeature {name!r} has no value in the data: "
                "nothing to bucketise."
            )
        cuts = np.quantile(flat, np.arange(1, buckets) / buckets)
        if dtype == "int64":  # x >= 2.5 is x >= 3 for integers
            cuts = np.ceil(cuts)
        else:
            cuts = cuts.astype(np.float32).astype(np.float64)
        cuts = np.unique(cuts)
        cuts = cuts[cuts > flat.min()]
        if cuts.size == 0:
            self.notes.append(
                f"SparseFeature {name!r} takes one value ({flat.min():g}): one "
                "boundary, one bucket used"
            )
            cuts = np.array([flat.min()])
        elif cuts.size < buckets - 1:
            self.notes.append(
                f"SparseFeature {name!r}: {cuts.size + 1} buckets instead of "
                f"{buckets} (repeated values share quantiles)"
            )
        if dtype == "int64":
            boundaries = tuple(int(c) for c in cuts)
        else:
            boundaries = tuple(float(c) for c in cuts)
        return _lookup(f, dtype=dtype, boundaries=boundaries)


def _placeholder(f: SparseFeature, dtype: str, kind: str) -> SparseFeature:
    """A fitted stand-in for `f` with `dtype`, to read its column with the data
    checks of `make_dataset` (no vocabulary, so no id range)."""
    if kind == "boundaries":
        lookup = {"boundaries": (0,)}
    elif dtype == "float32":
        raise AssertionError(dtype)
    else:
        lookup = {"hash_bins": 1}
    return SparseFeature(
        f.name, dtype=dtype, max_len=f.max_len, embedding_dim=f.embedding_dim, **lookup
    )


def _lookup(f: SparseFeature, **lookup) -> SparseFeature:
    """`f` with one lookup (the others cleared)."""
    cleared = dict.fromkeys(("vocabulary_size", "vocabulary", "hash_bins"))
    cleared["boundaries"] = None
    cleared.update(lookup)
    return dataclasses.replace(f, hash_function=None, **cleared)


def _vocabulary(flat: np.ndarray, min_count: int, what: str, dtype: str) -> list:
    """Values seen >= min_count times, most frequent first, ties ascending."""
    values, counts = np.unique(flat, return_counts=True)  # sorted ascending
    order = np.argsort(-counts, kind="stable")
    kept = [values[i] for i in order if counts[i] >= min_count]
    if not kept:
        raise ValueError(
            f"adapt_features: {what}: no value occurs min_count={min_count} times "
            f"(the most frequent, {values[order[0]]!r}, occurs {counts[order[0]]})."
        )
    if dtype == "string":
        return [str(v) for v in kept]
    return [int(v) for v in kept]
