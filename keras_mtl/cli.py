"""`keras-mtl` command line: train a model on built-in data and export it."""

from __future__ import annotations

import contextlib
import os
import sys
import time

import numpy as np

from keras_mtl.models.registry import build_model, get_builder, model_names

#: The built-in data sets and the kind of data each holds (see
#: `keras_mtl.models.registry.DATA_KINDS`).
DATASETS = {
    "synthetic": "flat",
    "census": "flat",
    "funnel": "funnel",
    "movielens": "sequence",
    "multi_domain": "multi_domain",
}
#: How the error for a model on the wrong data describes what it reads.
_READS = {
    "flat": "reads flat features",
    "funnel": "models a click -> conversion funnel",
    "sequence": "reads behaviour sequences",
    "multi_domain": "needs each row's domain",
}


def build_parser():
    """The `keras-mtl` argument parser (`keras_mtl_cli.build_parser`, which
    needs no TensorFlow)."""
    import keras_mtl_cli

    return keras_mtl_cli.build_parser()


def load_data(args):
    """`(splits, features, tasks, movielens)` for the chosen data set and model.

    `splits` is `(train, val, test)`: a seeded 80/10/10 split, or MovieLens's
    time-based split (with `--since` / `--until` applied to train), whose
    `MovieLensSequences` is returned too (None for the other data sets).
    """
    import keras_mtl as km
    from keras_mtl import data, datasets

    spec = get_builder(args.model)
    check_model_data(spec, args.data)
    if (args.since or args.until) and args.data != "movielens":
        raise SystemExit("keras-mtl: --since / --until apply to --data movielens.")
    if args.data == "movielens":
        with missing_data_file(args):
            movielens = datasets.load_movielens(args.data_path, seed=args.seed)
        train = window(movielens.train, args.since, args.until)
        splits = (train, movielens.val, movielens.test)
        return splits, movielens.features, movielens.tasks, movielens
    if args.data == "synthetic":
        synthetic = datasets.make_synthetic(
            num_examples=args.num_examples or 50_000,
            correlation=args.correlation,
            seed=args.seed,
        )
        frame, features, tasks = synthetic.data, synthetic.features, synthetic.tasks
    elif args.data == "census":
        with missing_data_file(args):
            census = datasets.load_census(args.data_path)
        frame, features, tasks = census.frame, census.features, census.tasks
    elif args.data == "multi_domain":
        md = datasets.make_multi_domain(
            num_examples=args.num_examples or 100_000, seed=args.seed
        )
        # The true click probability rides along for the per-domain report.
        frame = {**md.data, "true_ctr": md.true_ctr}
        features, tasks = md.features, md.tasks
    else:
        funnel = datasets.make_funnel(
            num_impressions=args.num_examples or 200_000, seed=args.seed
        )
        # The true pCVR rides along (make_dataset ignores extra columns) so that
        # the test report can compare the model's pCVR with it.
        frame, features = funnel.frame.assign(true_cvr=funnel.true_cvr), funnel.features
        # Models without a funnel structure get independent heads, CVR trained
        # on clicked impressions only.
        tasks = (spec.preset_tasks or km.funnel_tasks)()
    splits = data.split_frame(frame, (0.8, 0.1, 0.1), seed=args.seed)
    return splits, features, tasks, None


@contextlib.contextmanager
def missing_data_file(args):
    """Exit with code 2 and one line, naming the path and where the data comes
    from, when `--data-path` names a file or directory that is not there."""
    try:
        yield
    except FileNotFoundError as error:
        if args.data_path is None:
            raise
        from keras_mtl.datasets.census import CENSUS_URL
        from keras_mtl.datasets.movielens.reader import URL as MOVIELENS_URL

        source = {"census": CENSUS_URL, "movielens": MOVIELENS_URL}[args.data]
        print(
            f"keras-mtl: {' '.join(str(error).split())} Leave out --data-path to "
            f"download the data, or get it from {source}",
            file=sys.stderr,
        )
        raise SystemExit(2) from None


