import subprocess
import sys

import numpy as np
import pytest

from keras_mtl import cli
from keras_mtl.models import get_builder


def test_train_synthetic_reports_and_exports(tmp_path, capsys):
    args = ["train", "--model", "omoe", "--epochs", "3", "--num-examples", "4000"]
    args += ["--learning-rate", "0.01", "--export-dir", str(tmp_path)]
    results = cli.train(cli.build_parser().parse_args(args))
    out = capsys.readouterr().out
    assert "held-out test metrics" in out and "y1" in out and "MSE" in out
    # Labels have variance > 1; the model must do clearly better than a constant.
    assert 0 < results["y1"] < 0.8 and 0 < results["y2"] < 0.8
    assert results["export_path"] == str(tmp_path / "1")
    assert (tmp_path / "1" / "saved_model.pb").is_file()


@pytest.mark.parametrize(
    "model, loss_weighting",
    [
        ("ple", "uncertainty"),
        ("cgc", "gradnorm"),
        ("cross_stitch", "dwa"),
        ("l2_constrained", "decay"),
        ("single_task", "fixed"),
    ],
)
def test_train_every_model_with_a_loss_weighting(model, loss_weighting, capsys):
    args = ["train", "--model", model, "--loss-weighting", loss_weighting]
    args += ["--epochs", "3"]
    args += ["--num-examples", "3000", "--learning-rate", "0.01", "--no-export"]
    results = cli.train(cli.build_parser().parse_args(args))
    out = capsys.readouterr().out
    assert f"loss weighting {loss_weighting}" in out and "final task weights" in out
    assert 0 < results["y1"] < 1.0 and 0 < results["y2"] < 1.0
    assert sorted(results["task_weights"]) == ["y1", "y2"]
    if loss_weighting == "decay":  # 0.9 ** 2 during the third epoch
        assert results["task_weights"]["y1"] == pytest.approx(0.81)


def test_gate_plot_of_a_ple(tmp_path, capsys):
    png = tmp_path / "gates.png"
    args = ["train", "--model", "ple", "--epochs", "1", "--num-examples", "1000"]
    args += ["--no-export", "--gate-plot", str(png)]
    results = cli.train(cli.build_parser().parse_args(args))
    out = capsys.readouterr().out
    assert "mean gate weight per expert, level_1" in out and "level_2" in out
    assert results["gate_plot"] == str(png) and png.stat().st_size > 10_000
    with pytest.raises(SystemExit, match="gated model"):
        cli.main(args[:2] + ["shared_bottom"] + args[3:])


