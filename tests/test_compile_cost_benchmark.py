"""benchmarks/compile_cost.py: its arithmetic on hand-made runs, DeepCTR's
clean skip, and (slow) one tiny end-to-end invocation with fresh children."""

import pytest

from benchmarks import compile_cost as bench


def run(rows, first, speed, jit=True, other=0.0):
    return {
        "rows": rows,
        "first_epoch_s": first,
        "examples_per_s": speed,
        "jit_compile": jit,
        "steps_per_execution": 2,
        "other_cores": other,
    }


def test_break_even_epochs():
    # XLA: 11 s more for epoch 1, then 1.0 s an epoch instead of 2.0 s; after
    # epoch 1 it catches up 1 s per epoch: even after 1 + 11 epochs.
    on = [run(1000, 13.0, 1000.0), run(1000, 15.0, 1000.0)]  # median first 14
    off = [run(1000, 3.0, 500.0, jit=False)]
    assert bench.break_even(on, off) == "12.0"
    assert bench.break_even([run(1000, 13.0, 400.0)], off) == "never"


def test_matrix_table_and_first_result_verdicts():
    args = bench.parse_args(
        ["--models", "esmm", "--sizes", "tiny", "--xla", "on", "off"]
    )
    table = bench.matrix_table(
        {
            "esmm/tiny/on": [run(100, 12.0, 300.0, other=0.5)],
            "esmm/tiny/off": [run(100, 2.0, 200.0, jit=False)],
        },
        args,
    )
    assert "| esmm | tiny (100) | on | 2 | 12.0 | 300 | 61.0 | 0.50 |" in table
    assert "| esmm | tiny (100) | off | 2 | 2.0 | 200 |  | 0.00 |" in table

    def result(seconds, jit=False):
        return {
            "seconds": seconds,
            "cpu_s": seconds / 2,
            "import_s": 1.0,
            "fit_s": 2.0,
            "evaluate_s": 0.5,
            "metric": 0.61,
            "jit_compile": jit,
            "other_cores": 0.1,
        }

    table, lines = bench.first_result_table(
        {
            "esmm": {
                "xla": [result(30.0, True)],
                "auto": [result(9.0), result(11.0)],
                "deepctr": [result(12.0)],
            }
        }
    )
    assert (
        '| esmm | keras_mtl, default (`jit_compile="auto"`) | off | 10.0 (9.0–11.0) |'
        in table
    )
    assert lines == [
        "- esmm: keras_mtl default 10.0 s, DeepCTR 12.0 s (ratio 0.83; CPU seconds "
        "ratio 0.83) — meets the target (no worse than DeepCTR's)"
    ]


def test_deepctr_is_skipped_cleanly(tmp_path):
    assert bench.deepctr_python(None) == (None, "no --deepctr-python given")
    python, why = bench.deepctr_python(tmp_path / "absent" / "python")
    assert python is None and "does not exist" in why


@pytest.mark.slow
def test_tiny_invocation(capsys, tmp_path):
    """One ESMM run of 100 rows without XLA, and the ESMM recipe with the
    default policy (XLA off at 20 epochs of 2 batches), DeepCTR skipped."""
    code = bench.main(
        [
            "--models", "esmm", "--sizes", "tiny", "--xla", "off", "--epochs", "2",
            "--recipes", "esmm", "--contenders", "auto", "deepctr",
            "--result-rounds", "1", "--deepctr-python", str(tmp_path / "none"),
        ]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "| esmm | tiny (100) | off | 1 |" in out
    assert "DeepCTR skipped:" in out
    assert '| esmm | keras_mtl, default (`jit_compile="auto"`) | off |' in out
