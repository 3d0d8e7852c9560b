"""Training speed of `build_mmoe` + `make_dataset` against a hand-written Keras 3 MMoE.

Census-income (KDD): 31 categorical columns as sparse features (embedding 4),
7 numeric columns as dense features, two binary tasks (income, marital status);
MMoE with 8 experts of 16 units, towers of 8, batch 1024. Contenders, trained on
the same rows in the same process, a fresh model for every repeat:

- plain Keras 3: a functional model written here from standard Keras layers
  (one `Embedding(vocab + 1, 4)` per column, `Dense` experts and softmax gates,
  `Dot` for the gated sum), `jit_compile=True`, fed by
  `from_tensor_slices(...).batch().cache().prefetch()`.
- plain tf.keras-2 style: the same model without XLA, fed numpy arrays.
- keras_mtl: `build_mmoe` (default compile: masked losses, masked AUC, XLA when
  possible) fed by `keras_mtl.data.make_dataset`.

Shuffling: `make_dataset` reshuffles every epoch by default; the issue's plain
pipeline does not shuffle. Both settings are measured, each against a plain
model doing the same work: without shuffling (`make_dataset(shuffle=False)`,
`fit(shuffle=False)` for numpy) and with a full reshuffle every epoch (default
`make_dataset`; `cache().shuffle(rows, reshuffle_each_iteration=True)` for the
plain pipeline). Both models carry a loss and an AUC (1000 thresholds) per task.

Timing: build + compile + dataset ("setup"), one warm-up epoch (includes the XLA
compilation of the full and the last partial batch: "first epoch"), then
`--epochs` epochs in one `fit` call timed with `time.perf_counter`;
examples/s = rows x epochs / elapsed. Median (min-max) over `--repeats`; the
order of contenders is rotated, and reversed every other repeat. Each run also
records the CPU time other processes took meanwhile (the load average counts
this script's own threads).

First (skip it with `--expert-rounds 0`; run only it with `--skip-rotated`),
keras_mtl's default `build_mmoe` and `build_ple` + `make_dataset` against an
expert's hand-written models: all id columns offset into one `Embedding` fed
as one int32 matrix, the numbers as one matrix, all experts as one `Dense`, a
loss per task and no metric, XLA; cached, and for MMoE also reshuffled every
epoch. DeepCTR's PLE joins when `deepctr` and `tf_keras` are installed, in a
child process (`deepctr_ple_worker.py`). All are built and warmed up first,
then timed in `--expert-rounds` alternated rounds of `--round-epochs` epochs.

Then the latency of the trained keras_mtl model at batch 1 and 512:
`model.predict`, a direct `model(x, training=False)` call (eager),
`model.predict_on_batch` (the compiled predict step without the data adapter),
and the `serving_default` signature of the SavedModel written by
`keras_mtl.export_saved_model` and loaded with `tf.saved_model.load`.

Usage (from the repository root):

    python benchmarks/mmoe_census.py [--data-path FILE] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import os
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Expected and harmless here: Keras's default `fit(shuffle=True)` is ignored for a
# tf.data input, and a dataset of unknown length (make_dataset's reshuffling one)
# ends its first epoch by running out of data. `run_once` checks the step count.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
warnings.filterwarnings("ignore", message="Your input ran out of data")

try:  # `python -m benchmarks.mmoe_census` from the repository root
    from benchmarks import _common
except ImportError:  # `python benchmarks/mmoe_census.py`: benchmarks/ is on sys.path
    import _common

_common.add_repo_to_path()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as km  # noqa: E402
from keras_mtl.datasets import census  # noqa: E402

DEFAULT_DATA = (
    _common.REPO_ROOT.parent
    / "shared"
    / "data"
    / "census-income"
    / "census-income.test.gz"
)
#: Rows of census-income.test (the size of the generated stand-in frame).
CENSUS_TEST_ROWS = 99_762
NUM_EXPERTS, EXPERT_UNITS, TOWER_UNITS = 8, 16, 8
REQUIRED_RATIO = 0.90


# ----------------------------------------------------------------------------- data


def census_like_frame(rows: int = CENSUS_TEST_ROWS, seed: int = 0):
    """Random frame with the census columns, dtypes and label rates (no real signal)."""
    rng = np.random.default_rng(seed)
    data = {}
    for name in census.CATEGORICAL_COLUMNS:
        size = len(census.CENSUS_VOCABULARIES[name])
        data[name] = rng.integers(-1, size, rows)  # -1: unknown ("?"), as in the file
    for name in census.NUMERIC_COLUMNS:
        data[name] = rng.lognormal(1.0, 1.5, rows).astype(np.float32)
    data["income"] = (rng.random(rows) < 0.062).astype(np.float32)
    data["marital"] = (rng.random(rows) < 0.432).astype(np.float32)
    frame = pd.DataFrame(data)
    return frame, census.census_features(frame), list(census.CENSUS_TASKS)


def load_data(path: Path):
    """`(frame, features, tasks, description)`; a generated frame if `path` is absent."""
    if path.exists():
        data = km.datasets.load_census(path)
        return data.frame, data.features, data.tasks, f"`{path}`"
    frame, features, tasks = census_like_frame()
    note = (
        "GENERATED census-shaped random frame because "
        f"`{path}` does not exist; throughput is comparable, AUCs are meaningless"
    )
    return frame, features, tasks, note


def plain_arrays(frame: pd.DataFrame, features, tasks):
    """Inputs of the hand-written model: ids in [0, vocab], numbers standardised.

    The census loader codes "?" as -1; a plain `Embedding(vocab + 1, dim)` gets
    it as the extra last row (keras_mtl reads -1 as padding: a zero vector).
    """
    x = {}
    for f in features:
        column = frame[f.name].to_numpy()
        if isinstance(f, km.SparseFeature):
            ids = column.astype(np.int32)
            ids[(ids < 0) | (ids >= f.vocabulary_size)] = f.vocabulary_size
            x[f.name] = ids
        else:
            z = (column.astype(np.float64) - f.mean) / f.std
            x[f.name] = z.astype(np.float32).reshape(-1, 1)
    y = {
        t.name: frame[t.label_column].to_numpy(dtype=np.float32).reshape(-1, 1)
        for t in tasks
    }
    return x, y


# ----------------------------------------------------------------------------- models


def plain_inputs(features):
    """`(inputs, x)` of a hand-written model: one `Embedding(vocab + 1, dim)` per
    sparse column, dense columns as they are, all concatenated into `x`."""
    inputs, parts = {}, []
    for f in features:
        if isinstance(f, km.SparseFeature):
            ids = keras.Input(shape=(), dtype="int32", name=f.name)
            parts.append(
                keras.layers.Embedding(
                    f.vocabulary_size + 1, f.embedding_dim, name=f"embedding_{f.name}"
                )(ids)
            )
            inputs[f.name] = ids
        else:
            inputs[f.name] = keras.Input(shape=(1,), dtype="float32", name=f.name)
            parts.append(inputs[f.name])
    return inputs, keras.layers.Concatenate(name="features")(parts)


def plain_mmoe(features, tasks, jit_compile: bool) -> keras.Model:
    """The hand-written MMoE: standard Keras layers only, compiled like a user would."""
    inputs, x = plain_inputs(features)
    experts = [
        keras.layers.Dense(EXPERT_UNITS, activation="relu", name=f"expert_{i}")(x)
        for i in range(NUM_EXPERTS)
    ]
    experts = keras.layers.Reshape((NUM_EXPERTS, EXPERT_UNITS), name="experts")(
        keras.layers.Concatenate(name="expert_outputs")(experts)
    )
    outputs = {}
    for t in tasks:
        gate = keras.layers.Dense(
            NUM_EXPERTS, activation="softmax", use_bias=False, name=f"{t.name}_gate"
        )(x)
        # (batch, experts) . (batch, experts, units) -> (batch, units)
        mixed = keras.layers.Dot(axes=(1, 1), name=f"{t.name}_mixture")([gate, experts])
        hidden = keras.layers.Dense(
            TOWER_UNITS, activation="relu", name=f"{t.name}_hidden"
        )(mixed)
        outputs[t.name] = keras.layers.Dense(1, activation="sigmoid", name=t.name)(
            hidden
        )
    model = keras.Model(inputs, outputs, name="plain_mmoe")
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss={t.name: keras.losses.BinaryCrossentropy() for t in tasks},
        metrics={
            t.name: [keras.metrics.AUC(num_thresholds=1000, name="auc")] for t in tasks
        },
        jit_compile=jit_compile,
    )
    return model


def keras_mtl_mmoe(features, tasks) -> keras.Model:
    return km.build_mmoe(
        features,
        tasks,
        num_experts=NUM_EXPERTS,
        expert_units=(EXPERT_UNITS,),
        tower_units=(TOWER_UNITS,),
    )


# ----------------------------------------------------------------------------- experts

#: PLE as `build_ple` builds it by default: 2 levels of 2 shared + 2 task experts.
PLE_LEVELS, PLE_SHARED, PLE_TASK = 2, 2, 2


def expert_arrays(frame: pd.DataFrame, features, tasks):
    """An expert's inputs: every id column offset into one table and fed as one
    int32 `(rows, 31)` matrix (unknown ids get their column's extra row, as in
    `plain_arrays`), the standardised numbers as one float32 `(rows, 7)`
    matrix; returns `(x, y, table_rows)`."""
    columns, y = plain_arrays(frame, features, tasks)
    sparse = [f for f in features if isinstance(f, km.SparseFeature)]
    offsets = np.cumsum([0] + [f.vocabulary_size + 1 for f in sparse])
    ids = [columns[f.name] + offset for f, offset in zip(sparse, offsets)]
    numbers = [columns[f.name] for f in features if isinstance(f, km.DenseFeature)]
    x = {
        "ids": np.stack(ids, axis=1).astype(np.int32),
        "numbers": np.concatenate(numbers, axis=1),
    }
    return x, y, int(offsets[-1])


def _expert_inputs(table_rows: int, num_ids: int, num_numbers: int):
    ids = keras.Input(shape=(num_ids,), dtype="int32", name="ids")
    numbers = keras.Input(shape=(num_numbers,), dtype="float32", name="numbers")
    embedded = keras.layers.Embedding(table_rows, 4, name="embeddings")(ids)
    x = keras.layers.Concatenate(name="features")(
        [keras.layers.Flatten(name="flat_embeddings")(embedded), numbers]
    )
    return {"ids": ids, "numbers": numbers}, x


def _experts(x, count: int, name: str):
    """`count` experts of EXPERT_UNITS as one Dense, `(batch, count, units)`."""
    h = keras.layers.Dense(count * EXPERT_UNITS, activation="relu", name=name)(x)
    return keras.layers.Reshape((count, EXPERT_UNITS), name=f"{name}_split")(h)


def _mix(gate_input, experts, count: int, name: str):
    """A softmax gate (no bias) over `count` experts, and their gated sum."""
    gate = keras.layers.Dense(count, activation="softmax", use_bias=False, name=name)(
        gate_input
    )
    return keras.layers.Dot(axes=(1, 1), name=f"{name}_mixture")([gate, experts])


def _expert_model(inputs, mixed: dict, name: str) -> keras.Model:
    outputs = {
        task: keras.layers.Dense(1, activation="sigmoid", name=task)(
            keras.layers.Dense(TOWER_UNITS, activation="relu", name=f"{task}_hidden")(h)
        )
        for task, h in mixed.items()
    }
    model = keras.Model(inputs, outputs, name=name)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss={task: keras.losses.BinaryCrossentropy() for task in outputs},
        jit_compile=True,
    )
    return model


def expert_mmoe(tasks, table_rows: int, num_ids: int, num_numbers: int):
    """The issue's expert MMoE: one table, one Dense for all experts, a softmax
    gate per task, `Dot` mixtures, a loss per task and no metric, XLA."""
    inputs, x = _expert_inputs(table_rows, num_ids, num_numbers)
    experts = _experts(x, NUM_EXPERTS, "experts")
    mixed = {t.name: _mix(x, experts, NUM_EXPERTS, f"{t.name}_gate") for t in tasks}
    return _expert_model(inputs, mixed, "expert_mmoe")


def expert_ple(tasks, table_rows: int, num_ids: int, num_numbers: int):
    """The same expert's PLE: per level, each task's experts and the shared ones
    as one Dense each; task k's gate mixes its own and the shared experts, the
    shared gate (below the last level) every expert of the level."""
    inputs, x = _expert_inputs(table_rows, num_ids, num_numbers)
    task_in = {t.name: x for t in tasks}
    shared_in = x
    for level in range(1, PLE_LEVELS + 1):
        shared = _experts(shared_in, PLE_SHARED, f"l{level}_shared_experts")
        own = {
            t: _experts(h, PLE_TASK, f"l{level}_{t}_experts")
            for t, h in task_in.items()
        }
        mixed = {
            t: _mix(
                task_in[t],
                keras.layers.Concatenate(axis=1, name=f"l{level}_{t}_pool")(
                    [own[t], shared]
                ),
                PLE_TASK + PLE_SHARED,
                f"l{level}_{t}_gate",
            )
            for t in own
        }
        if level < PLE_LEVELS:
            every = keras.layers.Concatenate(axis=1, name=f"l{level}_all")(
                [*own.values(), shared]
            )
            shared_in = _mix(
                shared_in,
                every,
                PLE_TASK * len(own) + PLE_SHARED,
                f"l{level}_shared_gate",
            )
        task_in = mixed
    return _expert_model(inputs, task_in, "expert_ple")


def keras_mtl_ple(features, tasks) -> keras.Model:
    return km.build_ple(
        features,
        tasks,
        num_levels=PLE_LEVELS,
        num_shared_experts=PLE_SHARED,
        num_task_experts=PLE_TASK,
        expert_units=(EXPERT_UNITS,),
        tower_units=(TOWER_UNITS,),
    )


def expert_pipeline(x, y, batch_size: int, shuffle: bool, seed: int = 0):
    """The expert's `tf.data`: cached batches, or every epoch a fresh index
    permutation whose batches gather the rows (`tf.gather` in a parallel map)."""
    rows = len(x["ids"])
    if not shuffle:
        ds = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size).cache()
        return ds.prefetch(tf.data.AUTOTUNE)
    tensors = tf.nest.map_structure(tf.constant, (x, y))
    order = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).take(1)
    index = order.flat_map(
        lambda s: tf.data.Dataset.from_tensor_slices(
            tf.random.experimental.stateless_shuffle(
                tf.range(rows), seed=tf.stack([s, tf.constant(0, tf.int64)])
            )
        ).batch(batch_size)
    )
    ds = index.map(
        lambda i: tf.nest.map_structure(lambda t: tf.gather(t, i), tensors),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    # (flat_map hides the length; stated, each epoch ends without running out)
    batches = tf.data.experimental.assert_cardinality(-(-rows // batch_size))
    return ds.apply(batches).prefetch(tf.data.AUTOTUNE)


@dataclasses.dataclass
class RoundContender:
    """A model built up front: `train(epochs)` trains it and returns seconds."""

    key: str
    label: str
    parameters: int
    train: Callable[[int], float]
    reference: str  # the key its speed is compared with


def in_process(key, label, model, ds, reference) -> RoundContender:
    """A model of this process, warmed up by one epoch (its XLA compilation)."""
    model.fit(ds, epochs=1, verbose=0)

    def train(epochs: int) -> float:
        start = time.perf_counter()
        model.fit(ds, epochs=epochs, verbose=0)
        return time.perf_counter() - start

    return RoundContender(key, label, trainable_count(model), train, reference)


def trainable_count(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def expert_contenders(frame, features, tasks, batch_size: int) -> list:
    """The contenders of the expert comparison, all built and compiled up front,
    each dataset as its contender's user would write it."""
    x, y, table_rows = expert_arrays(frame, features, tasks)
    shapes = (table_rows, x["ids"].shape[1], x["numbers"].shape[1])

    def default():
        return km.data.make_dataset(
            frame, features, tasks, batch_size=batch_size, seed=0
        )

    ours = "default `make_dataset` (reshuffled every epoch, AUC every step)"
    return [
        in_process(
            "km_mmoe",
            f"`build_mmoe` + {ours}",
            keras_mtl_mmoe(features, tasks),
            default(),
            "expert_mmoe",
        ),
        in_process(
            "expert_mmoe",
            "expert MMoE, cached batches",
            expert_mmoe(tasks, *shapes),
            expert_pipeline(x, y, batch_size, shuffle=False),
            "expert_mmoe",
        ),
        in_process(
            "expert_mmoe_shuffled",
            "expert MMoE, reshuffled every epoch (permutation + `gather`)",
            expert_mmoe(tasks, *shapes),
            expert_pipeline(x, y, batch_size, shuffle=True),
            "expert_mmoe",
        ),
        in_process(
            "km_ple",
            f"`build_ple` + {ours}",
            keras_mtl_ple(features, tasks),
            default(),
            "expert_ple",
        ),
        in_process(
            "expert_ple",
            "expert PLE, cached batches",
            expert_ple(tasks, *shapes),
            expert_pipeline(x, y, batch_size, shuffle=False),
            "expert_ple",
        ),
    ]