def window(rows: dict, since: str | None, until: str | None) -> dict:
    """The rows of a MovieLens split whose target time is in [since, until)."""
    import numpy as np

    keep = np.ones(len(rows["timestamp"]), dtype=bool)
    for day, after in ((since, True), (until, False)):
        if day is None:
            continue
        try:
            seconds = np.datetime64(day, "s").astype("int64")
        except ValueError as error:
            raise SystemExit(f"keras-mtl: {day!r} is not a YYYY-MM-DD date.") from error
        keep &= rows["timestamp"] >= seconds if after else rows["timestamp"] < seconds
    if not keep.any():
        raise SystemExit(
            f"keras-mtl: no training interactions between --since {since} and "
            f"--until {until}."
        )
    return {k: v[keep] for k, v in rows.items()}


def check_model_data(spec, data: str) -> None:
    """Exit with a message naming what fits when `--model` cannot read `--data`."""
    if spec.reads(DATASETS[data]):
        return
    fitting = [d for d, kind in DATASETS.items() if spec.reads(kind)]
    raise SystemExit(
        f"keras-mtl: --model {spec.name} {_READS[spec.data]}; use --data "
        f"{' or '.join(fitting)} (--data {data} suits "
        f"{', '.join(model_names(data=DATASETS[data]))})."
    )


def task_key(logs: dict, task: str, metric: str, prefix: str = "") -> str:
    """The logs' key of a task's metric: `<prefix><task>_<metric>`, or
    `<prefix><metric>` for a model with one task (Keras names a single
    output's metrics without the output's name)."""
    key = f"{prefix}{task}_{metric}"
    return key if key in logs else f"{prefix}{metric}"


def print_metrics(title: str, logs: dict, tasks) -> dict:
    """Print and return each task's default metric from `evaluate` logs."""
    from keras_mtl.training import METRIC_NAMES

    print(f"\n{title}:")
    results = {}
    for task in tasks:
        metric = METRIC_NAMES[task.type]
        results[task.name] = logs[task_key(logs, task.name, metric)]
        where = " (clicked impressions)" if task.given else ""
        print(f"  {task.name:<12} {metric.upper():<10} {results[task.name]:.4f}{where}")
    return results


