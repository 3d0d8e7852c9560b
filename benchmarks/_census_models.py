"""Census-income data and models shared by `census.py` and `mmoe_census.py`.

Data: the census file through `keras_mtl.datasets.load_census`, or a generated
frame of the same columns when the file is absent; the plain inputs of a
hand-written model. Models: hand-written MMoE and PLE from standard Keras layers
(one `Embedding` per column), an expert's MMoE and PLE (one table for all ids,
all experts as one `Dense`), keras_mtl's builders at the same shapes, and the
job that trains and tests one model of `census.py`'s accuracy study.

keras_mtl's models take their builder's default compile (`build` below passes
`compile=`), which runs several batches per compiled call, chosen from the
data; `same_steps` gives the plain and expert models the same count, so that
the comparison stays fair.
"""

from __future__ import annotations

import gc
import statistics
import time

try:  # imported as `benchmarks._census_models`
    from benchmarks import _harness
except ImportError:  # `python benchmarks/<script>.py`: benchmarks/ is on sys.path
    import _harness

_harness.add_repo_to_path()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_mtl as km  # noqa: E402
from keras_mtl.datasets import census  # noqa: E402

DEFAULT_DATA = _harness.SHARED_DATA / "census-income" / "census-income.test.gz"
#: Rows of census-income.test (the size of the generated stand-in frame).
CENSUS_TEST_ROWS = 99_762
NUM_EXPERTS, EXPERT_UNITS, TOWER_UNITS = 8, 16, 8
#: PLE as `build_ple` builds it by default: 2 levels of 2 shared + 2 task experts.
PLE_LEVELS, PLE_SHARED, PLE_TASK = 2, 2, 2


# ----------------------------------------------------------------------------- data


def census_like_frame(rows: int = CENSUS_TEST_ROWS, seed: int = 0):
    """Random frame with the census columns, dtypes and label rates (no real
    signal): each categorical column draws from its vocabulary's strings and
    UCI's "?" (unknown), as in the file."""
    rng = np.random.default_rng(seed)
    data = {}
    for name in census.CATEGORICAL_COLUMNS:
        values = np.array([*census.VOCABULARIES[name], census.UNKNOWN_VALUE], object)
        data[name] = values[rng.integers(0, len(values), rows)]
    for name in census.NUMERIC_COLUMNS:
        data[name] = rng.lognormal(1.0, 1.5, rows).astype(np.float32)
    data["income"] = (rng.random(rows) < 0.062).astype(np.float32)
    data["marital"] = (rng.random(rows) < 0.432).astype(np.float32)
    frame = pd.DataFrame(data)
    return frame, census.census_features(frame), list(census.CENSUS_TASKS)


def load_data(path, rows: int | None = None):
    """`(frame, features, tasks, description)`: the file at `path`, or a
    generated frame if it is absent; a random subsample of `rows` rows if given."""
    if path.exists():
        data = km.datasets.load_census(path)
        frame, description = data.frame, f"`{path}`"
    else:
        frame = census_like_frame()[0]
        description = (
            "GENERATED census-shaped random frame because "
            f"`{path}` does not exist; throughput is comparable, AUCs are meaningless"
        )
    if rows is not None and rows < len(frame):
        frame = frame.sample(n=rows, random_state=0).reset_index(drop=True)
        description += f", random subsample of {rows:,} rows (`--rows`)"
    return frame, census.census_features(frame), list(census.CENSUS_TASKS), description


def vocabulary_rows(feature) -> int:
    """Rows of a hand-written model's `Embedding` for a census sparse feature:
    one per vocabulary string and one for any other value (UCI's "?")."""
    return len(feature.vocabulary) + 1


