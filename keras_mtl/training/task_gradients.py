"""Per-task gradients: each task's gradient at the shared weights, in one step.

Strategies such as GradNorm (and the gradient-surgery methods to come) need,
besides the gradient of the combined loss, each task's own gradient with
respect to the weights the tasks share. `task_gradients` computes both from
one forward pass; `train_step_with_task_gradients` is the training step a
`MultiTaskModel` runs when its loss weighting asks for them.
"""

from __future__ import annotations

import dataclasses

import keras
from keras import ops


@dataclasses.dataclass
class TaskGradients:
    """What one forward and backward pass gives.

    Attributes:
        y_pred: the model's outputs.
        losses: `{task: loss}` of the tasks labelled in the batch.
        total: the training loss (the strategy's combination plus the losses
            layers added).
        scaled: `[λ_k · loss_k]` in the strategy's task order (0 when absent).
        gradients: gradients of `total`, one per `model.trainable_weights`.
        task_gradients: per task (strategy order), the gradients of its scaled
            loss at the shared weights (`[]` for a task absent from the batch).
    """

    y_pred: dict
    losses: dict
    total: object
    scaled: list
    gradients: list
    task_gradients: list


def _forward(model, x, y, sample_weight):
    strategy = model.loss_weighting
    y_pred = model(x, training=True)
    losses = strategy.task_losses(y, y_pred, sample_weight)
    total = strategy.total(losses, model.losses)
    return y_pred, losses, total, strategy.scaled(losses)


def task_gradients(model, x, y, sample_weight, shared) -> TaskGradients:
    """Gradients of the training loss and of each task's loss at `shared`.

    Args:
        model: a `MultiTaskModel` compiled with a loss weighting.
        x, y, sample_weight: one batch.
        shared: the shared weights (e.g. `GradNorm.shared_weights(model)`).

    Returns:
        A `TaskGradients`.

    Raises:
        NotImplementedError: on a backend other than TensorFlow.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise NotImplementedError(
            f"{type(model.loss_weighting).__name__} needs per-task gradients, "
            f"implemented for the TensorFlow backend; this is {backend!r}."
        )
    import tensorflow as tf

    names = model.loss_weighting.task_names
    variables = model.trainable_weights
    with tf.GradientTape(persistent=True) as tape:
        y_pred, losses, total, scaled = _forward(model, x, y, sample_weight)
    gradients = tape.gradient(total, variables)
    per_task = [
        # A task without labels in this batch has no gradient.
        tape.gradient(value, shared) if name in losses else []
        for name, value in zip(names, scaled)
    ]
    del tape
    return TaskGradients(y_pred, losses, total, scaled, gradients, per_task)


def global_norm(gradients):
    """‖g‖₂ over a list of gradients (None entries skipped; 0 for none)."""
    squares = [
        ops.sum(ops.square(ops.convert_to_tensor(g)))
        for g in gradients
        if g is not None
    ]
    return ops.sqrt(sum(squares, ops.zeros(()))) if squares else ops.zeros(())


def train_step_with_task_gradients(model, data) -> dict:
    """A training step that also hands the loss weighting each task's gradient
    norm at the shared weights (`update_from_gradients`, as GradNorm needs)."""
    strategy = model.loss_weighting
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    result = task_gradients(model, x, y, sample_weight, strategy.shared_weights(model))
    model.optimizer.apply(result.gradients, model.trainable_weights)
    strategy.update_from_gradients(
        result.scaled, [global_norm(g) for g in result.task_gradients]
    )
    batch = ops.shape(keras.tree.flatten(x)[0])[0]
    loss_metric = next(m for m in model.metrics if m.name == "loss")
    loss_metric.update_state(result.total, sample_weight=batch)
    return model.compute_metrics(x, y, result.y_pred, sample_weight=sample_weight)
