"""`keras-mtl train` end to end, at sizes small enough for a test suite.

Cost model: a CLI training here spends most of its time tracing (and, with XLA,
compiling) the train / test / predict functions, not in its steps. So the runs
use many small steps over a few thousand rows, split sizes that the batch size
divides (a partial last batch traces, or compiles, the step a second time), and
XLA off (`no_xla`) except in `test_xla_training_matches_the_graph_one`: each
model's XLA path is the builders' tests' job. A quality bound is measured
against what a constant or random model gets on the same test split.
"""

import contextlib
import io
import math
import runpy
import sys

import numpy as np
import pytest

import keras_mtl as km
from keras_mtl import cli
from tests.helpers import chance_auc, xla_off

# Synthetic data: 1600 / 200 / 200 rows, 32 steps of 50 per epoch.
SYNTHETIC = ["--num-examples", "2000", "--batch-size", "50", "--epochs", "4"]
SYNTHETIC += ["--learning-rate", "0.01"]
# Funnel data: 32,000 / 4,000 / 4,000 impressions, 64 steps of 500 per epoch.
FUNNEL = ["--data", "funnel", "--num-examples", "40000", "--batch-size", "500"]
FUNNEL += ["--epochs", "3", "--learning-rate", "0.003"]
# Multi-domain data: 3,200 / 400 / 400 rows, 32 steps of 100 per epoch.
MULTI_DOMAIN = ["--data", "multi_domain", "--num-examples", "4000"]
MULTI_DOMAIN += ["--batch-size", "100", "--epochs", "2", "--learning-rate", "0.01"]


def parse(args):
    return cli.build_parser().parse_args(["train", *args])


def run(args):
    """`(results, printed output)` of `keras-mtl train <args>`."""
    with contextlib.redirect_stdout(io.StringIO()) as out:
        results = cli.train(parse(args))
    return results, out.getvalue()


@pytest.fixture
def no_xla():
    with xla_off():
        yield


@pytest.fixture(scope="module")
def constant_mse():
    """Per task, the test MSE of predicting the training mean on the SYNTHETIC
    split: what a constant model gets."""
    (train, _, test), *_ = cli.load_data(parse(SYNTHETIC))
    return {
        task: float(np.mean((test[task] - train[task].mean()) ** 2))
        for task in ("y1", "y2")
    }


@pytest.fixture(scope="module")
def mmoe_run(tmp_path_factory):
    """`keras-mtl train` (MMoE on synthetic data, the defaults) once, exported."""
    export = tmp_path_factory.mktemp("mmoe-synthetic")
    with xla_off():
        results, out = run(SYNTHETIC + ["--export-dir", str(export)])
    return results, out, export


def test_train_synthetic_beats_a_constant_and_exports(mmoe_run, constant_mse):
    results, out, export = mmoe_run
    assert "mmoe on synthetic: 1600 train rows" in out and "XLA off" in out
    assert "held-out test metrics" in out and "y1" in out and "MSE" in out
    for task in ("y1", "y2"):
        assert results[task] < 0.75 * constant_mse[task], results
    assert results["export_path"] == str(export / "1")
    assert (export / "1" / "saved_model.pb").is_file()
    # Warm-up: 8 real test rows, once per signature.
    warmup = km.serving.read_warmup_requests(export / "1")
    assert [name for name, _ in warmup] == ["serving_default", "serving_examples"]
    assert warmup[0][1]["x"].shape == (8, 100) and len(warmup[1][1]["examples"]) == 8


def test_second_run_exports_the_next_version(mmoe_run, no_xla):
    _, _, export = mmoe_run
    args = ["--model", "shared_bottom", "--num-examples", "500", "--epochs", "1"]
    assert cli.main(["train", *args, "--export-dir", str(export)]) == 0
    assert sorted(p.name for p in export.iterdir()) == ["1", "2"]