def plain_arrays(frame: pd.DataFrame, features, tasks):
    """Inputs of the hand-written model: ids in [0, vocab], numbers standardised.

    The census frame holds the raw strings; a plain user codes them up front
    (here, before any timing) as positions in the vocabulary, and anything else
    (UCI's "?") as the extra last row of `Embedding(vocab + 1, dim)`, the same
    role as keras_mtl's out-of-vocabulary row, which keras_mtl's models look up
    from the strings in their own pipeline.
    """
    x = {}
    for f in features:
        column = frame[f.name].to_numpy()
        if isinstance(f, km.SparseFeature):
            ids = pd.Categorical(column, categories=f.vocabulary).codes
            ids = ids.astype(np.int32)
            ids[ids < 0] = len(f.vocabulary)
            x[f.name] = ids
        else:
            z = (column.astype(np.float64) - f.mean) / f.std
            x[f.name] = z.astype(np.float32).reshape(-1, 1)
    y = {
        t.name: frame[t.label_column].to_numpy(dtype=np.float32).reshape(-1, 1)
        for t in tasks
    }
    return x, y


def expert_arrays(frame: pd.DataFrame, features, tasks):
    """An expert's inputs: every id column offset into one table and fed as one
    int32 `(rows, 31)` matrix (unknown ids get their column's extra row, as in
    `plain_arrays`), the standardised numbers as one float32 `(rows, 7)`
    matrix; returns `(x, y, table_rows)`."""
    columns, y = plain_arrays(frame, features, tasks)
    sparse = [f for f in features if isinstance(f, km.SparseFeature)]
    offsets = np.cumsum([0] + [vocabulary_rows(f) for f in sparse])
    ids = [columns[f.name] + offset for f, offset in zip(sparse, offsets)]
    numbers = [columns[f.name] for f in features if isinstance(f, km.DenseFeature)]
    x = {
        "ids": np.stack(ids, axis=1).astype(np.int32),
        "numbers": np.concatenate(numbers, axis=1),
    }
    return x, y, int(offsets[-1])


def save_deepctr_arrays(frame: pd.DataFrame, features, tasks, path):
    """The hand-written model's arrays as `deepctr_ple_worker.py` reads them
    (`id_<column>`, `rows_<column>`, `num_<column>`, `y_<task>`), in `path`."""
    x, y = plain_arrays(frame, features, tasks)
    arrays = {}
    for f in features:
        if isinstance(f, km.SparseFeature):
            arrays[f"id_{f.name}"] = x[f.name]
            arrays[f"rows_{f.name}"] = np.array(vocabulary_rows(f))
        else:
            arrays[f"num_{f.name}"] = x[f.name]
    arrays.update({f"y_{name}": label for name, label in y.items()})
    np.savez(path, **arrays)
    return path


def plain_pipeline(x, y, batch_size: int, shuffle: bool):
    """The plain user's `tf.data`: `batch.cache.prefetch`, or with a full
    reshuffle every epoch `cache.shuffle(rows).batch.prefetch`."""
    ds = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        rows = len(next(iter(y.values())))
        ds = ds.cache().shuffle(rows, seed=0, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size)
    else:
        ds = ds.batch(batch_size).cache()
    return ds.prefetch(tf.data.AUTOTUNE)


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


# ----------------------------------------------------------------------------- plain models


def _compile_plain(model: keras.Model, tasks, jit_compile: bool, auc: bool = True):
    """How the hand-written and the experts' models compile (plain Keras): Adam
    1e-3, a binary cross-entropy per task, an AUC of 1000 thresholds per task
    (the experts: none)."""
    metrics = None
    if auc:
        metrics = {
            t: [keras.metrics.AUC(num_thresholds=1000, name="auc")] for t in tasks
        }
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss={t: keras.losses.BinaryCrossentropy() for t in tasks},
        metrics=metrics,
        jit_compile=jit_compile,
    )
    return model


def same_steps(model: keras.Model, ds) -> None:
    """Give a plain Keras model the batches per compiled call that keras_mtl's
    default compile (`steps_per_execution="auto"`) chooses for `ds` (set before
    its first `fit`; keras_mtl's own models choose themselves)."""
    if isinstance(model, km.MultiTaskModel):
        return
    n = int(ds.cardinality())
    model.steps_per_execution = km.training.auto_steps_per_execution(
        n if n >= 0 else None
    )


