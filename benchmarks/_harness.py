"""The benchmark harness: machine notes, contenders, child processes, rounds, spread, tables.

Every script in `benchmarks/` measures and reports through this module; no
script imports another script (what two scripts share lives in a module whose
name starts with `_`, e.g. `_census_models.py`).

- Machine: `machine_lines()` for the report's header, `load_average()`, and
  `OtherCpuMeter`, the CPU time *other* processes took while a block ran.
- Contenders: a `Contender` is a key, a label and `run()`, which measures once
  and returns a `Run` (examples, seconds, and what else it saw). Three ways to
  make `run`: `fresh_model` (a fresh model per run: setup, one warm-up epoch,
  then the timed epochs), `warm_model` (one model built and warmed up once,
  trained for a round per run) and `child_run` (a model in a child process).
- Rounds: `alternated_rounds` runs every contender once per round, in the
  listed order in even rounds and reversed in odd ones, so that no contender
  always runs first, last, or right after the same one on a warming or cooling
  machine. It is the only order the scripts use.
- Spread: `spread(values)` prints the median and, in parentheses, the minimum
  and maximum: "12,345 (11,900–12,700)". We report this and not mean ± 2
  standard errors because our runs are few (1 to 10 rounds or seeds) and their
  noise is lopsided: a busy neighbour only ever slows a round down, and a seed
  can fail outright. The median ignores one disturbed round; min–max shows
  every run's extent without assuming a normal distribution, and for three runs
  it is all the data. (± 2 s.e. of three runs is itself a poor estimate: the
  t-quantile for 2 degrees of freedom is 4.3, not 2.) The same formatter serves
  speeds, AUCs, losses and paired differences.
- Child processes: `Child` starts a Python script and exchanges one JSON object
  per line with it; every read has a deadline, and `close` ends the child by its
  pid. The child side is `serve(ready, handlers)`. `run_in_child(fn, *args)`
  runs one function call in a fresh child process (TensorFlow never frees XLA
  executables, so dozens of compiled models in one process exhaust Linux's
  `vm.max_map_count`).
- Tables: `markdown_table`; `verdict` for a ratio against its requirement.
- Logs: importing this module calls `keras_mtl_cli.quiet_logs()` (no
  TensorFlow start-up noise, here and in child workers); `progress()` gives a
  `fit` keras_mtl's `ProgressLogger` on standard error (a line at least every
  30 s, compilation times).

Kept free of TensorFlow / Keras imports at module level so that a script's
`--help` stays fast and a child worker may load another Keras.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import math
import os
import pickle
import queue
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: Root of the repository (the parent of `benchmarks/`).
REPO_ROOT = Path(__file__).resolve().parents[1]
#: Where the real data sets live (`../shared/data` next to the checkout).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


def _quiet_logs() -> None:
    """`keras_mtl_cli.quiet_logs()` (TensorFlow-free; the installed module, or
    this checkout's without touching `sys.path`): every script and child worker
    imports this module before TensorFlow, so none prints TensorFlow's CPU-only
    start-up lines. `TF_CPP_MIN_LOG_LEVEL=0` brings its C++ log back."""
    import importlib.util

    spec = importlib.util.find_spec("keras_mtl_cli")
    if spec is None:
        spec = importlib.util.spec_from_file_location(
            "keras_mtl_cli", REPO_ROOT / "keras_mtl_cli.py"
        )
    module = sys.modules.get("keras_mtl_cli") or importlib.util.module_from_spec(spec)
    if "keras_mtl_cli" not in sys.modules:
        sys.modules["keras_mtl_cli"] = module
        spec.loader.exec_module(module)
    module.quiet_logs()


_quiet_logs()


def add_repo_to_path(package: str = "keras_mtl") -> None:
    """Make `import keras_mtl` work from a checkout, unless it is importable already.

    An installed package or one on PYTHONPATH (e.g. a frozen copy of the tree)
    wins over the checkout this script lives in.
    """
    import importlib.util

    if importlib.util.find_spec(package) is None and str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo ("unknown" elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def usable_cpus() -> int:
    """CPUs this process may run on (what `nproc` prints)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def load_average() -> str:
    """The 1, 5 and 15 minute load averages, as `uptime` prints them."""
    try:
        return ", ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unavailable"


class OtherCpuMeter:
    """CPU time used by *other* processes while a block runs, in cores.

    The load average counts this benchmark's own threads; this does not. It is
    the machine's busy time (/proc/stat) minus this process's CPU time, divided
    by the wall time: 0.0 means nobody else competed for the CPUs, 1.0 means
    another process kept one core busy throughout. NaN where /proc is missing.
    """

    _BUSY = (0, 1, 2, 5, 6, 7)  # user nice system irq softirq steal

    @classmethod
    def _machine_busy_s(cls) -> float:
        with open("/proc/stat") as f:
            fields = f.readline().split()[1:]
        ticks = sum(int(fields[i]) for i in cls._BUSY if i < len(fields))
        return ticks / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own_s() -> float:
        t = os.times()
        return t.user + t.system

    def __enter__(self) -> OtherCpuMeter:
        self.cores = math.nan
        try:
            self._busy = self._machine_busy_s()
        except (OSError, ValueError):
            self._busy = None
        self._own = self._own_s()
        self._wall = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        if self._busy is None:
            return
        wall = time.perf_counter() - self._wall
        others = (self._machine_busy_s() - self._busy) - (self._own_s() - self._own)
        self.cores = max(others, 0.0) / wall if wall > 0 else math.nan


def machine_lines() -> list[str]:
    """Markdown bullet lines describing the machine and the library versions."""
    import keras
    import numpy as np
    import tensorflow as tf

    return [
        f"- CPU: {cpu_model()}, nproc={usable_cpus()}",
        f"- Python {sys.version.split()[0]}, TensorFlow {tf.__version__}, "
        f"Keras {keras.__version__} (backend {keras.backend.backend()}), "
        f"NumPy {np.__version__}",
        f"- load average (1, 5, 15 min) at start: {load_average()}",
    ]


# ----------------------------------------------------------------------------- numbers


def spread(values: Sequence[float], fmt: str = "{:,.0f}", empty: str = "n/a") -> str:
    """`median (min–max)` of some runs; the value alone for one run (see the
    module docstring for why this is the one spread we report)."""
    values = list(values)
    if not values:
        return empty
    med = fmt.format(statistics.median(values))
    if len(values) == 1:
        return med
    return f"{med} ({fmt.format(min(values))}–{fmt.format(max(values))})"


def percentile(values: Sequence[float], q: float) -> float:
    """The `q`-th percentile (0-100) with linear interpolation between ranks."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("percentile of an empty list")
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def time_calls(fn: Callable[[], object], calls: int, warmup: int = 10) -> list[float]:
    """Wall-clock milliseconds of `calls` calls of `fn`, after `warmup` untimed ones."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return times


def latency_rows(model, frame, features, tasks, batches=((1, 200), (512, 50))):
    """Milliseconds per call of a trained keras_mtl model, as table rows `[call,
    batch, calls, median, p90]`: `model.predict`, a direct eager call,
    `model.predict_on_batch` (the compiled step without the data adapter) and
    the `serving_default` signature of its `export_saved_model` SavedModel
    (checked to agree with the model within 1e-5), for each `(batch, calls)`."""
    import numpy as np
    import tensorflow as tf

    import keras_mtl as km

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        export_dir = km.export_saved_model(model, Path(tmp) / "model")
        signature = tf.saved_model.load(str(export_dir)).signatures["serving_default"]
        for batch, calls in batches:
            ds = km.data.make_dataset(
                frame.iloc[:batch], features, batch_size=batch, shuffle=False
            )
            tensors = next(iter(ds))
            arrays = {k: v.numpy() for k, v in tensors.items()}
            direct, served = model(tensors, training=False), signature(**tensors)
            gap = max(
                float(np.max(np.abs(direct[t.name].numpy() - served[t.name].numpy())))
                for t in tasks
            )
            if gap > 1e-5:
                raise AssertionError(
                    f"SavedModel and model disagree by {gap:.2e} at batch {batch}."
                )
            # fmt: off
            ways = [
                ("`model.predict(x)`", lambda a=arrays, b=batch: model.predict(a, batch_size=b, verbose=0)),
                ("`model(x, training=False)`", lambda t=tensors: model(t, training=False)),
                ("`model.predict_on_batch(x)`", lambda t=tensors: model.predict_on_batch(t)),
                ('SavedModel `signatures["serving_default"](**x)`', lambda t=tensors: signature(**t)),
            ]
            # fmt: on
            for label, fn in ways:
                times = time_calls(fn, calls, warmup=10)
                median, p90 = statistics.median(times), percentile(times, 90)
                rows.append([label, batch, calls, f"{median:.2f}", f"{p90:.2f}"])
    return rows


def verdict(ratio: float, required: float) -> str:
    """ "meets" or "MISSES" a required ratio."""
    return "meets" if ratio >= required else "MISSES"


# ----------------------------------------------------------------------------- contenders


@dataclasses.dataclass
class Run:
    """One measurement of one contender."""

    examples: int
    seconds: float
    other_cores: float = math.nan  # CPU other processes used meanwhile
    setup_s: float = math.nan  # build + compile + dataset (fresh models)
    first_epoch_s: float = math.nan  # warm-up epoch, compilation included
    metrics: dict = dataclasses.field(default_factory=dict)  # last epoch's logs
    jit_compile: object = None
    model: object = dataclasses.field(default=None, repr=False)

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds


@dataclasses.dataclass
class Contender:
    """Something to time: `run()` measures it once."""

    key: str
    label: str
    run: Callable[[], Run]
    group: str = ""  # e.g. "no shuffle" / "shuffle every epoch"
    reference: str = ""  # key of the contender its speed is compared with
    parameters: int | None = None


def progress() -> list:
    """`callbacks` for a benchmark's `fit` (any Keras 3 model): keras_mtl's
    `ProgressLogger` on standard error (reports stay on standard output): how
    long tracing and compilation took, then a line whenever 30 s have passed
    since the last one (no per-epoch lines: runs have many short epochs)."""
    from keras_mtl.training import ProgressLogger

    return [ProgressLogger(periodic=True, epoch_summaries=False, stream=sys.stderr)]


def _check_steps(key: str, model, before: int, epochs: int, rows: int, batch: int):
    steps = int(model.optimizer.iterations.numpy()) - before
    expected = epochs * -(-rows // batch)
    if steps != expected:
        raise AssertionError(
            f"{key}: {steps} training steps in {epochs} epochs, expected "
            f"{expected}; the throughput would be wrong."
        )


def fresh_model(
    setup: Callable[[], tuple], rows: int, epochs: int, batch_size: int, key: str = ""
) -> Callable[[], Run]:
    """`run` for a fresh model per measurement.

    `setup()` builds and compiles the model and its data and returns `(model,
    fit)`, where `fit(epochs)` trains for `epochs` epochs and returns the
    History. A run times the setup, one warm-up epoch (compilation included)
    and then `epochs` epochs in one `fit` call; it checks the step count.
    """

    def run() -> Run:
        import keras

        keras.backend.clear_session()
        gc.collect()
        start = time.perf_counter()
        model, fit = setup()
        setup_s = time.perf_counter() - start
        start = time.perf_counter()
        fit(1)
        first_epoch_s = time.perf_counter() - start
        before = int(model.optimizer.iterations.numpy())
        with OtherCpuMeter() as others:
            start = time.perf_counter()
            history = fit(epochs)
            seconds = time.perf_counter() - start
        _check_steps(key, model, before, epochs, rows, batch_size)
        return Run(
            rows * epochs,
            seconds,
            others.cores,
            setup_s,
            first_epoch_s,
            {k: v[-1] for k, v in history.history.items()},
            model.jit_compile,
            model,
        )

    return run


def warm_model(
    model, ds, rows: int, epochs: int, batch_size: int, key: str = ""
) -> Callable[[], Run]:
    """`run` for a model built once: warmed up now by one epoch (its XLA
    compilation), then each run trains `epochs` epochs of `ds` in one `fit`."""
    start = time.perf_counter()
    model.fit(ds, epochs=1, verbose=0, callbacks=progress())
    first_epoch_s = time.perf_counter() - start

    def run() -> Run:
        before = int(model.optimizer.iterations.numpy())
        with OtherCpuMeter() as others:
            start = time.perf_counter()
            history = model.fit(ds, epochs=epochs, verbose=0, callbacks=progress())
            seconds = time.perf_counter() - start
        _check_steps(key, model, before, epochs, rows, batch_size)
        logs = {k: v[-1] for k, v in history.history.items()}
        return Run(
            rows * epochs,
            seconds,
            others.cores,
            first_epoch_s=first_epoch_s,
            metrics=logs,
            jit_compile=model.jit_compile,
        )

    return run


def child_run(child: Child, examples: int, **command) -> Callable[[], Run]:
    """`run` for a model in a child process: it answers `command` with
    `{"seconds": s, "other_cores": c}` (see `serve`) after training on
    `examples` examples."""

    def run() -> Run:
        reply = child.ask(**command)
        return Run(examples, reply["seconds"], reply.get("other_cores", math.nan))

    return run


def alternated_rounds(
    contenders: Sequence[Contender], rounds: int
) -> dict[str, list[Run]]:
    """Every contender's `run()` once per round, `rounds` rounds; the order is
    the listed one in even rounds and reversed in odd ones. One printed line per
    run. Returns the runs by contender key; only the last run of each contender
    keeps its model (`Run.model`)."""
    runs = {c.key: [] for c in contenders}
    for r in range(rounds):
        for c in contenders if r % 2 == 0 else contenders[::-1]:
            gc.collect()
            run = c.run()
            if runs[c.key]:
                runs[c.key][-1].model = None
            runs[c.key].append(run)
            first = (
                f", first epoch {run.first_epoch_s:.1f} s"
                if math.isfinite(run.first_epoch_s)
                else ""
            )
            print(
                f"- round {r + 1}/{rounds} `{c.key}`: {run.examples_per_s:,.0f} "
                f"examples/s{first}, other processes {run.other_cores:.2f} cores, "
                f"load average {load_average()}",
                flush=True,
            )
    return runs


def median_speed(runs: Sequence[Run]) -> float:
    """Median examples/s of some runs."""
    return statistics.median(r.examples_per_s for r in runs)


def throughput_table(contenders, runs, tasks, setup: bool = True) -> str:
    """The table of fresh-model rounds (`fresh_model`): per contender its group,
    label, XLA, examples/s, the ratio of medians to its reference, setup and
    first-epoch seconds, other processes' CPU and the last run's train AUCs."""

    def auc(run, task):
        return f"{run.metrics.get(f'{task}_auc', math.nan):.3f}"

    rows = []
    for c in contenders:
        rs = runs[c.key]
        row = [c.group, c.label, str(rs[0].jit_compile)]
        row.append(spread([r.examples_per_s for r in rs]))
        row.append(f"{median_speed(rs) / median_speed(runs[c.reference]):.2f}")
        row += [spread([r.setup_s for r in rs], "{:.1f}")] if setup else []
        row.append(spread([r.first_epoch_s for r in rs], "{:.1f}"))
        row.append(f"{max(r.other_cores for r in rs):.2f}")
        rows.append(row + [" / ".join(auc(rs[-1], t.name) for t in tasks)])
    header = ["pipeline", "contender", "jit", "examples/s"]
    header += ["vs plain (same pipeline)"] + (["setup s"] if setup else [])
    header += ["first epoch s", "other procs, cores (max)"]
    header += [f"train AUC {'/'.join(t.name for t in tasks)} (last run)"]
    return markdown_table(header, rows)


def ratio_lines(runs, pairs, required: float, prefix: str = "") -> list[str]:
    """`- {prefix}{what}: ratio — meets/MISSES the ≥ required requirement` for
    each `(ours, theirs, what)` of `pairs` whose keys both ran; the ratio of
    median examples/s."""
    lines = []
    for ours, theirs, what in pairs:
        if ours in runs and theirs in runs:
            ratio = median_speed(runs[ours]) / median_speed(runs[theirs])
            lines.append(
                f"- {prefix}{what}: {ratio:.3f} — {verdict(ratio, required)} the "
                f"≥ {required:.2f} requirement"
            )
    return lines


def warn_if_disturbed(runs: dict, limit: float = 0.25) -> None:
    """Print a warning when other processes used more than `limit` cores during
    any run of `runs` (`{key: [object with .other_cores, ...]}`)."""
    cores = [r.other_cores for rs in runs.values() for r in rs]
    busiest = max((c for c in cores if math.isfinite(c)), default=0.0)
    if busiest > limit:
        print(
            f"\nWARNING: other processes used up to {busiest:.2f} of "
            f"{usable_cpus()} cores during timed runs; these numbers are "
            "disturbed. Re-run on a quiet machine."
        )


# ----------------------------------------------------------------------------- children


class Child:
    """A child process that answers JSON lines with JSON lines.

    `command` starts it (e.g. `[sys.executable, script, ...]`); its first
    line is read by the first `ask()`. Lines that are not JSON objects (what a
    library prints) are skipped. Every read waits at most `timeout_s` (None: as
    long as the child lives); `close` asks it to quit, then kills it by its pid.
    """

    def __init__(self, name: str, command: Sequence[str], env: dict | None = None):
        self.name = name
        self.process = subprocess.Popen(
            list(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self._lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        for line in self.process.stdout:
            if line.startswith("{"):
                self._lines.put(line)
        self._lines.put(None)  # the child closed its stdout (it ended)

    def ask(self, command: str | None = None, timeout_s: float | None = 3600, **fields):
        """Send `{"command": command, **fields}` (unless None), return the reply."""
        if command is not None:
            self.process.stdin.write(json.dumps({"command": command, **fields}) + "\n")
            self.process.stdin.flush()
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            line = ""
        if not line:
            self.kill()
            why = "ended" if line is None else f"did not answer in {timeout_s:.0f} s"
            raise RuntimeError(f"{self.name}: the child process {why} ({command=}).")
        reply = json.loads(line)
        if "error" in reply:
            self.kill()
            raise RuntimeError(f"{self.name}: {reply['error']}")
        return reply

    def close(self) -> None:
        """Ask the child to quit; kill it by its pid if it has not in 30 s."""
        if self.process.poll() is not None:
            return
        try:
            self.process.stdin.write(json.dumps({"command": "quit"}) + "\n")
            self.process.stdin.close()
            self.process.wait(timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            self.kill()

    def kill(self) -> None:
        """End the child by its pid now (it failed or does not answer)."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def reply(message: dict) -> None:
    """Child side: send one message to the parent."""
    print(json.dumps(message), flush=True)


def serve(ready: dict, handlers: dict[str, Callable[..., dict]]) -> None:
    """Child side: send `ready`, then answer each command line with its handler's
    dict (the command's other fields are its keyword arguments) until `quit` or
    the end of stdin. An exception is sent as `{"error": ...}` and ends the child."""
    reply(ready)
    for line in sys.stdin:
        message = json.loads(line)
        command = message.pop("command")
        if command == "quit":
            return
        try:
            reply(handlers[command](**message))
        except Exception as error:
            reply({"error": f"{command}: {type(error).__name__}: {error}"})
            raise


def timed(fn: Callable[[], object]) -> dict:
    """Child side: `{"seconds", "other_cores"}` of one call of `fn` (a round)."""
    with OtherCpuMeter() as others:
        start = time.perf_counter()
        fn()
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "other_cores": others.cores}


def run_in_child(fn: Callable, *args, timeout_s: float | None = None):
    """`fn(*args)` in a fresh Python process (with this one's `sys.path`).

    `fn` must be a function of an importable module (not of `__main__`), its
    arguments and result picklable.
    """
    if fn.__module__ == "__main__":
        raise ValueError(f"run_in_child: {fn.__name__} must live in a module.")
    with tempfile.TemporaryDirectory(prefix="bench_child_") as tmp:
        call, result = Path(tmp) / "call.pkl", Path(tmp) / "result.pkl"
        with open(call, "wb") as f:
            pickle.dump((list(sys.path), pickle.dumps((fn, args))), f)
        command = [sys.executable, __file__, "--call", str(call), str(result)]
        with Child(fn.__name__, command) as child:
            child.ask(timeout_s=timeout_s)
        with open(result, "rb") as f:
            return pickle.load(f)


def _call_main(call: str, result: str) -> None:
    with open(call, "rb") as f:
        path, payload = pickle.load(f)
    sys.path[:] = path  # before unpickling: the function's module must import
    fn, args = pickle.loads(payload)
    try:
        value = fn(*args)
    except Exception as error:
        reply({"error": f"{fn.__name__}: {type(error).__name__}: {error}"})
        raise
    with open(result, "wb") as f:
        pickle.dump(value, f)
    reply({"done": True})


# ----------------------------------------------------------------------------- output


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table; numbers right-aligned, text left-aligned."""

    def is_number(cell: object) -> bool:
        text = str(cell).split(" ")[0].replace(",", "").replace("×", "")
        try:
            float(text)
        except ValueError:
            return False
        return True

    align = [
        "---:" if rows and all(is_number(r[i]) for r in rows) else ":---"
        for i in range(len(header))
    ]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


if __name__ == "__main__" and sys.argv[1:2] == ["--call"]:
    _call_main(*sys.argv[2:4])
