"""Training speed and accuracy of MMoE and PLE on census, per Keras backend.

One script run trains `build_mmoe` and `build_ple` (the builders' defaults:
MMoE 8 experts x 16 units, PLE 2 levels of 2 shared + 2 task experts; towers
of 8) on census-income on TensorFlow, JAX and PyTorch, each backend in its own
child process (`KERAS_BACKEND` is read once, when Keras is imported). Every
model takes the default compile (`model.compile()`: `jit_compile="auto"` and
`steps_per_execution="auto"`, whose decisions are printed per row: XLA from
the run's length on TensorFlow, always jitted on JAX, eager on torch; see
`keras_mtl.training.auto_jit_compile`).

Data: the UCI census-income *test* file (99,762 rows; `../shared/data`, or
`--data-path`), a random 70/15/15 train/validation/test split
(`split_frame(frame, (0.7, 0.15, 0.15), seed=0)`; the validation part is not
used), numeric features standardised with the training part's mean/std, as in
`benchmarks/census.py`. Tasks income (> 50K) and marital status (never
married). Without the file a generated census-shaped frame with random labels
stands in (the AUCs are then meaningless; the script says so).

Per backend and model, in one `fit` of 1 + `--epochs` epochs of the training
part (batch `--batch-size`, reshuffled every epoch by `make_dataset(seed=0)`):

- setup s: building and compiling the model and its dataset;
- first epoch s: from the `fit` call to the end of its first epoch, tracing and
  compilation included (what a user waits for the first result);
- examples/s: the training rows times `--epochs` over the seconds of the
  epochs after the first (steady state); the CPU time other processes took
  during the `fit` (`_harness.OtherCpuMeter`, in cores) is printed with it;
- test AUC per task: `model.evaluate` on the test part after training (masked
  AUC, 1000 thresholds).

One round, no repeats: the machine load is printed with every row; re-run on a
quiet machine for numbers to quote. The last lines are a README-ready markdown
table. The report is also written to `--out` (default
benchmarks/results/backends.md; `--out ""` writes none) and the rows, as JSON,
to `--json` when given.

Usage (from the repository root):

    python benchmarks/backends.py                 # all rows, ~5-10 min on 2 cores
    python benchmarks/backends.py --quick         # 3,000 rows, a smoke run
    python benchmarks/backends.py --backends jax,torch --models mmoe
    python benchmarks/backends.py --backends jax --jit-compile off  # un-jitted JAX
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:  # `python -m benchmarks.backends`, or imported by the tests
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/backends.py`: benchmarks/ is on sys.path
    import _harness as h

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("mmoe", "ple")
LABELS = {"mmoe": "MMoE", "ple": "PLE"}
SPLIT = (0.70, 0.15, 0.15)
DEFAULT_DATA = h.SHARED_DATA / "census-income" / "census-income.test.gz"
DEFAULT_OUT = h.REPO_ROOT / "benchmarks" / "results" / "backends.md"
TASKS = ("income", "marital")
#: Rows, batch and timed epochs of `--quick`.
QUICK = {"rows": 3000, "batch_size": 256, "epochs": 1}
#: The Python package that carries each backend (its version is printed).
PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


# ----------------------------------------------------------------------------- child


def train_one(name: str, frame, tasks, options: dict) -> dict:
    """Model `name` trained and tested on one backend (in the child)."""
    import keras

    import keras_mtl as km
    from keras_mtl.data import make_dataset, split_frame
    from keras_mtl.datasets import census

    train, _, test = split_frame(frame, SPLIT, seed=0)
    features = census.census_features(train)  # the training part's mean/std
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    start = time.perf_counter()
    build = {"mmoe": km.build_mmoe, "ple": km.build_ple}[name]
    compile_args = {}  # the default compile, unless --jit-compile says otherwise
    if options.get("jit_compile", "auto") != "auto":
        compile_args["jit_compile"] = options["jit_compile"] == "on"
    model = build(features, tasks, compile=compile_args or True)
    data = make_dataset(train, features, tasks, options["batch_size"], seed=0)
    setup_s = time.perf_counter() - start
    epochs = 1 + options["epochs"]

    class Clock(keras.callbacks.Callback):
        """When each epoch begins and ends."""

        begins, ends = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.begins.append(time.perf_counter())

        def on_epoch_end(self, epoch, logs=None):
            self.ends.append(time.perf_counter())

    clock = Clock()
    with h.OtherCpuMeter() as others:
        start = time.perf_counter()
        model.fit(data, epochs=epochs, verbose=0, callbacks=[clock])
    steady = [end - begin for begin, end in zip(clock.begins[1:], clock.ends[1:])]
    scores = model.evaluate(
        make_dataset(test, features, tasks, 8192, shuffle=False),
        return_dict=True,
        verbose=0,
    )
    return {
        "model": name,
        "train_rows": len(train),
        "test_rows": len(test),
        "epochs": epochs,
        "jit_compile": bool(model.jit_compile),
        "jit_compile_reason": model.jit_compile_reason,
        "steps_per_execution": int(model.steps_per_execution),
        "setup_s": setup_s,
        "first_epoch_s": clock.ends[0] - start,
        "steady_s": sum(steady),
        "examples_per_s": len(train) * len(steady) / sum(steady),
        "epoch_s": steady,
        "other_cores": others.cores,
        "auc": {t.name: float(scores[f"{t.name}_auc"]) for t in tasks},
        "load_average": h.load_average(),
    }


def worker(options: dict) -> None:
    """The child: every model on this process's backend; one JSON reply."""
    h.add_repo_to_path()
    import keras

    try:
        from benchmarks import _census_models as cm
    except ImportError:
        import _census_models as cm

    backend = keras.backend.backend()
    threads = None
    if backend == "torch":
        import torch

        if options.get("torch_threads"):
            torch.set_num_threads(options["torch_threads"])
        threads = torch.get_num_threads()
    path = Path(options["data_path"])
    frame, _, tasks, description = cm.load_data(path, options["rows"])
    h.reply(
        {
            "backend": backend,
            "version": importlib.metadata.version(PACKAGES[backend]),
            "keras": keras.__version__,
            "data": description,
            "real": path.exists(),
            "torch_threads": threads,
        }
    )
    for name in options["models"]:  # one reply per model, as each finishes
        h.reply(train_one(name, frame, tasks, options))


