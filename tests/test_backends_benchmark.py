"""benchmarks/backends.py: its table from hand-made results, its options, and
(slow) a quick run with a child process per backend whose rows report each
backend's compile defaults and sane values (no timings checked)."""

import json
import math

import pytest

from benchmarks import backends as bench


def _result(backend, version, speeds):
    return {
        "backend": backend,
        "version": version,
        "rows": [
            {
                "model": model,
                "jit_compile": backend != "torch",
                "steps_per_execution": 1 if backend == "torch" else 17,
                "setup_s": 1.25,
                "first_epoch_s": 20.04,
                "examples_per_s": speed,
                "auc": {"income": 0.94321, "marital": 0.99012},
            }
            for model, speed in speeds.items()
        ],
    }


def test_table_rows_compare_each_model_with_tensorflow():
    results = [
        _result("tensorflow", "2.21.0", {"mmoe": 80_000.0, "ple": 40_000.0}),
        _result("jax", "0.10.2", {"mmoe": 60_000.0, "ple": 50_000.0}),
        _result("torch", "2.13.0", {"mmoe": 4_000.0}),
    ]
    rows = bench.table_rows(results)
    assert rows[0] == [
        "tensorflow 2.21.0",
        "MMoE",
        "on / 17",
        "1.2",
        "20.0",
        "80,000",
        "1.00",
        "0.9432",
        "0.9901",
    ]
    assert [r[6] for r in rows] == ["1.00", "1.00", "0.75", "1.25", "0.05"]
    assert rows[4][:3] == ["torch 2.13.0", "MMoE", "off / 1"]
    # Without a TensorFlow run there is nothing to compare with.
    assert bench.table_rows(results[1:2])[0][6] == "n/a"
    table = bench.markdown(results).splitlines()
    assert table[0] == "| " + " | ".join(bench.HEADER) + " |"
    assert len(table) == 2 + 5


def test_quick_mode_and_bad_options():
    args = bench.parse_args(["--quick", "--epochs", "3"])
    assert (args.rows, args.batch_size, args.epochs) == (3000, 256, 3)  # as given
    assert args.backends == list(bench.BACKENDS) and args.models == ["mmoe", "ple"]
    full = bench.parse_args([])
    assert (full.rows, full.batch_size, full.epochs) == (None, 1024, 2)
    assert full.jit_compile == "auto" and full.torch_threads is None
    assert bench.parse_args(["--jit-compile", "off"]).jit_compile == "off"
    bad_options = (["--backends", "tf"], ["--models", "esmm"], ["--rows", "50"])
    for bad in (*bad_options, ["--jit-compile", "yes"]):
        with pytest.raises(SystemExit):
            bench.parse_args(bad)


@pytest.mark.slow  # three child processes (one per backend), JAX's jit included
@pytest.mark.shared_data
def test_quick_run_trains_on_every_backend(shared_data, tmp_path, capsys):
    out, rows_json = tmp_path / "backends.md", tmp_path / "rows.json"
    argv = ["--quick", "--models", "mmoe", "--rows", "1000", "--batch-size", "250"]
    argv += ["--out", str(out), "--json", str(rows_json)]
    assert bench.main(argv) == 0
    printed = capsys.readouterr().out
    results = json.loads(rows_json.read_text())
    assert [r["backend"] for r in results] == list(bench.BACKENDS)
    for result in results:
        assert result["real"] and result["keras"].startswith("3.")
        [row] = result["rows"]
        backend = result["backend"]
        # 1,000 rows: 700 training rows in 3 batches of 250, 2 epochs.
        assert (row["model"], row["train_rows"], row["epochs"]) == ("mmoe", 700, 2)
        assert row["test_rows"] == 150 and len(row["epoch_s"]) == 1
        # The compile defaults of each backend.
        assert row["jit_compile"] is (backend == "jax"), backend  # TF: a short run
        assert row["jit_compile_reason"].startswith("on" if backend == "jax" else "off")
        assert row["steps_per_execution"] == 1  # 3 batches: fewer than 4 calls
        assert row["examples_per_s"] == pytest.approx(700 / row["steady_s"])
        assert 0 < row["setup_s"] and 0 < row["first_epoch_s"]
        for task in ("income", "marital"):
            assert 0.0 <= row["auc"][task] <= 1.0 and math.isfinite(row["auc"][task])
        assert (result["torch_threads"] is not None) is (backend == "torch")
        line = next(
            line
            for line in printed.splitlines()
            if line.startswith(f"| {backend} {result['version']} | MMoE |")
        )
        assert f"| {row['examples_per_s']:,.0f} |" in line
    assert out.read_text().splitlines()[0].startswith("# Training speed per Keras")