@pytest.mark.slow
@pytest.mark.xla
def test_xla_training_matches_the_graph_one(mmoe_run):
    """The default path compiles with XLA; it trains to the same test metrics."""
    results, out = run(SYNTHETIC + ["--no-export"])
    assert "XLA on" in out
    for task in ("y1", "y2"):
        assert results[task] == pytest.approx(mmoe_run[0][task], rel=0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, loss_weighting",
    [
        ("ple", "uncertainty"),
        ("cgc", "gradnorm"),
        ("cross_stitch", "dwa"),
        ("l2_constrained", "decay"),
        ("single_task", "fixed"),
        ("mmoe", "pareto"),
        ("omoe", "pcgrad"),
        ("shared_bottom", "cagrad"),
    ],
)
def test_train_every_model_with_a_loss_weighting(
    model, loss_weighting, constant_mse, no_xla, tmp_path
):
    args = SYNTHETIC + [
        "--model",
        model,
        "--loss-weighting",
        loss_weighting,
        "--no-export",
    ]
    png = tmp_path / "gates.png"
    if model == "ple":  # the gated model of this list also draws its gates
        args += ["--gate-plot", str(png)]
    results, out = run(args)
    assert f"loss weighting {loss_weighting}" in out and "final task weights" in out
    for task in ("y1", "y2"):
        assert results[task] < 0.75 * constant_mse[task], results
    assert sorted(results["task_weights"]) == ["y1", "y2"]
    if loss_weighting == "decay":  # 0.9 ** 3 during the fourth epoch
        assert results["task_weights"]["y1"] == pytest.approx(0.729)
    if model == "ple":
        assert "mean gate weight per expert, level_1" in out and "level_2" in out
        assert results["gate_plot"] == str(png) and png.stat().st_size > 10_000
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gate_plot_needs_a_gated_model():
    with pytest.raises(SystemExit, match="gated model"):
        cli.main(["train", "--model", "shared_bottom", "--gate-plot", "g.png"])


@pytest.mark.slow
@pytest.mark.shared_data
def test_train_census_from_local_file(shared_data, no_xla):
    path = shared_data / "census-income" / "census-income.test.gz"
    args = ["--data", "census", "--data-path", str(path), "--epochs", "3"]
    results, _ = run(args + ["--learning-rate", "0.005", "--no-export"])
    assert results["income"] > 0.93 and results["marital"] > 0.99
    assert "export_path" not in results


def test_module_entry_point_help(monkeypatch, capsys):
    """`python -m keras_mtl train --help`, run in this process (a fresh
    interpreter would spend its time importing TensorFlow again)."""
    monkeypatch.setattr(sys, "argv", ["keras-mtl", "train", "--help"])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("keras_mtl", run_name="__main__")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: keras-mtl train")
    assert (
        "--model {mmoe,omoe,ple,cgc,shared_bottom,cross_stitch,sluice,snr,star,"
        "branched,hierarchy,mrn,l2_constrained,single_task,esmm,esm2,aitm,dupn}" in out
    )
    assert (
        "--loss-weighting {fixed,uncertainty,gradnorm,dwa,decay,pareto,pcgrad,cagrad}"
        in out
    )
    assert "--data {synthetic,census,funnel,movielens,multi_domain}" in out
    assert "--warm-start PATH" in out


def test_weighting_is_an_alias_of_loss_weighting():
    """The choices are `keras_mtl.weighting.STRATEGIES`, by either name."""
    from keras_mtl.weighting import STRATEGIES

    parser = cli.build_parser()
    for name in STRATEGIES:
        for flag in ("--loss-weighting", "--weighting"):
            args = parser.parse_args(["train", flag, name])
            assert args.loss_weighting == name
    with pytest.raises(SystemExit):
        parser.parse_args(["train", "--weighting", "mgda"])


@pytest.mark.parametrize("flag", ["--epochs", "--batch-size"])
def test_bad_arguments(flag):
    with pytest.raises(SystemExit, match="must be positive"):
        cli.main(["train", flag, "0"])
    with pytest.raises(SystemExit):
        cli.main(["train", "--model", "nope"])


def test_star_needs_multi_domain_data():
    with pytest.raises(
        SystemExit,
        match=r"--model star needs each row's domain; use --data multi_domain \(--data synthetic suits mmoe",
    ):
        cli.main(["train", "--model", "star"])


