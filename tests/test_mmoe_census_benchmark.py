"""benchmarks/mmoe_census.py's comparison with an expert's models: the experts
are the builders' architectures (`_census_models`), and the section runs end to
end on 2,048 generated rows, without XLA (keras_mtl's models, and the
experts' through `--no-xla`): compiling costs more than one epoch."""

import numpy as np
import pytest

import keras_mtl as km
from benchmarks import _census_models as cm
from benchmarks import mmoe_census as bench
from tests.helpers import xla_off


def test_expert_models_have_the_builders_parameter_counts():
    frame, features, tasks = cm.census_like_frame(rows=64)
    x, _, table_rows = cm.expert_arrays(frame, features, tasks)
    assert x["ids"].shape == (64, 31) and x["numbers"].shape == (64, 7)
    # Each column's ids land in its own block of the one table.
    assert x["ids"].min() >= 0 and x["ids"].max() < table_rows
    assert table_rows == sum(
        len(f.vocabulary) + 1 for f in features if isinstance(f, km.SparseFeature)
    )
    shapes = (table_rows, 31, 7)
    for ours, theirs in (
        (cm.keras_mtl_mmoe(features, tasks), cm.expert_mmoe(tasks, *shapes)),
        (cm.keras_mtl_ple(features, tasks), cm.expert_ple(tasks, *shapes)),
    ):
        assert cm.trainable_count(ours) == cm.trainable_count(theirs)


def test_plain_arrays_code_the_raw_strings():
    """The generated frame holds census strings (and "?"), as `load_census`
    does; the hand-written models get vocabulary positions, "?" the last row."""
    frame, features, tasks = cm.census_like_frame(rows=400)
    sex = next(f for f in features if f.name == "sex")
    assert sex.vocabulary == ("Female", "Male") and sex.dtype == "string"
    assert set(frame["sex"]) == {"Female", "Male", "?"}
    x, y = cm.plain_arrays(frame, features, tasks)
    expected = frame["sex"].map({"Female": 0, "Male": 1, "?": 2}).to_numpy()
    np.testing.assert_array_equal(x["sex"], expected)
    assert x["sex"].dtype == np.int32 and x["age"].shape == (400, 1)
    assert sorted(y) == ["income", "marital"]


@pytest.mark.slow
def test_expert_section_runs_one_round(capsys, tmp_path):
    with xla_off():
        code = bench.main(
            [
                "--data-path",
                str(tmp_path / "absent.gz"),  # the generated census-shaped frame
                "--rows",
                "2048",
                "--batch-size",
                "512",
                "--skip-rotated",
                "--expert-rounds",
                "1",
                "--round-epochs",
                "1",
                "--no-xla",
            ]
        )
    out = capsys.readouterr().out
    assert code == 0
    for key in ("km_mmoe", "expert_mmoe", "expert_mmoe_shuffled", "km_ple"):
        assert f"| `{key}` |" in out
    assert "`km_mmoe` / `expert_mmoe`:" in out and "`km_ple` / `expert_ple`:" in out
    if bench.deepctr_available():  # its child process answered a round
        assert "| `deepctr_ple` |" in out and "`km_ple` / `deepctr_ple`:" in out
    else:
        assert "DeepCTR's PLE skipped" in out
