"""String lookups that run beside the compiled model, where strings belong.

XLA has no kernel for a string vocabulary (`StringLookup`) or a string hash
(`Hashing`): left inside the graph, one string feature kept XLA off for the
whole model. A `MultiTaskModel` instead finds the string inputs whose every use
is such a lookup ("hosted" inputs) and computes their table rows outside the
compiled step: mapped over the `tf.data` pipeline in `fit` / `evaluate` /
`predict`, applied to arrays before they enter Keras. The compiled step sees
int32 rows (padding -1), which its layers take in place of the strings
(`layers._lookup.table_rows`). In-memory data packed by `make_dataset`
(`keras_mtl.data.packed`) is looked up once, whole columns at a time
(`packed_rows`), and then trains as integer ids do: gathered inside the step.
The graph itself is unchanged: it still takes raw strings (`model(raw)`, the
SavedModel's signature, a reloaded `.keras` file, whose lookup layers carry
the vocabularies).
"""

from __future__ import annotations

import dataclasses
import types

from keras_mtl._graph import model_nodes
from keras_mtl.layers._lookup import PAD_ROW, holds_strings


@dataclasses.dataclass(frozen=True)
class Hosted:
    """The host-side lookups of one model.

    Attributes:
        lookups: `{input name: (SparseFeature, lookup layer)}` of the hosted inputs.
        clean_layers: ids of the layers (the lookup-owning layers and their
            lookups) that never see a string in the compiled step.
    """

    lookups: dict
    clean_layers: frozenset

    def __bool__(self) -> bool:
        return bool(self.lookups)


def _lookup_key(feature) -> tuple:
    """What `make_lookup` depends on: two uses agree when these do."""
    return (feature.vocabulary, feature.hash_bins, feature.hash_function)


def find_hosted(model) -> Hosted:
    """The string inputs of functional `model` whose lookups can run on the host.

    An input qualifies when every layer call in `model`'s graph that reads it is
    a lookup-owning layer (`string_lookups`: `FeatureEncoder`, `FieldEmbedding`)
    using it as a string field, all with the same vocabulary or hash. A layer is
    clean when, in every call, its only XLA-incompatible parts are string fields
    fed by hosted inputs.
    """
    strings = {
        id(t): t.name
        for t in getattr(model, "inputs", None) or []
        if t.dtype == "string"
    }
    if not strings:
        return Hosted({}, frozenset())
    nodes = model_nodes(model.outputs)
    uses: dict[int, list] = {tid: [] for tid in strings}
    calls = []  # (layer, [(tensor id, lookup)]) per lookup-owning layer call
    for node in nodes:
        layer = node.operation
        finder = getattr(layer, "string_lookups", None)
        fields = finder(*node.arguments.args, **node.arguments.kwargs) if finder else []
        claimed = {id(t) for t, _, _ in fields}
        for t in node.arguments.keras_tensors:
            if id(t) in uses and id(t) not in claimed:
                uses[id(t)].append(None)  # read by something else
        for t, feature, lookup in fields:
            if id(t) in uses:
                uses[id(t)].append((feature, lookup))
        if finder is not None:
            calls.append((layer, [(id(t), lookup) for t, _, lookup in fields]))

    lookups, hosted_ids = {}, set()
    for tid, found in uses.items():
        if found and None not in found and len({_lookup_key(f) for f, _ in found}) == 1:
            lookups[strings[tid]] = found[0]
            hosted_ids.add(tid)

    clean, dirty = set(), set()
    for layer, fields in calls:
        ok = getattr(layer, "supports_jit_beside_strings", False) and all(
            tid in hosted_ids for tid, _ in fields
        )
        (clean if ok else dirty).update([id(layer), *(id(lk) for _, lk in fields)])
    return Hosted(lookups, frozenset(clean - dirty))


# ------------------------------------------------------------- host-side rows


