"""Compiling a multi-task model with per-task defaults."""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl.losses import (
    MaskedBinaryCrossentropy,
    MaskedCategoricalCrossentropy,
    MaskedMeanSquaredError,
)
from keras_mtl.metrics import MaskedAUC, MaskedMSE
from keras_mtl.tasks import Task, check_tasks

#: Name of each task type's default metric, as logged (`f"{task}_{name}"`).
METRIC_NAMES = {
    "binary": "auc",
    "regression": "mse",
    "multiclass": "auc",
    "ranking": "ndcg_at_10",
}


def task_loss(task: Task) -> keras.losses.Loss:
    """The default loss of a task.

    Masked binary cross-entropy (binary), masked MSE (regression), masked
    categorical cross-entropy (multiclass), or keras-rs's pairwise logistic
    loss over the candidate list (ranking; labels -1 mark padded candidates).

    Example:
    >>> loss = task_loss(Task("watch_time", "regression", missing_value=-1))
    >>> type(loss).__name__, loss.name, loss.mask_value
    ('MaskedMeanSquaredError', 'watch_time_loss', -1.0)
    """
    name = f"{task.name}_loss"
    if task.type == "ranking":
        import keras_rs

        return keras_rs.losses.PairwiseLogisticLoss(name=name)
    cls = {
        "binary": MaskedBinaryCrossentropy,
        "regression": MaskedMeanSquaredError,
        "multiclass": MaskedCategoricalCrossentropy,
    }[task.type]
    return cls(mask_value=task.missing_value, name=name)


def task_metrics(task: Task) -> list:
    """The default metrics of a task, named as in `METRIC_NAMES`.

    Masked AUC (binary; micro-averaged one-vs-rest for multiclass), masked MSE
    (regression), keras-rs NDCG@10 (ranking).

    Example:
    >>> [m.name for m in task_metrics(Task("ctr"))]
    ['auc']
    >>> [type(m).__name__ for m in task_metrics(Task("genre", "multiclass",
    ...                                                num_classes=3))]
    ['MaskedAUC']
    """
    name = METRIC_NAMES[task.type]
    if task.type == "ranking":
        import keras_rs

        return [keras_rs.metrics.NDCG(k=10, name=name)]
    if task.type == "regression":
        return [MaskedMSE(mask_value=task.missing_value, name=name)]
    return [MaskedAUC(mask_value=task.missing_value, name=name)]


def supports_jit(model: keras.Model) -> bool:
    """Whether every layer of the compiled step can be compiled with XLA.

    String lookups cannot; a `MultiTaskModel` runs them outside the step
    (`MultiTaskModel.hosted_lookups`), so only the ones it cannot move count.
    """
    hosted = getattr(model, "hosted_lookups", None)
    clean = hosted.clean_layers if hosted is not None else frozenset()
    stack = list(model.layers)
    while stack:
        layer = stack.pop()
        if not getattr(layer, "supports_jit", True) and id(layer) not in clean:
            return False
        stack.extend(getattr(layer, "_layers", []))
    return True


def compile_model(
    model: keras.Model,
    tasks: Sequence[Task],
    optimizer="adam",
    learning_rate: float | None = 1e-3,
    loss=None,
    metrics=None,
    jit_compile="auto",
    loss_weighting=None,
    **kwargs,
) -> keras.Model:
    """Compile `model` with one masked loss, loss weight and metric list per task.

    A `metric_only` task gets metrics but no loss. Outputs of the model that are
    not among `tasks` get neither (e.g. ESMM's `cvr` when only `ctr` and `ctcvr`
    are given).

    Every argument overrides one default: `loss` / `metrics` may be dicts keyed by
    task name (missing tasks keep their default). `jit_compile="auto"` turns XLA on
    whenever every layer supports it (unlike Keras's own "auto", which keeps XLA
    off on CPU). A `MultiTaskModel` (every builder's) looks its string inputs
    up outside the compiled step, so string features keep XLA on; other models
    with string lookups or FarmHash run without it.

    Args:
        model: the model, with outputs keyed by task name.
        tasks: its `Task`s (loss weights and missing-label values come from them).
        optimizer: optimizer or its name. Defaults to Adam.
        learning_rate: float or None. Set on a named optimizer. Defaults to 1e-3.
        loss: dict of task name to loss, overriding the defaults.
        metrics: dict of task name to metric list, overriding the defaults.
        jit_compile: bool or "auto". Defaults to "auto".
        loss_weighting: None, a strategy name ("fixed", "uncertainty", "gradnorm",
            "dwa", "decay") or a `keras_mtl.weighting.LossWeighting`: how the
            task losses are combined inside `fit` (needs a `MultiTaskModel`,
            which every builder returns). None: `Task.loss_weight` only.
            `Task.loss_weight` always scales its task's loss.
        **kwargs: passed to `model.compile`.

    Returns:
        The model, compiled.

    Example:
    >>> x = keras.Input((3,), name="x")
    >>> h = keras.layers.Dense(4, name="shared")(x)
    >>> model = km.MultiTaskModel(x, {
    ...     "ctr": km.layers.TaskTower((), "binary", name="ctr")(h),
    ...     "watch": km.layers.TaskTower((), "regression", name="watch")(h)})
    >>> tasks = [Task("ctr"), Task("watch", "regression", loss_weight=0.5)]
    >>> model = compile_model(model, tasks)
    >>> {task: type(loss).__name__ for task, loss in model.loss.items()}
    {'ctr': 'MaskedBinaryCrossentropy', 'watch': 'MaskedMeanSquaredError'}
    >>> model.get_compile_config()["loss_weights"]
    {'ctr': 1.0, 'watch': 0.5}
    >>> model.jit_compile  # no string lookups, so XLA is on
    True

    With `loss_weighting=`, the strategy combines the task losses inside `fit`:

    >>> model = compile_model(model, tasks, loss_weighting="uncertainty")
    >>> type(model.loss_weighting).__name__
    'UncertaintyWeighting'
    """
    tasks = check_tasks(tasks)
    if isinstance(model.output, dict):
        unknown = [t.name for t in tasks if t.name not in model.output]
        if unknown:
            raise ValueError(
                f"compile_model: tasks {unknown} are not outputs of the model; its "
                f"outputs are {sorted(model.output)}."
            )
    if isinstance(optimizer, str):
        optimizer = keras.optimizers.get(
            {"class_name": optimizer, "config": {"learning_rate": learning_rate}}
            if learning_rate is not None
            else optimizer
        )
    if all(t.metric_only for t in tasks):
        raise ValueError(
            "compile_model: every task is metric_only, so there is nothing to train."
        )
    losses = {t.name: task_loss(t) for t in tasks if not t.metric_only}
    losses.update(loss or {})
    task_metric = {t.name: task_metrics(t) for t in tasks}
    task_metric.update(metrics or {})
    if jit_compile == "auto":
        jit_compile = supports_jit(model)
    if loss_weighting is not None:
        if not hasattr(model, "loss_weighting"):
            raise TypeError(
                "compile_model: a loss_weighting needs a keras_mtl MultiTaskModel "
                f"(every builder returns one), got {type(model).__name__}."
            )
        kwargs["loss_weighting"] = loss_weighting
    model.compile(
        optimizer=optimizer,
        loss=losses,
        loss_weights={t.name: t.loss_weight for t in tasks if t.name in losses},
        metrics=task_metric,
        jit_compile=jit_compile,
        **kwargs,
    )
    return model