def test_second_run_exports_the_next_version(tmp_path):
    base = ["train", "--epochs", "1", "--num-examples", "1000"]
    base += ["--export-dir", str(tmp_path)]
    assert cli.main(base) == 0
    assert cli.main(base + ["--model", "shared_bottom"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1", "2"]


@pytest.mark.slow
def test_train_census_from_local_file(shared_data, tmp_path):
    path = shared_data / "census-income" / "census-income.test.gz"
    results = cli.train(
        cli.build_parser().parse_args(
            [
                "train",
                "--data",
                "census",
                "--data-path",
                str(path),
                "--epochs",
                "3",
                "--learning-rate",
                "0.005",
                "--no-export",
            ]
        )
    )
    assert results["income"] > 0.93 and results["marital"] > 0.99
    assert "export_path" not in results


def test_console_entry_point_help():
    proc = subprocess.run(
        [sys.executable, "-m", "keras_mtl", "train", "--help"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert (
        "--model {mmoe,omoe,ple,cgc,shared_bottom,cross_stitch,l2_constrained,"
        "single_task,esmm,esm2,aitm,dupn}" in proc.stdout
    )
    assert "--loss-weighting {fixed,uncertainty,gradnorm,dwa,decay}" in proc.stdout
    assert "--data {synthetic,census,funnel,movielens}" in proc.stdout
    assert "--warm-start PATH" in proc.stdout


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size"])
def test_bad_arguments(flag):
    with pytest.raises(SystemExit, match="must be positive"):
        cli.main(["train", flag, "0"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "nope"])


@pytest.mark.parametrize("model", ["esmm", "esm2", "aitm", "mmoe"])
def test_funnel_models_train_report_and_serve_every_head(model, tmp_path, capsys):
    args = ["train", "--model", model, "--data", "funnel", "--epochs", "2"]
    args += ["--num-examples", "20000", "--learning-rate", "0.003"]
    args += ["--export-dir", str(tmp_path)]
    results = cli.train(cli.build_parser().parse_args(args))
    out = capsys.readouterr().out
    heads = {
        "esmm": ["ctr", "cvr", "ctcvr"],
        "esm2": ["ctr", "ctavr", "cvr", "ctcvr"],
        "aitm": ["ctr", "ctcvr"],
        "mmoe": ["ctr", "cvr", "ctcvr"],
    }[model]
    assert f"outputs: {', '.join(heads)}" in out
    if get_builder(model).data == "funnel":  # (the small default MMoE needs more)
        assert results["ctr"] > 0.55, results
    if "cvr" in heads:
        assert "(clicked impressions)" in out
        truth = results["cvr_vs_truth"]
        assert -1 <= truth["spearman"] <= 1 and truth["mean_true"] > 0
    import tensorflow as tf

    served = tf.saved_model.load(str(tmp_path / "1")).signatures["serving_default"]
    assert sorted(served.structured_outputs) == sorted(heads)


def test_funnel_models_need_funnel_data():
    with pytest.raises(SystemExit, match="use --data funnel"):
        cli.main(["train", "--model", "esmm", "--data", "synthetic"])
    with pytest.raises(SystemExit, match=r"--data movielens suits dupn\)"):
        cli.main(["train", "--model", "mmoe", "--data", "movielens"])


def test_dupn_daily_warm_start_on_movielens(tmp_path, capsys):
    """Day 1 trains and exports the three SavedModels; day 2 starts from them
    (its validation metrics before training are day 1's) and exports version 2."""
    from tests.movielens_fixture import write_movielens

    data = write_movielens(tmp_path / "ml", num_users=30, num_items=60)
    export = tmp_path / "dupn"
    base = ["train", "--model", "dupn", "--data", "movielens"]
    base += ["--data-path", str(data), "--epochs", "1", "--batch-size", "64"]
    base += ["--export-dir", str(export)]
    day1 = cli.train(cli.build_parser().parse_args(base + ["--until", "1997-12-15"]))
    out = capsys.readouterr().out
    assert "NDCG_AT_10" in out and "exported SavedModel (user_encoder)" in out
    assert day1["export_paths"] == {
        part: str(export / part / "1") for part in ("full", "user_encoder", "scorer")
    }
    assert 0 <= day1["l2r"] <= 1 and 0 <= day1["ctr"] <= 1

    args = base + ["--since", "1997-12-15", "--warm-start", str(export)]
    day2 = cli.train(cli.build_parser().parse_args(args))
    out = capsys.readouterr().out
    assert "warm start: " in out
    for task, value in day1["validation"].items():
        assert day2["before_training"][task] == pytest.approx(value, abs=1e-6)
    assert day2["export_paths"]["scorer"] == str(export / "scorer" / "2")


def test_dupn_needs_movielens_and_dates_parse(tmp_path):
    with pytest.raises(SystemExit, match="dupn reads behaviour sequences"):
        cli.main(["train", "--model", "dupn", "--no-export"])
    with pytest.raises(SystemExit, match="--since / --until apply"):
        cli.main(["train", "--since", "1998-01-01", "--no-export"])
    kept = cli.window({"timestamp": np.array([0, 10**9])}, "1990-01-01", None)
    assert kept["timestamp"].tolist() == [10**9]
    with pytest.raises(SystemExit, match="not a YYYY-MM-DD date"):
        cli.window({"timestamp": np.array([0])}, "tomorrow", None)
