"""Task specifications and the shared task presets.

A `Task` names one model output, its kind, its label column and how a missing
label is written. The presets (`esmm_tasks`, `esm2_tasks`, `aitm_tasks`,
`funnel_tasks`) are the one declaration of the click -> conversion funnel's
tasks, used by the builders, the data sets and the CLI.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from keras_mtl._checks import check_int_at_least, check_non_negative, check_spec_list
from keras_mtl.features import check_name
from keras_mtl.transforms import Transform, get_transform, serialize_transform

#: Every `Task.type`.
TASK_TYPES = ("binary", "regression", "multiclass", "ranking")


@dataclasses.dataclass(frozen=True)
class Task:
    """One prediction target.

    Args:
        name: str. Output name of the model (the key of the output dict).
        type: one of `TASK_TYPES`. Defaults to "binary".
            - "binary": a probability (sigmoid output), binary cross-entropy,
              AUC. Its label is 0 or 1.
            - "regression": a value (linear output), mean squared error, MSE.
            - "multiclass": `num_classes` probabilities (softmax output),
              categorical cross-entropy, one-vs-rest AUC. Needs `num_classes`.
            - "ranking": one raw score per candidate of a list of `list_size`,
              keras-rs's pairwise logistic loss, NDCG@10. Needs `list_size`.
        label: str or None. Data column holding the label; defaults to `name`.
        loss_weight: float. Weight of this task's loss in the total. Defaults to 1.
        missing_value: float or None. Label value that means "no label for this row"
            besides NaN (e.g. -1). Such rows are left out of the task's loss and
            metrics. Defaults to None (NaN only).
        given: str or None. Data column of a 0/1 event this label is conditional
            on, e.g. `Task("cvr", label="conversion", given="click")`: rows where
            it is not 1 have no label (masked out of the loss and metrics, which
            is how CVR is trained and evaluated on clicked impressions only). A
            positive label on such a row is a data error. Defaults to None.
        requires: str or None. Data column of a 0/1 event that must be 1 wherever
            this label is 1 (funnel order, e.g. no conversion without a click),
            checked by `make_dataset` without masking anything. Defaults to None.
        metric_only: bool. The task gets metrics but no loss (e.g. ESMM's `cvr`,
            which is trained only through `ctcvr`). Defaults to False.
        num_classes: int. Classes of a "multiclass" task (softmax output,
            categorical cross-entropy, one-vs-rest AUC). Its label is a class
            index or a vector of `num_classes` non-negative weights (a soft or
            multi-hot label, normalised to sum 1). Only for "multiclass".
        list_size: int. Candidates per example of a "ranking" task (one score
            per candidate, a pairwise ranking loss, NDCG@10). Its label is a
            vector of `list_size` relevance grades >= 0; -1 or NaN marks a
            padded candidate. Only for "ranking".
        transform: str, `keras_mtl.transforms.Transform` or None. An invertible
            transform of a "regression" label: "log1p" (log-scale targets,
            labels > -1), "identity" or your own `Transform`. The task is
            trained on `forward(label)` (its loss and metrics compare on that
            scale) and the model's output for it is on the label's own scale
            (`inverse` of the tower's output), in `predict`, after loading and
            in every exported signature; `keras_mtl.to_transformed_scale` gives
            the training scale. `make_dataset` rejects labels outside the
            transform's domain. Only for "regression". Defaults to None.

    Example:
    >>> cvr = Task("cvr", label="conversion", given="click")
    >>> cvr.label_column, cvr.data_columns, cvr.label_shape
    ('conversion', ('conversion', 'click'), ())
    >>> Task("genre", "multiclass", num_classes=18).label_shape
    (18,)
    >>> Task("rank", "ranking", list_size=10).label_shape
    (10,)
    >>> Task("dwell", "regression", transform="log1p").transform
    Log1p(max_log=80.0)
    >>> Task("genre", "multiclass")
    Traceback (most recent call last):
    ...
    ValueError: Task 'genre': num_classes is required for type='multiclass' ...
    """

    name: str
    type: str = "binary"
    label: str | None = None
    loss_weight: float = 1.0
    missing_value: float | None = None
    given: str | None = None
    requires: str | None = None
    metric_only: bool = False
    num_classes: int | None = None
    list_size: int | None = None
    transform: str | Transform | None = None

    def __post_init__(self):
        check_name("Task", self.name)
        if self.type not in TASK_TYPES:
            raise ValueError(
                f"Task {self.name!r}: type must be one of {TASK_TYPES}, got "
                f"{self.type!r}."
            )
        for arg, kind, least in (
            ("num_classes", "multiclass", 2),
            ("list_size", "ranking", 1),
        ):
            value = getattr(self, arg)
            if (self.type == kind) != (value is not None):
                raise ValueError(
                    f"Task {self.name!r}: {arg} is required for type={kind!r} and "
                    f"only for it; got type={self.type!r}, {arg}={value!r}."
                )
            if value is not None:
                value = check_int_at_least(f"Task {self.name!r}", arg, value, least)
                object.__setattr__(self, arg, value)
        try:
            transform = get_transform(self.transform)
        except ValueError as error:
            raise ValueError(f"Task {self.name!r}: {error}") from None
        if transform is not None and self.type != "regression":
            raise ValueError(
                f"Task {self.name!r}: transform={self.transform!r} needs a "
                f"regression task (a transformed label); got type={self.type!r}."
            )
        object.__setattr__(self, "transform", transform)
        weight = check_non_negative(
            f"Task {self.name!r}", "loss_weight", self.loss_weight
        )
        object.__setattr__(self, "loss_weight", weight)

        if self.given is not None and self.requires is not None:
            raise ValueError(
                f"Task {self.name!r}: set given or requires, not both (given "
                "already requires its column)."
            )
        for arg in ("given", "requires"):
            value = getattr(self, arg)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(
                    f"Task {self.name!r}: {arg} must be a column name or None, got "
                    f"{value!r}."
                )
            if value is not None and self.type != "binary":
                raise ValueError(
                    f"Task {self.name!r}: {arg}={value!r} needs a binary task (an "
                    f"event in a funnel); got type={self.type!r}."
                )
            if value == self.label_column:
                raise ValueError(
                    f"Task {self.name!r}: {arg}={value!r} names its own label column."
                )

    @property
    def label_column(self) -> str:
        return self.label or self.name

    @property
    def label_shape(self) -> tuple:
        """Per-example shape of the label (and of the model's output)."""
        width = self.num_classes or self.list_size
        return () if width is None else (width,)

    @property
    def label_floor(self) -> float | None:
        """Labels must be greater than this (its transform's domain), or None."""
        return None if self.transform is None else self.transform.domain_floor

    @property
    def parent_column(self) -> str | None:
        """The column this label must not exceed (`given` or `requires`), if any."""
        return self.given or self.requires

    @property
    def data_columns(self) -> tuple[str, ...]:
        """Every data column the task reads: its label, then its parent column."""
        return (self.label_column,) + (
            (self.parent_column,) if self.parent_column else ()
        )


def task_to_config(task: Task) -> dict:
    config = dataclasses.asdict(task)
    config["transform"] = serialize_transform(task.transform)
    return config


def task_from_config(config: dict | Task) -> Task:
    return config if isinstance(config, Task) else Task(**config)


def check_tasks(tasks: Sequence[Task]) -> list[Task]:
    """Validate a list of tasks (or their configs) as a whole; return the `Task`s.

    Example:
    >>> check_tasks([{"name": "ctr"}, Task("ctcvr", requires="click")])
    [Task(name='ctr', ...), Task(name='ctcvr', ..., requires='click', ...)]
    >>> check_tasks([Task("ctr"), Task("ctr", "regression")])
    Traceback (most recent call last):
    ...
    ValueError: Task names must be unique; got ['ctr', 'ctr'].
    """
    check_spec_list("tasks", tasks, "Task specs", (Task,))
    tasks = [task_from_config(t) for t in tasks]
    if not tasks:
        raise ValueError("At least one task is needed; got an empty list.")
    names = [t.name for t in tasks]
    if len(set(names)) != len(names):
        raise ValueError(f"Task names must be unique; got {names}.")
    return tasks


# ----------------------------------------------------------------------------- presets


def esmm_tasks(click: str = "click", conversion: str = "conversion") -> list[Task]:
    """ESMM's tasks over impressions with 0/1 columns `click` and `conversion`.

    `ctr` and `ctcvr` are trained on every impression; `cvr` is metric-only and
    labelled on clicked impressions only (its AUC is the paper's CVR AUC). A
    conversion without a click is reported by `make_dataset` as a data error.

    Example:
    >>> [t.name for t in esmm_tasks()]
    ['ctr', 'cvr', 'ctcvr']
    """
    return [
        Task("ctr", label=click),
        Task("cvr", label=conversion, given=click, metric_only=True),
        Task("ctcvr", label=conversion, requires=click),
    ]


def esm2_tasks(
    click: str = "click", action: str = "action", conversion: str = "conversion"
) -> list[Task]:
    """ESM²'s tasks: `ctr`, `ctavr` (click then action) and `ctcvr` trained on
    every impression, `cvr` metric-only on clicked impressions.

    Example:
    >>> [t.name for t in esm2_tasks()]
    ['ctr', 'ctavr', 'cvr', 'ctcvr']
    """
    return [
        Task("ctr", label=click),
        Task("ctavr", label=action, requires=click),
        Task("cvr", label=conversion, given=click, metric_only=True),
        Task("ctcvr", label=conversion, requires=click),
    ]


def aitm_tasks(click: str = "click", conversion: str = "conversion") -> list[Task]:
    """AITM's default funnel steps: `ctr`, then `ctcvr`, both on every impression.

    Example:
    >>> [(t.name, t.requires) for t in aitm_tasks()]
    [('ctr', None), ('ctcvr', 'click')]
    """
    return [Task("ctr", label=click), Task("ctcvr", label=conversion, requires=click)]


def funnel_tasks(click: str = "click", conversion: str = "conversion") -> list[Task]:
    """Independent funnel heads: `ctr` and `ctcvr` on every impression, `cvr`
    trained (not metric-only) on clicked impressions only.

    This is what a model without ESMM's structure (MMoE, shared-bottom, ...)
    learns on funnel data, and the heads `add_kl_bound` ties together.

    Example:
    >>> [(t.name, t.given, t.metric_only) for t in funnel_tasks()]
    [('ctr', None, False), ('cvr', 'click', False), ('ctcvr', None, False)]
    """
    return [
        Task("ctr", label=click),
        Task("cvr", label=conversion, given=click),
        Task("ctcvr", label=conversion, requires=click),
    ]