def train(args) -> dict:
    import keras

    import keras_mtl as km
    from keras_mtl.data import make_dataset
    from keras_mtl.training import METRIC_NAMES, ProgressLogger

    callbacks = backup_callbacks(args)  # (refuses a backup of other options)
    keras.utils.set_random_seed(args.seed)
    (train_rows, val_rows, test_rows), features, tasks, movielens = load_data(args)

    def dataset(rows, shuffle):
        return make_dataset(
            rows, features, tasks, args.batch_size, shuffle=shuffle, seed=args.seed
        )

    compile = {
        "learning_rate": args.learning_rate,
        "loss_weighting": args.loss_weighting,
    }
    # MovieLens's request context (hour, weekday) is DUPN's attention query.
    roles = {"query": movielens.query} if movielens is not None else {}
    if get_builder(args.model).data == "multi_domain":
        roles["domain"] = "domain"  # make_multi_domain's domain feature
    model = build_model(args.model, features, tasks, compile=compile, **roles)
    num_train = len(
        next(iter(train_rows.values())) if isinstance(train_rows, dict) else train_rows
    )
    train_data = dataset(train_rows, True)
    # "auto" decides XLA at fit, from the run's length: the same decision here.
    jit = model.choose_jit_compile(len(train_data), args.epochs)
    print(
        f"{args.model} on {args.data}: {num_train} train rows, "
        f"{model.count_params():,} parameters, XLA {'on' if jit else 'off'}, "
        f"loss weighting {args.loss_weighting or 'Task.loss_weight'}, "
        f"backend {keras.backend.backend()}"
    )
    # Outside a terminal: a line at least every 30 s and one per epoch; in
    # one: Keras's progress bar. Both: how long tracing and compiling took.
    progress = ProgressLogger()
    results = {}
    if args.warm_start:
        loaded = km.warm_start(model, args.warm_start)
        print(f"warm start: {loaded['loaded']} variables from {args.warm_start}")
        logs = model.evaluate(
            dataset(val_rows, False), return_dict=True, verbose=0, callbacks=[progress]
        )
        results["before_training"] = print_metrics(
            "validation metrics of the warm-started model, before training", logs, tasks
        )
    start = time.perf_counter()
    val_data = dataset(val_rows, False)
    history = model.fit(
        train_data,
        validation_data=val_data,
        epochs=args.epochs,
        verbose=1 if sys.stdout.isatty() else 0,
        callbacks=[progress, *callbacks],
    )
    seconds = time.perf_counter() - start
    logs = history.history
    if not logs:  # resumed after the last epoch: nothing left to train
        logs = {
            k: [v]
            for k, v in model.evaluate(val_data, return_dict=True, verbose=0).items()
        }
        logs = {f"val_{k}": v for k, v in logs.items()}
    results["validation"] = {
        t.name: logs[task_key(logs, t.name, METRIC_NAMES[t.type], "val_")][-1]
        for t in tasks
    }
    if model.loss_weighting is not None:
        weights = model.loss_weighting.weights_in_force()
        results["task_weights"] = weights
        print(
            "final task weights: "
            + ", ".join(f"{t} {w:.4f}" for t, w in weights.items())
        )
    logs = model.evaluate(
        dataset(test_rows, False), return_dict=True, verbose=0, callbacks=[progress]
    )
    results.update(
        print_metrics(f"held-out test metrics (trained {seconds:.1f} s)", logs, tasks)
    )
    if args.gate_plot:
        results["gate_plot"] = save_gate_plot(
            model, dataset(test_rows, False), args.gate_plot, args
        )
    if "true_cvr" in test_rows and "cvr" in model.output:
        results["cvr_vs_truth"] = report_cvr_truth(model, test_rows, features)
    if args.data == "multi_domain":
        results["domains"] = report_domains(model, test_rows, features)
    if not args.no_export:
        export_dir = args.export_dir or os.path.join(
            "saved_models", f"{args.model}-{args.data}"
        )
        # Warm-up requests: real rows of the test split, as TF Serving gets them.
        head = (
            test_rows.iloc[:8]
            if hasattr(test_rows, "iloc")
            else {k: v[:8] for k, v in test_rows.items()}
        )
        rows = next(iter(make_dataset(head, features, None, 8, shuffle=False)))
        warmup = [{k: np.asarray(v) for k, v in rows.items()}]
        if args.model == "dupn":
            # MovieLens is served raw: timestamps in, hour / weekday / gaps
            # derived in the graph.
            from keras_mtl.serving.signatures import raw_inputs

            times = km.layers.TimeFeatures(**movielens.time_features)
            raw = raw_inputs(times, times.sources)
            warmup[0].update({n: np.asarray(head[n]) for n in raw})
            paths = km.export_dupn(
                model, export_dir, warmup_requests=warmup, preprocessor=times
            )
            encoder, scorer = km.dupn_serving_models(model)
            parts = {"full": model, "user_encoder": encoder, "scorer": scorer}
        else:
            paths = {
                "model": km.export_saved_model(
                    model, export_dir, warmup_requests=warmup
                )
            }
            parts = {"model": model}
        from keras_mtl.serving.warmup import signature_inputs

        for part, path in paths.items():
            print(f"\nexported SavedModel ({part}): {path}")
            print(
                "  serving_default inputs: "
                + ", ".join(signature_inputs(path))
                + "; outputs: "
                + ", ".join(parts[part].output)
            )
        results["export_path"] = str(paths.get("model", paths.get("full")))
        results["export_paths"] = {k: str(v) for k, v in paths.items()}
    return results


#: The options a backup must have been made with to be resumed (`--epochs`
#: may change: more epochs continue the same run).
RESUME_OPTIONS = (
    "model",
    "data",
    "data_path",
    "loss_weighting",
    "batch_size",
    "learning_rate",
    "seed",
    "num_examples",
    "correlation",
    "warm_start",
    "since",
    "until",
)


