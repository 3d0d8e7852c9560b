"""Independent dense layers of one width, one per branch, run as a single einsum."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_non_negative, check_positive_int
from keras_mtl.layers._initializers import stacked_initializer
from keras_mtl.layers._shapes import common_width, per_branch_product, shape_list


@keras.saving.register_keras_serializable(package="keras_mtl")
class ParallelDense(keras.layers.Layer):
    """`num_branches` separate dense layers of the same width, batched together.

    Branch `k` computes `h_k = activation(x_k K_k + b_k)` with its own kernel `K_k`
    and bias `b_k`; the kernels are stored stacked, `(num_branches, input_dim,
    units)`, so all branches cost one einsum. This is the per-task hidden layer of
    soft-parameter-sharing models (cross-stitch, L2-constrained). With
    `coupling > 0` the layer adds the penalty

        coupling * Σ_{i<j} (||K_i - K_j||² + ||b_i - b_j||²)

    to the model's losses: the L2-constrained model's `α ||θ_1 - θ_2||²` between
    corresponding layers of two task networks, summed over every pair of tasks.
    With `orthogonality > 0` it adds the sluice networks' subspace penalty

        orthogonality * Σ_k ||G_{k,1}ᵀ G_{k,2}||²_F

    where `G_{k,1}`, `G_{k,2}` `(input_dim, units / 2)` are the weights of the
    first and of the second half of branch `k`'s units (its two subspaces):
    entry `(u, v)` of `G_1ᵀ G_2` is the dot product of unit u's and unit v's
    weight vectors, so the penalty is 0 exactly when every weight vector of
    one half is orthogonal to every one of the other.

    Args:
        num_branches: int. Number of independent branches (one per task).
        units: int. Output width of every branch.
        activation: activation of every branch. Defaults to "relu".
        coupling: float >= 0. Weight of the pairwise squared-distance penalty
            between the branches' parameters; 0 adds no loss. Defaults to 0.
        orthogonality: float >= 0. Weight of the subspace orthogonality
            penalty (needs an even `units`); 0 adds no loss. Defaults to 0.
        kernel_initializer: initializer of each branch's kernel, applied to each
            `(input_dim, units)` slice on its own, so every branch starts like its
            own `Dense` layer and differs from the others. Defaults to
            "glorot_uniform".

    Call arguments:
        inputs: one tensor `(batch, input_dim)` read by every branch (or a
            list of that one tensor), or a list of `num_branches` tensors
            `(batch, input_dim)`, branch `k` reading the `k`-th.

    Returns:
        A list of `num_branches` tensors `(batch, units)`, one per branch.

    Example:
    >>> layer = ParallelDense(2, 8, coupling=1e-3)
    >>> a, b = layer(np.zeros((4, 5), "float32"))
    >>> tuple(a.shape), tuple(b.shape), len(layer.losses)
    ((4, 8), (4, 8), 1)

    Two branches that start equal are not penalised:

    >>> same = ParallelDense(2, 3, coupling=1.0, kernel_initializer="ones")
    >>> _ = same(np.zeros((1, 2), "float32"))
    >>> float(same.losses[0])
    0.0

    References:
        Duong et al., "Low Resource Dependency Parsing: Cross-lingual Parameter
        Sharing in a Neural Network Parser", ACL 2015. Ruder et al., "Latent
        Multi-task Architecture Learning", AAAI 2019 (arXiv:1705.08142).
    """

    def __init__(
        self,
        num_branches: int,
        units: int,
        activation="relu",
        coupling: float = 0.0,
        kernel_initializer="glorot_uniform",
        orthogonality: float = 0.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_branches = check_positive_int(
            "ParallelDense", "num_branches", num_branches
        )
        self.units = check_positive_int("ParallelDense", "units", units)
        self.activation = keras.activations.get(activation)
        self.coupling = check_non_negative("ParallelDense", "coupling", coupling)
        self.orthogonality = check_non_negative(
            "ParallelDense", "orthogonality", orthogonality
        )
        if self.orthogonality > 0.0 and self.units % 2:
            raise ValueError(
                f"ParallelDense: orthogonality splits the units into two halves; "
                f"units={self.units} is odd."
            )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def _input_dim(self, input_shape) -> int:
        shapes = shape_list(input_shape)
        if len(shapes) not in (1, self.num_branches):
            raise ValueError(
                f"ParallelDense: got a list of {len(shapes)} inputs for "
                f"num_branches={self.num_branches}; pass one tensor or one per "
                "branch."
            )
        return common_width("ParallelDense", shapes)

    def build(self, input_shape):
        width = self._input_dim(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_branches, width, self.units),
            initializer=stacked_initializer(self.kernel_initializer),
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_branches, self.units), initializer="zeros"
        )

    def coupling_penalty(self):
        """`Σ_{i<j} ||K_i - K_j||² + ||b_i - b_j||²`, without the `coupling` factor.

        Computed as `T Σ_k ||θ_k - θ̄||²` (the same sum, with `θ̄` the mean over
        the `T` branches), which needs no loop over pairs.
        """
        if not self.built:
            raise ValueError(
                "ParallelDense: the layer is not built yet; call it first."
            )
        total = 0.0
        for weight in (self.kernel, self.bias):
            # In float32, as every added loss: the model sums its losses in
            # float32, also under a mixed policy (where `call` reads the
            # weights in float16 / bfloat16).
            weight = ops.cast(weight, "float32")
            centred = weight - ops.mean(weight, axis=0, keepdims=True)
            total = total + ops.sum(ops.square(centred))
        return self.num_branches * total

    def orthogonality_penalty(self):
        """`Σ_k ||G_{k,1}ᵀ G_{k,2}||²_F` for each branch kernel `[G_{k,1} G_{k,2}]`
        split into its two halves of units, without the `orthogonality` factor."""
        half = self.units // 2
        kernel = ops.cast(self.kernel, "float32")  # (see coupling_penalty)
        first, second = kernel[:, :, :half], kernel[:, :, half:]
        gram = ops.einsum("kiu,kiv->kuv", first, second)
        return ops.sum(ops.square(gram))

    def call(self, inputs):
        h = self.activation(per_branch_product(inputs, self.kernel) + self.bias)
        if self.coupling > 0.0 and self.num_branches > 1:
            self.add_loss(self.coupling * self.coupling_penalty())
        if self.orthogonality > 0.0:
            self.add_loss(self.orthogonality * self.orthogonality_penalty())
        return [h[:, k, :] for k in range(self.num_branches)]

    def compute_output_shape(self, input_shape):
        batch = shape_list(input_shape)[0][0]
        return [(batch, self.units)] * self.num_branches

    def get_config(self):
        return {
            **super().get_config(),
            "num_branches": self.num_branches,
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "coupling": self.coupling,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "orthogonality": self.orthogonality,
        }
