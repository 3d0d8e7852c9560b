"""The base of the strategies that read each task's gradient every step, and the
simplex arithmetic the gradient-surgery strategies share."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._graph import upstream_operations
from keras_mtl.weighting.loss_weighting import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class GradientWeighting(LossWeighting):
    """A strategy fed each task's gradient at the shared weights every step.

    The model's training step (`keras_mtl.training.train_step_with_task_gradients`,
    the same on the TensorFlow, JAX and torch backends) computes, from one
    forward pass, `g_k = ∇_W λ_k L_k` at the shared weights W (`shared_weights`)
    and then:

    1. `step_weights(scaled, task_gradients)`: a strategy may choose this
       step's weights w from the g_k. When it does, the weights every task
       depends on (`common_weights`) get the gradient of `Σ_k w_k λ_k L_k`
       (plus the layers' own losses) and every other weight, each task's own,
       the gradient of `Σ_k λ_k L_k`: its task's gradient, unweighted.
    2. after the optimizer's update, `update_from_task_gradients(scaled,
       task_gradients, w)`: by default it stores w as the weights in force (the
       `{task}_weight` logs); GradNorm updates its weights from the norms.

    A task absent from the batch has no gradient (`[]`); one whose labels are
    all missing has a zero gradient. The subclasses give such a task weight 0.

    Args:
        shared_layer: str or None. Name of the layer whose weights are W, or
            "all": every weight of the layers that every task output depends
            on (`common_weights`, embeddings included: exact, and costlier).
            Defaults to the last layer with weights that every task output
            depends on (the shared bottom, the experts of MMoE, the last level
            of PLE, whose shared experts are used).
    """

    needs_task_gradients = True

    #: Whether `step_weights` sets every weight each step (Pareto, PCGrad,
    #: CAGrad), so fixed `weights=` would be overwritten at the first step.
    chooses_weights_each_step = False

    def __init__(self, shared_layer: str | None = None, **kwargs):
        super().__init__(**kwargs)
        if self.chooses_weights_each_step and self.fixed_weights:
            raise ValueError(
                f"{type(self).__name__}: weights= would be replaced by the weights "
                "it chooses at every step; scale a task with Task.loss_weight "
                "instead."
            )
        self.shared_layer = shared_layer

    def shared_weights(self, model: keras.Model) -> list:
        """The weights W at which each task's gradient is taken."""
        if self.shared_layer == "all":
            weights = self.common_weights(model)
            if not weights:
                raise ValueError(
                    f"{type(self).__name__}: no layer with weights is shared by "
                    f"the tasks {list(self.task_names)} of model {model.name!r}."
                )
            return weights
        if self.shared_layer is not None:
            layer = model.get_layer(self.shared_layer)
        else:
            layer = last_shared_layer(model, self.task_names, type(self).__name__)
        weights = (
            getattr(layer, "shared_expert_weights", None) or layer.trainable_weights
        )
        if not weights:
            raise ValueError(
                f"{type(self).__name__}: layer {layer.name!r} has no trainable "
                "weights to take the tasks' gradients at; pass shared_layer=."
            )
        return list(weights)

    def common_weights(self, model: keras.Model) -> list:
        """The trainable weights of the layers every task output depends on
        (they get the gradient of `Σ_k w_k λ_k L_k` when `step_weights`
        chooses w)."""
        ancestors = [upstream_operations(model.output[n]) for n in self.task_names]
        common = set.intersection(*ancestors)
        return [
            w
            for layer in model.layers
            if id(layer) in common
            for w in layer.trainable_weights
        ]

    def step_weights(self, scaled: list, task_gradients: list):
        """This step's weights `(K,)` from the per-task gradients, or None
        (then the model gets the gradient of the loss as `combine` made it).

        Must not assign `task_weights` (the backward passes of the step still
        read them); `update_from_task_gradients` does. The step's gradients
        are formed from the linear `combine` of the base class (`Σ_k w_k
        scaled_k`), which a strategy that returns weights must keep.
        """
        return None

    def update_from_task_gradients(
        self, scaled: list, task_gradients: list, step_weights=None
    ) -> None:
        """After the optimizer's update: keep the weights of this step."""
        if step_weights is not None:
            self.task_weights.assign(step_weights)

    def get_config(self):
        return {**super().get_config(), "shared_layer": self.shared_layer}


def last_shared_layer(
    model: keras.Model, outputs, owner: str = "GradNorm"
) -> keras.layers.Layer:
    """The last layer (in model order) with weights that every output depends on."""
    ancestors = [upstream_operations(model.output[name]) for name in outputs]
    common = set.intersection(*ancestors)
    shared = [
        layer
        for layer in model.layers
        if id(layer) in common and layer.trainable_weights
    ]
    if not shared:
        raise ValueError(
            f"{owner}: no layer with weights is shared by the tasks "
            f"{list(outputs)} of model {model.name!r}; pass shared_layer=."
        )
    return shared[-1]


# ---------------------------------------------------------------- arithmetic
# Everything below works on the K x K Gram matrix of the flattened task
# gradients, in keras.ops, with a fixed number of iterations (so it compiles
# under XLA).


def gram_matrix(task_gradients: list):
    """`G[i, j] = g_i · g_j` over the flattened per-task gradients (`(K, K)`,
    float32); a task without gradients (`[]`, None entries) counts as 0."""
    flat = [
        [ops.cast(dense(g), "float32") for g in (grads or []) if g is not None]
        for grads in task_gradients
    ]
    count = len(flat)
    entries = {}
    for i in range(count):
        for j in range(i, count):
            if flat[i] and flat[j]:
                value = sum(
                    (ops.sum(a * b) for a, b in zip(flat[i], flat[j])),
                    ops.zeros(()),
                )
            else:
                value = ops.zeros(())
            entries[i, j] = entries[j, i] = value
    return ops.stack(
        [ops.stack([entries[i, j] for j in range(count)]) for i in range(count)]
    )


def dense(gradient):
    """A gradient as a dense tensor (TensorFlow gives an embedding table's
    as `IndexedSlices`: their rows are summed into place)."""
    if hasattr(gradient, "indices") and hasattr(gradient, "dense_shape"):
        return ops.scatter(
            ops.expand_dims(gradient.indices, -1),
            gradient.values,
            gradient.dense_shape,
        )
    return ops.convert_to_tensor(gradient)


def global_norm(gradients):
    """‖g‖₂ over a list of gradients (None entries skipped; 0 for none)."""
    squares = [
        ops.sum(ops.square(ops.convert_to_tensor(g)))
        for g in gradients
        if g is not None
    ]
    return ops.sqrt(sum(squares, ops.zeros(()))) if squares else ops.zeros(())


def normalized(gram):
    """`(G / s, present)`: G scaled by its largest diagonal entry s (the weights
    the strategies derive are invariant to the scale), and which tasks have a
    non-zero gradient."""
    diagonal = ops.diagonal(gram)
    present = diagonal > 0.0
    scale = ops.maximum(ops.max(diagonal), 1e-30)
    return gram / scale, present


def project_to_simplex(v, mask, radius=1.0):
    """The Euclidean projection of `v` onto `{w ≥ 0, Σ w = radius}`, with
    `w_k = 0` where `mask` is False (sort-based, Held et al. 1974)."""
    count = v.shape[0]
    mask = ops.cast(mask, "bool")
    v = ops.where(mask, v, -1e6)
    u = -ops.sort(-v)
    excess = ops.cumsum(u) - radius
    k = ops.arange(1, count + 1, dtype="float32")
    rho = ops.sum(ops.cast(u - excess / k > 0.0, "int32"))
    rho = ops.maximum(rho, 1)
    theta = ops.take(excess, rho - 1) / ops.cast(rho, "float32")
    return ops.where(mask, ops.maximum(v - theta, 0.0), 0.0)


def min_norm_pair(gram, present, low=0.001, high=0.999):
    """MGDA's closed form for two tasks: `[γ, 1 − γ]` minimising
    `‖γ g₁ + (1 − γ) g₂‖²`, `γ = (g₂·g₂ − g₁·g₂) / ‖g₁ − g₂‖²` clipped to
    `[low, high]`; all weight on the one task with a gradient when only one
    has."""
    g11, g12, g22 = gram[0, 0], gram[0, 1], gram[1, 1]
    denominator = g11 + g22 - 2.0 * g12
    gamma = ops.where(
        denominator > 0.0, (g22 - g12) / ops.maximum(denominator, 1e-30), 0.5
    )
    gamma = ops.clip(gamma, low, high)
    one, two = present[0], present[1]
    gamma = ops.where(one & two, gamma, ops.where(one, 1.0, ops.where(two, 0.0, 0.5)))
    return ops.stack([gamma, 1.0 - gamma])


def largest_eigenvalue(gram, iterations=20):
    """An estimate of the largest eigenvalue of G ⪰ 0: the power iteration's
    Rayleigh quotient times 1.1, within `[trace / K, trace]` (where λ_max
    lies). The iteration starts from `(1, 2, …, K)`, not from equal entries,
    which are orthogonal to the top eigenvector exactly when two tasks'
    gradients are opposed (MGDA's case)."""
    count = gram.shape[0]
    v = ops.arange(1, count + 1, dtype="float32")

    def body(_, v):
        v = ops.matmul(gram, v)
        return v / ops.maximum(ops.sqrt(ops.sum(v * v)), 1e-30)

    v = ops.fori_loop(0, iterations, body, v)
    rayleigh = ops.sum(v * ops.matmul(gram, v)) / ops.maximum(ops.sum(v * v), 1e-30)
    trace = ops.trace(gram)
    return ops.clip(1.1 * rayleigh, trace / count, trace)


def min_norm_simplex(gram, present, iterations=250):
    """`argmin_{w ∈ simplex} wᵀ G w` over the tasks `present`: accelerated
    projected gradient descent (FISTA, step 1 / L with L = 2 λ_max(G)) from
    equal weights, `iterations` steps."""
    mask = ops.cast(present, "float32")
    w = mask / ops.maximum(ops.sum(mask), 1.0)
    step = 1.0 / ops.maximum(2.0 * largest_eigenvalue(gram), 1e-30)

    def body(t, state):
        w, previous = state
        t = ops.cast(t, "float32")
        point = w + (t / (t + 3.0)) * (w - previous)
        new = project_to_simplex(point - step * 2.0 * ops.matmul(gram, point), present)
        return new, w

    return ops.fori_loop(0, iterations, body, (w, w))[0]


def bounded_min_norm(gram, bounds, present):
    """PE-LTR (Lin et al. 2019): weights `w = ŵ + c` with `Σ w = 1` and
    `w ≥ c`. `ŵ` solves `min ‖Σ (ŵ_k + c_k) g_k‖²` s.t. `Σ ŵ = 1 − Σ c` in
    closed form (the KKT system with G), then is projected onto
    `{ŵ ≥ 0, Σ ŵ = 1 − Σ c}`. A task not `present` (no gradient this step)
    gets weight 0 and no bound: a zero gradient would otherwise take all the
    free weight at no cost to the norm (when no task is present, all count)."""
    count = bounds.shape[0]
    present = ops.cast(present, "float32")
    present = ops.where(ops.sum(present) > 0.0, present, ops.ones_like(present))
    bounds = bounds * present
    # Absent tasks' rows read ŵ_k = 0; they leave the constraint row.
    ridge = gram * ops.outer(present, present) + ops.diag(1.0 - present)
    ridge = ridge + 1e-6 * ops.eye(count)
    ones = ops.reshape(present, (count, 1))
    system = ops.concatenate(
        [
            ops.concatenate([ridge, ones], axis=1),
            ops.concatenate([ops.transpose(ones), ops.zeros((1, 1))], axis=1),
        ],
        axis=0,
    )
    free = 1.0 - ops.sum(bounds)
    rhs = ops.concatenate(
        [-ops.matmul(gram, bounds) * present, ops.reshape(free, (1,))]
    )
    solution = ops.solve(system, ops.reshape(rhs, (count + 1, 1)))[:count, 0]
    return project_to_simplex(solution, present > 0.0, free) + bounds
