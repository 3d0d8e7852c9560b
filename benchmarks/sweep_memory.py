"""A 100-model sweep with XLA forced on: memory mappings and RSS as it goes.

Each trial builds a tiny MMoE (`build_mmoe`, 2 to 4 experts of 4 units, towers
of 4, `compile={"jit_compile": True}` whatever the "auto" policy would pick) on
`make_synthetic(256, dim=8)`, trains it one epoch (batches of 64), evaluates
and predicts: three XLA-compiled functions per model.

- `--mode in-process`: the trials in this process, each followed by what a user
  would try (`del model`, `keras.backend.clear_session()`, `gc.collect()`);
  TensorFlow frees none of the XLA executables, so the mappings grow by a fixed
  amount per model until `vm.max_map_count` (bigger models die after a few dozen:
  "Unable to allocate section memory").
- `--mode run-sweep` (the fix): the same trials through `keras_mtl.run_sweep`,
  which runs them in a worker process replaced every `--trials-per-process`
  trials; this process stays flat and each worker's growth is bounded.

Every 10 trials a line gives this process's mappings and RSS (and, with
run-sweep, the worker's, as the trial saw them before returning).

Usage (from the repository root):

    python benchmarks/sweep_memory.py --mode in-process [--models 100]
    python benchmarks/sweep_memory.py --mode run-sweep [--trials-per-process 10]
    python benchmarks/sweep_memory.py --mode in-process --no-xla  # the comparison
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def trial(config: dict) -> dict:
    """Build, train, evaluate and predict one tiny XLA-compiled MMoE; returns its
    test loss, its process's id and memory usage after it."""
    import warnings

    import keras

    import keras_mtl as km
    from keras_mtl.data import make_dataset
    from keras_mtl.datasets import make_synthetic

    warnings.filterwarnings("ignore", message=".*shuffle=True.*")
    keras.utils.set_random_seed(config["seed"])
    syn = make_synthetic(config.get("rows", 256), dim=8, seed=config["seed"])
    ds = make_dataset(syn.data, syn.features, syn.tasks, batch_size=64)
    model = km.build_mmoe(
        syn.features,
        syn.tasks,
        num_experts=config["experts"],
        expert_units=(4,),
        tower_units=(4,),
        compile={"jit_compile": config.get("jit", True)},
    )
    model.fit(ds, epochs=1, verbose=0)
    loss = model.evaluate(ds, verbose=0, return_dict=True)["loss"]
    predictions = model.predict(ds, verbose=0)
    rows = int(next(iter(predictions.values())).shape[0])
    return {
        "loss": float(loss),
        "rows": rows,
        "jit": bool(model.jit_compile),
        "pid": os.getpid(),
        **km.sweep.memory_usage(),
    }


def trials(count: int, rows: int = 256, jit: bool = True) -> list[dict]:
    """The sweep's configurations: 2, 3 or 4 experts, one seed each."""
    return [
        {"seed": i, "experts": 2 + i % 3, "rows": rows, "jit": jit}
        for i in range(count)
    ]


def _line(done: int, start: float, here: dict, worker: dict | None) -> str:
    text = (
        f"{done:4d} models  {time.time() - start:6.0f} s  this process: "
        f"{here['maps']:,} maps, {here['rss_mb']:,.0f} MiB RSS"
    )
    if worker is not None:
        text += (
            f"  | worker {worker['pid']}: {worker['maps']:,} maps, "
            f"{worker['rss_mb']:,.0f} MiB RSS"
        )
    return text


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--mode", choices=("in-process", "run-sweep"), required=True)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--trials-per-process", type=int, default=10)
    parser.add_argument(
        "--no-xla",
        action="store_true",
        help="compile with jit_compile=False instead (the comparison)",
    )
    parser.add_argument("--every", type=int, default=10, help="print every N models")
    args = parser.parse_args(argv)

    import gc

    import keras

    import keras_mtl as km

    start = time.time()
    first = km.sweep.memory_usage()
    print(
        f"mode {args.mode}: {args.models} tiny MMoEs, "
        f"jit_compile={not args.no_xla}; "
        f"vm.max_map_count {first['max_maps']:,}; at start {first['maps']:,} maps, "
        f"{first['rss_mb']:,.0f} MiB RSS",
        flush=True,
    )
    history = []

    def report(index, _config, result):
        history.append((km.sweep.memory_usage(), result))
        if (index + 1) % args.every == 0 or index == 0:
            worker = result if args.mode == "run-sweep" else None
            print(_line(index + 1, start, history[-1][0], worker), flush=True)

    configs = trials(args.models, jit=not args.no_xla)
    if args.mode == "in-process":
        for index, config in enumerate(configs):
            result = trial(config)
            keras.backend.clear_session()
            gc.collect()
            report(index, config, result)
    else:
        km.run_sweep(
            trial,
            configs,
            trials_per_process=args.trials_per_process,
            on_result=report,
        )
    last = history[-1][0]
    workers = {result["pid"] for _, result in history}
    summary = {
        "mode": args.mode,
        "models": len(history),
        "seconds": time.time() - start,
        "maps_start": first["maps"],
        "maps_end": last["maps"],
        "rss_start_mb": first["rss_mb"],
        "rss_end_mb": last["rss_mb"],
        "worker_maps_max": max(result["maps"] for _, result in history),
        "worker_rss_max_mb": max(result["rss_mb"] for _, result in history),
        "processes": len(workers),
        "all_jit": all(result["jit"] for _, result in history),
    }
    growth = (summary["maps_end"] - history[0][0]["maps"]) / max(len(history) - 1, 1)
    print(
        f"done: {summary['models']} models in {summary['seconds']:.0f} s, "
        f"{summary['processes']} process(es), XLA on in all: {summary['all_jit']}; "
        f"this process {first['maps']:,} -> {last['maps']:,} maps "
        f"({growth:,.0f} per model after the first), "
        f"{first['rss_mb']:,.0f} -> {last['rss_mb']:,.0f} MiB RSS; "
        f"the trials' processes peaked at {summary['worker_maps_max']:,} maps, "
        f"{summary['worker_rss_max_mb']:,.0f} MiB RSS",
        flush=True,
    )
    return summary


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
