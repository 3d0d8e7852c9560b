"""benchmarks/synthetic.py end to end, at the tiniest settings (~20 s: 3 trainings)."""

import math
import re

import pytest

from benchmarks.synthetic import LABELS, main


@pytest.mark.slow
def test_synthetic_benchmark_prints_a_finite_table_and_saves_the_plot(tmp_path, capsys):
    plot = tmp_path / "synthetic.png"
    code = main(
        [
            "--correlations",
            "0.9",
            "--runs",
            "1",
            "--train-rows",
            "300",
            "--val-rows",
            "100",
            "--test-rows",
            "100",
            "--epochs",
            "1",
            "--plot",
            str(plot),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0

    lines = out.splitlines()
    header = lines.index("| model | p = 0.9 |")
    rows = lines[header + 2 : header + 5]
    assert [r.split("|")[1].strip() for r in rows] == list(LABELS.values())
    for row in rows:
        cell = row.split("|")[2]
        mean, std, low = (
            float(x)
            for x in re.fullmatch(r" (\S+) ± (\S+) \(min (\S+)\) ", cell).groups()
        )
        # One run: the mean is that run's loss, the spread is zero.
        assert math.isfinite(mean) and mean > 0 and std == 0 and low == mean

    # Three per-run lines, each with finite per-task losses.
    runs = re.findall(r"- run 0 .*: test MSE (\S+) \(tasks (\S+), (\S+)\)", out)
    assert len(runs) == 3
    for loss, t1, t2 in runs:
        assert math.isclose(float(loss), (float(t1) + float(t2)) / 2, abs_tol=1e-4)
        assert all(math.isfinite(float(x)) for x in (t1, t2))

    # The budget is printed, and the three models are within 15% of each other.
    counts = re.search(
        r"trainable parameters: MMoE (\S+), OMoE (\S+), Shared-Bottom (\S+) ", out
    )
    counts = [int(c.replace(",", "")) for c in counts.groups()]
    assert max(counts) / min(counts) < 1.15, counts

    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000
    assert "total runtime:" in out
