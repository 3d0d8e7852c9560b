"""The point of ESMM, on data where the truth is known (benchmarks/esmm_funnel.py).

On a simulated funnel with selection bias, ESMM's pCVR over ALL impressions
ranks the true pCVR better (on every seed) and is better calibrated (in the
median over the seeds) than a naive CVR model of the same architecture trained
on clicked impressions only. Several seeds, so one lucky draw cannot pass it. (The proof trains naive and ESMM only; the
DIVISION baseline's output is checked on a tiny funnel, its numbers are the
benchmark's.)
"""

import numpy as np
import pytest

from benchmarks.esmm_funnel import (
    DIVISION_EPS,
    MODELS,
    compare_on_funnel,
    division_cvr,
    proof_report,
)
from tests.helpers import xla_off

# A smaller funnel and towers than the benchmark's, to keep the suite fast.
FUNNEL = {"num_impressions": 100_000, "num_users": 2000, "num_items": 1000}


@pytest.fixture(scope="module")
def results():
    # XLA off: compiling the two models per seed costs more than training them
    # here, and the comparison is the same without it.
    with xla_off():
        return [
            compare_on_funnel(
                seed,
                FUNNEL,
                tower_units=(64, 32),
                max_epochs=12,
                models=("naive", "esmm"),
            )
            for seed in (0, 1, 2)
        ]


@pytest.mark.slow
def test_esmm_ranks_the_true_pcvr_better_on_every_seed(results):
    for r in results:
        assert r["esmm"]["spearman"] > r["naive"]["spearman"] + 0.03, r
        assert r["esmm"]["auc"] > r["naive"]["auc"], r


@pytest.mark.slow
def test_esmm_is_better_calibrated_over_the_seeds(results):
    # Clicked impressions convert ~3x more often than impressions at large:
    # the naive model learns the clicked rate and over-estimates.
    for r in results:
        assert r["naive"]["calibration"] > 1.5, r
    # ESMM is less biased in the median over the seeds. Not on every seed: when
    # early stopping ends ESMM after a few epochs its pCVR keeps the clicked
    # rate too (a seed measured 3.15 against the naive 3.10 after 4 epochs).
    bias = {m: np.median([abs(np.log(r[m]["calibration"])) for r in results])
            for m in ("esmm", "naive")}  # fmt: skip
    assert bias["esmm"] < bias["naive"], results


def test_division_floors_pctr_and_clips_the_ratio():
    pctr = np.array([0.5, 0.1, 0.2, 0.0, 0.0])
    pctcvr = np.array([0.1, 0.3, 0.2, 0.0, 5e-7])
    pcvr, above_one = division_cvr(pctr, pctcvr)
    # 0.1/0.5; 3 clipped to 1; exactly 1 (not above); 0/ε; 5e-7/ε = 0.5
    np.testing.assert_allclose(pcvr, [0.2, 1.0, 1.0, 0.0, 0.5])
    assert DIVISION_EPS == 1e-6
    assert above_one == pytest.approx(1 / 5)  # only the second row exceeded 1


def _scores(spearman, calibration, **extra):
    return {
        "spearman": spearman,
        "auc": 0.7,
        "oracle_auc": 0.9,
        "calibration": calibration,
        "clicked_auc": 0.66,
        **extra,
    }


def test_proof_report_has_a_row_per_model_and_division_instability():
    per_seed = [
        {
            "naive": _scores(0.30, 3.0),
            "esmm": _scores(0.40, 2.2),
            "division": _scores(0.35 + 0.1 * seed, 1.5, above_one=0.01 * (seed + 1)),
        }
        for seed in (0, 1)
    ]
    table, *verdicts = proof_report(per_seed)
    rows = {
        line.split("|")[1].strip(): [c.strip() for c in line.strip("|").split("|")][1:]
        for line in table.splitlines()[2:]
    }
    assert list(rows) == [
        "naive CVR (clicked only)",
        "ESMM",
        "DIVISION (pCTCVR / pCTR, two models)",
        "truth (ceiling)",
    ]
    assert rows["DIVISION (pCTCVR / pCTR, two models)"][0] == "0.400 (0.350–0.450)"
    assert rows["DIVISION (pCTCVR / pCTR, two models)"][4] == "1.50% (1.00%–2.00%)"
    assert rows["ESMM"][4] == "—"
    assert rows["truth (ceiling)"][1] == "0.900 (0.900–0.900)"
    # ESMM beats naive on both seeds; DIVISION ranks better on seed 1 and is
    # better calibrated on both, so ESMM wins on no seed against it.
    assert verdicts == [
        "\nESMM ranks and calibrates better than naive CVR (clicked only) on 2/2 seeds.",
        "\nESMM ranks and calibrates better than DIVISION (pCTCVR / pCTR, two "
        "models) on 0/2 seeds.",
    ]


@pytest.mark.slow
def test_compare_on_funnel_scores_all_three_on_a_tiny_funnel():
    tiny = {"num_impressions": 4000, "num_users": 300, "num_items": 200}
    with xla_off():
        result = compare_on_funnel(0, tiny, tower_units=(8,), max_epochs=1)
    assert tuple(result) == MODELS
    for model, scores in result.items():
        assert -1.0 <= scores["spearman"] <= 1.0, model
        assert 0.0 <= scores["auc"] <= 1.0 and scores["calibration"] > 0, model
        assert scores["epochs"] == (2 if model == "division" else 1), model
    division = result["division"]
    assert division["epochs_ctr"] == division["epochs_ctcvr"] == 1
    assert 0.0 <= division["above_one"] <= 1.0
    # The same counterfactual outcomes judge every model: the same ceiling.
    assert result["division"]["oracle_auc"] == result["esmm"]["oracle_auc"]
