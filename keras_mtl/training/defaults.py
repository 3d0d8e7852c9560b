"""Each task's default loss and metrics, and the other defaults of `compile`.

`MultiTaskModel.compile` (every builder's model) takes its defaults from here;
`compile_arguments` gives the same losses, loss weights and metrics to any
Keras model's `compile`.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras

from keras_mtl._keras_compat import nested_layers
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

    Masked binary cross-entropy (binary), masked MSE (regression; on the scale
    of the task's `transform` when it has one), masked
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
    if task.transform is not None:  # (a regression task: on the transformed scale)
        return cls(mask_value=task.missing_value, name=name, transform=task.transform)
    return cls(mask_value=task.missing_value, name=name)


def task_metrics(task: Task) -> list:
    """The default metrics of a task, named as in `METRIC_NAMES`.

    Masked AUC (binary; micro-averaged one-vs-rest for multiclass), masked MSE
    (regression; on the scale of the task's `transform`), keras-rs NDCG@10
    (ranking).

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
        return [
            MaskedMSE(
                mask_value=task.missing_value, name=name, transform=task.transform
            )
        ]
    return [MaskedAUC(mask_value=task.missing_value, name=name)]


def supports_jit(model: keras.Model) -> bool:
    """Whether every layer of the compiled step can be compiled with XLA.

    String lookups cannot; a `MultiTaskModel` runs them outside the step
    (`MultiTaskModel.hosted_lookups`), so only the ones it cannot move count.
    """
    hosted = getattr(model, "hosted_lookups", None)
    clean = hosted.clean_layers if hosted is not None else frozenset()
    return all(
        getattr(layer, "supports_jit", True) or id(layer) in clean
        for layer in nested_layers(model)
    )


#: `jit_compile="auto"`: XLA for a run of at least this many training steps
#: (batches x epochs)...
AUTO_JIT_MIN_STEPS = 1000
#: ...or for data of at least this many batches an epoch (large data).
AUTO_JIT_MIN_EPOCH_STEPS = 64


def auto_jit_compile(
    steps_per_epoch: int | None, epochs: int = 1, backend: str | None = None
) -> bool:
    """Whether `jit_compile="auto"` compiles a run with XLA: `epochs` epochs of
    `steps_per_epoch` batches (None: unknown) on `backend` (None: Keras's
    current backend).

    Each backend differs in what `jit_compile=False` means, so the decision is
    per backend (measured by benchmarks/backends.py and
    benchmarks/compile_cost.py):

    - "jax": always XLA. Keras's JAX trainer runs an un-jitted step op by op
      in Python: with a small MMoE on 20,000 census rows (batch 1024, loaded
      2-core CPU) it trained about 2,100 examples/s against 27,000 jitted, and
      even its first epoch took longer (36 s against 15 s with compilation),
      so no run is short enough for the un-jitted step to win.
    - "torch": never (`jit_compile=True` there is `torch.compile`, whose C++
      compilation took minutes for a census-size model, longer than most
      runs; the eager step is what Keras's own "auto" picks on torch too).
    - "tensorflow": from the run's length. XLA compiles each traced function
      (the training step, then the evaluation and prediction steps, again
      for a partial last batch) in seconds to tens of seconds more than
      TensorFlow's graph takes, and TensorFlow's graph without XLA is itself
      compiled, so on CPU XLA's steps are then up to 2.5x faster, or not
      faster at all, by model. Measured by benchmarks/compile_cost.py
      (docs/benchmarks.md, "Compile cost"; provisional, on a loaded 2-core
      CPU, batch 1024): XLA's first epoch takes 5-12 s more on 100 rows and
      11-77 s more on 10,000, and with 10,000 rows MMoE repays it after about
      60 epochs (600 steps), PLE, ESMM and DUPN after 300 to 800 epochs; on
      census-size data (196 batches an epoch) MMoE runs 2.5x and PLE 1.3x
      faster with XLA (repaid after about 12 and 60 epochs), while ESMM and
      DUPN ran slower with it; on a quiet machine (66,000 rows) XLA made
      MMoE 1.75x, PLE 2.5x and DUPN 1.31x faster and ESMM 0.77x as fast. So
      on TensorFlow "auto" means XLA for a long run (`AUTO_JIT_MIN_STEPS`
      steps or more) or for large data (`AUTO_JIT_MIN_EPOCH_STEPS` batches
      an epoch or more: there steady speed counts), and none for the short
      runs on small data, where compiling would take most of the time. A run
      of unknown length (a stream, a generator without `steps_per_epoch`)
      keeps XLA: such data is usually large.

    Example:
    >>> auto_jit_compile(2, epochs=20, backend="tensorflow")  # 100 rows, 20 epochs
    False
    >>> [auto_jit_compile(n, backend="tensorflow") for n in (None, 63, 64, 196)]
    [True, False, True, True]
    >>> auto_jit_compile(2, epochs=20, backend="jax")
    True
    >>> auto_jit_compile(196, epochs=100, backend="torch")
    False
    """
    backend = backend or keras.backend.backend()
    if backend == "jax":
        return True
    if backend == "torch":
        return False
    if steps_per_epoch is None:
        return True
    steps_per_epoch = int(steps_per_epoch)
    return (
        steps_per_epoch >= AUTO_JIT_MIN_EPOCH_STEPS
        or steps_per_epoch * max(1, int(epochs)) >= AUTO_JIT_MIN_STEPS
    )


def auto_jit_reason(
    jit: bool, steps_per_epoch: int | None, epochs: int = 1, backend: str | None = None
) -> str:
    """Why `auto_jit_compile` decided `jit` for that run, as
    `MultiTaskModel.jit_compile_reason` reports it.

    Example:
    >>> auto_jit_reason(False, 2, 20, backend="tensorflow")
    'off: 2 batches x 20 epochs (XLA from 64 batches an epoch or 1000 steps)'
    >>> auto_jit_reason(True, 2, 20, backend="jax")
    'on: the jax backend (without jit its steps run op by op, slower from the first epoch)'
    """
    backend = backend or keras.backend.backend()
    decision = "on" if jit else "off"
    if backend == "jax":
        return (
            f"{decision}: the jax backend (without jit its steps run op by op, "
            "slower from the first epoch)"
        )
    if backend == "torch":
        return (
            f"{decision}: the torch backend (jit_compile=True would be "
            "torch.compile: minutes of compilation)"
        )
    run = (
        "unknown length"
        if steps_per_epoch is None
        else f"{steps_per_epoch} batches x {epochs} epochs"
    )
    return (
        f"{decision}: {run} (XLA from {AUTO_JIT_MIN_EPOCH_STEPS} batches an epoch "
        f"or {AUTO_JIT_MIN_STEPS} steps)"
    )


def compile_arguments(
    tasks: Sequence[Task], loss=None, loss_weights=None, metrics=None
) -> dict:
    """`loss`, `loss_weights` and `metrics` for `keras.Model.compile`, per task.

    Each task gets its default loss (`task_loss`; none for a `metric_only`
    task), its `Task.loss_weight` and its default metrics (`task_metrics`).
    `loss`, `loss_weights` and `metrics` are dicts keyed by task name that
    override the defaults of the tasks they name; the others keep theirs.

    Example:
    >>> args = compile_arguments(
    ...     [Task("ctr"), Task("watch", "regression", loss_weight=0.5)]
    ... )
    >>> {task: type(loss).__name__ for task, loss in args["loss"].items()}
    {'ctr': 'MaskedBinaryCrossentropy', 'watch': 'MaskedMeanSquaredError'}
    >>> args["loss_weights"]
    {'ctr': 1.0, 'watch': 0.5}
    """
    tasks = check_tasks(tasks)
    names = [t.name for t in tasks]
    given = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics}
    for arg, value in given.items():
        if value is None:
            continue
        if not isinstance(value, dict):
            raise TypeError(
                f"compile: {arg} must be a dict keyed by task name (the tasks are "
                f"{names}), got {type(value).__name__}."
            )
        unknown = sorted(set(value) - set(names))
        if unknown:
            raise ValueError(
                f"compile: {arg} for {unknown}, which are not tasks; the tasks are "
                f"{names}."
            )
    losses = {t.name: task_loss(t) for t in tasks if not t.metric_only}
    losses.update(loss or {})
    if not losses:
        raise ValueError(
            "compile: every task is metric_only, so there is nothing to train."
        )
    weights = {t.name: t.loss_weight for t in tasks if t.name in losses}
    weights.update({k: v for k, v in (loss_weights or {}).items() if k in losses})
    task_metric = {t.name: task_metrics(t) for t in tasks}
    task_metric.update(metrics or {})
    return {"loss": losses, "loss_weights": weights, "metrics": task_metric}