def test_train_star_on_multi_domain_data_reports_each_domain(no_xla):
    """`--model star --data multi_domain`: STAR gets `domain="domain"`, and the
    report scores each domain against the observed clicks and the truth."""
    results, out = run(["--model", "star", *MULTI_DOMAIN, "--no-export"])
    assert "star on multi_domain: 3200 train rows" in out
    assert "click per domain (test split" in out
    (_, _, test), *_ = cli.load_data(parse(MULTI_DOMAIN + ["--model", "star"]))
    clicks = int(test["click"].sum())
    assert results["click"] > chance_auc(clicks, len(test["click"]) - clicks), results
    table = results["domains"]
    assert table.index.tolist() == [0, 1, 2, 3, 4]
    assert table["rows"].tolist() == np.bincount(test["domain"]).tolist()
    assert table["click_rate"].tolist() == pytest.approx(
        [test["click"][test["domain"] == d].mean() for d in range(5)]
    )
    # Predictions are probabilities near each domain's rate (the intercepts
    # differ by domain): much closer to the truth than a constant 0.5.
    assert (table["rmse"] < 0.3).all(), table
    assert "export_path" not in results


@pytest.mark.slow
@pytest.mark.parametrize(
    "model, heads, export",
    [
        ("esmm", ["ctr", "cvr", "ctcvr"], True),
        ("esm2", ["ctr", "ctavr", "cvr", "ctcvr"], True),
        ("aitm", ["ctr", "ctcvr"], True),
        ("mmoe", ["ctr", "cvr", "ctcvr"], False),  # MMoE's export: the test above
    ],
)
def test_funnel_models_train_report_and_serve_every_head(
    model, heads, export, no_xla, tmp_path
):
    args = FUNNEL + ["--model", model]
    args += ["--export-dir", str(tmp_path)] if export else ["--no-export"]
    results, out = run(args)
    assert all(head in results for head in heads), results  # a test metric each
    (_, _, test), *_ = cli.load_data(parse(args))
    clicks = int(test["click"].sum())
    assert results["ctr"] > chance_auc(clicks, len(test) - clicks), results
    if "cvr" in heads:
        assert "(clicked impressions)" in out
        # pCVR on every test impression against the simulator's true pCVR: a
        # constant has no rank correlation (NaN), random scores ~N(0, 1 / n).
        truth = results["cvr_vs_truth"]
        assert truth["spearman"] > 4 / math.sqrt(len(test) - 1), truth
        converting = test["true_cvr"].sum()  # expected counterfactual positives
        assert truth["auc"] > chance_auc(converting, len(test) - converting), truth
        assert truth["mean_true"] == pytest.approx(test["true_cvr"].mean())
    if export:
        import tensorflow as tf

        assert f"outputs: {', '.join(heads)}" in out
        served = tf.saved_model.load(str(tmp_path / "1"))
        outputs = served.signatures["serving_default"].structured_outputs
        assert sorted(outputs) == sorted(heads)
    else:
        assert "export_path" not in results


def test_funnel_models_need_funnel_data():
    with pytest.raises(SystemExit, match="use --data funnel"):
        cli.main(["train", "--model", "esmm", "--data", "synthetic"])
    with pytest.raises(SystemExit, match=r"--data movielens suits dupn\)"):
        cli.main(["train", "--model", "mmoe", "--data", "movielens"])


