# Run in the quickstart's kernel after its last cell (tests/test_notebooks.py).
assert len(train["x"]) + len(val["x"]) + len(test["x"]) == NUM_EXAMPLES
assert len(history.history["val_y1_mse"]) == EPOCHS
for task in ("y1", "y2"):  # clearly better than predicting the training mean
    constant = float(np.mean((test[task] - train[task].mean()) ** 2))
    assert test_metrics[f"{task}_mse"] < 0.8 * constant, (task, test_metrics, constant)
table = gates["experts"]
assert list(table.columns) == ["y1", "y2"] and len(table) == 8
np.testing.assert_allclose(table.sum(axis=0).to_numpy(), 1.0, atol=1e-4)
assert export_dir.name == "1" and (export_dir / "saved_model.pb").is_file()
