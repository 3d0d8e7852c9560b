"""benchmarks/synthetic.py end to end at the smallest settings that still learn.

One run at one correlation, three models, 2,048 training rows in 32 full batches
of 64 for 8 epochs: enough for every model to clearly beat a constant. XLA is
off: compiling costs more than these trainings and the script's output does not
depend on it (the builders' tests cover their XLA path).
"""

import math
import re

import numpy as np
import pytest

from benchmarks.synthetic import DIM, LABELS, MODELS, main
from keras_mtl.datasets import make_synthetic
from tests.helpers import xla_off

ROWS = (2048, 128, 128)  # train, validation, test


def constant_mse() -> list[float]:
    """Per task (y1, y2), the test MSE of the training mean on the run's data
    (seed 0, p = 0.9)."""
    data = make_synthetic(sum(ROWS), dim=DIM, correlation=0.9, seed=0).data
    mses = []
    for task in ("y1", "y2"):
        train, test = data[task][: ROWS[0]], data[task][-ROWS[2] :]
        mses.append(float(np.mean((test - train.mean()) ** 2)))
    return mses


def test_parameter_budgets_hand_computed():
    from benchmarks.synthetic import parameter_counts

    experts = 8 * (DIM * 16 + 16)  # 8 experts of Dense(16) on the 100 inputs
    towers = 2 * (16 * 8 + 8 + 8 + 1)  # per task Dense(8) then Dense(1)
    bottom = DIM * 113 + 113  # Shared-Bottom: Dense(113)
    assert parameter_counts() == {
        "mmoe": experts + 2 * DIM * 8 + towers,  # a bias-free gate per task
        "omoe": experts + DIM * 8 + towers,  # one gate
        "shared_bottom": bottom + 2 * (113 * 8 + 8 + 8 + 1),
    }


def test_every_contender_is_sized_to_the_papers_budget():
    from benchmarks.synthetic import CONTENDERS, parameter_counts

    counts = parameter_counts(models=tuple(CONTENDERS))
    assert set(counts) == set(CONTENDERS)
    for name, count in counts.items():
        assert 0.75 < count / counts["mmoe"] < 1.25, (name, counts)


def test_unknown_contender_is_named(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["--models", "mmoe,nope"])
    assert stop.value.code == 2
    assert "unknown ['nope']" in capsys.readouterr().err


def test_paired_differences_are_against_shared_bottom():
    from benchmarks.synthetic import _pairs

    assert _pairs(("mmoe", "omoe", "shared_bottom")) == [
        ("mmoe", "shared_bottom"),
        ("omoe", "shared_bottom"),
        ("mmoe", "omoe"),
    ]
    assert _pairs(("sluice", "shared_bottom")) == [("sluice", "shared_bottom")]
    assert _pairs(("sluice", "snr_trans")) == []


@pytest.mark.slow
def test_synthetic_benchmark_prints_a_table_that_beats_a_constant_and_a_plot(
    tmp_path, capsys
):
    plot = tmp_path / "synthetic.png"
    with xla_off():
        code = main(
            [
                "--correlations",
                "0.9",
                "--runs",
                "1",
                "--train-rows",
                str(ROWS[0]),
                "--val-rows",
                str(ROWS[1]),
                "--test-rows",
                str(ROWS[2]),
                "--epochs",
                "8",
                "--batch-size",
                "64",
                "--plot",
                str(plot),
            ]
        )
    out = capsys.readouterr().out
    assert code == 0

    # One line per model whose per-task losses beat predicting the training mean.
    runs = dict(
        (label, (float(loss), float(t1), float(t2)))
        for label, loss, t1, t2 in re.findall(
            r"- run 0 (.+?): test MSE (\S+) \(tasks (\S+), (\S+)\)", out
        )
    )
    assert list(runs) == [LABELS[m] for m in MODELS], runs
    constant = constant_mse()
    for loss, t1, t2 in runs.values():
        assert math.isclose(loss, (t1 + t2) / 2, abs_tol=1e-4)
        for mse, baseline in zip((t1, t2), constant):
            assert mse < 0.75 * baseline, (runs, constant)

    # The table: one run, so the median is that run's loss and no min–max range
    # is printed.
    lines = out.splitlines()
    header = lines.index("| model | p = 0.9 |")
    rows = lines[header + 2 : header + 5]
    assert [r.split("|")[1].strip() for r in rows] == [LABELS[m] for m in MODELS]
    for row in rows:
        label, cell = (c.strip() for c in row.split("|")[1:3])
        assert re.fullmatch(r"\d+\.\d{4}", cell), cell
        assert float(cell) == pytest.approx(runs[label][0], abs=1e-4)

    # The budget is printed, and the three models are within 15% of each other.
    counts = re.search(
        r"trainable parameters: MMoE (\S+), OMoE (\S+), Shared-Bottom (\S+) ", out
    )
    counts = [int(c.replace(",", "")) for c in counts.groups()]
    assert max(counts) / min(counts) < 1.15, counts

    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 10_000
    assert "total runtime:" in out
