"""The shared argument checks: what passes, what is returned, and the message."""

import math

import numpy as np
import pytest

import keras_mtl as km
from keras_mtl._checks import (
    check_bool,
    check_head_task,
    check_int_at_least,
    check_non_negative,
    check_positive,
    check_positive_int,
    check_rate,
    check_units,
)


def test_valid_values_come_back_as_python_numbers():
    assert check_positive_int("Owner", "n", np.int64(3)) == 3
    assert type(check_positive_int("Owner", "n", np.int64(3))) is int
    assert check_positive_int("Owner", "n", None, allow_none=True) is None
    assert check_int_at_least("Owner", "n", 0, 0) == 0
    assert check_units("Owner", "units", [16, np.int32(8), 4.0]) == (16, 8, 4)
    assert check_units("Owner", "units", ()) == ()
    assert check_rate("Owner", "dropout", 0) == 0.0
    assert check_non_negative("Owner", "w", 0) == 0.0
    assert check_positive("Owner", "t", np.float32(0.5)) == 0.5


def test_head_task_returns_the_checked_pair():
    assert check_head_task("Head", "binary", None) == ("binary", None)
    assert check_head_task("Head", "multiclass", np.int32(4)) == ("multiclass", 4)


@pytest.mark.parametrize("value", [0, 1, "yes", None, np.bool_(True)])
def test_bool_takes_only_a_bool(value):
    assert check_bool("Owner", "flag", False) is False
    with pytest.raises(
        ValueError, match=rf"^Owner: flag must be a bool, got {value!r}\.$"
    ):
        check_bool("Owner", "flag", value)


@pytest.mark.parametrize("value", [0, -2, 2.0, True, "3", None])
def test_positive_int_names_owner_argument_and_value(value):
    with pytest.raises(
        ValueError, match=rf"^Owner: n must be a positive int, got {value!r}\.$"
    ):
        check_positive_int("Owner", "n", value)


def test_int_at_least_and_allow_none_say_what_is_valid():
    with pytest.raises(ValueError, match=r"Task 't': num_classes must be an int >= 2"):
        check_int_at_least("Task 't'", "num_classes", 1, 2)
    with pytest.raises(ValueError, match=r"max_len must be a positive int or None"):
        check_positive_int("SparseFeature 'a'", "max_len", 0, allow_none=True)


@pytest.mark.parametrize(
    "units, allow_empty, match",
    [
        (8, True, r"must be a sequence of ints, got 8"),
        (["8"], True, r"must be a sequence of ints"),
        ([2.5], True, r"must be a sequence of ints"),
        ([4, 0], True, r"must hold positive ints, got \[4, 0\]"),
        ((), False, r"must hold a non-empty sequence of positive ints, got \(\)"),
    ],
)
def test_units(units, allow_empty, match):
    with pytest.raises(ValueError, match=rf"^MLP: units {match}"):
        check_units("MLP", "units", units, allow_empty=allow_empty)


@pytest.mark.parametrize(
    "check, bad, match",
    [
        (check_rate, [1.0, -0.1, math.nan, "0.5", True], r"must be in \[0, 1\)"),
        (
            check_non_negative,
            [-1e-9, math.inf, math.nan, "1"],
            r"must be a finite number >= 0",
        ),
        (
            check_positive,
            [0, -1, math.inf, math.nan, None],
            r"must be a finite number > 0",
        ),
    ],
)
def test_number_checks(check, bad, match):
    for value in bad:
        with pytest.raises(ValueError, match=rf"^Owner: x {match}, got "):
            check("Owner", "x", value)


@pytest.mark.parametrize(
    "layer, args",
    [
        ("TaskTower", ((4,),)),
        ("StarTower", (2, (4,))),
        ("LabelEmbedding", (2,)),
    ],
)
def test_every_head_checks_its_task_type_and_classes_alike(layer, args):
    # One check (check_head_task) for all three, each message naming the layer.
    cls = getattr(km.layers, layer)
    with pytest.raises(
        ValueError,
        match=rf"^{layer}: task_type must be one of \('binary', 'regression', "
        r"'multiclass'\), got 'ranking'\.$",
    ):
        cls(*args, task_type="ranking")
    with pytest.raises(
        ValueError,
        match=rf"^{layer}: num_classes \(an int >= 2\) is required for "
        r"task_type='multiclass' and only for it; got 3 with 'binary'\.$",
    ):
        cls(*args, task_type="binary", num_classes=3)
    with pytest.raises(ValueError, match=rf"^{layer}: num_classes must be an int >= 2"):
        cls(*args, task_type="multiclass", num_classes=1)
    made = cls(*args, task_type="multiclass", num_classes=np.int64(3))
    assert (made.task_type, made.num_classes) == ("multiclass", 3)
    assert type(made.num_classes) is int
