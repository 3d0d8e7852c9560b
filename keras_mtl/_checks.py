"""Argument checks shared by every module: one wording for "must be a positive int".

Each check names its `owner` (the class, builder or function whose argument it
is), the argument and the value received, and returns the value in its checked
form (a Python int, float or tuple), e.g.
`self.units = check_positive_int("MLP", "units", units)`. This module imports
nothing from the package, so every level may use it.
"""

from __future__ import annotations

import math
import numbers
from typing import Any


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_bool(owner: str, arg: str, value: Any) -> bool:
    """`value`, or ValueError unless it is a bool (True or False, not 0 or 1).

    Example:
    >>> check_bool("build_mmoe", "feature_selection", True)
    True
    """
    if not isinstance(value, bool):
        raise ValueError(f"{owner}: {arg} must be a bool, got {value!r}.")
    return value


#: The task types a prediction head (a tower, a label embedding) handles.
HEAD_TASK_TYPES = ("binary", "regression", "multiclass")


def check_head_task(
    owner: str, task_type: Any, num_classes: Any
) -> tuple[str, int | None]:
    """`(task_type, num_classes)` of a prediction head, checked: `task_type` one
    of `HEAD_TASK_TYPES`, and `num_classes` an int >= 2 for "multiclass" and
    None for the others; ValueError naming `owner` otherwise.

    Example:
    >>> check_head_task("TaskTower", "multiclass", 3)
    ('multiclass', 3)
    """
    if task_type not in HEAD_TASK_TYPES:
        raise ValueError(
            f"{owner}: task_type must be one of {HEAD_TASK_TYPES}, got {task_type!r}."
        )
    if (task_type == "multiclass") != (num_classes is not None):
        raise ValueError(
            f"{owner}: num_classes (an int >= 2) is required for "
            f"task_type='multiclass' and only for it; got {num_classes!r} with "
            f"{task_type!r}."
        )
    if num_classes is not None:
        num_classes = check_int_at_least(owner, "num_classes", num_classes, 2)
    return task_type, num_classes


def check_int_at_least(owner: str, arg: str, value: Any, least: int) -> int:
    """`value` as an int, or ValueError unless it is an int >= `least` (not a bool).

    Args:
        owner: str. Who takes the argument, e.g. "Task 'genre'".
        arg: str. The argument's name.
        value: the value received.
        least: int. The smallest valid value.

    Returns:
        `int(value)`.

    Example:
    >>> check_int_at_least("AttentionPooling", "units", 0, 0)
    0
    """
    if not _is_int(value) or value < least:
        raise ValueError(f"{owner}: {arg} must be an int >= {least}, got {value!r}.")
    return int(value)


def check_positive_int(
    owner: str, arg: str, value: Any, *, allow_none: bool = False
) -> int | None:
    """`value` as an int, or ValueError unless it is an int >= 1 (not a bool).

    Args:
        owner: str. Who takes the argument, e.g. "MixtureOfExperts".
        arg: str. The argument's name.
        value: the value received.
        allow_none: bool. Accept (and return) None too. Defaults to False.

    Returns:
        `int(value)`, or None when `allow_none` and `value` is None.

    Example:
    >>> check_positive_int("MixtureOfExperts", "num_experts", 4)
    4
    """
    if allow_none and value is None:
        return None
    if not _is_int(value) or value < 1:
        also = " or None" if allow_none else ""
        raise ValueError(f"{owner}: {arg} must be a positive int{also}, got {value!r}.")
    return int(value)


def check_units(
    owner: str, arg: str, units: Any, allow_empty: bool = True
) -> tuple[int, ...]:
    """A sequence of layer widths as a tuple of positive ints.

    Args:
        owner: str. Who takes the argument, e.g. "MLP".
        arg: str. The argument's name, e.g. "units".
        units: the value received: a sequence of ints.
        allow_empty: bool. Whether `()` is valid (an identity stack).
            Defaults to True.

    Returns:
        The widths as a tuple of ints.

    Example:
    >>> check_units("MLP", "units", [16, 8])
    (16, 8)
    """
    try:
        widths = tuple(units)
    except TypeError:
        widths = None
    if widths is None or not all(_is_int(u) or _whole_float(u) for u in widths):
        raise ValueError(f"{owner}: {arg} must be a sequence of ints, got {units!r}.")
    widths = tuple(int(u) for u in widths)
    if (not widths and not allow_empty) or any(u < 1 for u in widths):
        empty = "" if allow_empty else "a non-empty sequence of "
        raise ValueError(
            f"{owner}: {arg} must hold {empty}positive ints, got {units!r}."
        )
    return widths


def _whole_float(value: Any) -> bool:
    return isinstance(value, float) and value.is_integer()


def _as_float(value: Any) -> float:
    if isinstance(value, (bool, str, bytes)):
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def check_rate(owner: str, arg: str, value: Any) -> float:
    """`value` as a float, or ValueError unless it lies in [0, 1) (a dropout rate).

    Example:
    >>> check_rate("MLP", "dropout", 0.25)
    0.25
    """
    rate = _as_float(value)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"{owner}: {arg} must be in [0, 1), got {value!r}.")
    return rate


def check_non_negative(owner: str, arg: str, value: Any) -> float:
    """`value` as a float, or ValueError unless it is a finite number >= 0.

    Example:
    >>> check_non_negative("GradNorm", "alpha", 1.5)
    1.5
    """
    number = _as_float(value)
    if not 0.0 <= number < math.inf:
        raise ValueError(f"{owner}: {arg} must be a finite number >= 0, got {value!r}.")
    return number


def check_positive(owner: str, arg: str, value: Any) -> float:
    """`value` as a float, or ValueError unless it is a finite number > 0.

    Example:
    >>> check_positive("DynamicWeightAverage", "temperature", 2.0)
    2.0
    """
    number = _as_float(value)
    if not 0.0 < number < math.inf:
        raise ValueError(f"{owner}: {arg} must be a finite number > 0, got {value!r}.")
    return number


def check_fraction(owner: str, arg: str, value: Any) -> float:
    """`value` as a float, or ValueError unless it lies in [0, 1].

    Example:
    >>> check_fraction("CrossStitch", "self_weight", 0.9)
    0.9
    """
    number = _as_float(value)
    if not 0.0 <= number <= 1.0:
        raise ValueError(f"{owner}: {arg} must be a float in [0, 1], got {value!r}.")
    return number


def check_spec_list(arg: str, value: Any, specs: str, singles: tuple) -> None:
    """Refuse a dict, a string or a single spec where a list of specs is due.

    `arg` names the argument ("features", "tasks"), `specs` what its list holds
    (for the message), `singles` the spec classes a lone spec would be. A dict
    of specs would name each spec twice (key and spec): its values are the list.
    """
    from collections.abc import Mapping

    if not isinstance(value, (Mapping, str, bytes, *singles)):
        return
    if isinstance(value, Mapping):
        got = f"a dict with keys {list(value)[:3]}"
        hint = f"each spec carries its own name: pass list({arg}.values())"
    else:
        got, hint = repr(value), "pass a list, e.g. [spec]"
    raise TypeError(f"{arg} must be a list of {specs}; got {got}. Instead, {hint}.")
