"""GradNorm: balance the tasks' gradient norms at the last shared layer."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_non_negative, check_positive
from keras_mtl.weighting.gradient_weighting import (
    GradientWeighting,
    global_norm,
    last_shared_layer,
)

__all__ = ["GradNorm", "last_shared_layer"]


@keras.saving.register_keras_serializable(package="keras_mtl")
class GradNorm(GradientWeighting):
    """Adapts w_k so that every task trains at a similar rate.

    Every step, with W the weights of the last layer shared by all tasks,
    `G_k = ‖∇_W w_k L_k‖₂`, `Ḡ = mean_k G_k`, the relative inverse training rate
    `r_k = L̃_k / mean_j L̃_j` with `L̃_k = L_k(t) / L_k(0)`, the weights take one
    gradient-descent step on `Σ_k |G_k − Ḡ r_k^α|` (the target `Ḡ r_k^α` held
    constant), are floored at 1e-3 and renormalised to sum to the number of
    tasks. A task whose gradients dominate, or that trains faster than the others,
    loses weight. The model parameters get the gradient of `Σ_k w_k L_k`.

    `L_k(0)` is task k's loss at the first training step in which it has one.
    The per-task gradients come from `keras_mtl.training.task_gradients`, so
    GradNorm trains on the TensorFlow, JAX and torch backends alike.

    Args:
        alpha: float >= 0. Strength of the pull towards equal training rates
            (0: equal gradient norms only). Defaults to 1.5 (the paper's NYUv2
            setting; 0.12 for its toy tasks).
        learning_rate: float > 0. Step size of the weight update. Defaults to
            0.025 (the paper's).
        shared_layer: str or None. Name of the last shared layer. Defaults to the
            last layer that every task output depends on (the shared bottom, the
            experts of MMoE, the last level of PLE, whose shared experts are
            used).

    Example:
    In use, `model.compile(loss_weighting=GradNorm(alpha=0.5))`.
    One weight update by hand, as a training step makes it:

    >>> from keras_mtl.losses import MaskedBinaryCrossentropy as BCE
    >>> gradnorm = GradNorm(alpha=0.5)
    >>> gradnorm.configure({"ctr": BCE(), "cvr": BCE()})  # by compile
    >>> gradnorm.update_from_gradients([1.0, 1.0], [3.0, 1.0])  # losses, norms
    >>> {task: round(w, 4) for task, w in gradnorm.weights_in_force().items()}
    {'ctr': 0.9487, 'cvr': 1.0513}

    Both losses are at their start (equal rates), so the target norm is the mean,
    2: ctr's weight steps down by 0.025 · 3, cvr's up by 0.025 · 1, and the two
    are rescaled to sum to 2.

    References:
        Chen et al., "GradNorm: Gradient Normalization for Adaptive Loss Balancing
        in Deep Multitask Networks", ICML 2018 (arXiv:1711.02257).
    """

    needs_task_gradients = True

    def __init__(
        self,
        alpha: float = 1.5,
        learning_rate: float = 0.025,
        shared_layer: str | None = None,
        **kwargs,
    ):
        super().__init__(shared_layer=shared_layer, **kwargs)
        self.alpha = check_non_negative("GradNorm", "alpha", alpha)
        self.learning_rate = check_positive("GradNorm", "learning_rate", learning_rate)

    def build(self, input_shape=None):
        super().build(input_shape)
        self.initial_losses = self.add_weight(
            name="initial_losses",
            shape=(self.num_tasks,),
            initializer="zeros",
            trainable=False,
        )

    def update_from_task_gradients(self, scaled, task_gradients, step_weights=None):
        """The step's update: `update_from_gradients` with the gradient norms."""
        self.update_from_gradients(scaled, [global_norm(g) for g in task_gradients])

    def update_from_gradients(self, losses, gradient_norms) -> None:
        """One step on the weights from `[λ_k L_k]` and `[‖∇_W λ_k L_k‖]`."""
        losses = ops.stack(losses)
        norms = ops.stack(gradient_norms)
        previous = self.initial_losses.value
        initial = ops.where(previous > 0, previous, losses)
        self.initial_losses.assign(initial)
        present = losses > 0
        ratio = ops.where(present & (initial > 0), losses / initial, 1.0)
        inverse_rate = ratio / ops.mean(ratio)
        w = self.task_weights.value
        grad_norms = w * norms
        target = ops.mean(grad_norms) * inverse_rate**self.alpha
        step = ops.where(present, ops.sign(grad_norms - target) * norms, 0.0)
        new = ops.maximum(w - self.learning_rate * step, 1e-3)
        self.task_weights.assign(new * self.num_tasks / ops.sum(new))

    def get_config(self):
        return {
            **super().get_config(),
            "alpha": self.alpha,
            "learning_rate": self.learning_rate,
        }