class DeepCtrWorker:
    """DeepCTR's PLE in a child process (`deepctr_ple_worker.py`: Keras 2 cannot
    share this process with Keras 3), trained a round at a time over a pipe.
    Every read is bounded by `timeout_s`; `close` stops the child by its pid."""

    SCRIPT = Path(__file__).with_name("deepctr_ple_worker.py")

    def __init__(self, frame, features, tasks, batch_size, epochs, rounds, tmp):
        x, y = plain_arrays(frame, features, tasks)
        arrays = {}
        for f in features:
            if isinstance(f, km.SparseFeature):
                arrays[f"id_{f.name}"] = x[f.name]
                arrays[f"rows_{f.name}"] = np.array(f.vocabulary_size + 1)
            else:
                arrays[f"num_{f.name}"] = x[f.name]
        arrays.update({f"y_{name}": label for name, label in y.items()})
        path = Path(tmp) / "census_arrays.npz"
        np.savez(path, **arrays)
        command = [sys.executable, str(self.SCRIPT), "--arrays", str(path)]
        command += ["--batch-size", str(batch_size), "--epochs", str(epochs)]
        command += ["--max-rounds", str(rounds)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        self.epochs = epochs
        self.parameters = int(self._read("ready", timeout_s=600))

    def _read(self, word: str, timeout_s: float) -> str:
        """The value of the worker's next `word <value>` line. Other lines (what
        DeepCTR itself prints) are skipped, up to 100 of them and `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        for _ in range(100):
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(left, 0))
            line = self.process.stdout.readline() if ready else ""
            if line.startswith(word + " "):
                return line.split()[1]
            if not line:  # timed out, or the worker ended
                break
        self.close()
        raise RuntimeError(f"DeepCTR worker: no {word!r} line in {timeout_s:.0f} s.")

    def train(self, epochs: int) -> float:
        if epochs != self.epochs:
            raise ValueError(f"the worker trains {self.epochs} epochs a round")
        self.process.stdin.write("round\n")
        self.process.stdin.flush()
        return float(self._read("seconds", timeout_s=1800))

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                os.kill(self.process.pid, signal.SIGKILL)
                self.process.wait()


def deepctr_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("deepctr", "tf_keras"))


def run_expert_rounds(contenders, rows: int, epochs: int, rounds: int) -> dict:
    """`rounds` alternated rounds (order reversed every other round) of `epochs`
    epochs per contender, all warmed up already; examples/s by key."""
    speeds = {c.key: [] for c in contenders}
    for r in range(rounds):
        order = contenders if r % 2 == 0 else contenders[::-1]
        for c in order:
            gc.collect()
            speeds[c.key].append(rows * epochs / c.train(epochs))
        print(
            f"- round {r + 1}/{rounds}: "
            + ", ".join(f"`{k}` {v[-1]:,.0f}" for k, v in speeds.items())
            + f" examples/s; load average {_common.load_average()}",
            flush=True,
        )
    return speeds


# ----------------------------------------------------------------------------- contenders


def make_contenders(frame, features, tasks, batch_size: int) -> list[_common.Contender]:
    x, y = plain_arrays(frame, features, tasks)
    rows = len(frame)

    def plain_xla(shuffle: bool):
        def setup():
            model = plain_mmoe(features, tasks, jit_compile=True)
            ds = tf.data.Dataset.from_tensor_slices((x, y))
            if shuffle:
                ds = ds.cache().shuffle(rows, seed=0, reshuffle_each_iteration=True)
                ds = ds.batch(batch_size)
            else:
                ds = ds.batch(batch_size).cache()
            ds = ds.prefetch(tf.data.AUTOTUNE)
            return model, lambda e: model.fit(ds, epochs=e, verbose=0)

        return setup

    def plain_numpy():
        model = plain_mmoe(features, tasks, jit_compile=False)
        return model, lambda e: model.fit(
            x, y, batch_size=batch_size, epochs=e, shuffle=False, verbose=0
        )

    def keras_mtl(shuffle: bool):
        def setup():
            model = keras_mtl_mmoe(features, tasks)
            ds = km.data.make_dataset(
                frame, features, tasks, batch_size=batch_size, shuffle=shuffle, seed=0
            )
            return model, lambda e: model.fit(ds, epochs=e, verbose=0)

        return setup

    a, b = "no shuffle", "shuffle every epoch"
    return [
        _common.Contender(
            "plain",
            "plain Keras 3, XLA, `from_tensor_slices.batch.cache.prefetch`",
            plain_xla(False),
            a,
        ),
        _common.Contender(
            "numpy",
            "plain tf.keras-2 style, no XLA, numpy `fit(shuffle=False)`",
            plain_numpy,
            a,
        ),
        _common.Contender(
            "km",
            "keras_mtl `build_mmoe` + `make_dataset(shuffle=False)`",
            keras_mtl(False),
            a,
        ),
        _common.Contender(
            "plain_shuffled",
            "plain Keras 3, XLA, `from_tensor_slices.cache.shuffle(rows).batch.prefetch`",
            plain_xla(True),
            b,
        ),
        _common.Contender(
            "km_shuffled",
            "keras_mtl `build_mmoe` + `make_dataset` (default: shuffle=True)",
            keras_mtl(True),
            b,
        ),
    ]


# ----------------------------------------------------------------------------- latency


def latency_rows(model, frame, features, tasks) -> list[list[str]]:
    """predict / call / predict_on_batch / SavedModel latency at batch 1 and 512."""
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = km.export_saved_model(model, Path(tmp) / "mmoe")
        serving = tf.saved_model.load(str(export_dir))
        signature = serving.signatures["serving_default"]
        rows = []
        for batch, calls in ((1, 200), (512, 50)):
            tensors = next(
                iter(
                    km.data.make_dataset(
                        frame.iloc[:batch], features, batch_size=batch, shuffle=False
                    )
                )
            )
            arrays = {k: v.numpy() for k, v in tensors.items()}
            direct = model(tensors, training=False)
            served = signature(**tensors)
            gap = max(
                float(np.max(np.abs(direct[t.name].numpy() - served[t.name].numpy())))
                for t in tasks
            )
            if gap > 1e-5:
                raise AssertionError(
                    f"SavedModel and model disagree by {gap:.2e} at batch {batch}."
                )
            ways = [
                (
                    "`model.predict(x)`",
                    lambda a=arrays, b=batch: model.predict(a, batch_size=b, verbose=0),
                ),
                (
                    "`model(x, training=False)`",
                    lambda t=tensors: model(t, training=False),
                ),
                (
                    "`model.predict_on_batch(x)`",
                    lambda t=tensors: model.predict_on_batch(t),
                ),
                (
                    'SavedModel `signatures["serving_default"](**x)`',
                    lambda t=tensors: signature(**t),
                ),
            ]
            for label, fn in ways:
                times = _common.time_calls(fn, calls, warmup=10)
                rows.append(
                    [
                        label,
                        str(batch),
                        str(calls),
                        f"{statistics.median(times):.2f}",
                        f"{_common.percentile(times, 90):.2f}",
                    ]
                )
    return rows


# ----------------------------------------------------------------------------- main


#: (ours, theirs, required ratio) of the expert comparison.
EXPERT_TARGETS = (
    ("km_mmoe", "expert_mmoe", REQUIRED_RATIO),
    ("km_ple", "expert_ple", REQUIRED_RATIO),
    ("km_ple", "deepctr_ple", 2.0),
)


def expert_section(frame, features, tasks, args) -> None:
    """keras_mtl's defaults against the expert models (and DeepCTR's PLE when
    installed), in alternated rounds."""
    contenders = expert_contenders(frame, features, tasks, args.batch_size)
    params = {c.key: c.parameters for c in contenders}
    for ours, theirs, _ in EXPERT_TARGETS[:2]:
        if params[ours] != params[theirs]:
            raise AssertionError(
                f"{ours} has {params[ours]} parameters, {theirs} {params[theirs]}: "
                "not the same model."
            )
    with tempfile.TemporaryDirectory() as tmp:
        worker = None
        if deepctr_available():
            worker = DeepCtrWorker(
                frame,
                features,
                tasks,
                args.batch_size,
                args.round_epochs,
                args.expert_rounds,
                tmp,
            )
            contenders.append(
                RoundContender(
                    "deepctr_ple",
                    "DeepCTR 0.9.4 `PLE` (Keras 2, child process), numpy `fit` "
                    "(reshuffled every epoch), loss only",
                    worker.parameters,
                    worker.train,
                    "deepctr_ple",
                )
            )
        print(
            f"\n## Against an expert's model ({args.expert_rounds} alternated rounds "
            f"of {args.round_epochs} epochs, all built first)\n"
        )
        if worker is None:
            print(
                "- DeepCTR's PLE skipped: `pip install deepctr==0.9.4 "
                "tf-keras==2.21.0` to include it"
            )
        try:
            speeds = run_expert_rounds(
                contenders, len(frame), args.round_epochs, args.expert_rounds
            )
        finally:
            if worker is not None:
                worker.close()

    def median(key):
        return statistics.median(speeds[key])

    table = [
        [
            f"`{c.key}`",
            c.label,
            f"{c.parameters:,}",
            _common.median_range(speeds[c.key]),
            f"{median(c.key) / median(c.reference):.2f}",
        ]
        for c in contenders
    ]
    print()
    print(
        _common.markdown_table(
            [
                "key",
                "contender",
                "parameters",
                "examples/s, median (min–max)",
                "vs reference (the cached expert; DeepCTR: itself)",
            ],
            table,
        )
    )
    print()
    for ours, theirs, required in EXPERT_TARGETS:
        if theirs not in speeds:
            continue
        ratio = median(ours) / median(theirs)
        verdict = "meets" if ratio >= required else "MISSES"
        print(
            f"- `{ours}` / `{theirs}`: {ratio:.3f} — {verdict} the {required:.2f} target"
        )
    sys.stdout.flush()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-path",
        type=Path,
        default=DEFAULT_DATA,
        help="census-income .data/.test file (gzip or plain); a generated "
        "census-shaped frame is used when it does not exist. Default: %(default)s",
    )
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs")
    parser.add_argument(
        "--repeats", type=int, default=3, help="fresh models per contender (median)"
    )
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument(
        "--expert-rounds",
        type=int,
        default=5,
        help="alternated rounds against the expert models (0: skip them)",
    )
    parser.add_argument(
        "--round-epochs", type=int, default=10, help="epochs per expert round"
    )
    parser.add_argument(
        "--skip-rotated",
        action="store_true",
        help="skip the fresh-model repeats against the per-column models",
    )
    args = parser.parse_args(argv)
    if min(args.epochs, args.repeats, args.batch_size, args.round_epochs) < 1:
        parser.error(
            "--epochs, --repeats, --batch-size and --round-epochs must be positive."
        )

    print("# MMoE on census-income: training throughput and serving latency\n")
    for line in _common.machine_lines():
        print(line)
    start = time.perf_counter()
    frame, features, tasks, source = load_data(args.data_path)
    rows = len(frame)
    print(f"- keras_mtl {km.__version__} from `{Path(km.__file__).parent}`")
    print(
        f"- data: {source}; {rows:,} rows, loaded in {time.perf_counter() - start:.1f} s"
    )
    print(
        f"- model: {sum(isinstance(f, km.SparseFeature) for f in features)} sparse "
        f"features (embedding 4) + {sum(isinstance(f, km.DenseFeature) for f in features)}"
        f" dense; MMoE {NUM_EXPERTS} experts x {EXPERT_UNITS}, towers {TOWER_UNITS}, "
        f"tasks {[t.name for t in tasks]}; batch {args.batch_size}, Adam 1e-3"
    )
    print(
        f"- timing: setup, 1 warm-up epoch, then {args.epochs} timed epochs; "
        f"median (min–max) of {args.repeats} repeats, contender order rotated "
        "(and reversed every other repeat)"
    )
    sys.stdout.flush()

    if args.expert_rounds > 0:
        expert_section(frame, features, tasks, args)
    if args.skip_rotated:
        return 0
    contenders = make_contenders(frame, features, tasks, args.batch_size)
    print("\n## Runs (in execution order)\n")
    runs, last_km_model = _common.run_rotated(
        contenders, rows, args.epochs, args.batch_size, args.repeats, keep="km_shuffled"
    )

    def median_speed(key):
        return _common.median_speed(runs, key)

    def auc(run, task):
        value = run.metrics.get(f"{task}_auc")
        return "n/a" if value is None else f"{value:.3f}"

    reference = {"no shuffle": "plain", "shuffle every epoch": "plain_shuffled"}
    table = []
    for c in contenders:
        rs = runs[c.key]
        table.append(
            [
                c.group,
                c.label,
                str(rs[0].jit_compile),
                _common.median_range([r.examples_per_s for r in rs]),
                f"{median_speed(c.key) / median_speed(reference[c.group]):.2f}",
                _common.median_range([r.setup_s for r in rs], "{:.1f}"),
                _common.median_range([r.first_epoch_s for r in rs], "{:.1f}"),
                f"{max(r.other_cores for r in rs):.2f}",
                " / ".join(auc(rs[-1], t.name) for t in tasks),
            ]
        )
    print("\n## Training throughput\n")
    print(
        _common.markdown_table(
            [
                "pipeline",
                "contender",
                "jit",
                "examples/s",
                "vs plain Keras 3 (same pipeline)",
                "setup s",
                "first epoch s",
                "other procs, cores (max)",
                f"train AUC {'/'.join(t.name for t in tasks)} (last repeat)",
            ],
            table,
        )
    )
    _common.warn_if_disturbed(runs)

    print("\n## keras_mtl / plain Keras 3 (medians)\n")
    for km_key, plain_key, what in (
        ("km", "plain", "no shuffle in either (same work per epoch)"),
        ("km_shuffled", "plain_shuffled", "both reshuffle all rows every epoch"),
        (
            "km_shuffled",
            "plain",
            "default `make_dataset` vs the unshuffled plain pipeline",
        ),
    ):
        ratio = median_speed(km_key) / median_speed(plain_key)
        verdict = "meets" if ratio >= REQUIRED_RATIO else "MISSES"
        print(f"- {what}: {ratio:.3f} — {verdict} the {REQUIRED_RATIO:.2f} requirement")
    sys.stdout.flush()

    print(
        "\n## Latency of the trained keras_mtl model "
        "(default `make_dataset`, last repeat), ms\n"
    )
    with _common.OtherCpuMeter() as others:
        latency = latency_rows(last_km_model, frame, features, tasks)
    print(
        _common.markdown_table(
            ["call", "batch", "calls", "median ms", "p90 ms"], latency
        )
    )
    print(f"\n- other processes during the latency runs: {others.cores:.2f} cores")
    print(f"\n- load average at end: {_common.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
