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

The census frame holds the UCI file's strings: keras_mtl's models take them and,
`make_dataset` holding them in memory, look each column up once in their first
`fit` (timed with the warm-up epoch) and then gather the ids inside the step;
the plain and expert models get vocabulary positions coded once in Python before
any timing (`_census_models.plain_arrays`).

Shuffling: `make_dataset` reshuffles every epoch by default; the issue's plain
pipeline does not shuffle. Both settings are measured, each against a plain
model doing the same work: without shuffling (`make_dataset(shuffle=False)`,
`fit(shuffle=False)` for numpy) and with a full reshuffle every epoch (default
`make_dataset`; `cache().shuffle(rows, reshuffle_each_iteration=True)` for the
plain pipeline). Both models carry a loss and an AUC (1000 thresholds) per task.

Timing: build + compile + dataset ("setup"), one warm-up epoch (includes the XLA
compilation of the full and the last partial batch: "first epoch"), then
`--epochs` epochs in one `fit` call timed with `time.perf_counter`;
examples/s = rows x epochs / elapsed. Median (min-max) over `--repeats`
alternated rounds (`_harness.alternated_rounds`: the listed order, reversed
every other round). Each run also records the CPU time other processes took
meanwhile (the load average counts this script's own threads).

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

Data, the hand-written models and the experts' models: `_census_models.py`.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# Expected and harmless here: Keras's default `fit(shuffle=True)` is ignored for a
# tf.data input, and a dataset of unknown length (make_dataset's reshuffling one)
# ends its first epoch by running out of data. The harness checks the step count.
warnings.filterwarnings("ignore", message="`shuffle=True` was passed")
warnings.filterwarnings("ignore", message="Your input ran out of data")

try:  # `python -m benchmarks.mmoe_census` from the repository root
    from benchmarks import _census_models as cm
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/mmoe_census.py`: benchmarks/ is on sys.path
    import _census_models as cm
    import _harness as h


import keras_mtl as km  # noqa: E402

REQUIRED_RATIO = 0.90
WORKER = Path(__file__).with_name("deepctr_ple_worker.py")
#: (ours, theirs, required ratio) of the expert comparison.
EXPERT_TARGETS = (
    ("km_mmoe", "expert_mmoe", REQUIRED_RATIO),
    ("km_ple", "expert_ple", REQUIRED_RATIO),
    ("km_ple", "deepctr_ple", 2.0),
)


def deepctr_available() -> bool:
    return all(importlib.util.find_spec(m) for m in ("deepctr", "tf_keras"))


def deepctr_child(frame, features, tasks, batch_size: int, tmp) -> h.Child:
    """DeepCTR's PLE in a child process (`deepctr_ple_worker.py`: Keras 2 cannot
    share this process with Keras 3), fed the hand-written model's arrays."""
    path = cm.save_deepctr_arrays(frame, features, tasks, Path(tmp) / "census.npz")
    command = [sys.executable, str(WORKER), "--arrays", str(path)]
    return h.Child("DeepCTR worker", command + ["--batch-size", str(batch_size)])


def expert_contenders(frame, features, tasks, args, stack) -> list[h.Contender]:
    """The contenders of the expert comparison, all built and warmed up first,
    each dataset as its contender's user would write it; `stack` (an
    `ExitStack`) closes DeepCTR's child process and its files."""
    x, y, table_rows = cm.expert_arrays(frame, features, tasks)
    shapes = (table_rows, x["ids"].shape[1], x["numbers"].shape[1], not args.no_xla)
    rows, epochs, batch = len(frame), args.round_epochs, args.batch_size

    def contender(key, label, model, ds, reference):
        cm.same_steps(model, ds)
        run = h.warm_model(model, ds, rows, epochs, batch, key)
        params = cm.trainable_count(model)
        return h.Contender(key, label, run, reference=reference, parameters=params)

    def default():
        return km.data.make_dataset(frame, features, tasks, batch_size=batch, seed=0)

    def expert(shuffle):
        return cm.expert_pipeline(x, y, batch, shuffle=shuffle)

    ours = "default `make_dataset` (reshuffled every epoch, AUC every step)"
    mmoe, ple = "expert_mmoe", "expert_ple"
    # fmt: off
    km_mmoe, km_ple = cm.keras_mtl_mmoe(features, tasks), cm.keras_mtl_ple(features, tasks)
    contenders = [
        contender("km_mmoe", f"`build_mmoe` + {ours}", km_mmoe, default(), mmoe),
        contender(mmoe, "expert MMoE, cached batches", cm.expert_mmoe(tasks, *shapes), expert(False), mmoe),
        contender("expert_mmoe_shuffled", "expert MMoE, reshuffled every epoch (permutation + `gather`)", cm.expert_mmoe(tasks, *shapes), expert(True), mmoe),
        contender("km_ple", f"`build_ple` + {ours}", km_ple, default(), ple),
        contender(ple, "expert PLE, cached batches", cm.expert_ple(tasks, *shapes), expert(False), ple),
    ]
    # fmt: on
    if deepctr_available():
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        child = stack.enter_context(deepctr_child(frame, features, tasks, batch, tmp))
        parameters = child.ask(timeout_s=600)["parameters"]
        contenders.append(
            h.Contender(
                "deepctr_ple",
                "DeepCTR 0.9.4 `PLE` (Keras 2, child process), numpy `fit` "
                "(reshuffled every epoch), loss only",
                h.child_run(child, rows * epochs, command="train", epochs=epochs),
                reference="deepctr_ple",
                parameters=parameters,
            )
        )
    return contenders


def expert_section(frame, features, tasks, args) -> None:
    """keras_mtl's defaults against the expert models (and DeepCTR's PLE when
    installed), in alternated rounds."""
    with contextlib.ExitStack() as stack:
        contenders = expert_contenders(frame, features, tasks, args, stack)
        params = {c.key: c.parameters for c in contenders}
        for ours, theirs, _ in EXPERT_TARGETS[:2]:
            if params[ours] != params[theirs]:
                raise AssertionError(
                    f"{ours} has {params[ours]} parameters, {theirs} "
                    f"{params[theirs]}: not the same model."
                )
        print(
            f"\n## Against an expert's model ({args.expert_rounds} alternated rounds "
            f"of {args.round_epochs} epochs, all built first)\n"
        )
        if "deepctr_ple" not in params:
            print(
                "- DeepCTR's PLE skipped: `pip install deepctr==0.9.4 "
                "tf-keras==2.21.0` to include it"
            )
        runs = h.alternated_rounds(contenders, args.expert_rounds)

    def median(key):
        return h.median_speed(runs[key])

    table = [
        [
            f"`{c.key}`",
            c.label,
            f"{c.parameters:,}",
            h.spread([r.examples_per_s for r in runs[c.key]]),
            f"{median(c.key) / median(c.reference):.2f}",
        ]
        for c in contenders
    ]
    header = ["key", "contender", "parameters", "examples/s, median (min–max)"]
    header.append("vs reference (the cached expert; DeepCTR: itself)")
    print("\n" + h.markdown_table(header, table) + "\n")
    for ours, theirs, required in EXPERT_TARGETS:
        if theirs in runs:
            ratio = median(ours) / median(theirs)
            print(
                f"- `{ours}` / `{theirs}`: {ratio:.3f} — "
                f"{h.verdict(ratio, required)} the {required:.2f} target"
            )
    h.warn_if_disturbed(runs)
    sys.stdout.flush()