def plain_inputs(features):
    """`(inputs, x)` of a hand-written model: one `Embedding(vocab + 1, dim)` per
    sparse column, dense columns as they are, all concatenated into `x`."""
    inputs, parts = {}, []
    for f in features:
        if isinstance(f, km.SparseFeature):
            ids = keras.Input(shape=(), dtype="int32", name=f.name)
            parts.append(
                keras.layers.Embedding(
                    vocabulary_rows(f), f.embedding_dim, name=f"embedding_{f.name}"
                )(ids)
            )
            inputs[f.name] = ids
        else:
            inputs[f.name] = keras.Input(shape=(1,), dtype="float32", name=f.name)
            parts.append(inputs[f.name])
    return inputs, keras.layers.Concatenate(name="features")(parts)


def _towers(mixed: dict, tower_units=(TOWER_UNITS,)) -> dict:
    """Per task: Dense(relu) layers of `tower_units`, then Dense(1, sigmoid)."""
    outputs = {}
    for task, h in mixed.items():
        for i, width in enumerate(tower_units):
            h = keras.layers.Dense(width, activation="relu", name=f"{task}_hidden_{i}")(
                h
            )
        outputs[task] = keras.layers.Dense(1, activation="sigmoid", name=task)(h)
    return outputs


def _stack(experts: list, units: int, name: str):
    return keras.layers.Reshape((len(experts), units), name=f"{name}_stack")(
        keras.layers.Concatenate(name=f"{name}_experts")(experts)
    )


def _mix(gate_input, experts, count: int, name: str):
    """A softmax gate (no bias) over `count` experts, and their gated sum:
    (batch, experts) . (batch, experts, units) -> (batch, units)."""
    gate = keras.layers.Dense(count, activation="softmax", use_bias=False, name=name)(
        gate_input
    )
    return keras.layers.Dot(axes=(1, 1), name=f"{name}_mixture")([gate, experts])


def plain_mmoe(features, tasks, jit_compile: bool) -> keras.Model:
    """The hand-written MMoE: standard Keras layers only, compiled like a user would."""
    inputs, x = plain_inputs(features)
    experts = _stack(
        [
            keras.layers.Dense(EXPERT_UNITS, activation="relu", name=f"expert_{i}")(x)
            for i in range(NUM_EXPERTS)
        ],
        EXPERT_UNITS,
        "experts",
    )
    mixed = {t.name: _mix(x, experts, NUM_EXPERTS, f"{t.name}_gate") for t in tasks}
    model = keras.Model(inputs, _towers(mixed), name="plain_mmoe")
    return _compile_plain(model, [t.name for t in tasks], jit_compile)


def plain_ple(
    features,
    tasks,
    num_levels: int,
    num_task_experts: int,
    num_shared_experts: int,
    expert_units,
    tower_units,
    jit_compile: bool = True,
) -> keras.Model:
    """PLE written from standard Keras layers only (the speed reference).

    Level j: each task's experts read that task's input, the shared experts the
    shared input; task k's softmax gate (on its input) mixes its own and the
    shared experts; below the last level a shared gate (on the shared input)
    mixes every expert of the level. Gates have no bias (build_ple's default).
    """
    (units,) = expert_units
    inputs, x = plain_inputs(features)

    def experts(h, count, name):
        return [
            keras.layers.Dense(units, activation="relu", name=f"{name}_{i}")(h)
            for i in range(count)
        ]

    def mixture(name, gate_input, pool):
        return _mix(gate_input, _stack(pool, units, name), len(pool), f"{name}_gate")

    task_in, shared_in = {t.name: x for t in tasks}, x
    for level in range(1, num_levels + 1):
        own = {
            t: experts(h, num_task_experts, f"l{level}_{t}_expert")
            for t, h in task_in.items()
        }
        shared = experts(shared_in, num_shared_experts, f"l{level}_shared")
        next_in = {
            t: mixture(f"l{level}_{t}", task_in[t], own[t] + shared) for t in own
        }
        if level < num_levels:
            every = [e for pool in own.values() for e in pool] + shared
            shared_in = mixture(f"l{level}_shared", shared_in, every)
        task_in = next_in
    model = keras.Model(inputs, _towers(task_in, tower_units), name="plain_ple")
    return _compile_plain(model, list(task_in), jit_compile=jit_compile)


# ----------------------------------------------------------------------------- experts


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


