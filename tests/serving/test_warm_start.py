"""warm_start: weights from a previous export, matched by variable path."""

import dataclasses
import json

import numpy as np
import pytest

import keras_mtl as km
from tests.helpers import to_numpy

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
        np.testing.assert_allclose(
            to_numpy(fresh(X)[task]), to_numpy(new(X)[task]), atol=1e-6
        )
        assert not np.allclose(
            to_numpy(fresh(X)[task]), to_numpy(old(X)[task]), atol=1e-4
        )
    km.warm_start(fresh, tmp_path / "1")  # a version directory
    np.testing.assert_allclose(
        to_numpy(fresh(X)["click"]), to_numpy(old(X)["click"]), atol=1e-6
    )


def test_missing_variables_are_named_unless_not_strict(tmp_path):
    small = km.build_mmoe(FEATURES[:1], TASKS, num_experts=2, expert_units=(4,))
    km.export_saved_model(small, tmp_path)
    bigger = build()  # adds the price column: wider expert kernels
    with pytest.raises(
        ValueError,
        match="shapes differ.*expert_kernel_0 \\(2, 2, 4\\) -> \\(2, 3, 4\\)",
    ):
        km.warm_start(bigger, tmp_path)


def test_new_task_variables_are_named_unless_not_strict(tmp_path):
    # A new task on a shared bottom: only its tower is new.
    day1 = km.build_shared_bottom(FEATURES, TASKS)
    day1.save(tmp_path / "day1.keras")
    extra = km.build_shared_bottom(FEATURES, TASKS + [km.Task("buy")])
    with pytest.raises(ValueError, match="4 variable.*not in .*buy_tower"):
        km.warm_start(extra, tmp_path / "day1.keras")
    report = km.warm_start(extra, tmp_path / "day1.keras", strict=False)
    assert report == {"loaded": len(day1.variables), "missing": 4}
    np.testing.assert_allclose(
        to_numpy(extra(X)["click"]), to_numpy(day1(X)["click"]), atol=1e-6
    )


def _build_hashed_with(hash_function):
    features = [
        dataclasses.replace(FEATURES[0], hash_function=hash_function),
        FEATURES[1],
    ]
    return km.build_mmoe(features, TASKS, num_experts=2, expert_units=(4,))


def test_exports_record_their_hash_functions(tmp_path):
    path = km.export_saved_model(build(), tmp_path)
    record = json.loads((path / "assets.extra" / "keras_mtl.json").read_text())
    assert record["hash_functions"] == {"item": "int_hash_v1"}


@pytest.mark.parametrize("keras_file", [False, True])
def test_a_source_hashed_another_way_is_refused(tmp_path, keras_file):
    old = _build_hashed_with("farmhash64")
    if keras_file:
        source = tmp_path / "old.keras"
        old.save(source)
    else:
        source = km.export_saved_model(old, tmp_path)
    with pytest.raises(ValueError, match="'item': farmhash64 -> int_hash_v1"):
        km.warm_start(build(), source)
    same = _build_hashed_with("farmhash64")
    assert km.warm_start(same, source)["missing"] == 0
    np.testing.assert_allclose(
        to_numpy(same(X)["click"]), to_numpy(old(X)["click"]), atol=1e-6
    )


def test_an_export_without_the_record_was_hashed_by_keras_hashing(tmp_path):
    path = km.export_saved_model(_build_hashed_with("farmhash64"), tmp_path)
    (path / "assets.extra" / "keras_mtl.json").unlink()  # as written before
    with pytest.raises(ValueError, match="farmhash64 -> int_hash_v1"):
        km.warm_start(build(), path)
    assert km.warm_start(_build_hashed_with("farmhash64"), path)["missing"] == 0