def backup_callbacks(args) -> list:
    """`[keras.callbacks.BackupAndRestore]` for `--backup-dir` (else `[]`).

    The directory also holds the options of the run that made it
    (`keras-mtl-options.json`); a backup made with other options (see
    `RESUME_OPTIONS`) is refused with a message naming them, since it would
    neither resume that run nor start this one afresh.
    """
    if not args.backup_dir:
        return []
    import json

    import keras

    options = {name: getattr(args, name) for name in RESUME_OPTIONS}
    path = os.path.join(args.backup_dir, "keras-mtl-options.json")
    held = os.listdir(args.backup_dir) if os.path.isdir(args.backup_dir) else []
    if held and os.path.basename(path) not in held:
        # Keras deletes the directory when training ends: never a foreign one.
        raise SystemExit(
            f"keras-mtl: --backup-dir {args.backup_dir} is not empty and holds no "
            "keras-mtl backup; name a new or empty directory (it is deleted "
            "when training ends)."
        )
    # Only the options, no backup (the run stopped before its first epoch
    # ended): nothing to resume, and the options are this run's.
    if len(held) > 1:
        with open(path, encoding="utf-8") as file:
            saved = json.load(file)
        changed = [n for n in RESUME_OPTIONS if saved.get(n) != options[n]]
        if changed:
            flags = ", ".join(
                f"--{n.replace('_', '-')} {saved.get(n)!r} (now {options[n]!r})"
                for n in changed
            )
            raise SystemExit(
                f"keras-mtl: --backup-dir {args.backup_dir} holds the backup of a "
                f"run with other options: {flags}. Resume with that run's "
                "options, or use another directory (or delete it) to start afresh."
            )
        print(f"backup: resuming from {args.backup_dir} if it holds a finished epoch")
    else:
        os.makedirs(args.backup_dir, exist_ok=True)
        with open(path, "w", encoding="utf-8") as file:
            json.dump(options, file)
    # Two generations: a backup torn by a kill while written falls back on the
    # previous one.
    return [keras.callbacks.BackupAndRestore(args.backup_dir, double_checkpoint=True)]


def save_gate_plot(model, data, path: str, args) -> str:
    """Print the mean gate weights on `data` and save their heatmap to `path`."""
    import matplotlib

    matplotlib.use("Agg")
    import keras_mtl as km

    tables = km.gate_weights(model, data)
    for name, table in tables.items():
        print(f"\nmean gate weight per expert, {name}:\n{table.round(3).to_string()}")
    fig = km.plot_gate_weights(
        tables, title=f"{args.model} on {args.data}: mean gate weights (test split)"
    )
    fig.savefig(path, dpi=120, bbox_inches="tight")
    print(f"gate heatmap: {path}")
    return path


def report_cvr_truth(model, rows, features) -> dict:
    """Print how the pCVR on every test impression matches the simulator's truth."""
    from keras_mtl.data import make_dataset
    from keras_mtl.diagnostics import cvr_against_truth

    x = make_dataset(rows, features, None, 8192, shuffle=False)
    truth = cvr_against_truth(
        model.predict(x, verbose=0)["cvr"], rows["true_cvr"].to_numpy()
    )
    print(
        "  pCVR on all test impressions vs the true pCVR: Spearman "
        f"{truth['spearman']:.4f}, AUC {truth['auc']:.4f} (truth itself "
        f"{truth['oracle_auc']:.4f}), mean {truth['mean_predicted']:.4f} vs true "
        f"{truth['mean_true']:.4f}"
    )
    return truth


def report_domains(model, rows, features):
    """Print and return the test metrics of each domain (`domain_metrics`)."""
    from keras_mtl.data import make_dataset
    from keras_mtl.diagnostics import domain_metrics

    x = make_dataset(rows, features, None, 8192, shuffle=False)
    table = domain_metrics(
        rows["click"],
        model.predict(x, verbose=0)["click"],
        rows["domain"],
        rows["true_ctr"],
    )
    columns = ["rows", "click_rate", "auc", "log_loss", "rmse", "true_auc"]
    print(
        "\nclick per domain (test split; rmse against the true probability, "
        f"true_auc the truth's own):\n{table[columns].round(4).to_string()}"
    )
    return table


def main(argv=None) -> int:
    """`keras-mtl` (`keras_mtl_cli.main`: parse, quiet the logs, `run`)."""
    import keras_mtl_cli

    return keras_mtl_cli.main(argv)


def run(args) -> int:
    """Run the parsed command (`keras_mtl_cli.main` parses it without TensorFlow)."""
    if args.verbose:
        # TensorFlow's Python logger at DEBUG: notes such as the export's
        # "Assets written to", dropped by default (keras_mtl.serving.export).
        import tensorflow as tf

        tf.get_logger().setLevel("DEBUG")
    if args.command == "train":
        if args.epochs < 1 or args.batch_size < 1:
            raise SystemExit("keras-mtl: --epochs and --batch-size must be positive")
        if args.gate_plot and not get_builder(args.model).gated:
            raise SystemExit(
                "keras-mtl: --gate-plot needs a gated model "
                f"{tuple(model_names(gated=True))}, not {args.model}."
            )
        train(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