def expert_mmoe(
    tasks, table_rows: int, num_ids: int, num_numbers: int, jit_compile: bool = True
):
    """The issue's expert MMoE: one table, one Dense for all experts, a softmax
    gate per task, `Dot` mixtures, a loss per task and no metric, XLA."""
    inputs, x = _expert_inputs(table_rows, num_ids, num_numbers)
    experts = _experts(x, NUM_EXPERTS, "experts")
    mixed = {t.name: _mix(x, experts, NUM_EXPERTS, f"{t.name}_gate") for t in tasks}
    model = keras.Model(inputs, _towers(mixed), name="expert_mmoe")
    return _compile_plain(model, list(mixed), jit_compile=jit_compile, auc=False)


def expert_ple(
    tasks, table_rows: int, num_ids: int, num_numbers: int, jit_compile: bool = True
):
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
        pools = {
            t: keras.layers.Concatenate(axis=1, name=f"l{level}_{t}_pool")(
                [own[t], shared]
            )
            for t in own
        }
        mixed = {
            t: _mix(task_in[t], pools[t], PLE_TASK + PLE_SHARED, f"l{level}_{t}_gate")
            for t in own
        }
        if level < PLE_LEVELS:
            every = keras.layers.Concatenate(axis=1, name=f"l{level}_all")(
                [*own.values(), shared]
            )
            count = PLE_TASK * len(own) + PLE_SHARED
            shared_in = _mix(shared_in, every, count, f"l{level}_shared_gate")
        task_in = mixed
    model = keras.Model(inputs, _towers(task_in), name="expert_ple")
    return _compile_plain(model, list(task_in), jit_compile=jit_compile, auc=False)


# ----------------------------------------------------------------------------- keras_mtl


def keras_mtl_mmoe(features, tasks) -> keras.Model:
    """`build_mmoe` at the hand-written MMoE's shape (its default compile)."""
    return km.build_mmoe(
        features,
        tasks,
        num_experts=NUM_EXPERTS,
        expert_units=(EXPERT_UNITS,),
        tower_units=(TOWER_UNITS,),
    )


def keras_mtl_ple(features, tasks, **shape) -> keras.Model:
    """`build_ple` at the expert PLE's shape, or at `shape` (default compile)."""
    shape = shape or {
        "num_levels": PLE_LEVELS,
        "num_shared_experts": PLE_SHARED,
        "num_task_experts": PLE_TASK,
        "expert_units": (EXPERT_UNITS,),
        "tower_units": (TOWER_UNITS,),
    }
    return km.build_ple(features, tasks, **shape)


def trainable_count(model) -> int:
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def non_embedding_params(model) -> int:
    """Parameters outside the embedding tables (FeatureEncoder / Embedding layers)."""
    from keras_mtl.layers import FeatureEncoder

    embedded = sum(
        layer.count_params()
        for layer in model.layers
        if isinstance(layer, (FeatureEncoder, keras.layers.Embedding))
    )
    return model.count_params() - embedded


# ----------------------------------------------------------------------------- speed


def pipeline_contenders(
    frame, features, tasks, plain, ours, name: str, args, shuffled: bool = True
) -> list:
    """Fresh-model contenders (`_harness.fresh_model`): the plain model
    `plain(features, tasks)` fed by `plain_pipeline` against keras_mtl's
    `ours(features, tasks)` fed by `make_dataset`, without shuffling and (if
    `shuffled`) with a full reshuffle every epoch; `name` goes into the labels
    (e.g. "build_ple"). Uses `args.epochs` and `args.batch_size`."""
    x, y = plain_arrays(frame, features, tasks)
    batch = args.batch_size

    def setup(build, data):
        def fresh():
            model, ds = build(features, tasks), data()
            same_steps(model, ds)
            return model, lambda e: model.fit(
                ds, epochs=e, verbose=0, callbacks=_harness.progress()
            )

        return fresh

    def plain_data(shuffle):
        return lambda: plain_pipeline(x, y, batch, shuffle)

    def our_data(shuffle):
        return lambda: km.data.make_dataset(
            frame, features, tasks, batch_size=batch, shuffle=shuffle, seed=0
        )

    what = f" {name[len('build_') :].upper()}" if name != "build_mmoe" else ""
    a, b = "no shuffle", "shuffle every epoch"
    # fmt: off
    specs = [
        ("plain", f"plain Keras 3{what}, XLA, `from_tensor_slices.batch.cache.prefetch`", setup(plain, plain_data(False)), a),
        ("km", f"keras_mtl `{name}` + `make_dataset(shuffle=False)`", setup(ours, our_data(False)), a),
        ("plain_shuffled", f"plain Keras 3{what}, XLA, `from_tensor_slices.cache.shuffle(rows).batch.prefetch`", setup(plain, plain_data(True)), b),
        ("km_shuffled", f"keras_mtl `{name}` + `make_dataset` (default: shuffle=True)", setup(ours, our_data(True)), b),
    ]
    # fmt: on
    reference = {a: "plain", b: "plain_shuffled"}
    return [
        _harness.Contender(
            key,
            label,
            _harness.fresh_model(fresh, len(frame), args.epochs, batch, key),
            group=group,
            reference=reference[group],
        )
        for key, label, fresh, group in specs[: 4 if shuffled else 2]
    ]


