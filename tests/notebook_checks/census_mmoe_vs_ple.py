"""Checks run in census_mmoe_vs_ple.ipynb's kernel after its last cell (small mode).

The names (`mmoe`, `ple`, `comparison`, `curves`, ...) are the notebook's.
"""

import numpy as np

# The split: ROWS rows of the test file, 70/15/15.
assert len(train) + len(val) + len(test) == len(frame)
# Every batch full (one trace of each step): whole training batches, and
# validation and test of one size.
assert len(frame) == ROWS and len(train) % BATCH_SIZE == 0
assert len(val) == len(test) == 0.15 * ROWS

# Features refitted on the training part: dense statistics are the training
# part's (population std), vocabularies the values seen there.
fitted = {f.name: f for f in features}
for name in ("age", "weeks_worked_in_year"):
    values = train[name].to_numpy(np.float64)
    assert abs(fitted[name].mean - values.mean()) < 1e-4 * max(1.0, abs(values.mean()))
    assert abs(fitted[name].std - values.std()) < 1e-4 * values.std()
for name in ("class_of_worker", "country_of_birth_self"):
    assert set(fitted[name].vocabulary) == set(train[name]), name
assert "education" not in fitted and "marital_stat" not in fitted  # labels, not inputs

# Both models learned both tasks, well above chance even in small mode.
assert list(comparison.index) == ["MMoE", "PLE"]
for model_name, row in comparison.iterrows():
    assert row["income AUC"] > 0.8, (model_name, row["income AUC"])
    assert row["marital AUC"] > 0.9, (model_name, row["marital AUC"])
# The table is the models' own evaluation.
scores = ple.evaluate(test_ds, return_dict=True, verbose=0)
np.testing.assert_allclose(
    comparison.loc["PLE", "income AUC"], scores["income_auc"], rtol=1e-6
)

# Gate tables: every column sums to 1; MMoE one table, PLE one per level, whose
# task gates give exactly 0 to the other task's experts.
np.testing.assert_allclose(
    shared_mass,
    np.minimum(mmoe_gates["experts"]["income"], mmoe_gates["experts"]["marital"]).sum(),
)
assert 0.0 <= shared_mass <= 1.0 + 1e-6
assert list(mmoe_gates) == ["experts"] and len(mmoe_gates["experts"]) == MMOE_EXPERTS
assert list(mmoe_gates["experts"].columns) == ["income", "marital"]
assert len(ple_gates) == 2
for table in [*mmoe_gates.values(), *ple_gates.values()]:
    np.testing.assert_allclose(table.sum(axis=0), 1.0, atol=1e-5)
    assert (table.to_numpy() >= 0).all()
level_1, level_2 = ple_gates.values()
assert list(level_1.columns) == ["income", "marital", "shared"]
assert list(level_2.columns) == ["income", "marital"]
for table in (level_1, level_2):
    assert (
        table.loc[[r for r in table.index if r.startswith("marital_")], "income"] == 0
    ).all()
    assert (
        table.loc[[r for r in table.index if r.startswith("income_")], "marital"] == 0
    ).all()
    assert len(table) == 3 * PLE_EXPERTS

# Curves: one point per epoch per model and task, plotted as logged.
for model_name, history in histories.items():
    for task in ("income", "marital"):
        assert len(history[f"val_{task}_auc"]) == EPOCHS, (model_name, task)
# The marital validation AUC is near its ceiling by the last epoch.
assert min(h["val_marital_auc"][-1] for h in histories.values()) > 0.9
panels = {ax.get_title(): ax for ax in curves.axes}
assert set(panels) == {"income", "marital"}
for task, ax in panels.items():
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert set(lines) == {"MMoE", "PLE"}
    for model_name, line in lines.items():
        np.testing.assert_array_equal(line.get_xdata(), np.arange(1, EPOCHS + 1))
        np.testing.assert_allclose(
            line.get_ydata(), histories[model_name][f"val_{task}_auc"]
        )
