"""Training: each task's default loss and metrics, the other defaults of
`compile`, and per-task gradients (for strategies such as GradNorm, Pareto
weighting, PCGrad and CAGrad), `ProgressLogger` (progress lines outside a
terminal, compilation times), and what makes a backed-up run resume where it
stopped (`ShuffleEpoch`, the seed generators' states)."""

from keras_mtl.training.defaults import (
    AUTO_JIT_MIN_EPOCH_STEPS,
    AUTO_JIT_MIN_STEPS,
    MAX_STEPS_PER_EXECUTION,
    METRIC_NAMES,
    MIN_CALLS_PER_EPOCH,
    auto_jit_compile,
    auto_jit_reason,
    auto_steps_per_execution,
    compile_arguments,
    supports_jit,
    task_loss,
    task_metrics,
)
from keras_mtl.training.progress_logger import ProgressLogger
from keras_mtl.training.random_state import (
    load_random_states,
    random_states,
    save_random_states,
)
from keras_mtl.training.shuffle_epoch import ShuffleEpoch
from keras_mtl.training.task_gradients import (
    task_gradients,
    train_step_with_task_gradients,
)

__all__ = [
    "AUTO_JIT_MIN_EPOCH_STEPS",
    "AUTO_JIT_MIN_STEPS",
    "MAX_STEPS_PER_EXECUTION",
    "METRIC_NAMES",
    "MIN_CALLS_PER_EPOCH",
    "ProgressLogger",
    "ShuffleEpoch",
    "auto_jit_compile",
    "auto_jit_reason",
    "auto_steps_per_execution",
    "compile_arguments",
    "load_random_states",
    "random_states",
    "save_random_states",
    "supports_jit",
    "task_gradients",
    "task_loss",
    "task_metrics",
    "train_step_with_task_gradients",
]
