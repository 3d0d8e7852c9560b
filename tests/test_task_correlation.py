"""`km.task_correlation`: label correlations on the rows both tasks label."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import keras_mtl as km
from keras_mtl.datasets import make_synthetic


def hand_pearson(x, y):
    x, y = np.asarray(x, float), np.asarray(y, float)
    dx, dy = x - x.mean(), y - y.mean()
    return (dx @ dy) / np.sqrt((dx @ dx) * (dy @ dy))


def test_hand_computed_on_rows_both_label():
    # a: NaN at row 2; b: missing_value -1 at row 4. Both labelled: rows 0, 1, 3, 5.
    data = pd.DataFrame(
        {
            "a": [1.0, 2.0, np.nan, 3.0, 10.0, 4.0],
            "b": [2.0, 1.0, 5.0, 4.0, -1.0, 8.0],
        }
    )
    tasks = [km.Task("a", "regression"), km.Task("b", "regression", missing_value=-1)]
    table = km.task_correlation(data, tasks)

    x, y = [1.0, 2.0, 3.0, 4.0], [2.0, 1.0, 4.0, 8.0]
    # dx = (-1.5, -0.5, 0.5, 1.5), dy = (-1.75, -2.75, 0.25, 4.25):
    # r = 10.5 / sqrt(5 * 28.75)
    assert hand_pearson(x, y) == pytest.approx(10.5 / np.sqrt(5 * 28.75))
    assert table["pearson"].loc["a", "b"] == pytest.approx(10.5 / np.sqrt(5 * 28.75))
    assert table["pearson"].loc["b", "a"] == table["pearson"].loc["a", "b"]
    # Ranks (1, 2, 3, 4) against (2, 1, 3, 4): rho = 1 - 6 * 2 / (4 * 15) = 0.8.
    assert table["spearman"].loc["a", "b"] == pytest.approx(0.8)
    assert table["rows"].loc["a", "b"] == 4
    assert table["rows"].loc["a", "a"] == 5 and table["rows"].loc["b", "b"] == 5
    assert table["pearson"].loc["a", "a"] == pytest.approx(1.0)
    groups = table.columns.get_level_values(0).unique()
    assert list(groups) == ["pearson", "spearman", "rows"]
    assert list(table.index) == ["a", "b"]


def test_spearman_ties_and_binary_phi():
    # Two binary tasks: Pearson is the phi coefficient (ad - bc) / sqrt(...).
    click = [1, 1, 1, 0, 0, 0, 0, 1]
    like = [1, 1, 0, 0, 0, 1, 0, 1]
    # Counts: n11 = 3, n10 = 1, n01 = 1, n00 = 3 -> phi = (9 - 1) / 16 = 0.5.
    table = km.task_correlation(
        {"click": click, "like": like}, [km.Task("click"), km.Task("like")]
    )
    assert table["pearson"].loc["click", "like"] == pytest.approx(0.5)
    # With ties at mean ranks, Spearman of 0/1 labels equals Pearson (ranks are
    # an affine map of a two-valued label).
    assert table["spearman"].loc["click", "like"] == pytest.approx(0.5)


def test_given_masks_rows_and_constant_label_gives_nan():
    data = {
        "click": [1, 1, 0, 1, 0, 1, 0, 0],
        "conversion": [1, 0, 0, 1, 0, 0, 0, 0],
        "dwell": [30.0, 5.0, 2.0, np.nan, 1.0, 12.0, 3.0, 0.0],
    }
    tasks = [
        km.Task("ctr", label="click"),
        km.Task("cvr", label="conversion", given="click"),
        km.Task("dwell", "regression"),
    ]
    table = km.task_correlation(data, tasks)
    # cvr is labelled on the clicked rows 0, 1, 3, 5 only; with dwell: 0, 1, 5.
    assert table["rows"].loc["cvr", "cvr"] == 4
    assert table["rows"].loc["cvr", "dwell"] == 3
    assert table["pearson"].loc["cvr", "dwell"] == pytest.approx(
        hand_pearson([1, 0, 0], [30.0, 5.0, 12.0])
    )
    # ctr is 1 on every row cvr labels: undefined, not a number.
    assert np.isnan(table["pearson"].loc["ctr", "cvr"])
    assert np.isnan(table["spearman"].loc["ctr", "cvr"])
    assert table["pearson"].loc["ctr", "dwell"] == pytest.approx(
        hand_pearson([1, 1, 0, 0, 1, 0, 0], [30, 5, 2, 1, 12, 3, 0])
    )


def test_disjoint_labels_give_nan_with_zero_rows():
    data = {"a": [1.0, 2.0, np.nan, np.nan], "b": [np.nan, np.nan, 3.0, 4.0]}
    table = km.task_correlation(
        data, [km.Task("a", "regression"), km.Task("b", "regression")]
    )
    assert table["rows"].loc["a", "b"] == 0
    assert np.isnan(table["pearson"].loc["a", "b"])
    assert np.isnan(table["spearman"].loc["a", "b"])


def test_measured_correlation_rises_with_the_generators():
    measured = []
    for p in (0.0, 0.5, 0.9, 1.0):
        syn = make_synthetic(4000, dim=16, correlation=p, seed=0)
        table = km.task_correlation(syn.data, syn.tasks)
        measured.append(
            (table["pearson"].loc["y1", "y2"], table["spearman"].loc["y1", "y2"])
        )
        assert table["rows"].loc["y1", "y2"] == 4000
    pearson, spearman = np.array(measured).T
    # Measured (seed 0): Pearson 0.005, 0.482, 0.887, 0.994.
    assert np.all(np.diff(pearson) > 0.05), pearson
    assert np.all(np.diff(spearman) > 0.05), spearman
    assert abs(pearson[0]) < 0.1  # orthogonal weight vectors: independent labels
    assert pearson[-1] > 0.95  # identical weights: only the noise differs


def test_errors_name_the_task():
    data = {"a": [1.0, 2.0, 3.0], "b": [np.nan, np.nan, np.nan], "c": [0, 1, 2]}
    regression = km.Task("a", "regression")
    with pytest.raises(ValueError, match=r"Task 'b' \(label column 'b'\) has no label"):
        km.task_correlation(data, [regression, km.Task("b", "regression")])
    with pytest.raises(ValueError, match=r"label of task 'zzz' \(column 'zzz'\)"):
        km.task_correlation(data, [regression, km.Task("zzz", "regression")])
    with pytest.raises(ValueError, match=r"Task 'c' is a multiclass task"):
        km.task_correlation(
            data, [regression, km.Task("c", "multiclass", num_classes=3)]
        )
    with pytest.raises(ValueError, match=r"Task 'c'.*binary labels must be 0 or 1"):
        km.task_correlation(data, [regression, km.Task("c")])
    with pytest.raises(ValueError, match=r"at least two tasks.*\['a'\]"):
        km.task_correlation(data, [regression])
    with pytest.raises(TypeError, match=r"got 'b'"):
        km.task_correlation(data, [regression, "b"])