#: `steps_per_execution="auto"`: at most this many batches per compiled call...
MAX_STEPS_PER_EXECUTION = 32
#: ...and at least this many calls (progress and callback updates) per epoch.
MIN_CALLS_PER_EPOCH = 4


def auto_steps_per_execution(
    batches: int | None, fixed_steps: Sequence[int] = ()
) -> int:
    """Batches per compiled call for an epoch of `batches` batches.

    Each call saves the host's per-batch work (the Python loop, callbacks,
    reading the logs), which dominates small, fast models: up to
    `MAX_STEPS_PER_EXECUTION` batches a call, and few enough that an epoch
    still makes `MIN_CALLS_PER_EPOCH` calls (progress updates). Keras runs
    whole calls, so the count divides each of `fixed_steps` (step counts the
    caller set: `steps_per_epoch`, `validation_steps`, `steps`). 1 when the
    length is unknown, and on the torch backend (whose trainer runs one batch
    a call). On JAX a call is a Python loop over the jitted step (no fused
    loop as on TensorFlow): it saves the callbacks and log reads between its
    batches (measured with a small MMoE: 27,000 examples/s at 5 batches a call,
    20,000 at 1, under different loads). docs/benchmarks.md has what a call
    costs for the builders.

    Example:
    >>> [auto_steps_per_execution(n) for n in (None, 5, 100, 195, 10_000)]
    [1, 1, 25, 32, 32]
    >>> auto_steps_per_execution(100, fixed_steps=[100, 30])  # divides both
    10
    """
    if batches is None or keras.backend.backend() == "torch":
        return 1
    calls = max(1, int(batches) // MIN_CALLS_PER_EPOCH)
    n = max(1, min(MAX_STEPS_PER_EXECUTION, calls))
    while any(int(steps) % n for steps in fixed_steps):
        n -= 1
    return n
