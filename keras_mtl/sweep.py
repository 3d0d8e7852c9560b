"""Long sweeps in one Python session: each trial's compiled code in a worker
process that is replaced before it runs out of memory mappings.

TensorFlow keeps every XLA executable it compiles for the life of the process:
its compilation cache (`tensorflow/compiler/jit/device_compilation_cache.h`,
held by the CPU device's resource manager) has no eviction, and no TensorFlow
call we found, public or private, releases it. Measured on TensorFlow 2.21 / Keras 3.15
(`benchmarks/sweep_memory.py`, docs/benchmarks.md "Long sweeps"): a tiny MMoE
compiled with `jit_compile=True` (fit, evaluate, predict) adds about 330
memory mappings (110 JIT-loaded objects of three sections each) and 30 MB of
RSS; dropping the model, `keras.backend.clear_session()`, `gc.collect()`,
clearing the eager kernel cache and even resetting the eager context release
none of them (the reset adds more), and the XLA flags tried reduce the count by
5 % at most. Linux allows `vm.max_map_count` (65,530 by default) mappings per process,
so a sweep over bigger models (about 1,800 mappings each) dies after a few dozen
with LLVM's "Unable to allocate section memory".

`run_sweep` therefore runs the trials in a child process and starts a fresh one
every `trials_per_process` trials, or sooner when the child's mappings pass a
share of the limit: the caller's process compiles nothing and stays flat, and
each child's growth is bounded.
"""

from __future__ import annotations

import multiprocessing
import sys
import traceback
from collections.abc import Callable, Iterable
from multiprocessing.reduction import ForkingPickler
from typing import Any

from keras_mtl._checks import check_positive_int

__all__ = ["memory_usage", "run_sweep"]


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


def memory_usage() -> dict:
    """This process's memory mappings and resident memory (Linux `/proc`).

    Returns:
        A dict with `maps` (lines of `/proc/self/maps`), `max_maps`
        (`vm.max_map_count`, the kernel's per-process limit) and `rss_mb`
        (resident set size in MiB); a value is None where `/proc` does not
        give it (not Linux).

    Example:

    >>> usage = km.sweep.memory_usage()
    >>> sorted(usage)
    ['maps', 'max_maps', 'rss_mb']
    >>> 0 < usage["maps"] < usage["max_maps"]  # (on Linux)
    True
    """
    try:
        with open("/proc/self/maps") as f:
            maps = sum(1 for _ in f)
    except OSError:
        maps = None
    rss_mb = None
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss_mb = int(line.split()[1]) / 1024
                    break
    except OSError:
        pass
    return {
        "maps": maps,
        "max_maps": _read_int("/proc/sys/vm/max_map_count"),
        "rss_mb": rss_mb,
    }


class _RemoteTraceback(Exception):
    """The traceback of a trial's exception in the worker, as its cause."""

    def __str__(self):
        return self.args[0]


def _worker(connection) -> None:
    """The child's loop: `(fn, trial)` in, `(ok, value, detail, usage)` out."""
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message is None:
            return
        fn, trial = message
        try:
            value = fn(trial)
            connection.send((True, value, None, memory_usage()))
        except BaseException as error:  # noqa: BLE001 (reported to the caller)
            detail = traceback.format_exc()
            try:
                connection.send((False, error, detail, memory_usage()))
            except Exception:  # the exception or the result does not pickle
                summary = RuntimeError(f"{type(error).__name__}: {error}")
                connection.send((False, summary, detail, memory_usage()))
            if not isinstance(error, Exception):
                return


class _Worker:
    def __init__(self, context):
        self.connection, child_end = context.Pipe()
        self.process = context.Process(
            target=_worker, args=(child_end,), name="keras_mtl.run_sweep"
        )
        self.process.start()
        child_end.close()
        self.trials = 0

    def call(self, payload: bytes):
        """Runs the pickled `(fn, trial)` in the worker; `(ok, value, detail,
        usage)` back."""
        self.connection.send_bytes(payload)  # (what `Connection.send` sends)
        self.trials += 1
        return self.connection.recv()

    def close(self, timeout: float = 30.0) -> None:
        try:
            self.connection.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.terminate()
            self.process.join(5)
        self.connection.close()


def _pickled(fn, trial, index: int) -> bytes:
    try:
        return ForkingPickler.dumps((fn, trial))
    except Exception as error:
        raise TypeError(
            f"run_sweep: fn and trial {index} ({trial!r}) must pickle to reach the "
            f"worker process (fn a module-level function, not a lambda or a "
            f"nested function): {type(error).__name__}: {error}"
        ) from error


