"""benchmarks/serving_latency.py --quick on generated data: the table's shape
and sane percentiles (no timing assertions). DeepCTR is optional: its rows
appear only when this Python has `deepctr` and `tf_keras` (or
`$DEEPCTR_PYTHON` names one); the fast test leaves it out."""

import re

import pytest

from benchmarks import serving_latency as bench

HEADER = (
    "| contender | key | XLA | batch | p50 ms, median (min–max) | "
    "p99 ms (all calls) | rows/s, median (min–max) | calls |"
)


def _rows(out: str) -> dict:
    """`{(key, batch): (p50, p99, rows_s, calls)}` of the latency table."""
    found = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 8 or not cells[1].startswith("`"):
            continue
        key, batch = cells[1].strip("`"), int(cells[3])
        p50 = float(cells[4].split(" ")[0])
        p99 = float(cells[5])
        rows_s = float(cells[6].split(" ")[0].replace(",", ""))
        found[key, batch] = (p50, p99, rows_s, int(cells[7]))
    return found


def _check(out: str, keys, batches, rounds: int, calls: int) -> dict:
    assert HEADER in out
    assert re.search(r"^- threads: intra-op \d+.*, inter-op \d+", out, re.M), out
    rows = _rows(out)
    assert set(rows) == {(k, b) for k in keys for b in batches}, sorted(rows)
    for (key, batch), (p50, p99, rows_s, n) in rows.items():
        assert p50 > 0 and p99 > 0 and rows_s > 0, (key, batch)
        assert p99 >= p50, (key, batch, p50, p99)
        assert n == rounds * calls
    return rows


def test_quick_run_prints_the_latency_table(capsys, monkeypatch):
    monkeypatch.delenv("DEEPCTR_PYTHON", raising=False)
    code = bench.main(
        ["--quick", "--models", "mmoe,floor", "--batches", "1,4", "--calls", "3"]
    )
    out = capsys.readouterr().out
    assert code == 0
    keys = ["mmoe", "mmoe+xla", "mmoe_unchecked", "mmoe_unchecked+xla", "floor"]
    _check(out, keys, [1, 4], rounds=2, calls=3)
    assert "MMoE without XLA, batch-1 p50" in out
    assert "MMoE with XLA, batch-1 p50" in out
    assert "| keras_mtl MMoE, census (strings in) | `mmoe+xla` | yes | 1 |" in out


@pytest.mark.slow
def test_quick_run_of_every_other_model():
    """Every model the fast test above leaves out (it runs MMoE and the floor)."""
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = bench.main(
            [
                "--quick",
                "--models",
                "ple,esmm,dupn,deepctr",
                "--batches",
                "1,8",
                "--calls",
                "3",
            ]
        )
    out = out.getvalue()
    assert code == 0
    keys = ["ple", "esmm", "dupn_encoder", "dupn_scorer", "dupn_request"]
    if "- DeepCTR skipped" not in out:
        keys += ["deepctr_mmoe", "deepctr_mmoe_strings"]
    keys = [k + x for k in keys for x in ("", "+xla")]
    _check(out, keys, [1, 8], rounds=2, calls=3)


def test_arguments():
    args = bench.parse_args(["--quick"])
    assert args.batches == [1, 64, 512] and args.calls == [5, 5, 5]
    assert args.rounds == 2
    args = bench.parse_args(["--calls", "7", "--batches", "1,2"])
    assert args.calls == [7, 7] and args.rounds == 5
    with pytest.raises(SystemExit):
        bench.parse_args(["--models", "mmoe,nope"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--calls", "1,2"])
