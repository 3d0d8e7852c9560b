"""Per-task gradients: each task's gradient at the shared weights, in one step.

Strategies such as GradNorm, Pareto weighting, PCGrad and CAGrad need,
besides the gradient of the combined loss, each task's own gradient with
respect to the weights the tasks share. `task_gradients` computes both from
one forward pass on every Keras backend (TensorFlow: `tf.GradientTape`; JAX:
one `jax.vjp` over `stateless_call`; torch: `torch.autograd.grad`);
`train_step_with_task_gradients` is the training step a `MultiTaskModel` runs
when its loss weighting asks for them.
"""

from __future__ import annotations

import contextlib
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
        step_weights: in a training step, the weights the strategy chose for
            this step from the per-task gradients (`step_weights`), or None.
            When given, `gradients` are those of `Σ_k w_k λ_k L_k` plus the
            layers' losses at the weights every task depends on, and of
            `Σ_k λ_k L_k` plus the layers' losses at the others.
    """

    y_pred: dict
    losses: dict
    total: object
    scaled: list
    gradients: list
    task_gradients: list
    step_weights: object = None


def _forward(model, x, y, sample_weight):
    strategy = model.loss_weighting
    y_pred = model(x, training=True)
    losses = strategy.task_losses(y, y_pred, sample_weight)
    total = strategy.total(losses, model.losses)
    return y_pred, losses, total, strategy.scaled(losses)


def task_gradients(
    model, x, y, sample_weight, shared, common=None, step=False
) -> TaskGradients:
    """Gradients of the training loss and of each task's loss at `shared`.

    Runs on the TensorFlow, JAX and torch backends; on JAX it reads the
    variables' current values and writes back what the forward pass changed
    (the loss metrics, non-trainable state), so it is for eager use there:
    inside a compiled JAX step, the model's train step uses the stateless
    form.

    Args:
        model: a `MultiTaskModel` compiled with a loss weighting.
        x, y, sample_weight: one batch.
        shared: the shared weights (e.g. `GradNorm.shared_weights(model)`),
            a subset of `model.trainable_weights`.
        common: the weights every task depends on (`common_weights`), used
            with `step`; None for `shared`.
        step: bool. Let the strategy choose this step's weights from the
            per-task gradients (`LossWeighting.step_weights`) and return the
            gradients of the loss they give (see `TaskGradients`).

    Returns:
        A `TaskGradients`.

    Raises:
        NotImplementedError: on a backend other than these three.
    """
    backend = keras.backend.backend()
    step = (shared, shared if common is None else common) if step else None
    if backend == "tensorflow":
        return _tensorflow(model, x, y, sample_weight, shared, step)
    if backend == "torch":
        return _torch(model, x, y, sample_weight, shared, step)
    if backend == "jax":
        state = _JaxState.current(model)
        result, state = _jax(model, state, x, y, sample_weight, shared, step)
        state.assign(model)
        return result
    raise NotImplementedError(
        f"{type(model.loss_weighting).__name__} needs per-task gradients, "
        f"implemented for the TensorFlow, JAX and torch backends; this is "
        f"{backend!r}."
    )


def _step_weights(model, scaled, per_task, step):
    """`(w, cotangents)`: the strategy's weights for this step and the
    cotangents of `(total, stack(scaled))` that give the step's gradients, at
    the weights every task depends on and at the others; (None, None) when
    the strategy keeps the gradient of `total`."""
    strategy = model.loss_weighting
    if step is None:
        return None, None
    w = strategy.step_weights(scaled, per_task)
    if w is None:
        return None, None
    # total = Σ_k w⁰_k scaled_k + layer losses (the linear `combine`), with w⁰
    # the weights of the forward pass: adding Σ_k (w_k − w⁰_k) scaled_k gives
    # Σ_k w_k scaled_k + layer losses.
    before = ops.cast(strategy.task_weights.value, "float32")
    w = ops.stop_gradient(ops.cast(w, "float32"))
    return w, (w - before, 1.0 - before)


def _split(variables, step):
    """Indices of `variables` every task depends on, and of the others."""
    common = {id(v) for v in step[1]}
    inside = [i for i, v in enumerate(variables) if id(v) in common]
    outside = [i for i, v in enumerate(variables) if id(v) not in common]
    return inside, outside


def _merge(count, parts):
    """One list of `count` gradients from `[(indices, gradients)]`."""
    merged = [None] * count
    for indices, gradients in parts:
        for i, g in zip(indices, gradients):
            merged[i] = g
    return merged


def _tensorflow(model, x, y, sample_weight, shared, step=None):
    import tensorflow as tf

    names = model.loss_weighting.task_names
    variables = model.trainable_weights
    with tf.GradientTape(persistent=True) as tape:
        y_pred, losses, total, scaled = _forward(model, x, y, sample_weight)
        stacked = ops.stack(scaled)
    per_task = [
        # A task without labels in this batch has no gradient.
        tape.gradient(value, shared) if name in losses else []
        for name, value in zip(names, scaled)
    ]
    w, cotangents = _step_weights(model, scaled, per_task, step)
    if w is None:
        gradients = tape.gradient(total, variables)
    else:
        parts = []
        for indices, cotangent in zip(_split(variables, step), cotangents):
            if indices:
                grads = tape.gradient(
                    [total, stacked],
                    [variables[i] for i in indices],
                    output_gradients=[ops.ones_like(total), cotangent],
                )
                parts.append((indices, grads))
        gradients = _merge(len(variables), parts)
    del tape
    return TaskGradients(y_pred, losses, total, scaled, gradients, per_task, w)


def _torch(model, x, y, sample_weight, shared, step=None):
    import torch

    def grad(value, variables, cotangent=None):
        tensors = [v.value for v in variables]
        found = torch.autograd.grad(
            value,
            tensors,
            grad_outputs=cotangent,
            retain_graph=True,
            allow_unused=True,
        )
        # A weight the value does not depend on gets a zero gradient.
        return [torch.zeros_like(t) if g is None else g for g, t in zip(found, tensors)]

    names = model.loss_weighting.task_names
    y_pred, losses, total, scaled = _forward(model, x, y, sample_weight)
    stacked = ops.stack(scaled)
    per_task = [
        grad(value, shared) if name in losses else []
        for name, value in zip(names, scaled)
    ]
    w, cotangents = _step_weights(model, scaled, per_task, step)
    variables = model.trainable_weights
    if w is None:
        gradients = grad(total, variables)
    else:
        parts = []
        for indices, cotangent in zip(_split(variables, step), cotangents):
            if indices:
                grads = grad(
                    [total, stacked],
                    [variables[i] for i in indices],
                    [torch.ones_like(total), cotangent.to(stacked.dtype)],
                )
                parts.append((indices, grads))
        gradients = _merge(len(variables), parts)
    return TaskGradients(y_pred, losses, total, scaled, gradients, per_task, w)


@dataclasses.dataclass
class _JaxState:
    """The values of a model's variables that a JAX step reads and returns,
    in the order of `model.trainable_variables`, `model.non_trainable_variables`
    and `model.metrics_variables` (Keras's own train-step state, without the
    optimizer's)."""

    trainable: list
    non_trainable: list
    metrics: list

    @classmethod
    def current(cls, model):
        def values(variables):
            return [v.value for v in variables]

        return cls(
            values(model.trainable_variables),
            values(model.non_trainable_variables),
            values(model.metrics_variables),
        )

    def mapping(self, model):
        return [
            *zip(model.trainable_variables, self.trainable),
            *zip(model.non_trainable_variables, self.non_trainable),
            *zip(model.metrics_variables, self.metrics),
        ]

    def updated(self, model, scope):
        """The state after what `scope` (a `keras.StatelessScope`) assigned."""

        # (Every variable is in the scope's mapping, so each has a value.)
        def values(variables):
            return [scope.get_current_value(v) for v in variables]

        return _JaxState(
            self.trainable,
            values(model.non_trainable_variables),
            values(model.metrics_variables),
        )

    def assign(self, model):
        for variable, value in self.mapping(model):
            variable.assign(value)


def _jax(model, state, x, y, sample_weight, shared, step=None):
    """The stateless JAX form: `(TaskGradients, new state)`; the new state's
    trainable values are the old ones (the caller applies the gradients)."""
    import jax

    strategy = model.loss_weighting
    names = strategy.task_names
    trainable = list(model.trainable_variables)
    shared_ids = {id(v) for v in shared}
    shared_at = [i for i, v in enumerate(trainable) if id(v) in shared_ids]

    def forward(trainable_values):
        y_pred, non_trainable, extra = model.stateless_call(
            trainable_values,
            state.non_trainable,
            x,
            training=True,
            return_losses=True,
        )
        inner = _JaxState(trainable_values, non_trainable, state.metrics)
        with keras.StatelessScope(state_mapping=inner.mapping(model)) as scope:
            losses = strategy.task_losses(y, y_pred, sample_weight)
            total = strategy.total(losses, extra)
            scaled = strategy.scaled(losses)
        new = inner.updated(model, scope)
        # (The auxiliary outputs must be pytrees: lists, not the dataclass.)
        return (total, ops.stack(scaled)), (
            y_pred,
            losses,
            new.non_trainable,
            new.metrics,
        )

    (total, stacked), backward, aux = jax.vjp(forward, state.trainable, has_aux=True)
    y_pred, losses, non_trainable, metrics = aux
    # One forward pass; one backward pass per cotangent: each task's scaled
    # loss's, then the loss's.
    per_task = []
    for k, name in enumerate(names):
        if name not in losses:
            per_task.append([])
            continue
        (grads,) = backward((ops.zeros_like(total), ops.one_hot(k, len(names))))
        per_task.append([grads[i] for i in shared_at])
    scaled = [stacked[k] for k in range(len(names))]
    after = _JaxState(state.trainable, non_trainable, metrics)
    # The strategy reads its weights (and may draw random numbers) statelessly.
    with keras.StatelessScope(state_mapping=after.mapping(model)) as scope:
        w, cotangents = _step_weights(model, scaled, per_task, step)
    after = after.updated(model, scope)
    if w is None:
        (gradients,) = backward((ops.ones_like(total), ops.zeros_like(stacked)))
    else:
        parts = []
        for indices, cotangent in zip(_split(trainable, step), cotangents):
            if indices:
                (grads,) = backward((ops.ones_like(total), cotangent))
                parts.append((indices, [grads[i] for i in indices]))
        gradients = _merge(len(trainable), parts)
    result = TaskGradients(y_pred, losses, total, scaled, gradients, per_task, w)
    return result, after


def _after_gradients(model, result, x, y, sample_weight) -> dict:
    """What follows the optimizer's update: the strategy's update from the
    per-task gradients, the loss metric, and the logs."""
    model.loss_weighting.update_from_task_gradients(
        result.scaled, result.task_gradients, result.step_weights
    )
    batch = ops.shape(keras.tree.flatten(x)[0])[0]
    loss_metric = next(m for m in model.metrics if m.name == "loss")
    loss_metric.update_state(result.total, sample_weight=batch)
    return model.compute_metrics(x, y, result.y_pred, sample_weight=sample_weight)


def train_step_with_task_gradients(model, data, state=None):
    """A training step that also hands the loss weighting each task's gradient
    at the shared weights.

    The strategy may choose this step's weights from them (`step_weights`:
    Pareto weights, PCGrad, CAGrad); the step then applies the gradients of
    `Σ_k w_k λ_k L_k` (plus the layers' losses) at the weights every task
    depends on and of `Σ_k λ_k L_k` at the others (each task's own weights get
    its own gradient). After the optimizer's update it hands them to
    `update_from_task_gradients` (GradNorm's weight update; the others record
    the weights they chose).

    On JAX, Keras's stateless step: `state` is the tuple Keras passes
    (trainable, non-trainable, optimizer and metrics variables' values) and
    the step returns `(logs, new_state)`; elsewhere it returns the logs.
    """
    strategy = model.loss_weighting
    x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
    shared = strategy.shared_weights(model)
    common = strategy.common_weights(model)
    if keras.backend.backend() == "jax":
        step = (shared, common)
        return _jax_train_step(model, state, x, y, sample_weight, shared, step)
    result = task_gradients(model, x, y, sample_weight, shared, common, step=True)
    with _no_grad():
        model.optimizer.apply(result.gradients, model.trainable_weights)
        return _after_gradients(model, result, x, y, sample_weight)


def _no_grad():
    """torch records no graph for the updates (as Keras's torch step does)."""
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def _jax_train_step(model, state, x, y, sample_weight, shared, step):
    trainable, non_trainable, optimizer_values, metrics = state
    before = _JaxState(list(trainable), list(non_trainable), list(metrics))
    result, after = _jax(model, before, x, y, sample_weight, shared, step)
    trainable, optimizer_values = model.optimizer.stateless_apply(
        optimizer_values, result.gradients, before.trainable
    )
    after = _JaxState(trainable, after.non_trainable, after.metrics)
    with keras.StatelessScope(state_mapping=after.mapping(model)) as scope:
        logs = _after_gradients(model, result, x, y, sample_weight)
    after = after.updated(model, scope)
    return logs, (after.trainable, after.non_trainable, optimizer_values, after.metrics)