# ----------------------------------------------------------------------------- fresh models


def make_contenders(frame, features, tasks, args) -> list[h.Contender]:
    """Fresh-model contenders: plain Keras 3 and keras_mtl, with and without
    a reshuffle every epoch, and a tf.keras-2-style numpy `fit`."""
    contenders = cm.pipeline_contenders(
        frame,
        features,
        tasks,
        lambda f, t: cm.plain_mmoe(f, t, jit_compile=True),
        cm.keras_mtl_mmoe,
        "build_mmoe",
        args,
    )
    x, y = cm.plain_arrays(frame, features, tasks)

    def numpy_fit():
        model = cm.plain_mmoe(features, tasks, jit_compile=False)
        return model, lambda e: model.fit(
            x,
            y,
            batch_size=args.batch_size,
            epochs=e,
            shuffle=False,
            verbose=0,
            callbacks=h.progress(),
        )

    run = h.fresh_model(numpy_fit, len(frame), args.epochs, args.batch_size, "numpy")
    label = "plain tf.keras-2 style, no XLA, numpy `fit(shuffle=False)`"
    numpy = h.Contender("numpy", label, run, group="no shuffle", reference="plain")
    return contenders[:1] + [numpy] + contenders[1:]


def throughput_section(frame, features, tasks, args):
    """Fresh-model rounds, their table and ratios; returns the last keras_mtl model."""
    contenders = make_contenders(frame, features, tasks, args)
    print("\n## Runs (in execution order)\n")
    runs = h.alternated_rounds(contenders, args.repeats)

    print("\n## Training throughput\n")
    print(h.throughput_table(contenders, runs, tasks))
    h.warn_if_disturbed(runs)
    print("\n## keras_mtl / plain Keras 3 (medians)\n")
    # fmt: off
    pairs = [
        ("km", "plain", "no shuffle in either (same work per epoch)"),
        ("km_shuffled", "plain_shuffled", "both reshuffle all rows every epoch"),
        ("km_shuffled", "plain", "default `make_dataset` vs the unshuffled plain pipeline"),
    ]
    # fmt: on
    print("\n".join(h.ratio_lines(runs, pairs, REQUIRED_RATIO)), flush=True)
    return runs["km_shuffled"][-1].model


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data-path",
        type=Path,
        default=cm.DEFAULT_DATA,
        help="census-income .data/.test file (gzip or plain); a generated "
        "census-shaped frame is used when it does not exist. Default: %(default)s",
    )
    parser.add_argument("--rows", type=int, default=None, help="random row subsample")
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
    parser.add_argument(
        "--no-xla", action="store_true", help="the expert models without XLA"
    )
    args = parser.parse_args(argv)
    if min(args.epochs, args.repeats, args.batch_size, args.round_epochs) < 1 or (
        args.rows is not None and args.rows < 100
    ):
        parser.error(
            "--epochs, --repeats, --batch-size and --round-epochs must be "
            "positive; --rows at least 100."
        )
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    print("# MMoE on census-income: training throughput and serving latency\n")
    for line in h.machine_lines():
        print(line)
    start = time.perf_counter()
    frame, features, tasks, source = cm.load_data(args.data_path, args.rows)
    print(f"- keras_mtl {km.__version__} from `{Path(km.__file__).parent}`")
    print(
        f"- data: {source}; {len(frame):,} rows, loaded in "
        f"{time.perf_counter() - start:.1f} s"
    )
    sparse = sum(isinstance(f, km.SparseFeature) for f in features)
    print(
        f"- model: {sparse} sparse features (embedding 4) + {len(features) - sparse}"
        f" dense; MMoE {cm.NUM_EXPERTS} experts x {cm.EXPERT_UNITS}, towers "
        f"{cm.TOWER_UNITS}, tasks {[t.name for t in tasks]}; batch "
        f"{args.batch_size}, Adam 1e-3"
    )
    print(
        f"- timing: setup, 1 warm-up epoch, then {args.epochs} timed epochs; "
        f"median (min–max) of {args.repeats} alternated rounds (the order reversed "
        "every other round)"
    )
    sys.stdout.flush()

    if args.expert_rounds > 0:
        expert_section(frame, features, tasks, args)
    if args.skip_rotated:
        return 0
    model = throughput_section(frame, features, tasks, args)
    print(
        "\n## Latency of the trained keras_mtl model "
        "(default `make_dataset`, last repeat), ms\n"
    )
    with h.OtherCpuMeter() as others:
        latency = h.latency_rows(model, frame, features, tasks)
    header = ["call", "batch", "calls", "median ms", "p90 ms"]
    print(h.markdown_table(header, latency))
    print(f"\n- other processes during the latency runs: {others.cores:.2f} cores")
    print(f"\n- load average at end: {h.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
