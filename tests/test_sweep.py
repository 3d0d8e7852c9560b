"""keras_mtl.run_sweep: XLA-compiled trials in replaced worker processes.

TensorFlow never frees an XLA executable within a process (see
keras_mtl/sweep.py): a tiny MMoE compiled with `jit_compile=True` adds about
330 memory mappings and 40 MiB of RSS to the process that trains it, whatever
is deleted or cleared afterwards (benchmarks/sweep_memory.py, docs/benchmarks.md).
The slow test measures that growth inside its own workers and checks that the
calling process grows by less than a tenth of it per model, that each fresh
worker starts again from the bottom, and that a trial's exception reaches the
caller.
"""

import sys
import types

import pytest

import keras_mtl as km
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


@pytest.mark.slow  # two worker processes, each importing TensorFlow
@pytest.mark.xla
def test_sweep_keeps_the_caller_flat_and_bounds_each_worker():
    from benchmarks.sweep_memory import trial, trials

    configs = trials(3, rows=128) + [{"seed": 9, "experts": 0, "rows": 128}]
    seen = []
    before = memory_usage()
    with pytest.raises(ValueError, match="num_experts") as raised:
        run_sweep(
            trial,
            configs,
            trials_per_process=2,
            on_result=lambda i, config, result: seen.append((memory_usage(), result)),
        )
    # The last trial (0 experts) failed in its worker and was raised here, with
    # the worker's traceback as its cause.
    assert isinstance(raised.value.__cause__, _RemoteTraceback)
    assert "build_mmoe" in str(raised.value.__cause__)

    results = [result for _, result in seen]
    assert [r["rows"] for r in results] == [128] * 3
    assert all(r["jit"] for r in results)  # XLA was on in every trial
    pids = [r["pid"] for r in results]
    assert pids[0] == pids[1] != pids[2]  # replaced after 2 trials

    # The unfixed growth, measured in the first worker: every XLA-compiled model
    # leaves its mappings (about 330 here; 1,800 for census-size models).
    per_model = results[1]["maps"] - results[0]["maps"]
    assert per_model > 100, results
    # The next worker starts from the bottom again: after its first model it
    # holds fewer mappings than the first worker did after its second.
    assert results[2]["maps"] < results[1]["maps"] - per_model / 2
    # The caller grows by less than a tenth of that per model (it compiles
    # nothing; measured: 0 to 2 mappings), and its RSS by less than 20 MiB in
    # all (a worker's grows by about 40 MiB per model).
    caller = [usage["maps"] for usage, _ in seen]
    assert (caller[-1] - caller[0]) / 2 < per_model / 10, caller
    assert seen[-1][0]["rss_mb"] - before["rss_mb"] < 20
