"""DUPN on MovieLens-100K: multi-task vs per-task vs mean pooling, then serving.

Part 1, accuracy. `keras_mtl.datasets.load_movielens` turns every rating into one
example (the user's earlier ratings as the behaviour sequence, the rated movie,
20 candidates = that movie and 19 popularity-sampled negatives, profile and
request context), split by time 80/10/10. Three tasks: `ctr` (rating >= 4,
AUC), `l2r` (rank the 20 candidates, keras-rs NDCG@10) and `genre` (the next
movie's genres, micro one-vs-rest AUC). Contenders, all `keras_mtl.build_dupn`
with the same sizes, data, optimizer and seed:

- DUPN multi-task: all three tasks, property-gated LSTM, attention pooling
  with the request and profile as query (the paper's architecture);
- DUPN per task: the same architecture trained on one task at a time (three
  models; each has only the inputs its task needs);
- mean pooling multi-task: no LSTM, no attention (`cell="none"`,
  `pooling="mean"`: a per-step dense layer and a masked mean);
- standard LSTM multi-task (`cell="lstm"`, attention pooling), unless
  `--skip-lstm`;
- popularity (l2r only, no training): candidates scored by their number of
  ratings in the train period, NDCG@10 with the same keras-rs metric.

Training: the builder's compile (Adam, `--learning-rate` 1e-3), batch 512,
training rows reshuffled every epoch, at most `--epochs` epochs with early
stopping on the validation loss (patience 1, best weights restored); a
per-task model watches its own loss (its only one). The seed drives
`keras.utils.set_random_seed`, the shuffling and the loader's negative
sampling (so the candidate lists differ between seeds). Test metrics come from
`model.evaluate` on the time-based test split; mean +- sample std over seeds.
Training speed is examples/s of the training part of each epoch (validation
excluded), median over the epochs after the first.

Part 2, serving latency, on the multi-task model of the first seed:
`keras_mtl.export_dupn` to a temporary directory, the three SavedModels loaded
with plain `tf.saved_model.load`, and one request with 100 candidate movies
timed through `serving_default`: (a) the full model on 100 rows (the user's
inputs tiled), (b) `user_encoder` on 1 row, then `scorer` on 100 rows (the
representation tiled). Median and p90 over `--latency-calls` calls after a
warm-up; (a) and (b) must give the same `ctr` scores within 1e-5.

Sizes: `--units 64 --profile-units 64` (user representation 128, half the
paper's 128 + 128), attention and head MLPs of 64, `--max-len 50`, the
builder's embedding widths (item hash table 16384 x 32). On the 2-core
development machine a multi-task epoch (78k examples) takes ~27 s at width 64
when the machine is quiet (~77 s at the builder's default 128), and one seed
of all contenders ~10 min, so the default run (3 seeds) stays within ~40 min
even with some competing load. The mean-pooling model has no attention, so
its request-context embeddings get no gradient (the features are unused).

DUPN models run with XLA (item ids are hashed with integer arithmetic,
`int_hash_v1`). The default run compiles 18 models, fewer than the ~40 that
exhaust Linux's `vm.max_map_count` in one process, so everything runs in this
process.

Usage (from the repository root):

    python benchmarks/dupn_movielens.py [--seeds 0 1 2] [--units 64] [--skip-lstm]
    python benchmarks/dupn_movielens.py --quick   # generated data, seconds
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
warnings.filterwarnings("ignore", message="Your input ran out of data")
# Mean pooling has no attention, so the request context (the attention query)
# gets no gradient there; by design.
warnings.filterwarnings("ignore", message="Gradients do not exist for variables")

try:  # `python -m benchmarks.dupn_movielens`, or imported by the tests
    from benchmarks import _common
except ImportError:  # `python benchmarks/dupn_movielens.py`
    import _common

# TensorFlow, Keras and keras_mtl are imported inside the functions, so that
# `--help` stays fast.

DEFAULT_DATA = _common.REPO_ROOT.parent / "shared" / "data" / "movielens-100k"
FIXTURE_WRITER = _common.REPO_ROOT / "tests" / "movielens_fixture.py"
TASKS = ("ctr", "l2r", "genre")
TASK_HEADERS = {"ctr": "ctr AUC", "l2r": "l2r NDCG@10", "genre": "genre AUC"}
EMBEDDING_LAYERS = (
    "item_embedding",
    "property_embedding",
    "profile_encoder",
    "query_encoder",
)
SERVING_CANDIDATES = 100
MISSING = "—"

#: key -> (table label, build_dupn encoder arguments, tasks).
CONTENDERS = {
    "dupn": (
        "DUPN multi-task",
        {"cell": "property_gated", "pooling": "attention"},
        TASKS,
    ),
    **{
        f"dupn_{task}": (
            f"DUPN per task: {task}",
            {"cell": "property_gated", "pooling": "attention"},
            (task,),
        )
        for task in TASKS
    },
    "mean": ("mean pooling multi-task", {"cell": "none", "pooling": "mean"}, TASKS),
    "lstm": (
        "standard LSTM multi-task",
        {"cell": "lstm", "pooling": "attention"},
        TASKS,
    ),
}
POPULARITY = "popularity (l2r only)"


@dataclasses.dataclass
class Result:
    """One trained contender on one seed."""

    metrics: dict  # task name -> test metric
    epochs: int
    best_epoch: int
    examples_per_s: float
    parameters: int
    non_embedding: int
    seconds: float
    other_cores: float  # CPU used by other processes during the training


# ----------------------------------------------------------------------------- data


def write_fixture(directory: Path) -> Path:
    """The generated MovieLens look-alike of the tests (`--quick` without data)."""
    spec = importlib.util.spec_from_file_location("movielens_fixture", FIXTURE_WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_movielens(directory, num_users=40, num_items=60, seed=0)


def input_names(feature) -> list[str]:
    names = getattr(feature, "input_names", None)
    return list(names) if names is not None else [feature.name]


def model_features(model, features) -> list:
    """The features whose inputs the model takes (a genre-only DUPN has no
    target item and no candidates)."""
    wanted = set(model.input)
    return [f for f in features if set(input_names(f)) & wanted]


def random_ndcg(list_size: int, k: int) -> float:
    """Expected NDCG@k of a random order with one relevant item in the list."""
    import math

    return sum(1.0 / math.log2(r + 1) for r in range(1, k + 1)) / list_size


def popularity_ndcg(ml) -> float:
    """Test NDCG@10 of scoring each candidate by its train-period rating count."""
    import keras_rs
    import numpy as np

    scores = ml.popularity.astype(np.float32)[ml.test["candidates_item"]]
    metric = keras_rs.metrics.NDCG(k=10)
    metric.update_state(ml.test["relevance"], scores)
    return float(metric.result())


# ----------------------------------------------------------------------------- training


def _epoch_timer():
    import keras

    class EpochTimer(keras.callbacks.Callback):
        """Seconds of the training part of each epoch (validation excluded)."""

        def __init__(self):
            super().__init__()
            self.seconds = []
            self._start = None

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_test_begin(self, logs=None):
            if self._start is not None:  # validation inside fit
                self.seconds.append(time.perf_counter() - self._start)
                self._start = None

        def on_epoch_end(self, epoch, logs=None):
            if self._start is not None:  # no validation data
                self.seconds.append(time.perf_counter() - self._start)
                self._start = None

    return EpochTimer()


def build(key: str, ml, args):
    import keras_mtl as km

    _, encoder, task_names = CONTENDERS[key]
    tasks = [t for t in ml.tasks if t.name in task_names]
    ranking = any(t.type == "ranking" for t in tasks)
    # MovieLens's one feature list, less what a per-task model has no task
    # for (build_dupn rejects unused inputs): the candidate list without a
    # ranking task, the target item without the ctr task.
    scores_item = any(t.name == "ctr" for t in tasks)
    features = [
        f
        for f in ml.features
        if (f is not ml.candidates or ranking) and (f not in ml.item or scores_item)
    ]
    model = km.build_dupn(
        features,
        tasks,
        query=ml.query,
        units=args.units,
        profile_units=args.profile_units,
        attention_units=args.attention_units,
        tower_units=args.tower_units,
        compile={"learning_rate": args.learning_rate},
        name=key,
        **encoder,
    )
    return model, tasks


def embedding_parameters(model) -> int:
    total = 0
    for name in EMBEDDING_LAYERS:
        try:
            total += model.get_layer(name).count_params()
        except ValueError:
            pass
    return total


def train_and_test(key: str, ml, seed: int, args):
    """Train one contender with early stopping, evaluate it on the test split."""
    import keras

    from keras_mtl.data import make_dataset
    from keras_mtl.training import METRIC_NAMES

    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    model, tasks = build(key, ml, args)
    features = model_features(model, ml.features)
    batch = args.batch_size
    train = make_dataset(ml.train, features, tasks, batch, shuffle=True, seed=seed)
    val = make_dataset(ml.val, features, tasks, batch, shuffle=False)
    test = make_dataset(ml.test, features, tasks, batch, shuffle=False)
    timer = _epoch_timer()
    stop = keras.callbacks.EarlyStopping(
        monitor="val_loss", mode="min", patience=1, restore_best_weights=True
    )
    with _common.OtherCpuMeter() as others:
        history = model.fit(
            train,
            validation_data=val,
            epochs=args.epochs,
            callbacks=[timer, stop],
            verbose=0,
        )
    scores = model.evaluate(test, return_dict=True, verbose=0)
    rows = len(ml.train["item"])
    later = timer.seconds[1:] or timer.seconds  # one epoch: that one
    total = model.count_params()
    # Keras names a single-output model's metric without the output's name.
    metrics = {
        t.name: float(
            scores.get(f"{t.name}_{METRIC_NAMES[t.type]}", scores[METRIC_NAMES[t.type]])
            if len(tasks) == 1
            else scores[f"{t.name}_{METRIC_NAMES[t.type]}"]
        )
        for t in tasks
    }
    result = Result(
        metrics=metrics,
        epochs=len(history.history["loss"]),
        best_epoch=int(stop.best_epoch) + 1,
        examples_per_s=rows / statistics.median(later),
        parameters=total,
        non_embedding=total - embedding_parameters(model),
        seconds=time.perf_counter() - start,
        other_cores=others.cores,
    )
    return result, model


# ----------------------------------------------------------------------------- serving


def serving_latency(model, ml, calls: int, warmup: int) -> dict:
    """Time one request with `SERVING_CANDIDATES` candidates through the exports.

    Returns `{"full": [ms...], "split": [...], "encoder": [...], "scorer":
    [...], "max_abs_diff": float, "candidates": int}`.
    """
    import numpy as np
    import tensorflow as tf

    import keras_mtl as km

    n = SERVING_CANDIDATES
    test = ml.test
    # The request: the first test example's user, history and context. The
    # candidates: movies of the test candidate lists, in order (repeated if the
    # data holds fewer), with their genres and year.
    request = {k: np.asarray(v[:1]) for k, v in test.items()}
    items = np.resize(test["candidates_item"].reshape(-1), n)
    genres_flat = test["candidates_genres"].reshape(-1, test["genres"].shape[-1])
    genres = genres_flat[np.resize(np.arange(len(genres_flat)), n)]
    years = np.resize(test["candidates_year"].reshape(-1), n)
    candidate = {"item": items, "genres": genres, "year": years}

    def tiled(name):
        return np.repeat(request[name], n, axis=0)

    with tempfile.TemporaryDirectory(prefix="dupn_serving_") as tmp:
        paths = km.export_dupn(model, tmp)
        loaded = {k: tf.saved_model.load(str(p)) for k, p in paths.items()}
        full, encoder, scorer = (
            loaded[k].signatures["serving_default"]
            for k in ("full", "user_encoder", "scorer")
        )

        def names(fn):
            return list(fn.structured_input_signature[1])

        full_x = {
            k: tf.constant(candidate[k] if k in candidate else tiled(k))
            for k in names(full)
        }
        encoder_x = {k: tf.constant(request[k]) for k in names(encoder)}
        scorer_rest = {
            k: tf.constant(candidate[k] if k in candidate else tiled(k))
            for k in names(scorer)
            if k != "user_representation"
        }

        def split():
            user = encoder(**encoder_x)["user_representation"]
            rep = tf.repeat(user, n, axis=0)
            return scorer(user_representation=rep, **scorer_rest)

        diff = float(
            np.max(np.abs(full(**full_x)["ctr"].numpy() - split()["ctr"].numpy()))
        )
        user = encoder(**encoder_x)["user_representation"]
        scorer_x = dict(scorer_rest, user_representation=tf.repeat(user, n, axis=0))
        times = {}
        for key, fn in (
            ("full", lambda: full(**full_x)),
            ("split", split),
            ("encoder", lambda: encoder(**encoder_x)),
            ("scorer", lambda: scorer(**scorer_x)),
        ):
            times[key] = _common.time_calls(fn, calls, warmup)
    return {**times, "max_abs_diff": diff, "candidates": n}


# ----------------------------------------------------------------------------- output


def mean_std(values, fmt: str = "{:.4f}") -> str:
    values = list(values)
    if not values:
        return MISSING
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{fmt.format(statistics.mean(values))} ± {fmt.format(std)}"


def results_table(keys, results: dict, popularity: list) -> str:
    header = [
        "contender",
        *(TASK_HEADERS[t] for t in TASKS),
        "epochs (best)",
        "train examples/s",
        "parameters (non-embedding)",
    ]
    rows = []
    for key in keys:
        rs = results[key]
        task_cells = [
            mean_std(r.metrics[t] for r in rs) if t in rs[0].metrics else MISSING
            for t in TASKS
        ]
        rows.append(
            [
                CONTENDERS[key][0],
                *task_cells,
                "/".join(f"{r.epochs} ({r.best_epoch})" for r in rs),
                _common.median_range([r.examples_per_s for r in rs]),
                f"{rs[0].parameters:,} ({rs[0].non_embedding:,})",
            ]
        )
    if popularity:
        rows.append(
            [POPULARITY, MISSING, mean_std(popularity), MISSING, MISSING, MISSING, "0"]
        )
    return _common.markdown_table(header, rows)


def paired_lines(results: dict) -> list[str]:
    """Multi-task minus each alternative, per task, paired by seed."""
    lines = []
    base = results["dupn"]
    for task in TASKS:
        for other, label in ((f"dupn_{task}", "per-task"), ("mean", "mean pooling")):
            if other not in results:
                continue
            diffs = [
                a.metrics[task] - b.metrics[task] for a, b in zip(base, results[other])
            ]
            wins = sum(d > 0 for d in diffs)
            std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
            lines.append(
                f"- {TASK_HEADERS[task]}: multi-task − {label} = "
                f"{statistics.mean(diffs):+.4f} ± {std:.4f} (multi-task higher on "
                f"{wins}/{len(diffs)} seeds)"
            )
    return lines


def latency_table(latency: dict) -> str:
    n = latency["candidates"]
    rows = [
        ["(a) full model", f"{n} rows", latency["full"]],
        ["(b) user_encoder + scorer", f"1 + {n} rows", latency["split"]],
        ["user_encoder alone", "1 row", latency["encoder"]],
        ["scorer alone", f"{n} rows", latency["scorer"]],
    ]
    return _common.markdown_table(
        ["SavedModel `serving_default`", "batch", "median ms", "p90 ms"],
        [
            [
                name,
                batch,
                f"{statistics.median(t):.2f}",
                f"{_common.percentile(t, 90):.2f}",
            ]
            for name, batch, t in rows
        ],
    )


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-path",
        type=Path,
        default=None,
        help=f"ml-100k directory or zip (default {DEFAULT_DATA}; with --quick, "
        "the generated fixture)",
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--units", type=int, default=None, help="LSTM width (64)")
    parser.add_argument(
        "--profile-units", type=int, default=None, help="profile vector width (64)"
    )
    parser.add_argument(
        "--attention-units", type=int, default=None, help="attention MLP (64)"
    )
    parser.add_argument(
        "--tower-units", default=None, help="hidden widths of every head (64)"
    )
    parser.add_argument("--max-len", type=int, default=None, help="history (50)")
    parser.add_argument("--epochs", type=int, default=None, help="at most (4)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--skip-lstm", action="store_true")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--latency-calls", type=int, default=None, help="(50)")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: generated data (unless --data-path), tiny sizes, one "
        "epoch, seed 0, no LSTM row",
    )
    args = parser.parse_args(argv)
    # Defaults, full run / --quick; explicit flags win over both.
    defaults = {
        "units": (64, 8),
        "profile_units": (64, 8),
        "attention_units": (64, 8),
        "tower_units": ("64", "8"),
        "max_len": (50, 8),
        "epochs": (4, 1),
        "latency_calls": (50, 5),
    }
    for name, (full, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else full)
    args.tower_units = tuple(int(u) for u in str(args.tower_units).split(",") if u)
    if args.quick:
        if args.seeds == [0, 1, 2]:
            args.seeds = [0]
        args.skip_lstm = True
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    _common.add_repo_to_path()
    began = time.perf_counter()
    meter = _common.OtherCpuMeter().__enter__()

    import keras
    import tensorflow as tf

    from keras_mtl.datasets import load_movielens

    tf.get_logger().setLevel("ERROR")  # retracing notes: one tf.function per model

    with tempfile.TemporaryDirectory(prefix="dupn_fixture_") as tmp:
        path = args.data_path
        generated = False
        if path is None and args.quick:
            path, generated = write_fixture(Path(tmp)), True
        elif path is None:
            path = DEFAULT_DATA
        keys = [k for k in CONTENDERS if not (k == "lstm" and args.skip_lstm)]

        print("# DUPN on MovieLens-100K\n")
        for line in _common.machine_lines():
            print(line)
        data = "GENERATED MovieLens look-alike (tests/movielens_fixture.py)"
        print(f"- data: {data if generated else path}")
        print(
            f"- sizes: units={args.units}, profile_units={args.profile_units} "
            f"(user representation {args.units + args.profile_units}), "
            f"attention_units={args.attention_units}, tower_units={args.tower_units}, "
            f"max_len={args.max_len}, list_size=20"
        )
        print(
            f"- training: Adam {args.learning_rate:g}, batch {args.batch_size}, at "
            f"most {args.epochs} epochs, early stopping on val loss (patience 1, "
            f"best weights restored); seeds {args.seeds}; Keras "
            f"{keras.__version__}, XLA (integer-hashed item ids)"
        )
        sys.stdout.flush()

        results = {k: [] for k in keys}
        popularity, latency = [], None
        for seed in args.seeds:
            ml = load_movielens(path, max_len=args.max_len, seed=seed)
            sizes = ", ".join(
                f"{len(s['item']):,} {n}"
                for n, s in (("train", ml.train), ("val", ml.val), ("test", ml.test))
            )
            print(f"\n## seed {seed}: {sizes} examples\n", flush=True)
            for key in keys:
                result, model = train_and_test(key, ml, seed, args)
                results[key].append(result)
                scores = ", ".join(f"{t} {v:.4f}" for t, v in result.metrics.items())
                print(
                    f"- {CONTENDERS[key][0]}: {scores}; {result.epochs} epochs "
                    f"(best {result.best_epoch}), {result.examples_per_s:,.0f} "
                    f"examples/s, {result.seconds:.0f} s, other processes "
                    f"{result.other_cores:.2f} cores",
                    flush=True,
                )
                if key == "dupn" and latency is None and not args.skip_latency:
                    latency = serving_latency(
                        model,
                        ml,
                        args.latency_calls,
                        warmup=max(2, args.latency_calls // 5),
                    )
                del model
            popularity.append(popularity_ndcg(ml))
            print(f"- {POPULARITY}: l2r {popularity[-1]:.4f}", flush=True)

    print(
        f"\n## Test metrics, mean ± std over {len(args.seeds)} seed(s)\n\n"
        f"Time-based test split; epochs trained per seed (best epoch); train "
        f"examples/s median over seeds (min–max) of each run's median epoch after "
        f"the first; parameters total (without the embedding tables).\n"
    )
    print(results_table(keys, results, popularity))
    print(
        f"\nA random order of the 20 candidates has expected NDCG@10 "
        f"{random_ndcg(20, 10):.4f}; the negatives are sampled by train-period "
        "popularity, which makes popularity a weak ranker here by design."
    )
    print("\nPaired by seed:\n")
    for line in paired_lines(results):
        print(line)

    if latency is not None:
        print(
            f"\n## Serving latency, one request with {latency['candidates']} "
            f"candidates (seed {args.seeds[0]} multi-task model)\n\n"
            f"Plain `tf.saved_model.load` of the `export_dupn` output; median and "
            f"p90 over {args.latency_calls} calls after a warm-up.\n"
        )
        print(latency_table(latency))
        same = latency["max_abs_diff"] <= 1e-5
        print(
            f"\nctr scores of (a) and (b): max |difference| "
            f"{latency['max_abs_diff']:.2e}: "
            f"{'EQUAL within 1e-5' if same else 'DIFFERENT (> 1e-5)'}"
        )

    _common.warn_if_disturbed(results)
    meter.__exit__(None, None, None)
    total = time.perf_counter() - began
    print(
        f"\n- total runtime: {total:.0f} s ({total / 60:.1f} min); other processes "
        f"used {meter.cores:.2f} of {_common.usable_cpus()} cores on average; load "
        f"average at end: {_common.load_average()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
