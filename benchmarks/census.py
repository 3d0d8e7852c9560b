"""Census-income (MMoE paper group 1): accuracy of eight models, then PLE speed.

Part 1, accuracy. Tasks: income > 50K (main) and marital status "Never married"
(auxiliary); education and marital status are not inputs (`load_census`).
Only the UCI *test* file (99,762 rows) is available, so every seed draws its
own random 70/15/15 train/validation/test split of that file with
`split_frame(frame, (0.7, 0.15, 0.15), seed=seed)`. THIS IS NOT THE PAPERS'
SPLIT: they train on the official 199,523-row train file and split the test
file 1:1 into validation and test. The papers' numbers are printed next to
ours for orientation only.

Models (8 experts x 16 units + towers of 8 is MMoE's budget; the others are
sized to within about +-25% of its non-embedding parameters, shown per row):
single-task (`build_single_task`, one embedding set per task), shared-bottom,
cross-stitch, L2-constrained, OMoE, MMoE, CGC and PLE, plus PLE with the
builder's defaults (`build_ple(features, tasks)`). MMoE's matched configuration
*is* `build_mmoe(features, tasks)` (the defaults are the paper's 8 x 16 / 8),
so its row doubles as the defaults run. Requirement checked at the end: with
the defaults, MMoE and PLE reach test income AUC >= 0.93 and marital AUC >=
0.99 (mean over seeds; the worst seed is printed too).

Training: the builders' default compile (masked losses, masked AUC with 1000
thresholds, Adam) with `compile={"learning_rate": lr}`, batch 1024, training
rows reshuffled every epoch (`make_dataset(seed=seed)`), numeric features
standardised with the training part's mean/std, early stopping on the
validation income AUC (`val_income_auc`, mode max, best weights restored),
`--patience` 3, at most `--max-epochs` 30 (the MMoE paper tuned on the main
task's validation AUC). Test AUCs come from `model.evaluate` (`income_auc`,
`marital_auc`). Median (min-max) over `--seeds` seeds (`_harness.spread`).
Training speed of every model: training examples/s, the training rows over the
median epoch after the first (which compiles), from the start of an epoch to
the start of its validation; measured inside the accuracy runs, so it shares
their machine load (printed per run).
Every training runs in a fresh child process (`_harness.run_in_child`;
`--no-isolation` keeps them in this one): TensorFlow never frees XLA
executables, and about 40 compiled models in one process exhaust
`vm.max_map_count` (LLVM aborts: "Unable to allocate section memory").

Part 2, speed. `build_ple` (2 levels, 3 task + 2 shared experts of 16 units
per level, towers of 8: the PLE row of part 1) fed by
`make_dataset(shuffle=False)` against a hand-written plain Keras 3 PLE of the
same shape (one `Embedding(vocab + 1, 4)` per column, `Dense` experts,
`Dense` softmax gates, `Concatenate`/`Reshape`/`Dot` mixtures,
`jit_compile=True`) fed by `from_tensor_slices(...).batch().cache().prefetch()`
of ids coded up front (keras_mtl's model takes the census strings and looks them
up once, in its first `fit`), on all rows, in the same process; also the pair that reshuffles every epoch
(unless `--skip-shuffled`). Timing as in `benchmarks/mmoe_census.py`
(`_harness.fresh_model`): a fresh model per run, a warm-up epoch, then
`--epochs` timed epochs; median over `--repeats` alternated rounds; CPU time of
other processes printed per run. Requirement: keras_mtl / plain >= 0.90.

The models, the data and the training job live in `_census_models.py`.

Usage (from the repository root):

    python benchmarks/census.py [--seeds 3] [--models mmoe,ple] [--skip-speed]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
warnings.filterwarnings("ignore", message="Your input ran out of data")

try:  # `python -m benchmarks.census`, or imported by the tests
    from benchmarks import _census_accuracy as acc
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/census.py`: benchmarks/ is on sys.path
    import _census_accuracy as acc
    import _harness as h

# TensorFlow, Keras and keras_mtl come with `_census_models`, imported on first
# use (`_cm()`), so that `--help` is fast.

DEFAULT_DATA = acc.DEFAULT_DATA
SPLIT = (0.70, 0.15, 0.15)
REQUIRED_RATIO = 0.90
REFERENCE_MODEL = "mmoe"  # the parameter budget the others are sized to
#: Shape of both PLEs in the speed comparison (the "ple" row of part 1).
SPEED_PLE = {
    "num_levels": 2,
    "num_task_experts": 3,
    "num_shared_experts": 2,
    "expert_units": (16,),
    "tower_units": (8,),
}


def _cm():
    """`_census_models` (TensorFlow, Keras, keras_mtl), imported on first use."""
    try:
        from benchmarks import _census_models
    except ImportError:
        import _census_models
    return _census_models


def load_frame(path: Path, rows: int | None):
    """`(frame, tasks, real, description)`; the generated frame if `path` is absent."""
    frame, _, tasks, description = _cm().load_data(path, rows)
    return frame, tasks, path.exists(), description


def memory_maps() -> str:
    """Memory mappings of this process / the kernel's per-process limit."""
    try:
        with open("/proc/self/maps") as f:
            used = sum(1 for _ in f)
        with open("/proc/sys/vm/max_map_count") as f:
            limit = int(f.read())
    except OSError:
        return "unavailable"
    return f"{used:,} of vm.max_map_count {limit:,}"


