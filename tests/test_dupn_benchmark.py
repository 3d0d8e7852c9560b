"""benchmarks/dupn_movielens.py --quick end to end on the generated MovieLens files.

Five trained models (multi-task DUPN, three per-task DUPNs, mean pooling) of
width 8 on a history of 8 steps, one epoch, one seed, the popularity baseline,
and the serving check through three exported SavedModels. XLA is off: compiling
five models costs more than their one epoch, and nothing checked here depends
on it (the builders' tests cover DUPN's XLA path). Most of the time is tracing
and the SavedModel export.

At this size (40 generated users, one epoch) no contender beats chance
reliably, so the scores are checked against what they must equal: each run's
own line, the paired differences, and a popularity ranking recomputed here.
"""

import math
import re

import numpy as np
import pytest

from benchmarks.dupn_movielens import CONTENDERS, POPULARITY, TASK_HEADERS, main
from keras_mtl.datasets import load_movielens
from tests.helpers import xla_off
from tests.movielens_fixture import write_movielens

NUMBER = r"\d+\.\d{4}"  # one seed: the median is that seed's score, no range
COLUMNS = {"ctr": 1, "l2r": 2, "genre": 3}


def _cells(out: str, label: str) -> list[str]:
    lines = [line for line in out.splitlines() if line.startswith(f"| {label} |")]
    assert len(lines) == 1, f"expected one table row for {label!r} in:\n{out}"
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def _score(cell: str) -> float:
    assert re.fullmatch(NUMBER, cell), cell  # one seed: no min–max range
    return float(cell)


def test_random_order_ndcg_hand_computed():
    from benchmarks.dupn_movielens import random_ndcg

    # One relevant item among 2, top 1: found first half of the time.
    assert random_ndcg(2, 1) == pytest.approx(0.5)
    # Among 20, top 10: rank r (probability 1/20 each) scores 1 / log2(r + 1).
    expected = sum(1 / math.log2(r + 1) for r in range(1, 11)) / 20
    assert random_ndcg(20, 10) == pytest.approx(expected) == pytest.approx(0.2272, 1e-3)


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables")
def test_dupn_benchmark_quick_run_prints_scores_and_equal_serving_outputs(
    tmp_path, capsys
):
    data = write_movielens(tmp_path / "ml-100k", num_users=40, num_items=60, seed=0)
    # One batch holds the 705 training examples: one trace of the train step.
    with xla_off():
        code = main(["--quick", "--data-path", str(data), "--batch-size", "1024"])
    out = capsys.readouterr().out
    assert code == 0
    assert "units=8, profile_units=8 (user representation 16)" in out
    assert "max_len=8" in out
    assert f"- data: {data}" in out

    # One row per contender, the LSTM row skipped in --quick; one seed, so each
    # score is the one printed for that contender's run.
    assert "| standard LSTM multi-task |" not in out
    scores = {}
    for key, (label, _, tasks) in CONTENDERS.items():
        if key == "lstm":
            continue
        cells = _cells(out, label)
        run = re.search(
            rf"^- {re.escape(label)}: (.+?); 1 epochs \(best 1\), ([\d,]+) examples/s",
            out,
            re.M,
        )
        assert run, (label, out)
        printed = dict(part.split(" ") for part in run.group(1).split(", "))
        assert sorted(printed) == sorted(tasks), printed
        for task, column in COLUMNS.items():
            if task in tasks:
                scores[key, task] = _score(cells[column])
                assert scores[key, task] == float(printed[task]), (label, task)
            else:  # a per-task model reports its own task only
                assert cells[column] == "—", (label, cells)
        assert cells[4] == "1 (1)", cells  # one epoch, the best one
        assert cells[5] == run.group(2), cells  # examples/s of the one run
        total, own = re.fullmatch(r"([\d,]+) \(([\d,]+)\)", cells[6]).groups()
        # The item hash table (16384 x 32) is most of every model.
        assert int(total.replace(",", "")) > 16384 * 32 > int(own.replace(",", ""))

    # Popularity: each test candidate scored by its train-period rating count,
    # recomputed here. Many candidates tie on the count and NDCG orders ties
    # arbitrarily, so the benchmark's value lies between the NDCGs of the
    # positive placed last and first among its ties.
    ml = load_movielens(data, max_len=8, seed=0)
    counts = ml.popularity.astype(np.float64)[ml.test["candidates_item"]]
    positive = counts[ml.test["relevance"] == 1][:, None]
    above = (counts > positive).sum(axis=1)
    ties = (counts == positive).sum(axis=1) - 1
    assert ties.any()  # the case the bounds are for

    def ndcg_at_10(rank):
        return float(np.where(rank <= 10, 1 / np.log2(rank + 1), 0.0).mean())

    popularity = _cells(out, POPULARITY)
    lowest, highest = ndcg_at_10(above + ties + 1), ndcg_at_10(above + 1)
    assert lowest - 1e-4 <= _score(popularity[COLUMNS["l2r"]]) <= highest + 1e-4
    assert popularity[COLUMNS["ctr"]] == popularity[COLUMNS["genre"]] == "—"
    assert "expected NDCG@10 0.2272" in out

    # Paired comparisons: per task, multi-task minus the per-task model and
    # minus mean pooling, from the table's own scores.
    for task in ("ctr", "l2r", "genre"):
        for other, label in ((f"dupn_{task}", "per-task"), ("mean", "mean pooling")):
            line = re.search(
                rf"- {re.escape(TASK_HEADERS[task])}: multi-task − {label} = "
                r"([+-]\d+\.\d+) \(multi-task higher on ([01])/1 seeds\)",
                out,
            )
            assert line, (task, label, out)
            diff = scores["dupn", task] - scores[other, task]
            assert float(line.group(1)) == pytest.approx(diff, abs=2e-4), (task, label)
            if abs(diff) > 2e-4:  # else too close to call from rounded scores
                assert line.group(2) == ("1" if diff > 0 else "0"), (task, label)

    # Serving: the four timings, and (a) == (b) on the ctr scores.
    for name in ("(a) full model", "(b) user_encoder + scorer", "scorer alone"):
        _, _, median, p90 = _cells(out, name)
        assert 0.0 < float(median) <= float(p90), (name, median, p90)
    assert "one request with 100 candidates" in out
    assert re.search(r"ctr scores of \(a\) and \(b\): .*: EQUAL within 1e-5", out)
    assert "total runtime:" in out