@pytest.mark.slow
def test_dupn_daily_warm_start_on_movielens(tmp_path, no_xla):
    """Day 1 trains and exports the three SavedModels; day 2 starts from them
    (its validation metrics before training are day 1's) and exports version 2.

    The generated data are far too small for DUPN to beat chance reliably, so
    the reported test metrics are checked against the exported model instead.
    """
    import keras_rs
    import tensorflow as tf

    from keras_mtl import datasets
    from keras_mtl.data import make_dataset
    from tests.movielens_fixture import write_movielens

    data = write_movielens(tmp_path / "ml", num_users=30, num_items=60)
    export = tmp_path / "dupn"
    base = ["--model", "dupn", "--data", "movielens", "--data-path", str(data)]
    # One batch per split (140 / 315 training rows, 57 validation and test):
    # each step is traced once a day (batches of 64 traced the training step
    # twice, for the full and the last batch).
    base += ["--epochs", "1", "--batch-size", "512", "--export-dir", str(export)]
    day1, out = run(base + ["--until", "1997-12-15"])
    assert "NDCG_AT_10" in out and "exported SavedModel (user_encoder)" in out
    # What the signature takes: Unix times, not the hour derived from them.
    assert (
        "history_timestamp, history_year, occupation, timestamp; outputs: user_r" in out
    )
    assert day1["export_paths"] == {
        part: str(export / part / "1") for part in ("full", "user_encoder", "scorer")
    }
    # Day 1's reported test NDCG@10 and AUC are those of its exported model on
    # the test split.
    ml = datasets.load_movielens(str(data), seed=0)
    serve = tf.saved_model.load(day1["export_paths"]["full"])
    x = next(iter(make_dataset(ml.test, ml.features, None, 4096, shuffle=False)))
    # It takes Unix times, not the hour, weekday and gaps derived from them.
    for derived in ("hour", "weekday", "history_gap"):
        del x[derived]
    x.update({n: ml.test[n] for n in ("timestamp", "history_timestamp")})
    scores = serve.signatures["serving_default"](**x)
    ndcg = keras_rs.metrics.NDCG(k=10)
    ndcg.update_state(ml.test["relevance"], scores["l2r"])
    assert day1["l2r"] == pytest.approx(float(ndcg.result()), abs=1e-5)
    auc = tf.keras.metrics.AUC(num_thresholds=1000)
    auc.update_state(ml.test["like"], scores["ctr"])
    assert day1["ctr"] == pytest.approx(float(auc.result()), abs=1e-4)

    day2, out = run(base + ["--since", "1997-12-15", "--warm-start", str(export)])
    assert "warm start: " in out
    for task, value in day1["validation"].items():
        assert day2["before_training"][task] == pytest.approx(value, abs=1e-6)
    assert day2["export_paths"]["scorer"] == str(export / "scorer" / "2")
    # The scorer warms up on the encoder's representation of real rows.
    warmed = km.serving.read_warmup_requests(export / "scorer" / "2")
    names = sorted({name for name, _ in warmed})
    assert names == [
        "score_ctr",
        "score_genre",
        "score_l2r",
        "serving_default",
        "serving_examples",
    ], names
    [(_, default)] = [w for w in warmed if w[0] == "serving_default"]
    assert default["user_representation"].shape[0] == 8
    assert "history_item" not in default
    # The encoder warms up on raw times.
    warmed = dict(km.serving.read_warmup_requests(export / "user_encoder" / "2"))
    assert "hour" not in warmed["serving_default"]
    np.testing.assert_array_equal(
        warmed["serving_default"]["timestamp"], ml.test["timestamp"][:8]
    )


def test_dupn_needs_movielens_and_dates_parse(tmp_path):
    with pytest.raises(SystemExit, match="dupn reads behaviour sequences"):
        cli.main(["train", "--model", "dupn", "--no-export"])
    with pytest.raises(SystemExit, match="--since / --until apply"):
        cli.main(["train", "--since", "1998-01-01", "--no-export"])
    kept = cli.window({"timestamp": np.array([0, 10**9])}, "1990-01-01", None)
    assert kept["timestamp"].tolist() == [10**9]
    with pytest.raises(SystemExit, match="not a YYYY-MM-DD date"):
        cli.window({"timestamp": np.array([0])}, "tomorrow", None)


@pytest.mark.parametrize(
    "args, source",
    [
        (["--data", "census"], "https://archive.ics.uci.edu/"),
        (["--model", "dupn", "--data", "movielens"], "https://files.grouplens.org/"),
    ],
)
def test_a_missing_data_file_is_one_line_naming_it(args, source, tmp_path, capsys):
    path = tmp_path / "not-here" / "census-income.test.gz"
    with pytest.raises(SystemExit) as exit_:
        cli.main(["train", *args, "--data-path", str(path), "--no-export"])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    assert line.startswith("keras-mtl: ") and repr(str(path)) in line
    assert "Leave out --data-path to download" in line and source in line