# ----------------------------------------------------------------------------- accuracy


def _accuracy_runs(frame, tasks, args) -> dict:
    """Every model on every seed's split; one printed line per training."""
    from keras_mtl.data import split_frame

    run = h.run_in_child if args.isolate else (lambda fn, *a: fn(*a))
    results = {key: [] for key in args.models}
    for seed in range(args.seeds):
        train, val, test = split_frame(frame, SPLIT, seed=seed)
        for key in args.models:
            spec = acc.MODELS[key][1:]
            r = run(_cm().train_and_test, spec, train, val, test, tasks, seed, args)
            results[key].append(r)
            print(
                f"- seed {seed} `{key}`: test income AUC {r['income']:.4f}, "
                f"marital AUC {r['marital']:.4f} (val income {r['val_income']:.4f}, "
                f"best epoch {r['best_epoch']}/{r['epochs']}, {r['seconds']:.0f} s, "
                f"{r['examples_per_second']:,.0f} training examples/s), "
                f"load average {h.load_average()}",
                flush=True,
            )
    return results


def run_accuracy(frame, tasks, real: bool, args) -> dict:
    cm = _cm()
    keys = args.models
    # Parameter counts (a split's mean/std do not change them).
    counts = {}
    features = cm.census.census_features(frame)
    for key in keys:
        model = cm.build(acc.MODELS[key][1:], features, tasks, args.learning_rate)
        counts[key] = (model.count_params(), cm.non_embedding_params(model))
        del model
    budget = counts.get(REFERENCE_MODEL, (None, None))[1]

    fractions = "/".join(f"{round(f * 100)}" for f in SPLIT)
    print(
        f"\n## Accuracy: {len(keys)} model(s) x {args.seeds} seed(s), a fresh "
        f"{fractions} train/validation/test split per seed\n"
    )
    print(
        f"- split: `split_frame(frame, {SPLIT}, seed=seed)` of the {len(frame):,} "
        f"rows above, seeds 0..{args.seeds - 1}. NOT the papers' split (official "
        "199,523-row train file, test file halved into validation/test): that "
        "train file is absent."
    )
    print(
        f"- training: Adam lr {args.learning_rate}, batch {args.batch_size}, "
        f"reshuffled each epoch; early stopping on `val_income_auc` (max, "
        f"patience {args.patience}, best weights restored), at most "
        f"{args.max_epochs} epochs; test AUC from `model.evaluate` (masked AUC, "
        "1000 thresholds); "
        + ("each training in a fresh child process" if args.isolate else "in-process")
    )
    if not real:
        print(
            "- WARNING: GENERATED RANDOM DATA: the AUCs below are meaningless "
            "(labels carry no signal)."
        )
    print(flush=True)
    start = time.perf_counter()
    results = _accuracy_runs(frame, tasks, args)
    elapsed = time.perf_counter() - start

    baseline = results.get("single_task")
    rows = []
    for key in keys:
        rs = results[key]
        total, own = counts[key]
        share = f" ({own / budget:.2f}× MMoE)" if budget else ""
        gaps = [r["income"] - b["income"] for r, b in zip(rs, baseline or [])]
        rows.append(
            [
                acc.MODELS[key][0],
                acc.describe(key),
                f"{total:,}",
                f"{own:,}{share}",
                h.spread([r["income"] for r in rs], "{:.4f}"),
                h.spread([r["marital"] for r in rs], "{:.4f}"),
                f"{statistics.mean(r['best_epoch'] for r in rs):.1f} / "
                f"{statistics.mean(r['epochs'] for r in rs):.1f}",
                f"{statistics.mean(r['seconds'] for r in rs):.0f}",
                h.spread([r["examples_per_second"] for r in rs]),
                h.spread(gaps, "{:+.4f}"),
            ]
        )
    print(
        f"\n### Test AUC, median (min–max) over {args.seeds} seed(s) (our "
        f"{fractions} split of the UCI test file)\n"
    )
    if not real:
        print("**GENERATED DATA: these AUCs are meaningless.**\n")
    header = ["model", "builder", "params total", "params non-embedding"]
    header += ["income AUC", "marital AUC", "epochs best / run", "s per run"]
    header += ["training examples/s"]
    header += ["income Δ vs Single-Task, same splits"]
    print(h.markdown_table(header, rows))
    print(
        "\nEmbeddings (31 fields x 4) are shared by all tasks except in "
        "Single-Task, which has one set per task."
    )
    acc.print_papers(keys, results)
    acc.print_check(results, real, args)
    print(
        f"\n- accuracy runtime: {elapsed:.0f} s ({elapsed / 60:.1f} min) for "
        f"{len(keys) * args.seeds} trainings",
        flush=True,
    )
    return results


