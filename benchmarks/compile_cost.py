"""What compilation costs: time to first epoch, steady speed, time to first result.

Part 1, the matrix. For MMoE and PLE (census-income: the shared test split
resampled to the size, or the generated census-shaped frame when it is
absent), ESMM (`km.datasets.make_funnel`) and DUPN (generated behaviour
sequences of up to 20 steps, `_compile_cost_jobs.dupn_case`), at `tiny` (100
rows), `small` (10,000) and `census` (199,523, the census training split's
size) rows, with XLA on and off (`--xla on off auto`): each configuration in a
FRESH child process (`_harness.run_in_child`: no compilation cache of an
earlier run helps), the builder's default compile but `jit_compile`, default
`make_dataset` (batch `--batch-size`, reshuffled every epoch), `--epochs`
epochs in one `fit`. Measured there: "first epoch" = from the `fit` call to
the end of epoch 1 (tracing and XLA compilation included), "steady" = the
median examples/s of the later epochs, and the CPU time other processes took
meanwhile (`other_cores`). Median (min-max) over `--repeats` alternated
rounds. "break-even epochs" is how many epochs XLA needs to repay its extra
first-epoch time: (first_on - first_off) / (epoch_off - epoch_on), epoch_x =
rows / steady_x; "never" when XLA is not faster.

Part 2, time to first result: the wall time from a child process's start
(python launched) to the first test metric it prints, for a fixed recipe: 100
training rows of funnel impressions (four id columns, the log price), 20
epochs of batch 64, then `evaluate` on 100 test rows, printing the CTR AUC;
ESMM (the issue's case) and MMoE. Contenders: keras_mtl with the old policy
(`jit_compile=True`, what "auto" chose before), keras_mtl's default
(`jit_compile="auto"`), and DeepCTR 0.9.4's same model in its own Keras-2
environment (`deepctr_first_result_worker.py`, run by `--deepctr-python`;
skipped with a message when that Python cannot import deepctr and tf_keras).
All read the same saved arrays. Alternated rounds.

Every invocation prints Markdown tables ready for docs/benchmarks.md. The
default invocation (tiny and small, all four models, XLA on and off, one
round; first result, two rounds) takes about 10 minutes on 2 quiet cores;
census-size runs are opt-in, a few models at a time:

    python benchmarks/compile_cost.py                          # default
    python benchmarks/compile_cost.py --sizes census --models mmoe ple --skip-first-result
    python benchmarks/compile_cost.py --sizes census --models esmm --skip-first-result
    python benchmarks/compile_cost.py --skip-matrix --result-rounds 3
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

try:  # `python -m benchmarks.compile_cost`, or imported by the tests
    from benchmarks import _compile_cost_jobs as jobs
    from benchmarks import _harness as h
except ImportError:  # `python benchmarks/compile_cost.py`: benchmarks/ is on sys.path
    import _compile_cost_jobs as jobs
    import _harness as h

HERE = Path(__file__).resolve().parent
DEEPCTR_WORKER = HERE / "deepctr_first_result_worker.py"
JOBS_SCRIPT = HERE / "_compile_cost_jobs.py"
DEFAULT_DEEPCTR_PYTHON = Path("/work/deepctr-venv/bin/python")
XLA_CHOICES = {"on": True, "off": False, "auto": "auto"}
#: Keys and labels of the first-result contenders.
RESULT_CONTENDERS = {
    "xla": "keras_mtl, old policy (XLA on)",
    "auto": 'keras_mtl, default (`jit_compile="auto"`)',
    "off": "keras_mtl, XLA off",
    "deepctr": "DeepCTR 0.9.4 (Keras 2, no XLA)",
}


# ----------------------------------------------------------------------------- matrix


def matrix(args) -> dict:
    """Every (model, size, xla) in fresh children, `args.repeats` alternated
    rounds; returns the results by key."""
    configs = [
        (model, size, xla)
        for model in args.models
        for size in args.sizes
        for xla in args.xla
    ]
    contenders = []
    for model, size, xla in configs:
        key = f"{model}/{size}/{xla}"

        def run(model=model, size=size, xla=xla, key=key):
            result = h.run_in_child(
                jobs.measure,
                model,
                jobs.SIZES[size] if args.rows is None else args.rows,
                XLA_CHOICES[xla],
                args.epochs,
                args.batch_size,
                0,
                timeout_s=args.timeout,
            )
            results.setdefault(key, []).append(result)
            return h.Run(
                result["rows"],
                result["rows"] / result["examples_per_s"],
                result["other_cores"],
                first_epoch_s=result["first_epoch_s"],
                jit_compile=result["jit_compile"],
            )

        contenders.append(h.Contender(key, key, run))
    results: dict[str, list[dict]] = {}
    print("\n## Runs (in execution order)\n", flush=True)
    h.alternated_rounds(contenders, args.repeats)
    return results


def break_even(on: list[dict], off: list[dict]) -> str:
    """Epochs after which XLA's run is shorter than the run without it."""
    first_on = statistics.median(r["first_epoch_s"] for r in on)
    first_off = statistics.median(r["first_epoch_s"] for r in off)
    rows = on[0]["rows"]
    epoch_on = rows / statistics.median(r["examples_per_s"] for r in on)
    epoch_off = rows / statistics.median(r["examples_per_s"] for r in off)
    gain = epoch_off - epoch_on
    if not math.isfinite(gain) or gain <= 0:
        return "never"
    return f"{max(0.0, first_on - first_off) / gain + 1:.1f}"


