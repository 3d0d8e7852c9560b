"""What `fit`, `evaluate` and `predict` hand a `MultiTaskModel`'s compiled step.

Two fast paths, both chosen per call from the data, both leaving the results
those of plain Keras on the same data:

- Packed in-memory batches: a dataset `keras_mtl.data.make_dataset` built from
  memory carries its columns packed by dtype (`keras_mtl.data.packed`). The
  step is then fed batches of row indices with the matrices, and gathers each
  batch itself: a reshuffle costs one permutation per epoch, and `tf.data`
  hands the step one vector per batch. (TensorFlow backend, no distribution
  strategy.) String columns of hosted inputs (below) are looked up once, when
  first read, and the step gathers their int32 rows as it gathers integer ids.
- Hosted string lookups: string inputs whose every use is a vocabulary or hash
  lookup are looked up beside the compiled step (`hosted_lookups`), which then
  reads int32 rows and keeps XLA. Other data (streams, transformed datasets,
  arrays) is looked up batch by batch, in `tf.data`.

Before the first step the model's training state is built from the data's
spec (`_keras_compat.symbolic_build`), so TensorFlow traces the step once.

Raw inputs are checked first (`check_raw_strings`): strings given for an input
that takes numbers (integer ids, dense or bucketised values) are an error
naming the feature and what to do, rather than Keras's "Invalid dtype".
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

import keras
import numpy as np

from keras_mtl import _keras_compat
from keras_mtl import features as keras_mtl_features
from keras_mtl.data import packed as packed_module
from keras_mtl.data._validate import check_ints_fit_the_backend
from keras_mtl.models import _host_lookups


class StepData:
    """One model's step data: which packed layouts its steps gather from."""

    def __init__(self, model):
        self.model = model
        self.layouts = {}  # `PackedColumns.key` -> layout (no data)
        # Packed columns holding strings -> `_rows_of` them.
        self._rows = weakref.WeakKeyDictionary()

    def hosted(self, data):
        """`data` with the model's hosted string inputs as table rows."""
        check_raw_strings(self.model, data)
        model = self.model
        return _host_lookups.host_data(
            model.hosted_lookups, data, strings_may_pass=not model.jit_compile
        )

    def for_training(self, data):
        """What `fit` / `evaluate` read for `data`: the index batches of packed
        in-memory columns, or `data` with the hosted inputs as rows."""
        if packed_module.is_step_dataset(data):  # (fit's own evaluate)
            return data
        packed = packed_module.packed_columns(data)
        spec_data = data
        if packed is not None and "string" in packed.dtypes:
            packed, spec_data = self._rows_of(packed)
        if packed is None or not self._build_from_spec(spec_data):
            # Batches through `tf.data`, their strings looked up batch by batch
            # (`hosted` checks the raw inputs first).
            data = self.hosted(data)
            self._build_from_spec(data)
            return data
        self.layouts[packed.key] = packed.layout_only()
        return packed.step_dataset()

    def _rows_of(self, packed) -> tuple:
        """`(rows, batches)`: `packed` with its string columns as rows and the
        batches they gather to (for their spec), made once per packed dataset
        (each `fit` / `evaluate` of it reads them); `(None, None)` when a
        string column is not a hosted input."""
        if packed not in self._rows:
            rows = _host_lookups.packed_rows(self.model.hosted_lookups, packed)
            batches = None if rows is None else rows.dataset(cache=False)
            self._rows[packed] = (rows, batches)
        return self._rows[packed]

    def unpack(self, element):
        """Inside the step: a packed element as the batch it stands for."""
        return packed_module.unpack_step_element(element, self.layouts)

    def _build_from_spec(self, data) -> bool:
        """Build the optimizer, compiled losses and metrics before the first step.

        On TensorFlow without a distribution strategy, Keras defers this to
        the first trace of the train or test step. Their variables are then
        created inside a `tf.function`, and TensorFlow traces the step a
        second time: the first epoch of every `fit` pays for two traces (and
        two XLA compilations). Built here symbolically, from the data's
        `element_spec` (no batch is read), the step is traced once. Returns
        whether it built. (JAX and torch build symbolically themselves.)
        """
        if keras.backend.backend() != "tensorflow":
            return False
        import tensorflow as tf

        if tf.distribute.has_strategy() or (
            self.model.distribute_strategy is not tf.distribute.get_strategy()
        ):
            return False  # Keras builds under its strategy itself
        if not isinstance(data, tf.data.Dataset):
            return False
        specs = keras.tree.flatten(data.element_spec)
        if not all(isinstance(spec, tf.TensorSpec) for spec in specs):
            return False
        return _keras_compat.symbolic_build(self.model, data.element_spec)


