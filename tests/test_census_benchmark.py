"""benchmarks/census.py end to end on the generated census-shaped frame, tiny settings.

Two models, one seed, one epoch, each in its own child process (the script's
default); the speed part with one repeat of one epoch on 2,048 rows (two full
batches of 1,024: one XLA compilation per contender). About 60 s on an idle
2-core machine, almost all of it process start-up and XLA compilation.
"""

import math
import re

import pytest

from benchmarks.census import main

INPUT_WIDTH = 31 * 4 + 7  # 31 embedded fields of width 4, 7 numeric columns
TOWERS = 2 * (16 * 8 + 8 + 8 + 1)  # two towers: Dense(8) on 16 units, Dense(1)


def _row(out: str, label: str, after: str = "") -> list[str]:
    """Cells of the first table row for `label` after the line `after` starts."""
    text = out[out.index(after) :] if after else out
    lines = [line for line in text.splitlines() if line.startswith(f"| {label} |")]
    assert lines, f"no table row for {label!r} in:\n{text}"
    return [cell.strip() for cell in lines[0].strip("|").split("|")]


@pytest.mark.slow
def test_census_benchmark_prints_finite_accuracy_and_speed_tables(capsys):
    code = main(
        [
            "--data-path",
            "/nonexistent/census-income.test.gz",
            "--rows",
            "2048",
            "--models",
            "shared_bottom,mmoe",
            "--seeds",
            "1",
            "--max-epochs",
            "1",
            "--repeats",
            "1",
            "--epochs",
            "1",
            "--skip-shuffled",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "GENERATED census-shaped RANDOM data" in out
    assert "NOT the papers' split" in out

    # Accuracy table: both models, hand-computed non-embedding parameter counts,
    # finite AUCs in [0, 1] with zero spread over one seed, one epoch each.
    mmoe_params = 8 * (INPUT_WIDTH * 16 + 16) + 2 * INPUT_WIDTH * 8 + TOWERS
    bottom_params = INPUT_WIDTH * 136 + 136 + 2 * (136 * 8 + 8 + 8 + 1)
    for label, expected in (
        ("Shared-Bottom", bottom_params),
        ("MMoE (defaults)", mmoe_params),
    ):
        cells = _row(out, label)
        own = int(cells[3].split(" ")[0].replace(",", ""))
        assert own == expected, (label, cells)
        for cell in cells[4:6]:
            mean, std = (
                float(v) for v in re.fullmatch(r"(\S+) ± (\S+)", cell).groups()
            )
            assert math.isfinite(mean) and 0.0 <= mean <= 1.0 and std == 0.0, cell
        assert cells[6] == "1.0 / 1.0", cells
        assert cells[8] == "n/a", cells  # no Single-Task baseline selected
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
    assert re.search(r"CHECK `build_mmoe\(features, tasks\)`: income mean \S+", out)
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
    speeds = re.findall(r"`(plain|km)`: ([\d,]+) examples/s", out)
    assert sorted(k for k, _ in speeds) == ["km", "plain"]
    assert all(float(v.replace(",", "")) > 0 for _, v in speeds)
    ratio = re.search(r"RATIO keras_mtl / plain, no shuffle[^:]*: (\S+)", out)
    assert ratio and 0.0 < float(ratio.group(1)) < 10.0
    assert "total runtime:" in out