# ----------------------------------------------------------------------------- speed


def run_speed(frame, tasks, real: bool, args) -> dict:
    import keras_mtl as km

    cm = _cm()
    features = cm.census.census_features(frame)
    plain_shape = dict(SPEED_PLE, jit_compile=not args.no_xla)
    mine = cm.keras_mtl_ple(features, tasks, **SPEED_PLE)
    plain = cm.plain_ple(features, tasks, **plain_shape)
    counts = [(m.count_params(), cm.non_embedding_params(m)) for m in (mine, plain)]
    assert counts[0] == counts[1], (
        f"build_ple and the plain PLE differ in size (total, non-embedding): "
        f"{counts[0]} vs {counts[1]}"
    )
    print(
        f"\n## Training speed: `build_ple` vs plain Keras 3 PLE, {len(frame):,} rows, "
        f"batch {args.batch_size}\n"
    )
    print(
        f"- keras_mtl {km.__version__} from `{Path(km.__file__).parent}`; shape "
        f"{SPEED_PLE}; parameters equal in both (asserted): {counts[0][0]:,} total, "
        f"{counts[0][1]:,} non-embedding"
    )
    print(
        f"- timing: setup, 1 warm-up epoch, then {args.epochs} timed epochs; median "
        f"(min–max) of {args.repeats} alternated rounds (the order reversed every "
        "other round)\n",
        flush=True,
    )
    contenders = cm.pipeline_contenders(
        frame,
        features,
        tasks,
        lambda f, t: cm.plain_ple(f, t, **plain_shape),
        lambda f, t: cm.keras_mtl_ple(f, t, **SPEED_PLE),
        "build_ple",
        args,
        shuffled=not args.skip_shuffled,
    )
    start = time.perf_counter()
    runs = h.alternated_rounds(contenders, args.repeats)
    elapsed = time.perf_counter() - start

    print("\n" + h.throughput_table(contenders, runs, tasks, setup=False))
    h.warn_if_disturbed(runs)
    plain_auc = runs["plain"][-1].metrics.get("income_auc", math.nan)
    if real:
        learns = "yes" if plain_auc > 0.85 else "NO"
        print(
            f"\n- plain PLE learns (train income AUC {plain_auc:.3f} > 0.85): {learns}"
        )
    else:
        print(f"\n- plain PLE train income AUC {plain_auc:.3f} (generated data: ~0.5)")

    pairs = [("km", "plain", "no shuffle in either (the fair comparison)")]
    pairs += [("km_shuffled", "plain_shuffled", "both reshuffle every epoch")]
    print()
    for line in h.ratio_lines(runs, pairs, REQUIRED_RATIO, "RATIO keras_mtl / plain, "):
        print(line)
    print(
        f"\n- speed runtime: {elapsed:.0f} s; memory maps of this process: "
        f"{memory_maps()} (each XLA-compiled model keeps ~1-2k for the process's life)",
        flush=True,
    )
    return runs


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Models: " + ", ".join(acc.MODELS),
    )
    acc.add_job_arguments(parser, seeds=3, epochs=3, what="model")
    parser.add_argument(
        "--models",
        default=",".join(acc.MODELS),
        help="comma-separated subset of the models (default: all)",
    )
    parser.add_argument(
        "--skip-shuffled", action="store_true", help="speed: unshuffled pair only"
    )
    parser.add_argument(
        "--no-xla", action="store_true", help="speed: the plain PLE without XLA"
    )
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = [m for m in args.models if m not in acc.MODELS]
    if unknown or not args.models:
        parser.error(
            f"--models: unknown {unknown}; choose from {', '.join(acc.MODELS)}."
        )
    acc.check_job_arguments(parser, args)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    print("# Census-income (MMoE paper group 1): accuracy and PLE training speed\n")
    for line in h.machine_lines():
        print(line)
    frame, tasks, real, source = load_frame(args.data_path, args.rows)
    print(f"- data: {source}; {len(frame):,} rows")
    print(
        f"- tasks {[t.name for t in tasks]}: positive rates "
        + ", ".join(f"{t.name} {frame[t.label_column].mean():.3f}" for t in tasks)
        + "; inputs: 31 categorical (embedding 4) + 7 numeric columns; education "
        "and marital status excluded"
    )
    if not real:
        print(
            "\n**WARNING: GENERATED census-shaped RANDOM data (no real signal): "
            "every AUC below is meaningless; only shapes and timings count.**"
        )
    sys.stdout.flush()
    if not args.skip_accuracy:
        run_accuracy(frame, tasks, real, args)
    if not args.skip_speed:
        run_speed(frame, tasks, real, args)
    total = time.perf_counter() - start
    print(
        f"\n- total runtime: {total:.0f} s ({total / 60:.1f} min); load average at "
        f"end: {h.load_average()}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
