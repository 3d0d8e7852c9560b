"""Per-task dense layers whose stacked kernels carry a tensor-normal prior (MRN)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from keras_mtl._checks import (
    check_bool,
    check_non_negative,
    check_positive,
    check_positive_int,
)
from keras_mtl.layers._initializers import stacked_initializer
from keras_mtl.layers._shapes import common_width, per_branch_product, shape_list

#: The three modes of the weight tensor, in the order of `W` (in x out x task).
MODES = ("in", "out", "task")
#: What the layer keeps of each mode: its covariance and its precision.
KINDS = ("covariance", "precision")


@keras.saving.register_keras_serializable(package="keras_mtl")
class TensorNormalDense(keras.layers.Layer):
    """One dense layer per task, whose weights share a learned tensor-normal prior.

    Task `k` computes `h_k = activation(x_k W_k + b_k)`; the kernels `W_k`
    `(input_dim, units)` stacked over the `T` tasks form a tensor `W` of shape
    `input_dim x units x T` (stored task-first, `kernel[k] = W[:, :, k]`), and
    the layer adds the negative log-density of its tensor-normal prior,

        prior_weight · vec(W)ᵀ (Ω_task ⊗ Ω_out ⊗ Ω_in) vec(W)

    to the model's losses, with `vec` stacking the entries of `W` with the input
    index fastest and the task index slowest (so the Kronecker factors come in
    the reverse order of the modes) and `Ω = Σ⁻¹` the precision of each mode's
    covariance: `Σ_in` between input features, `Σ_out` between output units,
    `Σ_task` between tasks. A positive `Σ_task[k, l]` pulls tasks k and l
    towards each other, a near-zero one leaves them free.

    The covariances are not trained by the gradient: in every `update_every`-th
    training call (before the penalty is computed, from the kernel as it is) the
    layer replaces each by its flip-flop closed form given the other two, with
    `W_(m)` the mode-m unfolding of `W` (rows: mode m; columns: the other two
    modes, the earlier one fastest) and `d_m` the size of mode m:

        Σ_in   ∝ W_(in)   (Σ_task ⊗ Σ_out)⁻¹ W_(in)ᵀ   / (d_out d_task) + εI
        Σ_out  ∝ W_(out)  (Σ_task ⊗ Σ_in)⁻¹  W_(out)ᵀ  / (d_in d_task)  + εI
        Σ_task ∝ W_(task) (Σ_out ⊗ Σ_in)⁻¹   W_(task)ᵀ / (d_in d_out)   + εI

    all three from the previous estimates (one step of the flip-flop iteration,
    as the authors' code does at every iteration), each then scaled so that its
    precision has trace `d_m`. (The Kronecker product fixes only the product of
    the three scales. The authors' code scales each precision to trace 1; trace
    `d_m` makes the identity start's penalty `prior_weight · ||W||²`, plain
    weight decay. Scaling the precision, not the covariance, bounds its
    eigenvalues by `d_m` however close to singular the estimate is: a mode
    larger than the product of the other two, such as many inputs for few
    units and tasks, has a singular scatter, kept invertible only by `ε`.)

    Reading `Σ_task`: it compares the tasks' kernels entry by entry, so it
    means something only where unit j is the same feature in every task: a
    shared input and outputs that start alike (`same_start`) or mean the same
    (a head per class). And it is an estimate from one tensor: iterated on a
    fixed `W`, the flip-flop does not settle but drifts towards singular
    covariances (only `ε` and the trace scaling bound it); a single step from
    the identity gives (nearly, for a small `ε`) the cosines between the task
    kernels.

    The covariances and their precisions are non-trainable variables, saved
    with the model; `step` counts the training calls. Inference neither
    updates them nor needs them. The bias is not under the prior.

    Args:
        num_tasks: int. Number of tasks `T` (one kernel each).
        units: int. Output width of every task's layer.
        activation: activation of every task's layer. Defaults to "relu".
        prior_weight: float >= 0. Weight of the tensor-normal penalty; 0 adds
            no loss (the covariances are still estimated). Defaults to 1e-3.
        epsilon: float > 0. The `ε` added to each covariance's diagonal before
            the trace scaling, which keeps it invertible. Defaults to 1e-5 (the
            authors' code).
        update_every: int >= 1. Update the covariances in training calls
            `update_every`, `2 · update_every`, ... (counted from 1), so the
            first update sees weights trained for `update_every - 1` steps.
            Defaults to 1: every step, as the authors' code.
        kernel_initializer: initializer of each task's kernel, applied to each
            `(input_dim, units)` slice on its own. Defaults to "glorot_uniform".
        same_start: bool. Start every task from the same kernel (one draw of
            `kernel_initializer`), as the paper's task layers start as copies
            of one pretrained layer: unit j then means the same in every task,
            and the task covariance compares like with like. Defaults to False
            (independent draws).

    Call arguments:
        inputs: one tensor `(batch, input_dim)` read by every task (or a list
            of that one tensor), or a list of `num_tasks` tensors `(batch,
            input_dim)`, task `k` reading the `k`-th.
        training: bool. Whether to update the covariances (a training step).

    Returns:
        A list of `num_tasks` tensors `(batch, units)`, one per task.

    Example:
    >>> layer = TensorNormalDense(2, 3, kernel_initializer="ones")
    >>> a, b = layer(np.ones((4, 5), "float32"))
    >>> tuple(a.shape), len(layer.losses)
    ((4, 3), 1)

    At the identity start the penalty is `prior_weight · ||W||²`:

    >>> round(float(layer.losses[0]), 6)  # 1e-3 * (5 * 3 * 2 ones)
    0.03

    After a training call, equal kernels have perfectly correlated tasks:

    >>> _ = layer(np.ones((4, 5), "float32"), training=True)
    >>> np.round(layer.task_correlation(), 3)
    array([[1., 1.],
           [1., 1.]], dtype=float32)

    References:
        Long, Cao, Wang, Yu, "Learning Multiple Tasks with Multilinear
        Relationship Networks", NIPS 2017 (arXiv:1506.02117).
    """

    def __init__(
        self,
        num_tasks: int,
        units: int,
        activation="relu",
        prior_weight: float = 1e-3,
        epsilon: float = 1e-5,
        update_every: int = 1,
        kernel_initializer="glorot_uniform",
        same_start: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "TensorNormalDense"
        self.num_tasks = check_positive_int(owner, "num_tasks", num_tasks)
        self.units = check_positive_int(owner, "units", units)
        self.activation = keras.activations.get(activation)
        self.prior_weight = check_non_negative(owner, "prior_weight", prior_weight)
        self.epsilon = check_positive(owner, "epsilon", epsilon)
        self.update_every = check_positive_int(owner, "update_every", update_every)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.same_start = check_bool(owner, "same_start", same_start)

    def _input_dim(self, input_shape) -> int:
        shapes = shape_list(input_shape)
        if len(shapes) not in (1, self.num_tasks):
            raise ValueError(
                f"TensorNormalDense: got a list of {len(shapes)} inputs for "
                f"num_tasks={self.num_tasks}; pass one tensor or one per task."
            )
        return common_width("TensorNormalDense", shapes)

    def _same_start(self, shape, dtype=None):
        """One draw of `kernel_initializer`, repeated for every task."""
        one = self.kernel_initializer(tuple(shape[1:]), dtype)
        return ops.stack([one] * shape[0])

    def build(self, input_shape):
        width = self._input_dim(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=(self.num_tasks, width, self.units),
            initializer=self._same_start
            if self.same_start
            else stacked_initializer(self.kernel_initializer),
        )
        self.bias = self.add_weight(
            name="bias", shape=(self.num_tasks, self.units), initializer="zeros"
        )
        sizes = dict(zip(MODES, (width, self.units, self.num_tasks)))
        for mode, size in sizes.items():
            for kind in KINDS:
                variable = self.add_weight(
                    name=f"{mode}_{kind}",
                    shape=(size, size),
                    initializer="identity",
                    trainable=False,
                    autocast=False,
                )
                setattr(self, f"{mode}_{kind}", variable)
        self.step = self.add_weight(
            name="step", shape=(), dtype="int32", initializer="zeros", trainable=False
        )

    # ------------------------------------------------------------------ the prior

    def _check_built(self):
        """ValueError unless the layer has its weights (it builds when called)."""
        if not self.built:
            raise ValueError(
                "TensorNormalDense: the layer is not built yet; call it first."
            )

    def covariance(self, mode: str):
        """The covariance variable `Σ` of `mode` ("in", "out" or "task")."""
        return getattr(self, f"{mode}_covariance")

    def precision(self, mode: str):
        """The precision variable `Ω = Σ⁻¹` of `mode` ("in", "out" or "task")."""
        return getattr(self, f"{mode}_precision")

    def _weights_tensor(self):
        """The kernel, task-first `(T, in, out)`, in the covariances' dtype."""
        return ops.cast(self.kernel, self.task_covariance.dtype)

    def prior_penalty(self):
        """`vec(W)ᵀ (Ω_task ⊗ Ω_out ⊗ Ω_in) vec(W)`, without `prior_weight`,
        with the current precisions."""
        self._check_built()
        w = self._weights_tensor()
        p = {mode: self.precision(mode) for mode in MODES}
        whitened = ops.einsum("kij,ia->kaj", w, p["in"])
        whitened = ops.einsum("kaj,jb->kab", whitened, p["out"])
        whitened = ops.einsum("kab,kc->cab", whitened, p["task"])
        return ops.sum(whitened * w)

    def flip_flop(self, precisions=None) -> dict:
        """One flip-flop step from the precisions `{mode: Ω}` (defaults to the
        layer's): `{mode: (Σ, Ω)}`, each `Σ` the closed form plus `εI`, scaled
        so that its precision `Ω = Σ⁻¹` has trace `d_m`. Changes nothing."""
        self._check_built()
        if precisions is None:
            precisions = {mode: self.precision(mode) for mode in MODES}
        p = dict(precisions)
        w = ops.stop_gradient(self._weights_tensor())
        d_task, d_in, d_out = w.shape
        # Each scatter contracts W with the other two modes' precisions.
        by_in = ops.einsum("kij,jb,kc->cib", w, p["out"], p["task"])
        by_out = ops.einsum("kij,ia,kc->caj", w, p["in"], p["task"])
        by_task = ops.einsum("kij,ia,jb->kab", w, p["in"], p["out"])
        scatter = {
            "in": ops.einsum("cib,cab->ia", by_in, w) / (d_out * d_task),
            "out": ops.einsum("caj,cab->jb", by_out, w) / (d_in * d_task),
            "task": ops.einsum("kab,cab->kc", by_task, w) / (d_in * d_out),
        }
        new = {}
        for mode, s in scatter.items():
            size = s.shape[0]
            eye = ops.eye(size, dtype=s.dtype)
            s = 0.5 * (s + ops.transpose(s)) + self.epsilon * eye
            omega = ops.linalg.inv(s)
            scale = ops.trace(omega) / size
            new[mode] = (s * scale, omega / scale)
        return new

    def _update(self):
        """Assign the flip-flop covariances and their precisions (every
        `update_every`-th call), and count the call."""
        step = self.step.value
        variables = [
            getattr(self, f"{mode}_{kind}") for mode in MODES for kind in KINDS
        ]

        def updated():
            new = self.flip_flop()
            return tuple(value for mode in MODES for value in new[mode])

        def kept():
            return tuple(variable.value for variable in variables)

        if self.update_every == 1:
            values = updated()
        else:
            due = ops.equal((step + 1) % self.update_every, 0)
            values = ops.cond(due, updated, kept)
        for variable, value in zip(variables, values):
            variable.assign(value)
        self.step.assign(step + 1)

    def task_correlation(self) -> np.ndarray:
        """The learned task correlation `Σ_task[k, l] / sqrt(Σ_task[k, k] Σ_task[l, l])`
        as a numpy array `(T, T)`."""
        self._check_built()
        cov = np.asarray(self.task_covariance.numpy())
        scale = np.sqrt(np.diag(cov))
        return cov / np.outer(scale, scale)

    # ------------------------------------------------------------------ the layer

    def call(self, inputs, training=None):
        h = self.activation(per_branch_product(inputs, self.kernel) + self.bias)
        if training:
            self._update()
        if self.prior_weight > 0.0:
            # In float32 (the covariances' dtype), as the other penalties: the
            # model sums its losses in float32, also under a float16 policy.
            self.add_loss(self.prior_weight * self.prior_penalty())
        return [h[:, k, :] for k in range(self.num_tasks)]

    def compute_output_shape(self, input_shape):
        batch = shape_list(input_shape)[0][0]
        return [(batch, self.units)] * self.num_tasks

    def get_config(self):
        return {
            **super().get_config(),
            "num_tasks": self.num_tasks,
            "units": self.units,
            "activation": keras.activations.serialize(self.activation),
            "prior_weight": self.prior_weight,
            "epsilon": self.epsilon,
            "update_every": self.update_every,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "same_start": self.same_start,
        }
