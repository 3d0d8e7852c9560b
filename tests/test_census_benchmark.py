"""benchmarks/census.py end to end on a subsample of the real census-income file.

Two models, one seed, at most three epochs, in this process (`--no-isolation`);
the speed part with one repeat of one epoch. 5,120 rows: 3,584 training rows in
14 full batches of 256, validation and test of 768 rows each (one shape, one
compiled evaluation step per model), 20 full batches for the speed part. XLA
is off for keras_mtl's models and (`--no-xla`) for the hand-written PLE:
compiling costs more than these few steps (the plain PLE's XLA compile was
~20 s of the run), and no assertion here depends on it. Without the file (`../shared/data`) the
script runs on a generated frame with random labels, on which no AUC can be
checked; `test_generated_frame_without_the_file` covers that path.
"""

import re
from pathlib import Path

import pytest

from benchmarks import census as census_benchmark
from benchmarks.census import SPLIT, load_frame, main
from keras_mtl.data import split_frame
from tests.helpers import chance_auc, xla_off

INPUT_WIDTH = 31 * 4 + 7  # 31 embedded fields of width 4, 7 numeric columns
TOWERS = 2 * (16 * 8 + 8 + 8 + 1)  # two towers: Dense(8) on 16 units, Dense(1)
ROWS = 5120


def _row(out: str, label: str, after: str = "") -> list[str]:
    """Cells of the first table row for `label` after the line `after` starts."""
    text = out[out.index(after) :] if after else out
    lines = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    assert lines, f"no table row for {label!r} in:\n{text}"
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


def test_generated_frame_without_the_file():
    frame, tasks, real, source = load_frame(Path("/nonexistent/census.gz"), 300)
    assert not real and len(frame) == 300
    assert "GENERATED" in source and "random subsample of 300 rows" in source
    assert [t.name for t in tasks] == ["income", "marital"]
    for t in tasks:  # binary labels at about the census rates (6% and 43%)
        labels = frame[t.label_column]
        assert set(labels.unique()) == {0.0, 1.0}, t.name
    assert 0.0 < frame["income"].mean() < 0.2 < 0.3 < frame["marital"].mean() < 0.6


@pytest.mark.slow
@pytest.mark.shared_data
def test_census_benchmark_prints_accuracy_and_speed_tables(
    shared_data, capsys, monkeypatch
):
    path = shared_data / "census-income" / "census-income.test.gz"
    # The frame the benchmark loads, copied for the chance AUCs below (parsing
    # the census file a second time cost about 5 s).
    loaded = []

    def load_and_keep(*args):
        frame, tasks, *rest = load_frame(*args)
        loaded.append((args, frame.copy(), tasks))
        return (frame, tasks, *rest)

    monkeypatch.setattr(census_benchmark, "load_frame", load_and_keep)
    with xla_off():
        code = main(
            [
                "--data-path",
                str(path),
                "--rows",
                str(ROWS),
                "--models",
                "shared_bottom,mmoe",
                "--seeds",
                "1",
                "--max-epochs",
                "3",
                "--batch-size",
                "256",
                "--learning-rate",
                "0.005",
                "--no-isolation",
                "--repeats",
                "1",
                "--epochs",
                "1",
                "--skip-shuffled",
                "--no-xla",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0
    assert "GENERATED" not in out and "NOT the papers' split" in out
    assert f"random subsample of {ROWS:,} rows" in out

    # What a random scorer could reach on this test split (seed 0's split).
    [(args, frame, tasks)] = loaded  # one load: the file, subsampled to ROWS
    assert args == (path, ROWS), args
    test = split_frame(frame, SPLIT, seed=0)[2]
    chance = {}
    for t in tasks:
        positives = int(test[t.label_column].sum())
        chance[t.name] = chance_auc(positives, len(test) - positives)

    # Accuracy table: both models, hand-computed non-embedding parameter counts,
    # test AUCs far above chance; one seed, so the median is that seed's AUC and
    # no min–max range is printed.
    mmoe_params = 8 * (INPUT_WIDTH * 16 + 16) + 2 * INPUT_WIDTH * 8 + TOWERS
    bottom_params = INPUT_WIDTH * 136 + 136 + 2 * (136 * 8 + 8 + 8 + 1)
    for label, expected in (
        ("Shared-Bottom", bottom_params),
        ("MMoE (defaults)", mmoe_params),
    ):
        cells = _row(out, label)
        own = int(cells[3].split(" ")[0].replace(",", ""))
        assert own == expected, (label, cells)
        for task, cell in zip(("income", "marital"), cells[4:6]):
            assert re.fullmatch(r"0\.\d{4}", cell), (label, task, cell)
            assert float(cell) > chance[task], (label, task, cell, chance)
        # Patience 3 never stops a 3-epoch run early; the best epoch is 1, 2 or 3.
        assert re.fullmatch(r"[123]\.0 / 3\.0", cells[6]), cells
        # Training examples/s, one seed: a plain count, not a range.
        assert re.fullmatch(r"[1-9][\d,]*", cells[8]), cells
        assert cells[9] == "n/a", cells  # no Single-Task baseline selected
    assert "| Single-Task |" not in out  # not selected

    # The papers' table keeps their official-split numbers apart from ours.
    ours = _row(out, "MMoE (defaults)")
    paper = _row(out, "MMoE (defaults)", after="### Papers' numbers")
    assert paper[1] == ours[4].split(" ")[0] and paper[4] == ours[5].split(" ")[0]
    assert paper[2:4] == ["0.9359", "0.9493 or 0.9393 (*)"]
    assert paper[5:7] == ["0.9927", "0.9928"]
    assert _row(out, "Shared-Bottom", after="### Papers' numbers")[2:4] == [
        "0.9295",
        "—",
    ]

    # The defaults check names both builders; PLE defaults were not selected.
    check = re.search(r"CHECK `build_mmoe\(features, tasks\)`: income mean (\S+)", out)
    assert check and check.group(1) == ours[4].split(" ")[0], check
    assert "`ple_default`: not run" in out

    # Speed: equal parameter counts (asserted inside), both contenders timed.
    ple_params = (
        8 * (INPUT_WIDTH * 16 + 16)  # level 1 experts: 3 per task + 2 shared
        + 2 * INPUT_WIDTH * 5  # level 1 task gates over 3 + 2 experts
        + INPUT_WIDTH * 8  # level 1 shared gate over all 8 experts
        + 8 * (16 * 16 + 16)  # level 2 experts
        + 2 * 16 * 5  # level 2 task gates
        + TOWERS
    )
    assert f"{ple_params:,} non-embedding" in out
    speeds = dict(re.findall(r"`(plain|km)`: ([\d,]+) examples/s", out))
    speeds = {k: float(v.replace(",", "")) for k, v in speeds.items()}
    assert sorted(speeds) == ["km", "plain"]
    # One repeat: the ratio is that repeat's km / plain, and not absurd.
    ratio = re.search(r"RATIO keras_mtl / plain, no shuffle[^:]*: (\S+)", out)
    assert ratio and 0.1 < float(ratio.group(1)) < 10.0, ratio
    assert float(ratio.group(1)) == pytest.approx(
        speeds["km"] / speeds["plain"], abs=0.01
    )
    assert "total runtime:" in out


def test_training_speed_leaves_out_the_first_epoch():
    from benchmarks._census_models import EpochClock

    clock = EpochClock()
    clock.seconds = [9.0, 2.0, 4.0, 3.0]  # the first epoch compiles
    assert clock.examples_per_second(600) == 600 / 3.0
    clock.seconds = [5.0]  # a one-epoch run has only that epoch
    assert clock.examples_per_second(600) == 120.0
