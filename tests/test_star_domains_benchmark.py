"""benchmarks/star_domains.py: its tables from known numbers, and a `--quick` run.

The end-to-end run is `--quick` (4,000 rows in three domains, one seed, two
epochs, XLA off): five small trainings, too few to rank the models, so it
checks the report's shape and that the scores are those of probabilities,
not which model wins.
"""

import re

import numpy as np
import pandas as pd
import pytest

from benchmarks.star_domains import LABELS, main, metric_table, paired_lines


def fake_results():
    """Two seeds, two domains: STAR's RMSE 0.10 / 0.20 (seed 0), 0.12 / 0.18
    (seed 1); shared-bottom's 0.11 / 0.19 on both."""

    def table(rmse, auc):
        return pd.DataFrame({"rmse": rmse, "auc": auc, "log_loss": rmse, "kl": rmse})

    truth = pd.DataFrame({"auc": [0.9, 0.8], "log_loss": [0.1, 0.2]})
    return [
        {
            "star": table([0.10, 0.20], [0.70, 0.60]),
            "shared_bottom": table([0.11, 0.19], [0.69, 0.61]),
            "truth": truth,
        },
        {
            "star": table([0.12, 0.18], [0.72, 0.62]),
            "shared_bottom": table([0.11, 0.19], [0.69, 0.61]),
            "truth": truth,
        },
    ]


def test_tables_and_paired_differences_from_known_numbers():
    results, keys = fake_results(), ["star", "shared_bottom"]
    header = ["domain 0", "domain 1"]
    table = metric_table(results, keys, "rmse", header).splitlines()
    assert table[0] == "| model | domain 0 | domain 1 |"
    assert table[2] == "| STAR | 0.1100 (0.1000–0.1200) | 0.1900 (0.1800–0.2000) |"
    assert table[3] == (
        f"| {LABELS['shared_bottom']} | 0.1100 (0.1100–0.1100) | 0.1900 (0.1900–0.1900) |"
    )
    assert len(table) == 4  # the truth has no RMSE against itself
    auc = metric_table(results, keys, "auc", header).splitlines()
    assert auc[-1] == (
        f"| {LABELS['truth']} | 0.9000 (0.9000–0.9000) | 0.8000 (0.8000–0.8000) |"
    )
    lines = paired_lines(results, keys, header)
    rmse = next(line for line in lines if ", rmse:" in line)
    # STAR − shared-bottom: -0.01 and +0.01 in domain 0 (one seed better),
    # +0.01 and -0.01 in domain 1.
    assert rmse.endswith(
        "d0 +0.0000 (-0.0100–+0.0100) (1/2); d1 +0.0000 (-0.0100–+0.0100) (1/2)"
    )
    auc = next(line for line in lines if ", auc:" in line)  # higher is better
    assert "d0 +0.0200 (+0.0100–+0.0300) (2/2)" in auc


@pytest.mark.slow
def test_quick_run_prints_and_writes_per_domain_tables(tmp_path, capsys):
    report, plot = tmp_path / "star_domains.md", tmp_path / "star_domains.png"
    assert main(["--quick", "--out", str(report), "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert report.read_text() in out  # the report is what was printed
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = report.read_text()
    assert "make_multi_domain(4,000 rows, domain_shares=(0.6, 0.3, 0.1)" in text
    models = [LABELS[k] for k in ("star", "shared_bottom", "per_domain")]
    for model in models:
        assert re.search(rf"- seed 0 {re.escape(model)}: epochs [\d/]+, RMSE", text)
    # Four tables (AUC, log loss, RMSE, KL), a row per model and a column per
    # domain; AUC and log loss also for the truth.
    tables = re.findall(r"\| model \| (domain 0 .*) \|\n\| .*\n((?:\|.*\n)+)", text)
    assert len(tables) == 4
    for header, body in tables:
        assert header.count("domain") == 3 and "(60%, CTR 0.050)" in header
        rows = {r.split("|")[1].strip(): r.split("|")[2:-1] for r in body.splitlines()}
        assert set(models) <= set(rows)
        for cells in rows.values():
            values = [float(c) for c in cells]
            assert len(values) == 3 and all(np.isfinite(values))
    auc = dict(
        (r.split("|")[1].strip(), [float(c) for c in r.split("|")[2:-1]])
        for r in tables[0][1].splitlines()
    )
    assert all(0.8 < a < 1 for a in auc[LABELS["truth"]])  # the truth ranks well
    rmse = dict(
        (r.split("|")[1].strip(), [float(c) for c in r.split("|")[2:-1]])
        for r in tables[2][1].splitlines()
    )
    # Probabilities near the domains' rates, not arbitrary scores: every RMSE
    # against the truth is below that of predicting 0.5 (0.4 and more here).
    assert all(0 < e < 0.4 for model in models for e in rmse[model]), rmse
    assert "STAR − shared-bottom (domain as a feature), rmse: d0 " in text
    assert "total runtime:" in text