# ----------------------------------------------------------------------------- accuracy study


def build(spec, features, tasks, learning_rate: float, loss_weighting=None):
    """Builder `spec = (registry name, architecture arguments)`, compiled by it
    (with `loss_weighting=`, a strategy name, unless None: Keras's Σ λ_k L_k)."""
    from keras_mtl.models import build_model

    name, kwargs = spec
    compile_args = {"learning_rate": learning_rate}
    if loss_weighting is not None:
        compile_args["loss_weighting"] = loss_weighting
    return build_model(name, features, tasks, **kwargs, compile=compile_args)


class EpochClock(keras.callbacks.Callback):
    """Seconds of each epoch's training: from the epoch's start to the start
    of its validation (so validation is not counted)."""

    def __init__(self):
        super().__init__()
        self.seconds, self._start = [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_test_begin(self, logs=None):
        if self._start is not None:  # fit's validation, not a later evaluate
            self.seconds.append(time.perf_counter() - self._start)
            self._start = None

    def examples_per_second(self, rows: int) -> float:
        """Training throughput: `rows` over the median epoch after the first
        (which compiles); the first epoch's if it is the only one."""
        timed = self.seconds[1:] or self.seconds
        return rows / statistics.median(timed)


def train_and_test(
    spec, train, val, test, tasks, seed, options, loss_weighting=None
) -> dict:
    """Model `spec` (see `build`) on one split: the training part's mean/std, an early-stopped
    fit (on `val_income_auc`), then `evaluate` on the test part. `options` has
    `learning_rate`, `batch_size`, `patience` and `max_epochs`; `loss_weighting`
    goes to `build`. Runs in a child process through `_harness.run_in_child`, or
    in the caller's."""
    from keras_mtl.data import make_dataset

    features = census.census_features(train)  # training mean/std only
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model = build(spec, features, tasks, options.learning_rate, loss_weighting)
    stop = keras.callbacks.EarlyStopping(
        monitor="val_income_auc",
        mode="max",
        patience=options.patience,
        restore_best_weights=True,
    )
    history = model.fit(
        make_dataset(train, features, tasks, options.batch_size, seed=seed),
        validation_data=make_dataset(val, features, tasks, 8192, shuffle=False),
        epochs=options.max_epochs,
        callbacks=[stop, clock := EpochClock(), *_harness.progress()],
        verbose=0,
    )
    scores = model.evaluate(
        make_dataset(test, features, tasks, 8192, shuffle=False),
        return_dict=True,
        verbose=0,
    )
    val_auc = history.history["val_income_auc"]
    return {
        "income": float(scores["income_auc"]),
        "marital": float(scores["marital_auc"]),
        "val_income": max(val_auc),
        "best_epoch": int(val_auc.index(max(val_auc))) + 1,
        "epochs": len(val_auc),
        "seconds": time.perf_counter() - start,
        "examples_per_second": clock.examples_per_second(len(train)),
        # the strategy's weights in force after the last epoch (none without one)
        "weights": {
            t.name: float(history.history[f"{t.name}_weight"][-1])
            for t in tasks
            if f"{t.name}_weight" in history.history
        },
    }
