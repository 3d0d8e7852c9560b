"""Census-income: what each loss-weighting strategy gives, and what it costs per step.

One architecture (`--model`, MMoE with the builder's defaults unless told) on
the MMoE paper's group-1 tasks, income > 50K (main) and marital status "Never
married" (auxiliary), trained once per loss-weighting strategy: `None`
(`compile` without `loss_weighting`: Keras's Σ_k λ_k L_k) and every strategy
of `keras_mtl.weighting.STRATEGIES`, read from that dict when the script runs,
so a strategy added there joins without a change here (`--strategies` picks
some). The data, the split and the training job are `census.py`'s
(`_census_models.train_and_test`): per seed a random 70/15/15
train/validation/test split of the UCI census *test* file (NOT the papers'
split; see census.py), Adam, batch 1024, reshuffled every epoch, early stopping
on the validation income AUC (best weights restored); test AUCs from
`model.evaluate`. Without the file a generated census-shaped frame with random
labels is used: shapes and timings only, every AUC meaningless (a WARNING says
so). Each training runs in a fresh child process (`--no-isolation` keeps them in
this one), as census.py does.

Accuracy: each task's test AUC, median (min–max) over `--seeds` seeds
(`_harness.spread`, the harness's one spread: runs are few and their noise
lopsided); every strategy sees the same splits and initial weights per seed.
Also the weights in force at the end of training (`{task}_weight` of the last
epoch; "—" without a strategy).

Cost: every strategy's model is built, compiled and warmed up by one epoch first
(`_harness.warm_model`: the compilation happens there), all on the whole frame
fed by `make_dataset(shuffle=False)` (the same batches for all); then
`--repeats` alternated rounds (`_harness.alternated_rounds`: the listed order in
even rounds, reversed in odd ones) each train every model `--epochs` epochs.
Per strategy: training examples/s, median (min–max) over the rounds, the median
milliseconds per training step, and the step-time ratio to "fixed" (median
examples/s of "fixed" over the strategy's: 1.00 for "fixed" itself; "fixed" is
always timed, as the reference, even if `--strategies` leaves it out of the
accuracy part). Strategies that take per-task gradients (GradNorm, and the
gradient-surgery methods) pay for them here. The CPU time other processes took
during each round is printed; a WARNING flags disturbed rounds.

Usage (from the repository root):

    python benchmarks/weighting.py [--seeds 2] [--model mmoe] [--strategies none,fixed,gradnorm]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
warnings.filterwarnings("ignore", message="Your input ran out of data")

try:  # `python -m benchmarks.weighting`, or imported by the tests
    from benchmarks import _census_accuracy as acc
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/weighting.py`: benchmarks/ is on sys.path
    import _census_accuracy as acc
    import _harness as h

DEFAULT_DATA = acc.DEFAULT_DATA
DEFAULT_JSON = h.REPO_ROOT / "benchmarks" / "results" / "weighting.json"
SPLIT = (0.70, 0.15, 0.15)
#: The key of "no strategy" (`compile` without `loss_weighting`).
NONE = "none"
#: The strategy every other one's step time is compared with.
REFERENCE = "fixed"


def _cm():
    """`_census_models` (TensorFlow, Keras, keras_mtl), imported on first use."""
    try:
        from benchmarks import _census_models
    except ImportError:
        import _census_models
    return _census_models


def all_strategies() -> list[str]:
    """`none` and every name of `keras_mtl.weighting.STRATEGIES`, in its order."""
    h.add_repo_to_path()
    from keras_mtl.weighting import STRATEGIES

    return [NONE, *STRATEGIES]


def strategy_label(key: str) -> str:
    if key == NONE:
        return "None (Keras: Σ λ_k L_k)"
    from keras_mtl.weighting import STRATEGIES

    return f'"{key}" (`{STRATEGIES[key].__name__}`)'


def model_spec(name: str) -> tuple:
    """`(registry name, arguments)`: a census configuration of
    `_census_accuracy.MODELS` (e.g. "mmoe", "ple"), else a builder of the
    registry with its defaults."""
    if name in acc.MODELS:
        return acc.MODELS[name][1:]
    from keras_mtl.models import MODELS

    if name not in MODELS:
        raise SystemExit(
            f"--model: unknown {name!r}; choose a census configuration "
            f"({', '.join(acc.MODELS)}) or a builder ({', '.join(MODELS)})."
        )
    return (name, {})


# ----------------------------------------------------------------------------- accuracy


def run_accuracy(frame, tasks, spec, args) -> dict:
    """`{strategy: [result per seed]}` (`train_and_test`'s dicts)."""
    from keras_mtl.data import split_frame

    run = h.run_in_child if args.isolate else (lambda fn, *a: fn(*a))
    results = {key: [] for key in args.strategies}
    for seed in range(args.seeds):
        train, val, test = split_frame(frame, SPLIT, seed=seed)
        for key in args.strategies:
            weighting = None if key == NONE else key
            r = run(
                _cm().train_and_test,
                spec,
                train,
                val,
                test,
                tasks,
                seed,
                args,
                weighting,
            )
            results[key].append(r)
            print(
                f"- seed {seed} `{key}`: test "
                + ", ".join(f"{t.name} AUC {r[t.name]:.4f}" for t in tasks)
                + f" (best epoch {r['best_epoch']}/{r['epochs']}, "
                f"{r['seconds']:.0f} s), load average {h.load_average()}",
                flush=True,
            )
    return results


def final_weights(rs, tasks) -> str:
    """`w_income / w_marital` at the end of training, median over seeds."""
    if not rs or not rs[0].get("weights"):
        return "—"
    return " / ".join(
        f"{statistics.median(r['weights'][t.name] for r in rs):.2f}" for t in tasks
    )


# ----------------------------------------------------------------------------- cost


def speed_contenders(frame, tasks, spec, keys, args) -> list:
    """A warmed-up model per strategy on the whole frame (`_harness.warm_model`),
    built and warmed up here, before any timed round."""
    import keras

    import keras_mtl as km

    cm = _cm()
    features = cm.census.census_features(frame)
    ds = km.data.make_dataset(
        frame, features, tasks, batch_size=args.batch_size, shuffle=False
    )
    contenders = []
    for key in keys:
        keras.utils.set_random_seed(0)
        model = cm.build(
            spec, features, tasks, args.learning_rate, None if key == NONE else key
        )
        run = h.warm_model(model, ds, len(frame), args.epochs, args.batch_size, key)
        contenders.append(
            h.Contender(key, strategy_label(key), run, reference=REFERENCE)
        )
    return contenders


def step_ms(runs, rows: int, batch_size: int) -> float:
    """Median milliseconds per training step of some runs."""
    steps_per_epoch = -(-rows // batch_size)
    return statistics.median(
        1000.0 * r.seconds / (r.examples / rows * steps_per_epoch) for r in runs
    )


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Census configurations for --model: " + ", ".join(acc.MODELS),
    )
    acc.add_job_arguments(parser, seeds=2, epochs=2, what="strategy")
    parser.add_argument(
        "--model",
        default="mmoe",
        help="a census configuration of census.py (see below) or a builder name "
        "of the registry (its defaults). Default: %(default)s",
    )
    parser.add_argument(
        "--strategies",
        default=None,
        help=f"comma-separated: {NONE!r} (no strategy) and names of "
        "keras_mtl.weighting.STRATEGIES (default: all of them)",
    )
    parser.add_argument(
        "--json",
        default=str(DEFAULT_JSON),
        help="where to write the per-seed and per-round numbers (empty: nowhere). "
        "Default: %(default)s",
    )
    args = parser.parse_args(argv)
    acc.check_job_arguments(parser, args)
    return args


def _choose_strategies(args) -> None:
    known = all_strategies()
    if args.strategies is None:
        args.strategies = known
        return
    chosen = [s.strip() for s in args.strategies.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in known]
    if unknown or not chosen:
        raise SystemExit(
            f"--strategies: unknown {unknown}; choose from {', '.join(known)}."
        )
    args.strategies = list(dict.fromkeys(chosen))


def main(argv=None) -> int:
    args = parse_args(argv)
    _choose_strategies(args)
    spec = model_spec(args.model)
    started = time.perf_counter()
    cm = _cm()
    print("# Census-income: loss-weighting strategies, accuracy and step cost\n")
    for line in h.machine_lines():
        print(line)
    frame, _, tasks, source = cm.load_data(args.data_path, args.rows)
    real = args.data_path.exists()
    print(f"- data: {source}; {len(frame):,} rows")
    print(
        f"- tasks {[t.name for t in tasks]}: positive rates "
        + ", ".join(f"{t.name} {frame[t.label_column].mean():.3f}" for t in tasks)
    )
    arguments = "".join(f", {k}={v}" for k, v in spec[1].items())
    print(
        f"- model: `build_model({spec[0]!r}, features, tasks{arguments})`, Adam lr "
        f"{args.learning_rate}, batch {args.batch_size}"
    )
    print(f"- strategies: {', '.join(args.strategies)}")
    if not real:
        print(
            "\n**WARNING: GENERATED census-shaped RANDOM data (no real signal): "
            "every AUC below is meaningless; only shapes and timings count.**"
        )
    sys.stdout.flush()
    report = {"model": args.model, "rows": len(frame), "real_data": real}

    results = {}
    if not args.skip_accuracy:
        fractions = "/".join(f"{round(f * 100)}" for f in SPLIT)
        print(
            f"\n## Accuracy: {len(args.strategies)} strategies x {args.seeds} seed(s), "
            f"a fresh {fractions} split per seed (NOT the papers' split)\n"
        )
        print(
            f"- early stopping on `val_income_auc` (patience {args.patience}, best "
            f"weights restored), at most {args.max_epochs} epochs; "
            + (
                "each training in a fresh child process"
                if args.isolate
                else "in-process"
            )
            + "\n",
            flush=True,
        )
        start = time.perf_counter()
        results = run_accuracy(frame, tasks, spec, args)
        elapsed = time.perf_counter() - start
        print(f"\n### Test AUC, median (min–max) over {args.seeds} seed(s)\n")
        if not real:
            print("**GENERATED DATA: these AUCs are meaningless.**\n")
        header = ["strategy"] + [f"{t.name} AUC" for t in tasks]
        header += ["epochs best / run", "weights at the end"]
        rows = []
        for key in args.strategies:
            rs = results[key]
            rows.append(
                [strategy_label(key)]
                + [h.spread([r[t.name] for r in rs], "{:.4f}") for t in tasks]
                + [
                    f"{statistics.mean(r['best_epoch'] for r in rs):.1f} / "
                    f"{statistics.mean(r['epochs'] for r in rs):.1f}",
                    final_weights(rs, tasks),
                ]
            )
        print(h.markdown_table(header, rows))
        print(f"\n- accuracy runtime: {elapsed:.0f} s", flush=True)
        report["accuracy"] = results

    if not args.skip_speed:
        keys = list(args.strategies)
        if REFERENCE not in keys:
            keys.insert(0, REFERENCE)
        steps = -(-len(frame) // args.batch_size)
        print(
            f"\n## Step cost: {len(keys)} models on all {len(frame):,} rows, "
            f"batch {args.batch_size} ({steps} steps per epoch)\n"
        )
        print(
            f"- every model built and warmed up by one epoch first, then "
            f"{args.repeats} alternated round(s) of {args.epochs} epoch(s) each "
            "(the order reversed every other round); `make_dataset(shuffle=False)`\n",
            flush=True,
        )
        start = time.perf_counter()
        contenders = speed_contenders(frame, tasks, spec, keys, args)
        runs = h.alternated_rounds(contenders, args.repeats)
        elapsed = time.perf_counter() - start
        reference = h.median_speed(runs[REFERENCE])
        rows = []
        for c in contenders:
            rs = runs[c.key]
            rows.append(
                [
                    c.label,
                    str(rs[0].jit_compile),
                    h.spread([r.examples_per_s for r in rs]),
                    f"{step_ms(rs, len(frame), args.batch_size):.2f}",
                    f"{reference / h.median_speed(rs):.2f}",
                    f"{rs[0].first_epoch_s:.1f}",
                    f"{max(r.other_cores for r in rs):.2f}",
                ]
            )
        print()
        header = ["strategy", "jit", "training examples/s", "ms per step"]
        header += [f'step time ÷ "{REFERENCE}"', "warm-up epoch s"]
        print(h.markdown_table(header + ["other procs, cores (max)"], rows))
        h.warn_if_disturbed(runs)
        print(f"\n- cost runtime: {elapsed:.0f} s", flush=True)
        report["speed"] = {
            key: [
                {
                    "examples": r.examples,
                    "seconds": r.seconds,
                    "other_cores": r.other_cores,
                }
                for r in rs
            ]
            for key, rs in runs.items()
        }

    total = time.perf_counter() - started
    print(
        f"\n- total runtime: {total:.0f} s ({total / 60:.1f} min); load average at "
        f"end: {h.load_average()}"
    )
    if args.json:
        path = Path(args.json)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=1, default=float) + "\n")
        print(f"- numbers: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