# ----------------------------------------------------------------------------- parent


def run_backend(backend: str, options: dict, timeout_s: float, report=print):
    """`worker(options)` in a fresh process with `KERAS_BACKEND=backend`: its
    versions and data, then `rows`, one per model (`report(result, row)` as
    each arrives); each reply within `timeout_s`."""
    env = dict(os.environ, KERAS_BACKEND=backend)
    path = [p for p in sys.path if p]
    env["PYTHONPATH"] = os.pathsep.join([str(h.REPO_ROOT), *path])
    command = [sys.executable, str(Path(__file__).resolve()), "--worker"]
    command.append(json.dumps(options))
    with h.Child(f"backends.py ({backend})", command, env=env) as child:
        result = dict(child.ask(timeout_s=timeout_s), rows=[])
        for _ in options["models"]:
            result["rows"].append(child.ask(timeout_s=timeout_s))
            report(result, result["rows"][-1])
    return result


def table_rows(results: list[dict]) -> list[list[str]]:
    """One markdown row per backend and model: backend (version), model, the
    compile decisions, setup, first epoch, steady examples/s, the ratio to
    TensorFlow's (same model), test AUCs."""
    speed = {
        (r["backend"], row["model"]): row["examples_per_s"]
        for r in results
        for row in r["rows"]
    }
    out = []
    for r in results:
        for row in r["rows"]:
            reference = speed.get(("tensorflow", row["model"]))
            ratio = f"{row['examples_per_s'] / reference:.2f}" if reference else "n/a"
            out.append(
                [
                    f"{r['backend']} {r['version']}",
                    LABELS[row["model"]],
                    f"{'on' if row['jit_compile'] else 'off'} / "
                    f"{row['steps_per_execution']}",
                    f"{row['setup_s']:.1f}",
                    f"{row['first_epoch_s']:.1f}",
                    f"{row['examples_per_s']:,.0f}",
                    ratio,
                    *(f"{row['auc'][t]:.4f}" for t in TASKS),
                ]
            )
    return out


HEADER = [
    "backend",
    "model",
    "jit / batches per call",
    "setup s",
    "first epoch s (compile incl.)",
    "examples/s (steady)",
    "vs TensorFlow",
    "test AUC income",
    "test AUC marital",
]


def markdown(results: list[dict]) -> str:
    return h.markdown_table(HEADER, table_rows(results))


