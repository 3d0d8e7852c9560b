"""Unseen ids: integer ids outside a feature's `[0, vocabulary_size)`.

A vocabulary sized on the training data meets ids it has never seen in the test
data or at serving time. The model sends every such id (any id but the padding
value -1 outside `[0, vocabulary_size)`) to the feature's out-of-vocabulary
(OOV) row, the last row of its table (`layers._lookup.table_rows`). By default
`make_dataset` does the same, explicitly: it passes each unseen id on as the id
`vocabulary_size`, the OOV row itself, so that the ids reaching any model are
inside its table whatever its embedding does with an out-of-range id, and it
counts them and reports them once per dataset and feature with an
`UnseenIdWarning`. `unseen_ids="error"` keeps them an error (the data rule
"id_range" of `keras_mtl.data._rules`).

In-memory data is counted whole when the dataset is built. A streamed source
(CSV, TFRecord, block source) is counted batch by batch inside the pipeline and
reported at the end of its first complete pass (a pass cut short, e.g. by
`dataset.take(n)`, reports nothing; the next complete pass does).
"""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence

import numpy as np

from keras_mtl.data._rules import NUMPY, RULES, TENSORS
from keras_mtl.features import SequenceFeature, SparseFeature

#: The `make_dataset(unseen_ids=...)` choices.
UNSEEN_IDS = ("oov", "error")
#: The data rule that unseen ids break (skipped with `unseen_ids="oov"`).
RULE_NAME = "id_range"
_RULE = next(rule for rule in RULES if rule.name == RULE_NAME)
#: Per feature: unseen ids, rows with one, ids (not padding), rows, min, max.
_STATS = 6


class UnseenIdWarning(UserWarning):
    """Ids outside a feature's vocabulary were sent to its OOV row.

    Filter it with `warnings.simplefilter("ignore", UnseenIdWarning)`, or make
    such ids an error with `make_dataset(..., unseen_ids="error")`.
    """


def check_unseen_ids(value) -> str:
    """`value` if it is a valid `unseen_ids` choice, else ValueError."""
    if value not in UNSEEN_IDS:
        raise ValueError(
            f"make_dataset: unseen_ids must be one of {list(UNSEEN_IDS)} ('oov': "
            "send ids outside [0, vocabulary_size) to the OOV row and report "
            f"them; 'error': refuse them); got {value!r}."
        )
    return value


def skipped_rules(unseen_ids: str | None) -> tuple[str, ...]:
    """The data rules not to assert for `unseen_ids` (None: ids not checked)."""
    return () if unseen_ids == "error" else (RULE_NAME,)


def counted_specs(features: Sequence) -> list[SparseFeature]:
    """The flat specs, named after their model input, whose ids may be unseen:
    integer ids with a `vocabulary_size` (sequence fields included)."""
    specs = []
    for f in features:
        flat = (
            [f.input_spec(field) for field in f.fields]
            if isinstance(f, SequenceFeature)
            else [f]
        )
        specs += [s for s in flat if isinstance(s, SparseFeature) and _RULE.applies(s)]
    return specs


