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
`dataset.take(n)`, reports nothing; the next complete pass does): a `scan`
sums the counts in the graph and a marker element at the end of each pass hands
them to Python.
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
        """Forget the counts so far (a new pass, or the totals of one to come)."""
        with self._lock:
            self._totals = np.zeros((len(self.specs), 4), np.int64)
            self._low = np.full(len(self.specs), np.iinfo(np.int64).max)
            self._high = np.full(len(self.specs), np.iinfo(np.int64).min)

    def add(self, stats) -> None:
        """Adds `(features, 6)` counts: unseen ids, rows with one, ids, rows,
        the smallest and the largest unseen id (`_STATS`)."""
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

    def tensor_stats(self, x: dict) -> tuple:
        """Inside a `tf.data` map: `(x, stats)`, `x` with a batch's unseen ids
        replaced by `vocabulary_size`, `stats` their `(features, 6)` counts."""
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
        return out, tf.stack(stats)

    def _report(self, totals):
        self.start_pass()
        self.add(totals.numpy())
        self.end_pass(stacklevel=2)
        return np.int64(0)

    def attach(self, ds):
        """`ds` (a streamed `make_dataset` pipeline) with its unseen ids sent to
        the OOV row and counted, the counts reported at the end of a pass.

        The counts are summed by a `scan` over the pass (so they restart with
        each pass, in the graph, no Python per batch) and handed to Python once,
        by a marker element appended to the pass and dropped after the scan.
        """
        import tensorflow as tf

        def counted(*element):
            x, stats = self.tensor_stats(element[0])
            return (
                tf.constant(False),
                (x, *element[1:]) if len(element) > 1 else x,
                stats,
            )

        ds = ds.map(counted, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
        k = len(self.specs)
        start = (
            tf.zeros([k, 4], tf.int64),
            tf.fill([k], tf.int64.max),
            tf.fill([k], tf.int64.min),
        )
        # The marker's counts are neutral: no ids, and a smallest / largest
        # unseen id that no real one loses to (zeros would pull them to 0).
        empty = tf.concat([start[0], start[1][:, None], start[2][:, None]], axis=1)
        marker = tf.nest.map_structure(_empty_like, ds.element_spec)
        marker = (tf.constant(True), marker[1], empty)
        ds = ds.concatenate(tf.data.Dataset.from_tensors(marker))

        def step(state, item):
            end, element, stats = item
            state = (
                state[0] + stats[:, :4],
                tf.minimum(state[1], stats[:, 4]),
                tf.maximum(state[2], stats[:, 5]),
            )
            totals = tf.concat([state[0], state[1][:, None], state[2][:, None]], axis=1)
            reported = tf.cond(
                end,
                lambda: tf.py_function(self._report, [totals], tf.int64),
                lambda: tf.constant(0, tf.int64),
            )
            return state, (end, element, reported)

        ds = ds.scan(start, step).filter(lambda end, element, reported: ~end)
        ds = ds.map(lambda end, element, reported: element)
        return ds.prefetch(tf.data.AUTOTUNE)


def _empty_like(spec):
    """A tensor of `spec` (an unknown dimension 0): the marker's filling."""
    import tensorflow as tf

    shape = [0 if d is None else d for d in spec.shape]
    if spec.dtype == tf.string:
        return tf.fill(shape, "")
    return tf.zeros(shape, spec.dtype)


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
