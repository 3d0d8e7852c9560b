"""Feature specifications: one declaration per input drives everything.

A list of `SparseFeature` / `DenseFeature` specs yields the model's `keras.Input`
dict (`make_inputs`), the embedding stack (`keras_mtl.layers.FeatureEncoder`), the
`tf.data` parsing (`keras_mtl.data.make_dataset`) and the serving signature
(`keras_mtl.export_saved_model`).
Targets are declared with `keras_mtl.tasks.Task`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from typing import Any, Union

import keras
import numpy as np

from keras_mtl._checks import check_positive, check_positive_int, check_spec_list

#: Value that marks an empty slot (padding / no id) in an integer sparse feature.
INT_PAD = -1
#: Value that marks an empty slot in a string sparse feature.
STRING_PAD = ""
#: Value that marks an empty slot ("no value") in a float32 bucketised feature.
FLOAT_PAD = float("nan")


def check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind} needs a non-empty string name, got {name!r}.")


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


#: Hash functions by raw dtype, the default first (`SparseFeature.hash_function`).
HASH_FUNCTIONS = {"int64": ("int_hash_v1", "farmhash64"), "string": ("farmhash64",)}


@dataclasses.dataclass(frozen=True)
class SparseFeature:
    """A categorical feature: one id, or a padded list of ids (multi-valued field).

    At most one of `vocabulary_size`, `vocabulary`, `hash_bins` or `boundaries`
    says how raw values become embedding rows (with none, the spec is to be
    fitted to training data by `keras_mtl.adapt_features`, which returns a spec
    with a vocabulary, a vocabulary size or bucket boundaries; models and
    `make_dataset` refuse a spec not fitted yet):

    - `vocabulary_size=V`: the raw values are integer ids in `[0, V)`; any other id
      (except the padding value -1) goes to one out-of-vocabulary (OOV) row.
    - `vocabulary=[...]`: raw strings or integers, looked up inside the model; a
      value not in the list goes to the OOV row.
    - `hash_bins=N`: raw strings (or integers) hashed into `N` rows inside the model.
    - `boundaries=[b_1, ..., b_k]`: raw numbers (an age, a price, a time gap in
      seconds) bucketised inside the model: bucket `i` holds
      `b_i <= x < b_{i+1}`, bucket 0 everything below `b_1` and bucket `k`
      everything from `b_k` on (`np.searchsorted(boundaries, x, side="right")`),
      `k + 1` rows and no OOV row. The comparisons are made in the feature's
      dtype: "float32" (the default; boundaries rounded to float32) or "int64"
      (exact for integers float32 cannot hold, such as Unix timestamps).

    Padding (and "no value") is -1 for integer features (bucketised int64 ones
    included: -1 is never a value there, so give a float32 feature where -1 is
    a real value), the empty string for string features and NaN for float32
    bucketised features; padded slots are masked out of the field-wise sum.

    Args:
        name: str. Feature name; the model input and the data column are named after it.
        vocabulary_size: int. Number of valid integer ids.
        vocabulary: sequence of str or int. Known raw values.
        hash_bins: int. Number of hash buckets.
        boundaries: sequence of finite numbers, strictly increasing. Bucket
            boundaries of raw numbers (integers for dtype "int64").
        embedding_dim: int. Embedding width. Defaults to 8.
        max_len: int or None. Multi-valued field padded/truncated to this length;
            None means one value per example. Defaults to None.
        share_embedding_with: str or None. Name of another sparse feature whose
            embedding table this one reuses (same rows and width). Defaults to None.
        dtype: "int64", "string" or "float32" (bucketised only). Raw value type.
            Defaults to "string" for string vocabularies and hashing, "float32"
            for `boundaries`, "int64" otherwise.
        hash_function: str or None. With `hash_bins`, how values become buckets
            (recorded: warm starts refuse another): "int_hash_v1" (integer
            arithmetic, compiled by XLA; `layers._lookup.IntegerHashing`) or
            "farmhash64" (`keras.layers.Hashing`, no XLA; for integer ids, what
            models saved before the record used). Defaults to "int_hash_v1" for
            integers and "farmhash64" for strings.

    Example:
    >>> city = SparseFeature("city", vocabulary=["paris", "rome"], embedding_dim=4)
    >>> city.dtype, city.num_rows  # two known values and the OOV row
    ('string', 3)
    >>> tags = SparseFeature("tags", vocabulary_size=50, max_len=5)
    >>> tags.dtype, tags.num_rows, tags.shape, tags.pad_value
    ('int64', 51, (5,), -1)
    >>> age = SparseFeature("age", boundaries=[18, 25, 35], embedding_dim=4)
    >>> age.dtype, age.num_rows, age.pad_value  # 3 boundaries make 4 buckets
    ('float32', 4, nan)
    >>> SparseFeature("city", vocabulary_size=10, hash_bins=8)
    Traceback (most recent call last):
    ...
    ValueError: SparseFeature 'city': give exactly one of vocabulary_size, ...
    """

    name: str
    vocabulary_size: int | None = None
    vocabulary: tuple | None = None
    hash_bins: int | None = None
    embedding_dim: int = 8
    max_len: int | None = None
    share_embedding_with: str | None = None
    dtype: str | None = None
    hash_function: str | None = None
    boundaries: tuple | None = None

    def __post_init__(self):
        check_name("SparseFeature", self.name)
        given = [
            k
            for k in ("vocabulary_size", "vocabulary", "hash_bins", "boundaries")
            if getattr(self, k) is not None
        ]
        if len(given) > 1:
            raise ValueError(
                f"SparseFeature {self.name!r}: give exactly one of vocabulary_size, "
                f"vocabulary, hash_bins or boundaries (or none, to fit one with "
                f"keras_mtl.adapt_features); got {given}."
            )
        if not given:
            self._check_unfitted()
            return
        if self.boundaries is not None:
            self._check_boundaries()
            return
        if self.vocabulary is not None:
            vocab = tuple(self.vocabulary)
            if not vocab:
                raise ValueError(f"SparseFeature {self.name!r}: vocabulary is empty.")
            if len(set(vocab)) != len(vocab):
                raise ValueError(
                    f"SparseFeature {self.name!r}: vocabulary has duplicates."
                )
            object.__setattr__(self, "vocabulary", vocab)
        owner = f"SparseFeature {self.name!r}"
        for arg in ("vocabulary_size", "hash_bins", "embedding_dim", "max_len"):
            value = check_positive_int(
                owner, arg, getattr(self, arg), allow_none=arg != "embedding_dim"
            )
            object.__setattr__(self, arg, value)
        if self.dtype is None:
            if self.vocabulary is not None:
                is_str = isinstance(self.vocabulary[0], str)
            else:
                is_str = self.hash_bins is not None
            object.__setattr__(self, "dtype", "string" if is_str else "int64")
        if self.dtype not in ("int64", "string"):
            raise ValueError(
                f"SparseFeature {self.name!r}: dtype must be 'int64' or 'string', "
                f"got {self.dtype!r} ('float32' is for boundaries= only)."
            )
        if self.vocabulary_size is not None and self.dtype != "int64":
            raise ValueError(
                f"SparseFeature {self.name!r}: vocabulary_size needs integer ids "
                "(dtype 'int64'); use vocabulary= or hash_bins= for strings."
            )
        self._check_hash_function()
        if self.vocabulary is not None:
            want = str if self.dtype == "string" else int
            bad = [v for v in self.vocabulary if not isinstance(v, want)]
            if bad:
                raise ValueError(
                    f"SparseFeature {self.name!r}: vocabulary entries must be "
                    f"{want.__name__} for dtype {self.dtype!r}; got {bad[0]!r}."
                )
            pad = STRING_PAD if self.dtype == "string" else INT_PAD
            if pad in self.vocabulary:
                raise ValueError(
                    f"SparseFeature {self.name!r}: the padding value {pad!r} cannot "
                    "be a vocabulary entry."
                )

    def _check_boundaries(self) -> None:
        owner = f"SparseFeature {self.name!r}"
        if self.dtype is None:
            object.__setattr__(self, "dtype", "float32")
        if self.dtype not in ("float32", "int64"):
            raise ValueError(
                f"{owner}: a bucketised feature (boundaries=) takes numbers, dtype "
                f"'float32' or 'int64'; got {self.dtype!r}."
            )
        if self.hash_function is not None:
            raise ValueError(
                f"{owner}: hash_function is for hash_bins; got {self.hash_function!r} "
                "with boundaries."
            )
        if isinstance(self.boundaries, (str, bytes)):
            raise ValueError(
                f"{owner}: boundaries must be a sequence of numbers; got "
                f"{self.boundaries!r}."
            )
        try:
            raw = tuple(self.boundaries)
        except TypeError:
            raise ValueError(
                f"{owner}: boundaries must be a sequence of numbers; got "
                f"{self.boundaries!r}."
            ) from None
        if not raw:
            raise ValueError(f"{owner}: boundaries is empty; give at least one.")
        bad = [b for b in raw if not _is_real(b) or not math.isfinite(b)]
        if bad:
            raise ValueError(
                f"{owner}: boundaries must be finite numbers; got {bad[0]!r}."
            )
        if self.dtype == "int64":
            fractional = [b for b in raw if b != math.floor(b)]
            if fractional:
                raise ValueError(
                    f"{owner}: boundaries of an int64 feature must be integers; got "
                    f"{fractional[0]!r}."
                )
            values = tuple(int(b) for b in raw)
            big = [b for b in values if not -(2**63) <= b < 2**63]
            if big:
                raise ValueError(
                    f"{owner}: boundaries must fit in int64; got {big[0]!r}."
                )
            compared = values
        else:
            values = tuple(float(b) for b in raw)
            with np.errstate(over="ignore"):
                compared = tuple(float(v) for v in np.asarray(values, np.float32))
            if not all(math.isfinite(v) for v in compared):
                raise ValueError(
                    f"{owner}: boundaries must fit in float32; got {values}."
                )
        steps = [i for i in range(1, len(values)) if compared[i] <= compared[i - 1]]
        if steps:
            i = steps[0]
            raise ValueError(
                f"{owner}: boundaries must be strictly increasing"
                f"{' in float32' if compared[i] != values[i] else ''}; got "
                f"{values[i - 1]!r} then {values[i]!r}."
            )
        object.__setattr__(self, "boundaries", values)
        for arg in ("embedding_dim", "max_len"):
            value = check_positive_int(
                owner, arg, getattr(self, arg), allow_none=arg != "embedding_dim"
            )
            object.__setattr__(self, arg, value)

    def _check_unfitted(self) -> None:
        owner = f"SparseFeature {self.name!r}"
        if self.dtype not in (None, "int64", "string", "float32"):
            raise ValueError(
                f"{owner}: dtype must be None, 'int64', 'string' or 'float32'; got "
                f"{self.dtype!r}."
            )
        if self.hash_function is not None:
            raise ValueError(
                f"{owner}: hash_function is for hash_bins; got "
                f"{self.hash_function!r} without hash_bins."
            )
        for arg in ("embedding_dim", "max_len"):
            value = check_positive_int(
                owner, arg, getattr(self, arg), allow_none=arg != "embedding_dim"
            )
            object.__setattr__(self, arg, value)

    @property
    def fitted(self) -> bool:
        """Whether the spec says how values become rows (one of
        `vocabulary_size`, `vocabulary`, `hash_bins`, `boundaries`); a spec
        without is fitted to data by `keras_mtl.adapt_features`."""
        return any(
            getattr(self, k) is not None
            for k in ("vocabulary_size", "vocabulary", "hash_bins", "boundaries")
        )

    def _check_hash_function(self) -> None:
        known = HASH_FUNCTIONS[self.dtype] if self.hash_bins else (None,)
        if self.hash_function is None:
            object.__setattr__(self, "hash_function", known[0])
        if self.hash_function not in known:
            raise ValueError(
                f"SparseFeature {self.name!r}: hash_function must be one of "
                f"{list(known)} (dtype {self.dtype!r}, hash_bins {self.hash_bins}); "
                f"got {self.hash_function!r}."
            )

    @property
    def num_rows(self) -> int:
        """Rows of the embedding table, including the OOV row."""
        check_fitted(self)
        if self.vocabulary_size is not None:
            return self.vocabulary_size + 1
        if self.vocabulary is not None:
            return len(self.vocabulary) + 1
        if self.boundaries is not None:
            return len(self.boundaries) + 1
        return self.hash_bins

    @property
    def pad_value(self):
        """The value of an empty slot: -1, "" or NaN (float32, bucketised)."""
        if self.dtype == "string":
            return STRING_PAD
        return FLOAT_PAD if self.dtype == "float32" else INT_PAD

    @property
    def shape(self) -> tuple:
        """Per-example shape (without the batch dimension)."""
        return () if self.max_len is None else (self.max_len,)

    @property
    def length(self) -> int:
        return 1 if self.max_len is None else self.max_len

    @property
    def supports_jit(self) -> bool:
        """Integer ids (`vocabulary_size`, or hashed with "int_hash_v1") and
        bucketised numbers stay XLA-compilable; string lookups and FarmHash do
        not."""
        return (
            self.vocabulary_size is not None
            or self.boundaries is not None
            or self.hash_function == "int_hash_v1"
        )


#: `DenseFeature.transform`s and the bound their raw values must lie above.
DENSE_TRANSFORMS = {"log": 0.0, "log1p": -1.0}


@dataclasses.dataclass(frozen=True)
class DenseFeature:
    """A numeric feature of width `dim`.

    The model standardises it as `(f(x) - mean) / std`, where `f` is the
    identity or the spec's `transform`: `"log"` for a raw price, a duration or a
    count whose log is what the model should see (values > 0), `"log1p"` for
    values >= 0 such as counts with zeros (values > -1). The data carry the raw
    value and the model (and its SavedModel) applies the transform, so a
    serving client sends the raw price; a value outside the transform's domain
    is an error naming the feature. With `allow_missing=True`, a NaN entry is
    replaced inside the model by a learned fill value
    (`keras_mtl.layers.MissingValueLayer`); without it, NaN in the data is an error.

    Args:
        name: str. Feature name; the model input and the data column are named after it.
        dim: int. Width; 1 means a scalar per example. Defaults to 1.
        allow_missing: bool. Whether NaN marks a missing value. Defaults to False.
        mean: float. Subtracted (from the transformed value) before the model
            sees it. Defaults to 0.
        std: float. Divides the centred value. Defaults to 1.
        transform: None, "log" or "log1p". Applied to the raw value inside the
            model, before `mean` and `std`. Defaults to None.

    Example:
    >>> DenseFeature("age", mean=40, std=12).shape  # one value per example
    ()
    >>> DenseFeature("price_history", dim=4, allow_missing=True).shape
    (4,)
    >>> DenseFeature("price", transform="log", mean=3.0, std=0.6).domain_floor
    0.0
    """

    name: str
    dim: int = 1
    allow_missing: bool = False
    mean: float = 0.0
    std: float = 1.0
    transform: str | None = None

    def __post_init__(self):
        check_name("DenseFeature", self.name)
        dim = check_positive_int(f"DenseFeature {self.name!r}", "dim", self.dim)
        object.__setattr__(self, "dim", dim)
        std = check_positive(f"DenseFeature {self.name!r}", "std", self.std)
        object.__setattr__(self, "mean", float(self.mean))
        object.__setattr__(self, "std", std)
        if self.transform is not None and self.transform not in DENSE_TRANSFORMS:
            raise ValueError(
                f"DenseFeature {self.name!r}: transform must be None or one of "
                f"{list(DENSE_TRANSFORMS)}; got {self.transform!r}."
            )

    dtype = "float32"

    @property
    def domain_floor(self) -> float | None:
        """The bound raw values must lie above (`transform`'s domain), or None."""
        return DENSE_TRANSFORMS.get(self.transform)

    @property
    def shape(self) -> tuple:
        return () if self.dim == 1 else (self.dim,)

    supports_jit = True


@dataclasses.dataclass(frozen=True)
class SequenceFeature:
    """A padded list of items per example: a behaviour sequence or a candidate list.

    Each step is an item, described by `item` fields (its id first, then side
    information such as shop, brand, category or tags), and optionally
    behaviour `properties` (type, scenario, bucketed time gap, ...). Every field
    is one model input named `f"{name}_{field.name}"`, of shape `(max_len,)`,
    or `(max_len, field.max_len)` for a multi-valued field (e.g. a movie's
    genres). Steps are in time order and padded at the end; a step whose item
    id (the first item field) is the padding value (-1 / "") is masked.

    The item fields declare the item embedding tables; a model may embed the
    same fields elsewhere (a target item, a candidate list) with the same
    tables, as `keras_mtl.build_dupn` does.

    Args:
        name: str. Prefix of the input names, e.g. "history".
        item: sequence of `SparseFeature`. The item id (single-valued), then side
            information (single- or multi-valued).
        properties: sequence of `SparseFeature`. Per-step behaviour properties
            (single-valued ids, e.g. bucketed). Defaults to none.
        max_len: int. Steps kept per example (the DUPN paper uses 100).
            Defaults to 100.

    Example:
    >>> SequenceFeature("history", item=[SparseFeature("item", hash_bins=1000)],
    ...                 properties=[SparseFeature("action", vocabulary_size=4)],
    ...                 max_len=50).input_names
    ['history_item', 'history_action']
    """

    name: str
    item: tuple = ()
    properties: tuple = ()
    max_len: int = 100

    def __post_init__(self):
        check_name("SequenceFeature", self.name)
        item = tuple(feature_from_config(f) for f in self.item)
        prop = tuple(feature_from_config(f) for f in self.properties)
        object.__setattr__(self, "item", item)
        object.__setattr__(self, "properties", prop)
        what = f"SequenceFeature {self.name!r}"
        if not item:
            raise ValueError(f"{what}: needs at least one item field (the item id).")
        bad = [f for f in item + prop if not isinstance(f, SparseFeature)]
        if bad:
            raise ValueError(
                f"{what}: item and property fields must be SparseFeature (bucket "
                f"numeric properties); got {type(bad[0]).__name__} {bad[0].name!r}."
            )
        if item[0].max_len is not None:
            raise ValueError(
                f"{what}: the first item field {item[0].name!r} is the item id and "
                "must be single-valued (max_len=None); it marks padded steps."
            )
        multi = [f.name for f in prop if f.max_len is not None]
        if multi:
            raise ValueError(
                f"{what}: property fields must be single-valued; {multi} have max_len."
            )
        shared = [f.name for f in item + prop if f.share_embedding_with is not None]
        if shared:
            raise ValueError(
                f"{what}: share_embedding_with is not supported inside a sequence "
                f"(fields {shared}); the item fields are shared by the model."
            )
        names = [f.name for f in item + prop]
        if len(set(names)) != len(names):
            raise ValueError(f"{what}: field names must be unique; got {names}.")
        object.__setattr__(
            self, "max_len", check_positive_int(what, "max_len", self.max_len)
        )

    @property
    def fields(self) -> tuple:
        """Item fields, then property fields."""
        return self.item + self.properties

    def input_name(self, field: SparseFeature) -> str:
        return f"{self.name}_{field.name}"

    @property
    def input_names(self) -> list[str]:
        return [self.input_name(f) for f in self.fields]

    def input_spec(self, field: SparseFeature) -> SparseFeature:
        """`field` as a flat spec named after its model input (for data checks)."""
        return dataclasses.replace(field, name=self.input_name(field))

    def input_shape(self, field: SparseFeature) -> tuple:
        return (self.max_len,) + field.shape

    @property
    def supports_jit(self) -> bool:
        return all(f.supports_jit for f in self.fields)


Feature = Union[SparseFeature, DenseFeature]


# ----------------------------------------------------------------------------- helpers


_KINDS = {"sparse": SparseFeature, "dense": DenseFeature, "sequence": SequenceFeature}


def feature_to_config(feature: Feature | SequenceFeature) -> dict:
    if isinstance(feature, SequenceFeature):
        return {
            "kind": "sequence",
            "name": feature.name,
            "item": [feature_to_config(f) for f in feature.item],
            "properties": [feature_to_config(f) for f in feature.properties],
            "max_len": feature.max_len,
        }
    config = dataclasses.asdict(feature)
    for key in ("vocabulary", "boundaries"):
        if config.get(key) is not None:
            config[key] = list(config[key])
    config["kind"] = "sparse" if isinstance(feature, SparseFeature) else "dense"
    return config


def feature_from_config(config: dict | Feature | SequenceFeature):
    if isinstance(config, tuple(_KINDS.values())):
        return config
    config = dict(config)
    return _KINDS[config.pop("kind")](**config)


def check_fitted(feature: SparseFeature, where: str = "") -> None:
    """ValueError unless `feature` says how its values become rows."""
    if not feature.fitted:
        raise ValueError(
            f"SparseFeature {feature.name!r}{where} has no vocabulary_size, "
            "vocabulary, hash_bins or boundaries yet: fit one to the training data "
            "with keras_mtl.adapt_features(features, data), or give one."
        )


def check_features(
    features: Sequence[Feature | SequenceFeature],
    allow_sequences: bool = False,
    allow_unfitted: bool = False,
) -> list:
    """Validate a list of specs as a whole and return it as a list.

    `SequenceFeature`s are accepted only with `allow_sequences` (by the data
    pipeline and `make_inputs`); flat encoders such as `FeatureEncoder` reject
    them rather than silently ignore them. A `SparseFeature` not fitted yet
    (no vocabulary, hash bins or boundaries) is accepted only with
    `allow_unfitted` (by `keras_mtl.adapt_features`).

    Example:
    >>> check_features([DenseFeature("age"), SparseFeature("age", hash_bins=8)])
    Traceback (most recent call last):
    ...
    ValueError: Feature names must be unique; repeated: ['age'].
    """
    check_spec_list(
        "features",
        features,
        "SparseFeature / DenseFeature / SequenceFeature specs",
        tuple(_KINDS.values()),
    )
    features = [feature_from_config(f) for f in features]
    if not features:
        raise ValueError("At least one feature is needed; got an empty list.")
    sequences = [f.name for f in features if isinstance(f, SequenceFeature)]
    if sequences and not allow_sequences:
        raise ValueError(
            f"SequenceFeature(s) {sequences} need a sequence model such as "
            "keras_mtl.build_dupn; here only SparseFeature and DenseFeature are "
            "supported."
        )
    names = [
        n
        for f in features
        for n in (f.input_names if isinstance(f, SequenceFeature) else [f.name])
    ]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"Feature names must be unique; repeated: {dupes}.")
    if not allow_unfitted:
        for f in features:
            if isinstance(f, SequenceFeature):
                for field in f.fields:
                    check_fitted(field, f" (field of SequenceFeature {f.name!r})")
            elif isinstance(f, SparseFeature):
                check_fitted(f)
    by_name = {f.name: f for f in features}
    for f in features:
        if not isinstance(f, SparseFeature) or f.share_embedding_with is None:
            continue
        other = by_name.get(f.share_embedding_with)
        if not isinstance(other, SparseFeature):
            raise ValueError(
                f"SparseFeature {f.name!r}: share_embedding_with="
                f"{f.share_embedding_with!r} names no sparse feature; known sparse "
                f"features: {[s.name for s in features if isinstance(s, SparseFeature)]}."
            )
        if other.share_embedding_with is not None:
            raise ValueError(
                f"SparseFeature {f.name!r}: shares with {other.name!r}, which itself "
                "shares another table; point at the table's owner instead."
            )
        if not (f.fitted and other.fitted):
            continue  # adapt_features gives both the same rows
        if (other.num_rows, other.embedding_dim) != (f.num_rows, f.embedding_dim):
            raise ValueError(
                f"SparseFeature {f.name!r} shares the table of {other.name!r} but "
                f"has {f.num_rows} rows x {f.embedding_dim} dims where the table has "
                f"{other.num_rows} x {other.embedding_dim}."
            )
    return features


def make_inputs(features: Sequence[Feature | SequenceFeature]) -> dict:
    """One `keras.Input` per model input, named after it, with its raw dtype and shape.

    A flat feature is one input; a `SequenceFeature` is one input per field.

    Example:
    >>> inputs = make_inputs([
    ...     SparseFeature("city", vocabulary=["paris", "rome"]),
    ...     DenseFeature("price", dim=2),
    ...     SequenceFeature("history", item=[SparseFeature("item", hash_bins=100)],
    ...                     max_len=20)])
    >>> {name: (tuple(x.shape), x.dtype) for name, x in inputs.items()}
    {'city': ((None,), 'string'), 'price': ((None, 2), 'float32'),
     'history_item': ((None, 20), 'string')}
    """
    inputs = {}
    for f in check_features(features, allow_sequences=True):
        if isinstance(f, SequenceFeature):
            for field in f.fields:
                name = f.input_name(field)
                shape = f.input_shape(field)
                inputs[name] = keras.Input(shape=shape, dtype=field.dtype, name=name)
        else:
            inputs[f.name] = keras.Input(shape=f.shape, dtype=f.dtype, name=f.name)
    return inputs
