"""Pareto weighting: the min-norm combination of the task gradients (MGDA-UB),
with PE-LTR's lower bounds."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_non_negative, check_positive_int
from keras_mtl.weighting.gradient_weighting import (
    GradientWeighting,
    bounded_min_norm,
    gram_matrix,
    min_norm_pair,
    min_norm_simplex,
    normalized,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class ParetoWeighting(GradientWeighting):
    """Each step, the weights whose combination of the task gradients is shortest.

    With `g_k = ∇_W λ_k L_k` at the weights W of the last shared layer, the
    weights `α` on the simplex minimise `‖Σ_k α_k g_k‖²` (MGDA; the direction
    is one that decreases every task's loss, or 0 at a Pareto-stationary
    point). Taking the gradients at the last shared layer rather than at the
    shared representation z is the same cheap upper bound as MGDA-UB's
    `∇_z`. Two tasks: the closed form `γ = (g₂·g₂ − g₁·g₂) / ‖g₁ − g₂‖²`
    clipped to [0.001, 0.999]; more: projected gradient descent on the simplex
    (`iterations` steps). With `bounds` (PE-LTR), `α_k ≥ c_k`: the
    equality-constrained optimum of `ŵ = α − c` from the KKT system, projected
    onto `{ŵ ≥ 0, Σ ŵ = 1 − Σ c}`. Everything comes from the K × K Gram matrix
    of the flattened gradients.

    The weights of this step, `w_k = n α_k` (n the number of tasks with a
    gradient in the batch, so they sum to n like GradNorm's and equal weights
    are 1), scale the task losses at every weight all tasks depend on: the
    shared weights get `Σ_k w_k g_k`, and each task's own weights its own
    loss's gradient (Sener & Koltun, Alg. 2). A task absent from the batch, or
    whose gradient is 0 (no labels), gets weight 0 (without bounds). The logs'
    `{task}_weight` are the w of the epoch's last step.

    Args:
        bounds: dict of task name to a lower bound c_k ≥ 0 on α_k, with
            `Σ c_k ≤ 1` (PE-LTR), or None. Defaults to None.
        iterations: int >= 1. Projected-gradient steps for more than two tasks
            without bounds. Defaults to 250 (the MGDA authors' script).
        shared_layer: str or None. The layer whose weights W the gradients
            are taken at, or "all" for every weight the tasks share
            (`GradientWeighting`). Defaults to None: the last shared layer,
            found as for `GradNorm`.

    Example:
    In use, `model.compile(loss_weighting="pareto")`. The weights from two
    hand-made gradients, as a training step computes them:

    >>> from keras_mtl.losses import MaskedBinaryCrossentropy as BCE
    >>> pareto = ParetoWeighting()
    >>> pareto.configure({"ctr": BCE(), "cvr": BCE()})  # by compile
    >>> g = [[np.array([1.0, 0.0])], [np.array([0.0, 2.0])]]  # g_ctr, g_cvr
    >>> [round(float(w), 3) for w in pareto.step_weights([1.0, 1.0], g)]
    [1.6, 0.4]

    `γ = (4 − 0) / (1 + 4) = 0.8` for ctr, whose gradient is shorter; the
    weights are 2γ and 2(1 − γ).

    References:
        Sener & Koltun, "Multi-Task Learning as Multi-Objective Optimization",
        NeurIPS 2018 (arXiv:1810.04650). Lin et al., "A Pareto-Efficient
        Algorithm for Multiple Objective Optimization in E-Commerce
        Recommendation", RecSys 2019.
    """

    chooses_weights_each_step = True

    def __init__(
        self,
        bounds: dict | None = None,
        iterations: int = 250,
        shared_layer: str | None = None,
        **kwargs,
    ):
        super().__init__(shared_layer=shared_layer, **kwargs)
        if bounds is not None:
            if not isinstance(bounds, dict):
                raise TypeError(
                    "ParetoWeighting: bounds must be a dict of task name to a "
                    f"lower bound, got {bounds!r}."
                )
            bounds = {
                task: check_non_negative("ParetoWeighting", f"bounds[{task!r}]", value)
                for task, value in bounds.items()
            }
            if sum(bounds.values()) > 1.0 + 1e-9:
                raise ValueError(
                    "ParetoWeighting: the bounds must sum to at most 1 (the "
                    f"weights do); got {bounds} (sum {sum(bounds.values()):g})."
                )
        self.bounds = bounds
        self.iterations = check_positive_int(
            "ParetoWeighting", "iterations", iterations
        )

    def _check_tasks(self) -> None:
        super()._check_tasks()
        unknown = sorted(set(self.bounds or {}) - set(self.task_names))
        if unknown:
            raise ValueError(
                f"ParetoWeighting: bounds for {unknown}, which are not tasks with "
                f"a loss; the tasks are {list(self.task_names)}."
            )

    def simplex_weights(self, gram):
        """α on the simplex from the Gram matrix of the task gradients."""
        gram, present = normalized(gram)
        if self.bounds:
            bounds = ops.convert_to_tensor(
                [float(self.bounds.get(n, 0.0)) for n in self.task_names], "float32"
            )
            return bounded_min_norm(gram, bounds, present)
        if self.num_tasks == 1:
            return ops.ones((1,))
        if self.num_tasks == 2:
            return min_norm_pair(gram, present)
        return min_norm_simplex(gram, present, self.iterations)

    def step_weights(self, scaled, task_gradients):
        gram = gram_matrix(task_gradients)
        present = ops.cast(normalized(gram)[1], "float32")
        return self.simplex_weights(gram) * ops.maximum(ops.sum(present), 1.0)

    def get_config(self):
        return {
            **super().get_config(),
            "bounds": self.bounds,
            "iterations": self.iterations,
        }