def matrix_table(results: dict, args) -> str:
    rows = []
    for model in args.models:
        for size in args.sizes:
            by_xla = {x: results.get(f"{model}/{size}/{x}") for x in args.xla}
            for xla, runs in by_xla.items():
                if not runs:
                    continue
                r0 = runs[0]
                even = (
                    break_even(by_xla["on"], by_xla["off"])
                    if xla == "on" and by_xla.get("off")
                    else ""
                )
                rows.append(
                    [
                        model,
                        f"{size} ({r0['rows']:,})",
                        xla
                        + (
                            ""
                            if xla != "auto"
                            else f" → {'on' if r0['jit_compile'] else 'off'}"
                        ),
                        r0["steps_per_execution"],
                        h.spread([r["first_epoch_s"] for r in runs], "{:.1f}"),
                        h.spread([r["examples_per_s"] for r in runs]),
                        even,
                        f"{max(r['other_cores'] for r in runs):.2f}",
                    ]
                )
    header = [
        "model",
        "size (rows)",
        "XLA",
        "steps/call",
        "first epoch s",
        "steady examples/s",
        "break-even epochs",
        "other_cores (max)",
    ]
    return h.markdown_table(header, rows)


# ----------------------------------------------------------------------------- first result


def deepctr_python(path: Path | None) -> tuple[Path | None, str]:
    """`(python, "")` when `path` imports deepctr and tf_keras, else `(None, why)`."""
    if path is None:
        return None, "no --deepctr-python given"
    if not Path(path).exists():
        return None, f"{path} does not exist"
    check = subprocess.run(
        [str(path), "-c", "import deepctr, tf_keras"],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_USE_LEGACY_KERAS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    if check.returncode != 0:
        last = (check.stderr.strip().splitlines() or ["?"])[-1]
        return None, f"{path} cannot import deepctr and tf_keras ({last})"
    return Path(path), ""


class ChildrenCpuMeter(h.OtherCpuMeter):
    """`OtherCpuMeter` that also counts the child processes this process has
    waited for as its own (the timed child is not "another process")."""

    @staticmethod
    def _own_s() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system


def time_to_result(command: list[str], timeout_s: float) -> dict:
    """Wall seconds from starting `command` to its result (the JSON line it
    sends right after printing its `RESULT_PREFIX` line), with that line's
    fields and the CPU other processes used meanwhile."""
    before = os.times()
    with ChildrenCpuMeter() as others:
        start = time.perf_counter()
        with h.Child(" ".join(Path(c).name for c in command[1:3]), command) as child:
            detail = child.ask(timeout_s=timeout_s)
            seconds = time.perf_counter() - start
    after = os.times()
    cpu_s = (after.children_user + after.children_system) - (
        before.children_user + before.children_system
    )
    return {"seconds": seconds, "cpu_s": cpu_s, **detail, "other_cores": others.cores}


def first_result_section(args) -> dict:
    python, why = deepctr_python(args.deepctr_python)
    results: dict[str, dict[str, list[dict]]] = {}
    with tempfile.TemporaryDirectory(prefix="compile_cost_") as tmp:
        data = Path(tmp) / "recipe.npz"
        import numpy as np

        np.savez(data, **jobs.result_arrays())
        contenders = []
        for recipe in args.recipes:
            keys = [k for k in args.contenders if k != "deepctr" or python]
            for key in keys:
                if key == "deepctr":
                    command = [str(python), str(DEEPCTR_WORKER)]
                    command += ["--first-result", recipe]
                else:
                    command = [sys.executable, str(JOBS_SCRIPT)]
                    command += ["--first-result", recipe, "--policy", key]
                command += ["--data", str(data)]
                contenders.append((recipe, key, command))
        print(
            f"\n## Time to first result: runs ({jobs.RESULT_TRAIN_ROWS} rows, "
            f"{jobs.RESULT_EPOCHS} epochs, batch {jobs.RESULT_BATCH})\n"
        )
        if not python and "deepctr" in args.contenders:
            print(
                f"- DeepCTR skipped: {why}. Install it in its own environment "
                "(`python -m venv deepctr-venv && deepctr-venv/bin/pip install "
                "deepctr==0.9.4 tf-keras==2.21.0`) and pass `--deepctr-python "
                "deepctr-venv/bin/python`."
            )
        # Alternated rounds (`_harness.alternated_rounds`' order), timed in seconds.
        for r in range(args.result_rounds):
            for recipe, key, command in contenders if r % 2 == 0 else contenders[::-1]:
                result = time_to_result(command, args.timeout)
                results.setdefault(recipe, {}).setdefault(key, []).append(result)
                print(
                    f"- round {r + 1}/{args.result_rounds} `{recipe}/{key}`: "
                    f"{result['seconds']:.1f} s to the first result (fit "
                    f"{result['fit_s']:.1f} s), other processes "
                    f"{result['other_cores']:.2f} cores, load average "
                    f"{h.load_average()}",
                    flush=True,
                )
    return results


def first_result_table(results: dict) -> tuple[str, list[str]]:
    rows, lines = [], []
    for recipe, by_key in results.items():
        for key, runs in by_key.items():
            rows.append(
                [
                    recipe,
                    RESULT_CONTENDERS[key],
                    "on" if runs[0]["jit_compile"] else "off",
                    h.spread([r["seconds"] for r in runs], "{:.1f}"),
                    h.spread([r["cpu_s"] for r in runs], "{:.1f}"),
                    h.spread([r["import_s"] for r in runs], "{:.1f}"),
                    h.spread([r["fit_s"] for r in runs], "{:.1f}"),
                    h.spread([r["evaluate_s"] for r in runs], "{:.1f}"),
                    f"{runs[-1]['metric']:.3f}",
                    f"{max(r['other_cores'] for r in runs):.2f}",
                ]
            )
        if "deepctr" in by_key and "auto" in by_key:
            ours = statistics.median(r["seconds"] for r in by_key["auto"])
            theirs = statistics.median(r["seconds"] for r in by_key["deepctr"])
            verdict = "meets" if ours <= theirs else "MISSES"
            cpu = statistics.median(
                r["cpu_s"] for r in by_key["auto"]
            ) / statistics.median(r["cpu_s"] for r in by_key["deepctr"])
            lines.append(
                f"- {recipe}: keras_mtl default {ours:.1f} s, DeepCTR {theirs:.1f} s "
                f"(ratio {ours / theirs:.2f}; CPU seconds ratio {cpu:.2f}) — "
                f"{verdict} the target (no worse than DeepCTR's)"
            )
    header = [
        "recipe",
        "contender",
        "XLA",
        "time to first result s",
        "CPU s (whole process)",
        "import s",
        "fit s",
        "evaluate s",
        "test CTR AUC (last)",
        "other_cores (max)",
    ]
    return h.markdown_table(header, rows), lines


# ----------------------------------------------------------------------------- main


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--models", nargs="+", choices=jobs.MODELS, default=list(jobs.MODELS)
    )
    parser.add_argument(
        "--sizes", nargs="+", choices=list(jobs.SIZES), default=["tiny", "small"]
    )
    parser.add_argument(
        "--xla", nargs="+", choices=list(XLA_CHOICES), default=["on", "off"]
    )
    parser.add_argument(
        "--rows", type=int, default=None, help="override every size's rows"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (>= 2)")
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=1, help="alternated rounds")
    parser.add_argument("--skip-matrix", action="store_true")
    parser.add_argument("--skip-first-result", action="store_true")
    parser.add_argument(
        "--recipes", nargs="+", choices=jobs.RECIPES, default=list(jobs.RECIPES)
    )
    parser.add_argument("--result-rounds", type=int, default=2)
    parser.add_argument(
        "--contenders",
        nargs="+",
        choices=list(RESULT_CONTENDERS),
        default=["xla", "auto", "deepctr"],
        help="first-result contenders: keras_mtl with XLA on (the old policy), "
        "its default, XLA off; DeepCTR",
    )
    parser.add_argument(
        "--deepctr-python",
        type=Path,
        default=DEFAULT_DEEPCTR_PYTHON if DEFAULT_DEEPCTR_PYTHON.exists() else None,
        help="a Python with deepctr 0.9.4 and tf_keras (DeepCTR is skipped without)",
    )
    parser.add_argument("--timeout", type=float, default=900, help="seconds per child")
    args = parser.parse_args(argv)
    if args.epochs < 2 or min(args.batch_size, args.repeats, args.result_rounds) < 1:
        parser.error("--epochs must be >= 2; --batch-size and the rounds >= 1.")
    if args.rows is not None and args.rows < 1:
        parser.error("--rows must be positive.")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    h.add_repo_to_path()
    print("# Compile cost: first epoch, steady speed, time to first result\n")
    for line in h.machine_lines():
        print(line)
    print(
        f"- matrix: {args.epochs} epochs of batch {args.batch_size}, fresh child per "
        f"run, {args.repeats} alternated round(s); provisional if other_cores > 0.25"
    )
    sys.stdout.flush()
    disturbed = {}
    if not args.skip_matrix:
        results = matrix(args)
        print("\n## First epoch and steady speed, XLA on and off\n")
        print(matrix_table(results, args))
        disturbed.update(
            {k: [h.Run(1, 1, r["other_cores"]) for r in v] for k, v in results.items()}
        )
    if not args.skip_first_result:
        results = first_result_section(args)
        table, lines = first_result_table(results)
        print("\n## Time to first result (process start to first test metric)\n")
        print(table + "\n")
        print("\n".join(lines))
        for recipe, by_key in results.items():
            for key, runs in by_key.items():
                disturbed[f"{recipe}/{key}"] = [
                    h.Run(1, 1, r["other_cores"]) for r in runs
                ]
    h.warn_if_disturbed(disturbed)
    print(f"\n- load average at end: {h.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
