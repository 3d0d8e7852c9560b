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
`model.evaluate` on the time-based test split; median (min-max) over seeds
(`_harness.spread`). Training speed is examples/s of the training part of each
epoch (validation excluded), median over the epochs after the first.

Part 2, serving latency, on the multi-task model of the first seed:
`keras_mtl.export_dupn` to a temporary directory, the three SavedModels loaded
with plain `tf.saved_model.load`, and one request with 100 candidate movies
timed through `serving_default`: (a) the full model on 100 rows (the user's
inputs tiled), (b) `user_encoder` on 1 row, then `scorer` on 100 rows (the
representation tiled). Median and p90 over `--latency-calls` calls after a
warm-up; (a) and (b) must give the same `ctr` scores within 1e-5.

Sizes: `--units 64 --profile-units 64` (user representation 128, half the
paper's 128 + 128), attention and head MLPs of 64, `--max-len 50`, the
builder's embedding widths (item hash table 16384 x 32); width 64 rather than
the builder's default 128 keeps the default run (3 seeds) well under an hour on
2 cores (timings: docs/benchmarks.md). The mean-pooling model has no attention,
so its request-context embeddings get no gradient (the features are unused).

DUPN models run with XLA (item ids are hashed with integer arithmetic,
`int_hash_v1`). The default run compiles 18 models, fewer than the ~40 that
exhaust Linux's `vm.max_map_count` in one process, so everything runs in this
process. The contenders, their training and the serving check live in
`_dupn_contenders.py`.

Usage (from the repository root):

    python benchmarks/dupn_movielens.py [--seeds 0 1 2] [--units 64] [--skip-lstm]
    python benchmarks/dupn_movielens.py --quick   # generated data, seconds
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
warnings.filterwarnings("ignore", message="Your input ran out of data")
# Mean pooling has no attention, so the request context (the attention query)
# gets no gradient there; by design.
warnings.filterwarnings("ignore", message="Gradients do not exist for variables")

try:  # `python -m benchmarks.dupn_movielens`, or imported by the tests
    from benchmarks import _harness as h
    from benchmarks._dupn_contenders import (
        CONTENDERS,
        TASKS,
        serving_latency,
        train_and_test,
    )
except ImportError:  # `python benchmarks/dupn_movielens.py`
    import _harness as h
    from _dupn_contenders import CONTENDERS, TASKS, serving_latency, train_and_test

# TensorFlow, Keras and keras_mtl are imported inside the functions, so that
# `--help` stays fast.

DEFAULT_DATA = h.REPO_ROOT.parent / "shared" / "data" / "movielens-100k"
FIXTURE_WRITER = h.REPO_ROOT / "tests" / "movielens_fixture.py"
TASK_HEADERS = {"ctr": "ctr AUC", "l2r": "l2r NDCG@10", "genre": "genre AUC"}
MISSING = "—"

POPULARITY = "popularity (l2r only)"


# ----------------------------------------------------------------------------- data


def write_fixture(directory: Path) -> Path:
    """The generated MovieLens look-alike of the tests (`--quick` without data)."""
    spec = importlib.util.spec_from_file_location("movielens_fixture", FIXTURE_WRITER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.write_movielens(directory, num_users=40, num_items=60, seed=0)


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


# ----------------------------------------------------------------------------- output


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
            h.spread([r.metrics[t] for r in rs], "{:.4f}")
            if t in rs[0].metrics
            else MISSING
            for t in TASKS
        ]
        rows.append(
            [
                CONTENDERS[key][0],
                *task_cells,
                "/".join(f"{r.epochs} ({r.best_epoch})" for r in rs),
                h.spread([r.examples_per_s for r in rs]),
                f"{rs[0].parameters:,} ({rs[0].non_embedding:,})",
            ]
        )
    if popularity:
        rows.append(
            [
                POPULARITY,
                MISSING,
                h.spread(popularity, "{:.4f}", MISSING),
                *[MISSING] * 3,
                "0",
            ]
        )
    return h.markdown_table(header, rows)


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
            lines.append(
                f"- {TASK_HEADERS[task]}: multi-task − {label} = "
                f"{h.spread(diffs, '{:+.4f}')} (multi-task higher on "
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
    return h.markdown_table(
        ["SavedModel `serving_default`", "batch", "median ms", "p90 ms"],
        [
            [
                name,
                batch,
                f"{statistics.median(t):.2f}",
                f"{h.percentile(t, 90):.2f}",
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
    h.add_repo_to_path()
    began = time.perf_counter()
    meter = h.OtherCpuMeter().__enter__()

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
        for line in h.machine_lines():
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
        f"\n## Test metrics, median (min–max) over {len(args.seeds)} seed(s)\n\n"
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
    print("\nPaired by seed, median (min–max) over seeds:\n")
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

    h.warn_if_disturbed(results)
    meter.__exit__(None, None, None)
    total = time.perf_counter() - began
    print(
        f"\n- total runtime: {total:.0f} s ({total / 60:.1f} min); other processes "
        f"used {meter.cores:.2f} of {h.usable_cpus()} cores on average; load "
        f"average at end: {h.load_average()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