def machine_lines() -> list[str]:
    """The machine and the versions, without importing any backend here."""

    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "absent"

    versions = ", ".join(f"{p} {version(p)}" for p in ("keras", *PACKAGES.values()))
    return [
        f"- CPU: {h.cpu_model()}, nproc={h.usable_cpus()}",
        f"- Python {sys.version.split()[0]}, {versions}",
        f"- load average (1, 5, 15 min) at start: {h.load_average()}",
    ]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-path", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--rows", type=int, default=None, help="random row subsample")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument(
        "--epochs", type=int, default=2, help="timed epochs after the first"
    )
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a smoke run: {QUICK['rows']:,} rows, batch {QUICK['batch_size']}, "
        f"{QUICK['epochs']} timed epoch (unless given)",
    )
    parser.add_argument(
        "--jit-compile",
        choices=("auto", "on", "off"),
        default="auto",
        help='compile(jit_compile=...): "auto" (the default compile), True or False',
    )
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch.set_num_threads in torch's child (default: torch's own)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=900,
        help="seconds a backend's child may take per model",
    )
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT), help='report file ("": none)'
    )
    parser.add_argument("--json", type=Path, default=None, help="rows as JSON")
    given = set(argv if argv is not None else sys.argv[1:])
    args = parser.parse_args(argv)
    if args.quick:
        for key, value in QUICK.items():
            if f"--{key.replace('_', '-')}" not in given:
                setattr(args, key, value)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    bad = [b for b in args.backends if b not in BACKENDS]
    bad += [m for m in args.models if m not in MODELS]
    if bad or not args.backends or not args.models:
        parser.error(
            f"unknown {bad}: --backends takes {', '.join(BACKENDS)}; --models "
            f"takes {', '.join(MODELS)}."
        )
    if args.batch_size < 1 or args.epochs < 1 or (args.rows or 100) < 100:
        parser.error("--batch-size and --epochs must be positive, --rows >= 100.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    start = time.perf_counter()
    lines = ["# Training speed per Keras backend: MMoE and PLE on census-income", ""]
    lines += machine_lines()

    def say(*new):
        lines.extend(new)
        for line in new:
            print(line, flush=True)

    for line in lines:
        print(line, flush=True)
    options = {
        "data_path": str(args.data_path),
        "rows": args.rows,
        "batch_size": args.batch_size,
        "epochs": args.epochs,
        "models": args.models,
        "torch_threads": args.torch_threads,
        "jit_compile": args.jit_compile,
    }
    say(
        f"- method: one child process per backend (`KERAS_BACKEND`), the builders' "
        f"default compile (jit_compile {args.jit_compile}); one `fit` of 1 + "
        f"{args.epochs} epochs, batch {args.batch_size}, reshuffled every epoch; examples/s over the epochs "
        "after the first; test AUC from `model.evaluate`; one round",
    )
    results = []

    def report(result, row):
        backend = result["backend"]
        if len(result["rows"]) == 1:
            if not results:
                say(f"- data: {result['data']}; split {SPLIT} (seed 0)")
                if not result["real"]:
                    say("- **GENERATED DATA: the AUCs are meaningless.**")
            if result["torch_threads"] is not None:
                say(f"- torch intra-op threads: {result['torch_threads']}")
        say(
            f"- `{backend}` {row['model']}: {row['train_rows']:,} training rows, "
            f"jit {row['jit_compile']} ({row['jit_compile_reason'] or 'as given'}), "
            f"{row['steps_per_execution']} batches per call; first epoch "
            f"{row['first_epoch_s']:.1f} s, then {row['examples_per_s']:,.0f} "
            f"examples/s (epochs "
            + ", ".join(f"{s:.1f}" for s in row["epoch_s"])
            + f" s), other processes {row['other_cores']:.2f} cores, load "
            f"average {row['load_average']}"
        )

    for backend in args.backends:
        results.append(run_backend(backend, options, args.timeout, report))
    total = time.perf_counter() - start
    busiest = max(
        (r["other_cores"] for res in results for r in res["rows"]), default=math.nan
    )
    say(
        "",
        f"## Table ({statistics.mean(len(r['rows']) for r in results):.0f} model(s) "
        f"x {len(results)} backend(s))",
        "",
        markdown(results),
        "",
        f"- total runtime {total:.0f} s; load average at end {h.load_average()}; "
        f"other processes used up to {busiest:.2f} cores during a `fit`",
    )
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        worker(json.loads(sys.argv[2]))
    else:
        sys.exit(main())