def check_raw_strings(model, data) -> None:
    """ValueError if `data` lacks an input of `model`; TypeError if it gives
    strings for an input that takes numbers, naming the feature and what to do.

    `data` is what `fit` / `evaluate` / `predict` take: a dict of arrays,
    lists or tensors, an `(x, y[, sample_weight])` tuple of those, or a
    `tf.data.Dataset` (its element spec is checked; no batch is read). Other
    inputs are left to Keras.
    """
    x = data[0] if isinstance(data, tuple) and data else data
    spec = getattr(x, "element_spec", None)
    if spec is not None:  # a dataset: its features dict
        x = spec[0] if isinstance(spec, tuple) and spec else spec
    if not isinstance(x, Mapping):
        return
    takes = {t.name: t.dtype for t in model.inputs}
    missing = [n for n in takes if n not in x]
    if missing:  # (JAX's and torch's input checks would name a neighbour)
        raise ValueError(
            f'Missing data for input "{missing[0]}" (missing: {missing}); the '
            f"data has {sorted(x)}, the model takes {sorted(takes)}."
        )
    check_ints_fit_the_backend(
        {k: v for k, v in x.items() if isinstance(v, np.ndarray) and k in takes}
    )
    for name, value in x.items():
        if takes.get(name, "string") == "string":
            continue
        example = _a_string(value)
        if example is not None:
            raise TypeError(_strings_message(model, name, takes[name], example))


def _a_string(value):
    """One string held by `value` (array, list, tensor, tensor spec), or None."""
    dtype = getattr(value, "dtype", None)
    if dtype is not None and not isinstance(dtype, np.dtype):  # tensor or spec
        try:
            dtype = keras.backend.standardize_dtype(dtype)
        except ValueError:  # e.g. a pandas extension dtype: read the values
            dtype = None
        if dtype not in (None, "string"):
            return None
        if dtype == "string" and not hasattr(value, "numpy"):
            return _STRING_SPEC
        if dtype == "string":
            value = value.numpy()
    if isinstance(value, (str, bytes)):
        return value
    try:  # lists as objects: numpy would turn [1, "a"] into strings
        kind = object if isinstance(value, (list, tuple)) else None
        array = np.asarray(value, dtype=kind)
    except ValueError:  # ragged lists
        return None  # (Keras refuses them)
    if array.dtype.kind in "SU":
        return array.flat[0].item() if array.size else ""
    if array.dtype.kind == "O":
        found = (v for v in array.flat if isinstance(v, (str, bytes)))
        return next(found, None)
    return None


#: `_a_string` of a string tensor spec (a dataset's element): no value to show.
_STRING_SPEC = object()


def _strings_message(model, name: str, dtype: str, example) -> str:
    """What strings for input `name` (taking `dtype`) mean, and what to do."""
    spec = None
    for f in getattr(model, "features", []):
        fields = getattr(f, "fields", None)
        if fields is None and f.name == name:
            spec = f
        for field in fields or ():
            if f.input_name(field) == name:
                spec = field
    kind = type(spec).__name__ if spec is not None else "input"
    if isinstance(spec, keras_mtl_features.SparseFeature) and dtype == "int64":
        what = "integer ids (dtype int64)"
        todo = (
            "Map the strings to their integer ids first, or declare the feature "
            f"SparseFeature({spec.name!r}, vocabulary=[...]) or hash_bins=... so "
            "that the model looks strings up itself (and retrain), or build the "
            "input with keras_mtl.data.make_dataset, which checks every column."
        )
    else:
        what = f"numbers (dtype {dtype})"
        todo = (
            "Convert the column to numbers first (e.g. pandas.to_numeric), or "
            "build the input with keras_mtl.data.make_dataset, which checks "
            "every column."
        )
    got = (
        "a string tensor" if example is _STRING_SPEC else f"strings (e.g. {example!r})"
    )
    return f"{kind} {name!r} takes {what}; received {got}. {todo}"


def steps_per_epoch(data) -> int | None:
    """The number of batches in an epoch of `data`, when known."""
    cardinality = getattr(data, "cardinality", None)
    if cardinality is None:
        return None
    n = int(cardinality())
    return n if n >= 0 else None