def _check_fn(fn) -> None:
    if not callable(fn):
        raise TypeError(f"run_sweep: fn must be callable; got {fn!r}.")
    main = sys.modules.get("__main__")
    if getattr(fn, "__module__", None) == "__main__" and not getattr(
        main, "__file__", None
    ):
        raise ValueError(
            f"run_sweep: fn {getattr(fn, '__name__', fn)!r} is defined in an "
            "interactive session (a notebook or the REPL), which a fresh worker "
            "process cannot import. Define it in a .py module and import it, "
            "or in a script guarded by `if __name__ == '__main__':`."
        )


def run_sweep(
    fn: Callable[[Any], Any],
    trials: Iterable[Any],
    *,
    trials_per_process: int = 10,
    max_maps_share: float = 0.5,
    on_result: Callable[[int, Any, Any], None] | None = None,
) -> list:
    """`[fn(trial) for trial in trials]`, with the compiled code in worker processes.

    Each trial runs in a child Python process started with `spawn` (a clean
    TensorFlow, this process's `sys.path` and environment); after
    `trials_per_process` trials, or as soon as the child holds more than
    `max_maps_share` of `vm.max_map_count` memory mappings, the child exits and
    the next trial starts a fresh one, so XLA executables, which TensorFlow
    never frees within a process, are freed with it. One child at a time, the
    trials in order. A worker's start imports TensorFlow and keras_mtl again
    (5 s or so on a quiet machine), hence several trials per worker.

    `fn`, each trial and each result travel by pickle: `fn` must be importable
    (a module's function, or a script's guarded by
    `if __name__ == "__main__":`), and should return plain values (metrics,
    weights as numpy arrays, a saved model's path), not the model. The workers
    inherit the environment (`KERAS_BACKEND`, `XLA_FLAGS`, ...) but not
    settings made in code (`keras.config.set_floatx`, random seeds): make those
    inside `fn`.

    Args:
        fn: callable. Runs one trial, e.g. builds, trains and evaluates a model
            from a dict of hyper-parameters, and returns its result.
        trials: iterable. The trials' arguments, one `fn` call each.
        trials_per_process: int. Trials a worker runs before it is replaced.
            Defaults to 10 (each XLA-compiled census-size model takes about
            1,800 of the default 65,530 mappings).
        max_maps_share: float. Replace the worker sooner once its mappings
            exceed this share of `vm.max_map_count`, in (0, 1]. Defaults to 0.5.
        on_result: callable or None. Called as `on_result(index, trial,
            result)` after each trial (progress, saving as you go). Defaults to
            None.

    Returns:
        The list of `fn(trial)`, in the trials' order.

    Raises:
        The exception a trial raised (its worker traceback as the cause);
        RuntimeError when a worker died (e.g. killed, or out of memory).

    Example (not run here: each worker imports TensorFlow; the README's "Long
    sweeps in one process" has a whole script):

        # sweep.py
        def trial(units):
            model = km.build_mmoe(features, tasks, expert_units=(units,))
            model.fit(train, epochs=5, verbose=0)
            return model.evaluate(test, verbose=0, return_dict=True)

        if __name__ == "__main__":
            results = km.run_sweep(trial, [8, 16, 32], trials_per_process=2)
    """
    _check_fn(fn)
    trials_per_process = check_positive_int(
        "run_sweep", "trials_per_process", trials_per_process
    )
    if not 0.0 < float(max_maps_share) <= 1.0:
        raise ValueError(
            f"run_sweep: max_maps_share must lie in (0, 1]; got {max_maps_share!r}."
        )
    if on_result is not None and not callable(on_result):
        raise TypeError(f"run_sweep: on_result must be callable; got {on_result!r}.")
    context = multiprocessing.get_context("spawn")
    results = []
    worker = None
    try:
        for index, trial in enumerate(trials):
            payload = _pickled(fn, trial, index)
            if worker is None:
                worker = _Worker(context)
            try:
                ok, value, detail, usage = worker.call(payload)
            except (EOFError, ConnectionError) as error:
                worker.close()
                code = worker.process.exitcode
                worker = None
                raise RuntimeError(
                    f"run_sweep: the worker process died during trial {index} "
                    f"({trial!r}), exit code {code}."
                ) from error
            if not ok:
                raise value from _RemoteTraceback(detail)
            results.append(value)
            if on_result is not None:
                on_result(index, trial, value)
            maps, limit = usage["maps"], usage["max_maps"]
            full = maps is not None and limit and maps > max_maps_share * limit
            if full or worker.trials >= trials_per_process:
                worker.close()
                worker = None
    finally:
        if worker is not None:
            worker.close()
    return results
