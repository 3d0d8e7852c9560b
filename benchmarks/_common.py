"""Helpers shared by the benchmark scripts: machine notes, statistics, tables.

Kept free of TensorFlow / Keras imports at module level so that a script's
`--help` stays fast; versions are read from the modules only when asked.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

#: Root of the repository (the parent of `benchmarks/`).
REPO_ROOT = Path(__file__).resolve().parents[1]


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
        self.cores = float("nan")
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
        self.cores = max(others, 0.0) / wall if wall > 0 else float("nan")


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


# ----------------------------------------------------------------------------- stats


def median_range(values: Sequence[float], fmt: str = "{:,.0f}") -> str:
    """`median (min–max)` of a list of numbers, or just the value for one run."""
    values = list(values)
    if not values:
        return "n/a"
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


# ----------------------------------------------------------------------------- training runs


@dataclasses.dataclass
class Contender:
    """A model and its input pipeline.

    `setup()` builds and compiles the model and its data; it returns
    `(model, fit)` where `fit(epochs)` trains for `epochs` epochs.
    """

    key: str
    label: str
    setup: Callable[[], tuple]
    group: str  # "no shuffle" / "shuffle every epoch"


@dataclasses.dataclass
class Run:
    setup_s: float
    first_epoch_s: float
    timed_s: float
    examples_per_s: float
    metrics: dict
    jit_compile: object
    other_cores: float  # CPU used by other processes during the timed epochs


def run_once(contender: Contender, rows: int, epochs: int, batch_size: int):
    import keras

    keras.backend.clear_session()
    gc.collect()
    start = time.perf_counter()
    model, fit = contender.setup()
    setup_s = time.perf_counter() - start
    start = time.perf_counter()
    fit(1)
    first_epoch_s = time.perf_counter() - start
    steps_before = int(model.optimizer.iterations.numpy())
    with OtherCpuMeter() as others:
        start = time.perf_counter()
        history = fit(epochs)
        timed_s = time.perf_counter() - start
    steps = int(model.optimizer.iterations.numpy()) - steps_before
    expected = epochs * -(-rows // batch_size)
    if steps != expected:
        raise AssertionError(
            f"{contender.key}: {steps} training steps in {epochs} epochs, "
            f"expected {expected}; the throughput would be wrong."
        )
    last = {k: v[-1] for k, v in history.history.items()}
    run = Run(
        setup_s,
        first_epoch_s,
        timed_s,
        rows * epochs / timed_s,
        last,
        model.jit_compile,
        others.cores,
    )
    return run, model


def run_rotated(
    contenders: Sequence[Contender],
    rows: int,
    epochs: int,
    batch_size: int,
    repeats: int,
    keep: str | None = None,
):
    """`run_once` for every contender, `repeats` times; one printed line per run.

    The order is rotated, and reversed every other repeat, so that no contender
    always runs first, or always right after the same one. Returns `(runs,
    kept)`: the runs by contender key, and the model of contender `keep` from
    its last run (None without `keep`).
    """
    runs = {c.key: [] for c in contenders}
    kept = None
    for r in range(repeats):
        shift = r % len(contenders)
        order = list(contenders[shift:]) + list(contenders[:shift])
        for c in order[::-1] if r % 2 else order:
            run, model = run_once(c, rows, epochs, batch_size)
            runs[c.key].append(run)
            print(
                f"- repeat {r + 1}/{repeats} `{c.key}`: "
                f"{run.examples_per_s:,.0f} examples/s, first epoch "
                f"{run.first_epoch_s:.1f} s, other processes {run.other_cores:.2f} "
                f"cores, load average {load_average()}",
                flush=True,
            )
            if c.key == keep:
                kept = model
            del model
    return runs, kept


def median_speed(runs: dict, key: str) -> float:
    """Median examples/s of the runs of contender `key`."""
    return statistics.median(r.examples_per_s for r in runs[key])


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


def warn_if_disturbed(runs: dict, limit: float = 0.25) -> None:
    """Print a warning when other processes used more than `limit` cores during
    any timed run of `runs` (`{key: [Run, ...]}`)."""
    busiest = max(r.other_cores for rs in runs.values() for r in rs)
    if busiest > limit:
        print(
            f"\nWARNING: other processes used up to {busiest:.2f} of "
            f"{usable_cpus()} cores during timed epochs; these numbers are "
            "disturbed. Re-run on a quiet machine."
        )
