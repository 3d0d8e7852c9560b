"""warm_start: weights from a previous export, matched by variable path."""

import numpy as np
import pytest

import keras_mtl as km

FEATURES = [
    km.SparseFeature("item", hash_bins=32, dtype="int64", embedding_dim=2),
    km.DenseFeature("price"),
]
TASKS = [km.Task("click"), km.Task("gmv", "regression")]
X = {"item": np.array([3, 10**12, 7]), "price": np.array([1.0, -2.0, 0.5])}


def build():
    return km.build_mmoe(FEATURES, TASKS, num_experts=2, expert_units=(4,))


def test_latest_version_of_a_serving_directory_is_loaded(tmp_path):
    old, new = build(), build()
    km.export_saved_model(old, tmp_path)  # version 1
    km.export_saved_model(new, tmp_path)  # version 2
    fresh = build()
    report = km.warm_start(fresh, tmp_path)
    assert report == {"loaded": len(fresh.variables), "missing": 0}
    for task in ("click", "gmv"):
        np.testing.assert_allclose(fresh(X)[task], new(X)[task], atol=1e-6)
        assert not np.allclose(fresh(X)[task], old(X)[task], atol=1e-4)
    km.warm_start(fresh, tmp_path / "1")  # a version directory
    np.testing.assert_allclose(fresh(X)["click"], old(X)["click"], atol=1e-6)


def test_missing_variables_are_named_unless_not_strict(tmp_path):
    small = km.build_mmoe(FEATURES[:1], TASKS, num_experts=2, expert_units=(4,))
    km.export_saved_model(small, tmp_path)
    bigger = build()  # adds the price column: wider expert kernels
    with pytest.raises(
        ValueError,
        match="shapes differ.*expert_kernel_0 \\(2, 2, 4\\) -> \\(2, 3, 4\\)",
    ):
        km.warm_start(bigger, tmp_path)
    # A new task on a shared bottom: only its tower is new.
    day1 = km.build_shared_bottom(FEATURES, TASKS)
    day1.save(tmp_path / "day1.keras")
    extra = km.build_shared_bottom(FEATURES, TASKS + [km.Task("buy")])
    with pytest.raises(ValueError, match="4 variable.*not in .*buy_tower"):
        km.warm_start(extra, tmp_path / "day1.keras")
    report = km.warm_start(extra, tmp_path / "day1.keras", strict=False)
    assert report == {"loaded": len(day1.variables), "missing": 4}
    np.testing.assert_allclose(extra(X)["click"], day1(X)["click"], atol=1e-6)