def string_rows(feature, lookup, raw):
    """Table rows (int32) of raw strings, `PAD_ROW` where `raw` is padding
    (TensorFlow ops: the `tf.data` and serving side)."""
    import tensorflow as tf

    raw = tf.convert_to_tensor(raw, tf.string)
    rows = tf.cast(lookup(raw), tf.int32)
    return tf.where(tf.equal(raw, feature.pad_value), PAD_ROW, rows)


def rows_of(hosted: Hosted, x):
    """`x` (a dict of raw inputs) with each hosted input's strings replaced by
    their rows (inputs already given as rows are left alone)."""
    if not isinstance(x, dict):
        return x
    x = dict(x)
    for name, (feature, lookup) in hosted.lookups.items():
        if name in x and holds_strings(x[name]):
            x[name] = string_rows(feature, lookup, x[name])
    return x


def packed_rows(hosted: Hosted, packed):
    """`packed` (in-memory columns, `keras_mtl.data.packed.PackedColumns`) with
    its string matrix replaced by the table rows of its columns, looked up once.

    Each column goes through `string_rows`, the lookup a batch of it gets on
    its way to the step, so OOV values and padding come out as they would.
    Returns None when a string column is not a hosted input: such data keeps
    the per-batch path (`host_data`).
    """
    import numpy as np
    import tensorflow as tf

    matrices = []
    for matrix, keys in zip(packed.matrices, packed.layout):
        if matrix.dtype != tf.string:
            matrices.append(matrix)
            continue
        if any(part != "x" or name not in hosted.lookups for (part, name), _ in keys):
            return None
        columns, start = [], 0
        for (_, name), shape in keys:
            width = int(np.prod(shape, dtype=int))
            feature, lookup = hosted.lookups[name]
            columns.append(
                string_rows(feature, lookup, matrix[:, start : start + width])
            )
            start += width
        matrices.append(tf.concat(columns, axis=1))
    return dataclasses.replace(
        packed,
        matrices=tuple(matrices),
        dtypes=tuple(m.dtype.name for m in matrices),
        key=f"{packed.key}-rows",  # (the same layout, int32 where strings were)
    )


def _eager_rows(hosted: Hosted, x: dict) -> dict:
    """`rows_of` for in-memory data: arrays (or lists) in, numpy arrays out."""
    import tensorflow as tf

    return {
        k: v.numpy() if tf.is_tensor(v) and not tf.is_tensor(x[k]) else v
        for k, v in rows_of(hosted, x).items()
    }


def host_data(hosted: Hosted, data, strings_may_pass: bool = False):
    """What `fit` / `evaluate` / `predict` read, with hosted inputs as rows.

    `data` is a `tf.data.Dataset` (the lookups are mapped over it, in parallel,
    order kept), a dict of arrays or tensors, an `(x, y[, sample_weight])`
    tuple (as `validation_data`) or a generator of such batches. Any other
    input (a `keras.utils.PyDataset`, a list) is returned unchanged when
    `strings_may_pass` (a step without XLA looks strings up itself), and is a
    `TypeError` otherwise.
    """
    if not hosted or data is None:
        return data
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):

        def rows(*element):
            first = rows_of(hosted, element[0])
            return first if len(element) == 1 else (first, *element[1:])

        return data.map(
            rows, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
        ).prefetch(tf.data.AUTOTUNE)
    if isinstance(data, types.GeneratorType):
        return (host_data(hosted, batch, strings_may_pass) for batch in data)
    x = data[0] if isinstance(data, tuple) and data else data
    if not isinstance(x, dict):
        if strings_may_pass:
            return data
        raise TypeError(
            f"The string inputs {sorted(hosted.lookups)} are looked up outside the "
            "XLA-compiled step for a tf.data.Dataset, a dict of arrays, an (x, y) "
            f"tuple of those or a generator of batches; got {type(x).__name__}. "
            "Pass one of those, or compile with jit_compile=False."
        )
    x = _eager_rows(hosted, x)
    return (x, *data[1:]) if isinstance(data, tuple) else x
