"""benchmarks/dupn_movielens.py --quick end to end on the generated MovieLens files.

Five trained models (multi-task DUPN, three per-task DUPNs, mean pooling) of
width 8 on a history of 8 steps, one epoch, one seed, the popularity baseline,
and the serving check through three exported SavedModels. About 30-40 s on a
2-core machine, most of it tracing and the SavedModel export.
"""

import re

import pytest

from benchmarks.dupn_movielens import CONTENDERS, POPULARITY, main
from tests.movielens_fixture import write_movielens

NUMBER = r"(\d+\.\d+) ± (\d+\.\d+)"
COLUMNS = {"ctr": 1, "l2r": 2, "genre": 3}


def _cells(out: str, label: str) -> list[str]:
    lines = [line for line in out.splitlines() if line.startswith(f"| {label} |")]
    assert len(lines) == 1, f"expected one table row for {label!r} in:\n{out}"
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def _score(cell: str) -> float:
    match = re.fullmatch(NUMBER, cell)
    assert match, cell
    mean, std = (float(v) for v in match.groups())
    assert 0.0 <= mean <= 1.0 and std == 0.0, cell  # one seed: no spread
    return mean


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:Gradients do not exist for variables")
def test_dupn_benchmark_quick_run_prints_scores_and_equal_serving_outputs(
    tmp_path, capsys
):
    data = write_movielens(tmp_path / "ml-100k", num_users=40, num_items=60, seed=0)
    code = main(["--quick", "--data-path", str(data)])
    out = capsys.readouterr().out
    assert code == 0
    assert "units=8, profile_units=8 (user representation 16)" in out
    assert "max_len=8" in out
    assert f"- data: {data}" in out

    # One row per contender, the LSTM row skipped in --quick.
    assert "| standard LSTM multi-task |" not in out
    for key, (label, _, tasks) in CONTENDERS.items():
        if key == "lstm":
            continue
        cells = _cells(out, label)
        for task, column in COLUMNS.items():
            if task in tasks:
                _score(cells[column])
            else:  # a per-task model reports its own task only
                assert cells[column] == "—", (label, cells)
        assert cells[4] == "1 (1)", cells  # one epoch, the best one
        assert float(cells[5].replace(",", "")) > 0, cells  # examples/s
        total, own = re.fullmatch(r"([\d,]+) \(([\d,]+)\)", cells[6]).groups()
        # The item hash table (16384 x 32) is most of every model.
        assert int(total.replace(",", "")) > 16384 * 32 > int(own.replace(",", ""))

    popularity = _cells(out, POPULARITY)
    _score(popularity[COLUMNS["l2r"]])
    assert popularity[COLUMNS["ctr"]] == popularity[COLUMNS["genre"]] == "—"

    # Paired comparisons: per task against the per-task model and mean pooling.
    assert len(re.findall(r"multi-task − (per-task|mean pooling) = [+-]", out)) == 6

    # Serving: the four timings, and (a) == (b) on the ctr scores.
    for name in ("(a) full model", "(b) user_encoder + scorer", "scorer alone"):
        _, _, median, p90 = _cells(out, name)
        assert 0.0 < float(median) <= float(p90), (name, median, p90)
    assert "one request with 100 candidates" in out
    assert re.search(r"ctr scores of \(a\) and \(b\): .*: EQUAL within 1e-5", out)
    assert "total runtime:" in out
