"""benchmarks/objectives.py end to end on a tiny funnel: the table's structure
and that its numbers are what they claim (one seed, one epoch, XLA off)."""

import math

import numpy as np
import pytest

from benchmarks.objectives import COLUMNS, auc, run_seed, spearman, table

TINY = dict(num_impressions=1_500, num_users=50, num_items=40, num_categories=5)
MODELS = ("click weighted", "mmoe", "esmm")


def test_auc_and_spearman_hand_computed():
    # Pairs (positive, negative): (0.9, 0.1) ok, (0.9, 0.5) ok, (0.3, 0.1) ok,
    # (0.3, 0.5) wrong: 3 / 4.
    assert auc([1, 0, 1, 0], [0.9, 0.1, 0.3, 0.5]) == 0.75
    assert auc([1, 1], [0.2, 0.3]) != auc([1, 1], [0.2, 0.3])  # NaN: one class
    assert spearman([1.0, 2.0, 3.0], [10.0, 30.0, 20.0]) == pytest.approx(0.5)


@pytest.fixture(scope="module")
def results():
    return run_seed(0, TINY, models=MODELS, epochs=1, units=4, jit=False)


def test_scores_per_model(results):
    assert list(results) == list(MODELS)
    weighted, mmoe, esmm = (results[m]["scores"] for m in MODELS)
    # The weighted click model has one score, borrowed for the other objectives
    # (no dwell MAE: its score is not on the dwell scale).
    assert {k: borrowed for k, (_, borrowed) in weighted.items()} == {
        ("click", "auc"): False,
        ("conversion", "auc"): True,
        ("conversion", "spearman"): True,
        ("dwell", "spearman"): True,
    }
    # MMoE has every objective; ESMM has no dwell head (binary tasks only).
    assert set(mmoe) == {(o, m) for _, o, m in COLUMNS}
    assert not any(borrowed for _, borrowed in mmoe.values())
    assert set(esmm) == {
        ("click", "auc"),
        ("conversion", "auc"),
        ("conversion", "spearman"),
    }
    for scores in (weighted, mmoe, esmm):
        for (_, metric), (value, _) in scores.items():
            if metric == "auc":
                assert 0.0 <= value <= 1.0
            elif metric == "spearman":
                assert -1.0 <= value <= 1.0
            else:  # a dwell MAE: positive, within the dwell's scale
                assert 0.0 < value < 10 * np.exp(3.0 + 0.5)
    assert all(results[m]["seconds"] > 0 for m in MODELS)
    assert all(results[m]["epochs"] == 1 for m in MODELS)


def test_table(results):
    lines = table([results, results]).splitlines()
    assert lines[0] == (
        "| model | click AUC | conversion AUC | conversion Spearman (true) | "
        "dwell Spearman (true) | dwell MAE | epochs | seconds |"
    )
    rows = {line.split(" | ")[0][2:]: line.split(" | ")[1:] for line in lines[2:]}
    assert list(rows) == list(MODELS)
    value = results["mmoe"]["scores"]["click", "auc"][0]
    # Two identical runs: median (min–max) of equal values.
    assert rows["mmoe"][0] == f"{value:.4f} ({value:.4f}–{value:.4f})"
    assert rows["click weighted"][1].endswith(" *")  # borrowed
    assert rows["click weighted"][4] == "—"  # no dwell output
    assert rows["esmm"][3] == rows["esmm"][4] == "—"
    assert not math.isnan(float(rows["mmoe"][4].split(" ")[0]))
    assert rows["mmoe"][5] == "1 (1–1)"  # epochs run
