"""keras_mtl.run_sweep: XLA-compiled trials in replaced worker processes.

TensorFlow never frees an XLA executable within a process (see
keras_mtl/sweep.py): a tiny MMoE compiled with `jit_compile=True` adds about
330 memory mappings and about 30 MiB of RSS to the process that trains it,
whatever is deleted or cleared afterwards (benchmarks/sweep_memory.py,
docs/benchmarks.md). The fast tests check the worker replacement, errors and
arguments with a stand-in worker (no process); the slow one measures the growth
per model inside a real worker and checks that the calling process grows by
less than a tenth of it, and that a trial's exception reaches the caller.
"""

import os
import pickle
import sys
import types

import pytest

import keras_mtl as km
import keras_mtl.sweep
from keras_mtl.sweep import _RemoteTraceback, memory_usage, run_sweep


def test_memory_usage_reads_proc():
    usage = memory_usage()
    if sys.platform != "linux":
        pytest.skip("/proc is Linux's")
    with open("/proc/sys/vm/max_map_count") as f:
        assert usage["max_maps"] == int(f.read())
    assert 100 < usage["maps"] < usage["max_maps"]
    assert usage["rss_mb"] > 10  # (TensorFlow is loaded)


def test_bad_arguments_fail_before_any_process_starts(monkeypatch):
    with pytest.raises(ValueError, match="trials_per_process"):
        run_sweep(abs, [1], trials_per_process=0)
    with pytest.raises(ValueError, match=r"max_maps_share must lie in \(0, 1\]"):
        run_sweep(abs, [1], max_maps_share=1.5)
    with pytest.raises(TypeError, match="fn must be callable"):
        run_sweep(3, [1])
    with pytest.raises(TypeError, match="on_result must be callable"):
        run_sweep(abs, [1], on_result=3)

    # A notebook's function: its __main__ has no file for a fresh process to import.
    def notebook_fn(trial):
        return trial

    notebook_fn.__module__ = "__main__"
    monkeypatch.setitem(sys.modules, "__main__", types.ModuleType("__main__"))
    with pytest.raises(ValueError, match="'notebook_fn' is defined in an interactive"):
        run_sweep(notebook_fn, [])  # (checked before any trial)


def test_exported():
    assert km.run_sweep is run_sweep and km.sweep.memory_usage is memory_usage


class FakeWorker:
    """`_Worker` without a process: runs `fn` here and reports 100 + 300 maps
    per trial run, of a limit of 1,000."""

    started = []

    def __init__(self, context):
        assert context.get_start_method() == "spawn"
        self.trials, self.closed = 0, False
        self.process = types.SimpleNamespace(join=lambda timeout: None, exitcode=-9)
        FakeWorker.started.append(self)

    def call(self, payload):
        fn, trial = pickle.loads(payload)
        self.trials += 1
        if trial == "die":
            raise EOFError
        usage = {"maps": 100 + 300 * self.trials, "max_maps": 1000, "rss_mb": 1.0}
        try:
            return True, fn(trial), None, usage
        except Exception as error:
            return False, error, "Traceback (in the worker) ...", usage

    def close(self):
        self.closed = True


@pytest.fixture
def fake_worker(monkeypatch):
    FakeWorker.started = []
    monkeypatch.setattr(keras_mtl.sweep, "_Worker", FakeWorker)
    return FakeWorker


def double(x):
    if x == "bad":
        raise KeyError("bad trial")
    return 2 * x


def test_workers_are_replaced_every_n_trials(fake_worker):
    seen = []
    results = run_sweep(
        double,
        iter(range(5)),  # any iterable
        trials_per_process=2,
        max_maps_share=1.0,
        on_result=lambda *args: seen.append(args),
    )
    assert results == [0, 2, 4, 6, 8]
    assert seen == [(i, i, 2 * i) for i in range(5)]
    assert [w.trials for w in fake_worker.started] == [2, 2, 1]
    assert all(w.closed for w in fake_worker.started)


def test_workers_are_replaced_sooner_near_the_mapping_limit(fake_worker):
    # 400 maps after one trial, 700 after two: past half of 1,000.
    assert run_sweep(double, range(5), trials_per_process=10) == [0, 2, 4, 6, 8]
    assert [w.trials for w in fake_worker.started] == [2, 2, 1]
    assert run_sweep(double, range(3), max_maps_share=0.8) == [0, 2, 4]
    assert [w.trials for w in fake_worker.started[3:]] == [3]


def test_a_trial_error_reaches_the_caller_with_the_worker_traceback(fake_worker):
    with pytest.raises(KeyError, match="bad trial") as raised:
        run_sweep(double, [1, "bad", 3])
    assert str(raised.value.__cause__) == "Traceback (in the worker) ..."
    assert [(w.trials, w.closed) for w in fake_worker.started] == [(2, True)]


def test_what_does_not_pickle_fails_before_a_worker_starts(fake_worker):
    with pytest.raises(TypeError, match="fn and trial 0 .* must pickle"):
        run_sweep(lambda x: x, [1])
    with pytest.raises(TypeError, match=r"trial 1 \(<generator .*\) must pickle"):
        run_sweep(double, [1, (i for i in range(2))])
    assert [w.trials for w in fake_worker.started] == [1]


def test_a_dead_worker_is_reported(fake_worker):
    with pytest.raises(
        RuntimeError,
        match=r"worker process died during trial 1 \('die'\), exit code -9",
    ):
        run_sweep(double, [1, "die", 3])
    assert [(w.trials, w.closed) for w in fake_worker.started] == [(2, True)]


@pytest.mark.slow  # a worker process importing TensorFlow, two XLA compilations
@pytest.mark.xla
def test_sweep_keeps_the_caller_flat():
    from benchmarks.sweep_memory import trial, trials

    configs = trials(2, rows=128) + [{"seed": 9, "experts": 0, "rows": 128}]
    seen = []
    before = memory_usage()
    with pytest.raises(ValueError, match="num_experts") as raised:
        run_sweep(
            trial,
            configs,
            on_result=lambda i, config, result: seen.append((memory_usage(), result)),
        )
    # The last trial (0 experts) failed in the worker and was raised here, with
    # the worker's traceback as its cause.
    assert isinstance(raised.value.__cause__, _RemoteTraceback)
    assert "build_mmoe" in str(raised.value.__cause__)

    results = [result for _, result in seen]
    assert [r["rows"] for r in results] == [128] * 2
    assert all(r["jit"] for r in results)  # XLA was on in every trial
    assert results[0]["pid"] == results[1]["pid"] != os.getpid()

    # The unfixed growth, measured in the worker: every XLA-compiled model
    # leaves its mappings (about 330 here; 1,800 for census-size models), and
    # nothing in that process frees them. (That a fresh worker starts from the
    # bottom again is a fresh process; the replacement logic is tested above.)
    per_model = results[1]["maps"] - results[0]["maps"]
    assert per_model > 100, results
    # The caller grows by less than a tenth of that per model (it compiles
    # nothing; measured: 0 to 5 mappings in all), and its RSS by less than
    # 20 MiB in all (the worker's grows by about 30 MiB per model).
    caller = [usage["maps"] for usage, _ in seen]
    assert caller[-1] - before["maps"] < per_model / 10, (before, caller)
    assert seen[-1][0]["rss_mb"] - before["rss_mb"] < 20
