"""PCGrad: project each task's gradient off the gradients it conflicts with."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.weighting.gradient_weighting import GradientWeighting, gram_matrix


@keras.saving.register_keras_serializable(package="keras_mtl")
class PCGrad(GradientWeighting):
    """Gradient surgery: conflicting components of the task gradients are removed.

    With `g_k = ∇_W λ_k L_k` at the weights W of the last shared layer, each
    task's gradient g_i visits the other tasks j in a random order; when
    `g_i · g_j < 0` (they conflict), `g_i ← g_i − (g_i · g_j / ‖g_j‖²) g_j`
    (projection onto the normal plane of the other task's original gradient).
    The shared weights get the sum of the projected gradients.

    Every projected gradient is a combination of the original ones, so the
    sum is `Σ_k w_k g_k`: the projections are done on the coefficients, from
    the K × K Gram matrix of the flattened gradients, and `w_k` (1 for every
    task when nothing conflicts) are this step's weights. They scale the task
    losses at every weight all tasks depend on (so the layers below W get the
    same combination); each task's own weights get its own gradient, as in the
    paper. The logs' `{task}_weight` are the w of the epoch's last step. A
    task absent from the batch, or whose gradient is 0, gets weight 0.

    The random orders come from `keras.random` with a seed generator kept
    with the strategy, so the step compiles (XLA, JAX) and is reproducible
    under `keras.utils.set_random_seed`.

    Args:
        seed: int or None. Seed of the random orders. Defaults to None.
        shared_layer: str or None. The layer whose weights W the gradients
            are taken at, or "all" for every weight the tasks share
            (`GradientWeighting`). Defaults to None: the last shared layer,
            found as for `GradNorm`.

    Example:
    In use, `model.compile(loss_weighting="pcgrad")`. Two conflicting
    gradients, as a training step sees them:

    >>> pcgrad = PCGrad()
    >>> pcgrad.configure({"ctr": "mse", "cvr": "mse"})  # by compile
    >>> g = [[np.array([1.0, 0.0])], [np.array([-1.0, 1.0])]]  # g_ctr, g_cvr
    >>> [round(float(w), 3) for w in pcgrad.step_weights([1.0, 1.0], g)]
    [2.0, 1.5]

    `g_ctr · g_cvr = −1 < 0`: ctr's gradient becomes `g_ctr + g_cvr / 2`
    (`‖g_cvr‖² = 2`), cvr's `g_cvr + g_ctr`; their sum is `2 g_ctr + 1.5 g_cvr`.

    References:
        Yu et al., "Gradient Surgery for Multi-Task Learning", NeurIPS 2020
        (arXiv:2001.06782).
    """

    chooses_weights_each_step = True

    def __init__(
        self, seed: int | None = None, shared_layer: str | None = None, **kwargs
    ):
        super().__init__(shared_layer=shared_layer, **kwargs)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError(f"PCGrad: seed must be an int or None, got {seed!r}.")
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed, name="pcgrad_seed")

    def projection_weights(self, gram):
        """`w`: the sum of the projected gradients is `Σ_k w_k g_k`."""
        count = self.num_tasks
        diagonal = ops.diagonal(gram)
        present = diagonal > 0.0
        # Row i: the coefficients of g_i's projection on the original gradients.
        coefficients = ops.eye(count) * ops.cast(present, "float32")[:, None]
        # One random order of the tasks per row.
        noise = keras.random.uniform((count, count), seed=self.seed_generator)
        orders = ops.argsort(noise, axis=1)
        rows = ops.arange(count)
        for position in range(count):
            j = orders[:, position]  # row i visits task j[i]
            columns = ops.transpose(ops.take(gram, j, axis=1))  # row i: G[:, j_i]
            dots = ops.sum(coefficients * columns, axis=1)  # g_i · g_{j_i}
            norms = ops.take(diagonal, j)
            conflict = (dots < 0.0) & (j != rows) & (norms > 0.0)
            scale = ops.where(conflict, dots / ops.maximum(norms, 1e-30), 0.0)
            coefficients = coefficients - scale[:, None] * ops.one_hot(j, count)
        return ops.sum(coefficients, axis=0)

    def step_weights(self, scaled, task_gradients):
        return self.projection_weights(gram_matrix(task_gradients))

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
