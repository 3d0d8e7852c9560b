"""benchmarks/_harness.py: the spread, the alternated order of rounds, and the
one child-process driver (JSON lines both ways, deadlines, errors, one-call
children). Fast: the children are plain Python, without TensorFlow."""

import math
import os
import sys
import textwrap

import pytest

from benchmarks import _harness as h


def test_spread_is_the_median_and_the_range():
    assert h.spread([3.0, 1.0, 2.0, 10.0]) == "2 (1–10)"  # median of four: 2.5 -> 2
    assert h.spread([0.93456, 0.9412, 0.9388], "{:.4f}") == "0.9388 (0.9346–0.9412)"
    assert h.spread([12345.6]) == "12,346"  # one run: no range
    assert h.spread([-0.01, 0.02, 0.005], "{:+.4f}") == "+0.0050 (-0.0100–+0.0200)"
    assert h.spread([]) == "n/a" and h.spread([], empty="—") == "—"


def test_alternated_rounds_reverse_the_order_every_other_round(capsys):
    order = []

    def contender(key, seconds):
        def run():
            order.append(key)
            return h.Run(examples=100, seconds=seconds, model=object())

        return h.Contender(key, key.upper(), run)

    contenders = [contender("a", 1.0), contender("b", 2.0), contender("c", 4.0)]
    runs = h.alternated_rounds(contenders, 3)
    assert order == ["a", "b", "c", "c", "b", "a", "a", "b", "c"]
    assert {k: [r.examples_per_s for r in v] for k, v in runs.items()} == {
        "a": [100.0] * 3,
        "b": [50.0] * 3,
        "c": [25.0] * 3,
    }
    # Only each contender's last run keeps its model.
    assert all(
        [r.model is None for r in v] == [True, True, False] for v in runs.values()
    )
    out = capsys.readouterr().out
    assert "- round 2/3 `c`: 25 examples/s, other processes nan cores" in out
    lines = h.ratio_lines(runs, [("a", "c", "a vs c"), ("a", "x", "absent")], 3.0)
    assert lines == ["- a vs c: 4.000 — meets the ≥ 3.00 requirement"]
    assert h.verdict(0.899, 0.9) == "MISSES"


WORKER = """
import sys
sys.path.insert(0, {benchmarks!r})
import _harness

print("a library's own chatter, skipped", flush=True)

def add(a, b):
    if a < 0:
        raise ValueError("negative")
    return {{"sum": a + b}}

def hang():
    import time
    time.sleep(60)

_harness.serve({{"pid": __import__("os").getpid()}}, {{"add": add, "hang": hang}})
"""


@pytest.fixture
def worker(tmp_path):
    script = tmp_path / "worker.py"
    benchmarks = os.path.dirname(h.__file__)
    script.write_text(textwrap.dedent(WORKER.format(benchmarks=benchmarks)))
    return [sys.executable, str(script)]


def test_child_answers_json_lines_and_reports_its_errors(worker):
    with h.Child("adder", worker) as child:
        pid = child.ask(timeout_s=60)["pid"]
        assert pid == child.process.pid
        assert child.ask("add", a=2, b=3) == {"sum": 5}
        with pytest.raises(RuntimeError, match="adder: add: ValueError: negative"):
            child.ask("add", a=-1, b=3)
    assert child.process.poll() is not None  # ended, and waited for


def test_child_reads_have_a_deadline(worker):
    child = h.Child("sleeper", worker)
    child.ask(timeout_s=60)
    with pytest.raises(RuntimeError, match="sleeper: .* did not answer in 1 s"):
        child.ask("hang", timeout_s=1)
    assert child.process.poll() is not None  # killed by its pid


def test_a_child_that_ends_is_reported(tmp_path):
    script = tmp_path / "dies.py"
    script.write_text("raise SystemExit(3)\n")
    with pytest.raises(RuntimeError, match="quitter: the child process ended"):
        h.Child("quitter", [sys.executable, str(script)]).ask(timeout_s=60)


def test_run_in_child_calls_a_function_in_a_fresh_process():
    assert h.run_in_child(os.getpid) != os.getpid()
    assert h.run_in_child(math.hypot, 3.0, 4.0) == 5.0
    with pytest.raises(RuntimeError, match="sqrt: ValueError"):
        h.run_in_child(math.sqrt, -1.0)
