"""benchmarks/weighting.py end to end on a few hundred generated census rows.

Two strategies, one seed, one epoch, in this process (`--no-isolation`); the
cost part with one round of one epoch. The frame is the generated census-shaped
one (labels without signal), so the AUCs are only checked to be AUCs; what is
checked is the report's shape: a row per strategy in both tables, the fixed
weights, and the reference's step-time ratio to itself. Four models are built
and traced (two per part), without XLA: ~12 s on a quiet machine, hence
`slow`.
"""

import contextlib
import io
import json
import math
import re
from pathlib import Path

import pytest

from benchmarks import weighting
from keras_mtl.weighting import STRATEGIES, FixedWeighting
from tests.helpers import xla_off


def _rows(text: str, heading: str) -> dict[str, list[str]]:
    """The table after `heading`: its cells by first cell."""
    part = text[text.index(heading) :]
    rows = {}
    for line in part.splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("| ") and not line.startswith("| :"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows[cells[0]] = cells[1:]
    return rows


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("weighting") / "weighting.json"
    argv = ["--data-path", "/nonexistent/census.gz", "--rows", "400"]
    argv += ["--strategies", "fixed,uncertainty", "--seeds", "1", "--max-epochs", "1"]
    argv += ["--batch-size", "128", "--epochs", "1", "--repeats", "1"]
    argv += ["--no-isolation", "--json", str(out)]
    # A module fixture is set up before conftest's per-test XLA switch: XLA
    # off here too (compiling the four census models would triple the cost).
    with xla_off(), contextlib.redirect_stdout(io.StringIO()) as printed:
        assert weighting.main(argv) == 0
    return printed.getvalue(), json.loads(out.read_text())


@pytest.mark.slow
def test_a_row_per_strategy_with_aucs_weights_and_step_ratio(report):
    text, numbers = report
    assert "WARNING: GENERATED census-shaped RANDOM data" in text
    fixed, uncertainty = (
        '"fixed" (`FixedWeighting`)',
        '"uncertainty" (`UncertaintyWeighting`)',
    )

    accuracy = _rows(text, "### Test AUC")
    assert list(accuracy)[1:] == [fixed, uncertainty]  # after the header row
    for label in (fixed, uncertainty):
        income, marital, epochs, weights = accuracy[label]
        for auc in (income, marital):  # one seed: a plain number, no range
            assert re.fullmatch(r"[01]\.\d{4}", auc) and 0.0 <= float(auc) <= 1.0
        assert epochs == "1.0 / 1.0"
        assert re.fullmatch(r"\d+\.\d\d / \d+\.\d\d", weights), weights
    assert accuracy[fixed][3] == "1.00 / 1.00"  # fixed weights never move

    cost = _rows(text, "## Step cost")
    assert list(cost)[1:] == [fixed, uncertainty]
    for label in (fixed, uncertainty):
        _, speed, ms, ratio, _, _ = cost[label]
        assert float(speed.replace(",", "")) > 0 and float(ms) > 0
        assert 0.0 < float(ratio) < math.inf
    assert cost[fixed][3] == "1.00"  # the reference against itself

    # The JSON holds the same runs: 280 training rows of the 400 (70%), one seed.
    assert numbers["rows"] == 400 and numbers["real_data"] is False
    assert sorted(numbers["accuracy"]) == ["fixed", "uncertainty"]
    [run] = numbers["accuracy"]["fixed"]
    assert float(accuracy[fixed][0]) == pytest.approx(run["income"], abs=5e-5)
    assert sorted(numbers["speed"]) == ["fixed", "uncertainty"]
    assert [r["examples"] for r in numbers["speed"]["fixed"]] == [400]


def test_every_strategy_of_the_dict_joins(monkeypatch):
    # A strategy registered later (another branch's) is run without a change.
    monkeypatch.setitem(STRATEGIES, "newcomer", FixedWeighting)
    args = weighting.parse_args([])
    weighting._choose_strategies(args)
    assert args.strategies == ["none", *STRATEGIES]
    assert args.strategies[-1] == "newcomer"
    assert weighting.strategy_label("none").startswith("None")

    args = weighting.parse_args(["--strategies", "gradnorm, none,gradnorm"])
    weighting._choose_strategies(args)
    assert args.strategies == ["gradnorm", "none"]
    with pytest.raises(SystemExit, match="unknown \\['nope'\\]"):
        weighting._choose_strategies(weighting.parse_args(["--strategies", "nope"]))


def test_default_json_goes_to_benchmarks_results():
    assert weighting.parse_args([]).json == str(
        Path(weighting.__file__).parent / "results" / "weighting.json"
    )
