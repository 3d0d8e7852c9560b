"""CAGrad: the update closest to the average gradient that most helps the worst task."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_non_negative, check_positive_int
from keras_mtl.weighting.gradient_weighting import (
    GradientWeighting,
    gram_matrix,
    normalized,
    project_to_simplex,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class CAGrad(GradientWeighting):
    """Conflict-averse gradient descent: the best worst-case update near the mean.

    With `g_k = ∇_W λ_k L_k` at the weights W of the last shared layer and
    `g₀` their average, the update d maximises the smallest local improvement
    `min_k g_k · d` within `‖d − g₀‖ ≤ c ‖g₀‖`. Through its dual:
    `w = argmin_{w ∈ simplex} g_wᵀ g₀ + √φ ‖g_w‖` with `g_w = Σ_k w_k g_k` and
    `φ = c² ‖g₀‖²` (solved by `iterations` projected-gradient steps from the
    K × K Gram matrix), then `d = g₀ + (√φ / ‖g_w‖) g_w`, divided by `1 + c²`
    when `rescale` (the authors' implementation's default rescaling). c = 0 is
    plain gradient descent on the average loss.

    d is a combination of the task gradients, `d = Σ_k (1/n + λ w_k) g_k / s`
    (n tasks with a gradient, λ = √φ / ‖g_w‖, s the rescaling); this step's
    weights are its coefficients times n, so that c = 0 gives weight 1 to every
    task (the plain sum). They scale the task losses at every weight all tasks
    depend on; each task's own weights get its own gradient. The logs'
    `{task}_weight` are the weights of the epoch's last step. A task absent
    from the batch, or whose gradient is 0, gets weight 0.

    Args:
        c: float >= 0. Radius of the ball around the average gradient,
            relative to its norm. Defaults to 0.4 (the authors' setting for
            NYU-v2 and Cityscapes in their published run scripts; they also
            ran 0.6 on Cityscapes).
        rescale: bool. Divide d by `1 + c²`. Defaults to True.
        iterations: int >= 1. Projected-gradient steps of the dual. Defaults to
            250.
        shared_layer: str or None. The layer whose weights W the gradients
            are taken at, or "all" for every weight the tasks share
            (`GradientWeighting`). Defaults to None: the last shared layer,
            found as for `GradNorm`.

    Example:
    In use, `model.compile(loss_weighting="cagrad")`. With c = 0 the update is
    the plain average (weight 1 each); with c > 0 the task whose gradient the
    average serves worst (here ctr's, shorter and at an angle) gains weight:

    >>> cagrad = CAGrad(c=0.0)
    >>> cagrad.configure({"ctr": "mse", "cvr": "mse"})  # by compile
    >>> g = [[np.array([1.0, 0.0])], [np.array([-1.0, 3.0])]]  # g_ctr, g_cvr
    >>> [round(float(w), 3) for w in cagrad.step_weights([1.0, 1.0], g)]
    [1.0, 1.0]
    >>> cagrad = CAGrad(c=0.5, rescale=False, iterations=20)
    >>> cagrad.configure({"ctr": "mse", "cvr": "mse"})
    >>> [round(float(w), 3) for w in cagrad.step_weights([1.0, 1.0], g)]
    [2.5, 1.0]

    `g₀ = (0, 1.5)`, `√φ = 0.75`; the dual puts all its weight on ctr
    (`g_w = g_ctr`, `‖g_w‖ = 1`), so `d = g₀ + 0.75 g_ctr`: ctr's weight is
    `2 (1/2 + 0.75)`, cvr's `2 · 1/2`.

    References:
        Liu et al., "Conflict-Averse Gradient Descent for Multi-task Learning",
        NeurIPS 2021 (arXiv:2110.14048).
    """

    chooses_weights_each_step = True

    def __init__(
        self,
        c: float = 0.4,
        rescale: bool = True,
        iterations: int = 250,
        shared_layer: str | None = None,
        **kwargs,
    ):
        super().__init__(shared_layer=shared_layer, **kwargs)
        self.c = check_non_negative("CAGrad", "c", c)
        if not isinstance(rescale, bool):
            raise ValueError(f"CAGrad: rescale must be True or False, got {rescale!r}.")
        self.rescale = rescale
        self.iterations = check_positive_int("CAGrad", "iterations", iterations)

    def dual_weights(self, gram, present):
        """The dual's w on the simplex (over the tasks `present`)."""
        mask = ops.cast(present, "float32")
        n = ops.maximum(ops.sum(mask), 1.0)
        towards_mean = ops.matmul(gram, mask) / n  # g_k · g₀
        sqrt_phi = self.c * ops.sqrt(ops.maximum(ops.sum(towards_mean * mask) / n, 0.0))
        step = 0.5 / ops.maximum(ops.trace(gram), 1e-30)

        def body(_, w):
            gw = ops.matmul(gram, w)
            norm = ops.sqrt(ops.maximum(ops.sum(w * gw), 1e-12))
            slope = towards_mean + sqrt_phi * gw / norm
            return project_to_simplex(w - step * slope, present)

        return ops.fori_loop(0, self.iterations, body, mask / n), sqrt_phi

    def step_weights(self, scaled, task_gradients):
        gram, present = normalized(gram_matrix(task_gradients))
        mask = ops.cast(present, "float32")
        n = ops.maximum(ops.sum(mask), 1.0)
        if self.c == 0.0:  # plain gradient descent on the average
            return mask
        w, sqrt_phi = self.dual_weights(gram, present)
        norm = ops.sqrt(ops.maximum(ops.sum(w * ops.matmul(gram, w)), 1e-12))
        coefficients = mask / n + (sqrt_phi / norm) * w
        if self.rescale:
            coefficients = coefficients / (1.0 + self.c**2)
        return coefficients * n

    def get_config(self):
        return {
            **super().get_config(),
            "c": self.c,
            "rescale": self.rescale,
            "iterations": self.iterations,
        }