class UnseenIds:
    """The unseen ids of one dataset: counted, then reported once per feature.

    Args:
        specs: the `counted_specs` of the dataset's features.
        source: str. Names the data in the message, e.g. "CSV file 'x.csv'".
    """

    def __init__(self, specs: Sequence[SparseFeature], source: str):
        self.specs = list(specs)
        self.source = source
        self._lock = threading.Lock()
        self._reported = False
        self.start_pass()

    def start_pass(self) -> None:
        """Forget the counts of a pass that did not end (not after a report)."""
        with self._lock:
            self._totals = np.zeros((len(self.specs), 4), np.int64)
            self._low = np.full(len(self.specs), np.iinfo(np.int64).max)
            self._high = np.full(len(self.specs), np.iinfo(np.int64).min)

    def add(self, stats) -> None:
        """Adds one batch's `(features, 6)` statistics (`numpy_stats` order)."""
        stats = np.asarray(stats, np.int64).reshape(len(self.specs), _STATS)
        with self._lock:
            if self._reported:
                return
            self._totals += stats[:, :4]
            self._low = np.minimum(self._low, stats[:, 4])
            self._high = np.maximum(self._high, stats[:, 5])

    def end_pass(self, stacklevel: int = 2) -> None:
        """Report the counts (`UnseenIdWarning`, one per feature with unseen
        ids), the first time a pass ends; later passes say nothing."""
        with self._lock:
            if self._reported:
                return
            self._reported = True
            totals, low, high = self._totals, self._low, self._high
        for spec, (unseen, rows, ids, num_rows), lo, hi in zip(
            self.specs, totals.tolist(), low.tolist(), high.tolist()
        ):
            if unseen:
                warnings.warn(
                    message(spec, self.source, unseen, rows, ids, num_rows, lo, hi),
                    UnseenIdWarning,
                    stacklevel=stacklevel,
                )

    # ---------------------------------------------------------------- in memory

    def apply_numpy(self, spec: SparseFeature, ids: np.ndarray) -> np.ndarray:
        """Counts the unseen ids of a whole in-memory column; returns the
        column with each of them replaced by `vocabulary_size` (the OOV row)."""
        unseen = ~np.asarray(_RULE.valid(NUMPY, spec, ids))
        present = ids != spec.pad_value
        stats = [
            unseen.sum(),
            NUMPY.any_rows(unseen).sum(),
            present.sum(),
            len(ids),
            ids[unseen].min() if unseen.any() else np.iinfo(np.int64).max,
            ids[unseen].max() if unseen.any() else np.iinfo(np.int64).min,
        ]
        table = [[0, 0, 0, 0, *_EMPTY] for _ in self.specs]
        table[[s.name for s in self.specs].index(spec.name)] = stats
        self.add(table)
        if not unseen.any():
            return ids
        return np.where(unseen, np.int64(spec.vocabulary_size), ids)

    # ---------------------------------------------------------------- streamed

    def apply_tensors(self, x: dict) -> dict:
        """Inside a `tf.data` map: counts a batch's unseen ids (handed to `add`
        by a `tf.py_function`) and returns `x` with them replaced by
        `vocabulary_size`."""
        import tensorflow as tf

        out, stats = dict(x), []
        for spec in self.specs:
            ids = x[spec.name]
            unseen = tf.logical_not(_RULE.valid(TENSORS, spec, ids))
            big, small = ids.dtype.max, ids.dtype.min
            stats.append(
                tf.stack(
                    [
                        tf.reduce_sum(tf.cast(unseen, tf.int64)),
                        tf.reduce_sum(tf.cast(TENSORS.any_rows(unseen), tf.int64)),
                        tf.reduce_sum(
                            tf.cast(tf.not_equal(ids, spec.pad_value), tf.int64)
                        ),
                        tf.cast(tf.shape(ids)[0], tf.int64),
                        tf.cast(tf.reduce_min(tf.where(unseen, ids, big)), tf.int64),
                        tf.cast(tf.reduce_max(tf.where(unseen, ids, small)), tf.int64),
                    ]
                )
            )
            oov = tf.constant(spec.vocabulary_size, ids.dtype)
            out[spec.name] = tf.where(unseen, oov, ids)
        added = tf.py_function(self._add_batch, [tf.stack(stats)], tf.int64)
        with tf.control_dependencies([added]):
            return {k: tf.identity(v) for k, v in out.items()}

    def _add_batch(self, stats):
        self.add(stats.numpy())
        return np.int64(0)

    def attach(self, ds):
        """`ds` (a streamed `make_dataset` pipeline) counting its unseen ids:
        the counts restart with each pass and are reported at its end."""
        import tensorflow as tf

        def count(*element):
            if isinstance(element[0], dict) and len(element) > 1:
                return (self.apply_tensors(element[0]), *element[1:])
            return self.apply_tensors(element[0])

        ds = ds.map(count, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        spec = ds.element_spec

        def hook(action):
            def nothing():
                action()
                return
                yield  # a generator of no element

            return tf.data.Dataset.from_generator(nothing, output_signature=spec)

        ds = hook(self.start_pass).concatenate(ds).concatenate(hook(self.end_pass))
        return ds.prefetch(tf.data.AUTOTUNE)


_EMPTY = (np.iinfo(np.int64).max, np.iinfo(np.int64).min)


def message(spec, source, unseen, rows, ids, num_rows, low, high) -> str:
    """The report of one feature's unseen ids."""
    size = spec.vocabulary_size
    seen = f"from {low} to {high}" if low != high else f"{low}"
    return (
        f"SparseFeature {spec.name!r}: {unseen} of {ids} ids (in {rows} of "
        f"{num_rows} rows) of {source} lie outside [0, vocabulary_size={size}) "
        f"(unseen ids {seen}); they go to the out-of-vocabulary row, as the "
        f"model sends them (make_dataset passes them on as id {size}). Pass "
        "make_dataset(..., unseen_ids='error') to refuse them instead."
    )
