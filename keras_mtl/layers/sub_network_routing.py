"""Sub-network routing: learned on/off connections between sub-networks (SNR)."""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from keras_mtl._checks import check_non_negative, check_positive_int
from keras_mtl.layers._initializers import stacked_initializer
from keras_mtl.layers._shapes import common_width, shape_list

#: The routing variants: a transformation per connection, or a plain sum.
VARIANTS = ("trans", "aver")


def check_hard_concrete(owner: str, beta, gamma, zeta) -> tuple[float, float, float]:
    """`(beta, gamma, zeta)` as floats, or ValueError naming `owner` unless
    beta > 0, gamma < 0 and zeta > 1 (finite)."""
    values = []
    for value in (beta, gamma, zeta):
        try:
            values.append(float(value))
        except (TypeError, ValueError):
            values.append(math.nan)
    b, g, z = values
    if not (0 < b < math.inf and -math.inf < g < 0 and 1 < z < math.inf):
        raise ValueError(
            f"{owner}: the hard-concrete stretch needs beta > 0, gamma < 0 and "
            f"zeta > 1; got beta={beta!r}, gamma={gamma!r}, zeta={zeta!r}."
        )
    return b, g, z


@keras.saving.register_keras_serializable(package="keras_mtl")
class SubNetworkRouting(keras.layers.Layer):
    """Connections from n lower sub-networks to m upper ones, each scaled by a
    learned coding variable `z_ij` in [0, 1] that can be exactly 0 (pruned).

    Output j is `v_j = Σ_i z_ij W_ij u_i` (`variant="trans"`, SNR-Trans: one
    matrix per connection) or `v_j = Σ_i z_ij u_i` (`"aver"`, SNR-Aver: a
    z-weighted, unnormalised sum). Each `z_ij` follows the hard-concrete
    distribution with a learned `log α_ij` (Louizos, Welling, Kingma 2018): in
    training, with `u ~ U(0, 1)` drawn for every connection at every call,
    `s = sigmoid((log u - log(1 - u) + log α) / β)`, `z = min(1, max(0,
    s (ζ - γ) + γ))`; at inference `z = min(1, max(0, sigmoid(log α) (ζ - γ) +
    γ))`. With `l0_weight > 0` the layer adds the expected number of open
    connections, `l0_weight · Σ sigmoid(log α - β log(-γ / ζ))` (the L0
    penalty), to the model's losses, which closes the connections the tasks
    can do without.

    Args:
        num_outputs: int. Upper sub-networks m (or tasks).
        variant: "trans" or "aver". Defaults to "trans".
        units: int or None. Output width of each `W_ij` ("trans"). Defaults to
            None: the input width. "aver" keeps the input width.
        l0_weight: float >= 0. Weight of the L0 penalty. Defaults to 0.
        beta: float > 0. Temperature β. Defaults to 2/3.
        gamma: float < 0. Lower stretch γ. Defaults to -0.1.
        zeta: float > 1. Upper stretch ζ. Defaults to 1.1.
        initial_log_alpha: float. Start of every `log α` (0: each connection
            open with probability 1/2, z = 0.5 at inference). Defaults to 0.
        kernel_initializer: initializer of each `W_ij`. Defaults to
            "glorot_uniform".
        seed: int or None. Seed of the training-time noise. Defaults to None.

    Call arguments:
        inputs: list of n tensors `(batch, d)` of one width.
        training: bool. Sample z (True) or use its inference value.

    Returns:
        A list of m tensors `(batch, units)` (`(batch, d)` for "aver").

    Example:
    >>> route = SubNetworkRouting(2, variant="aver")
    >>> a, b = route([np.ones((1, 3), "float32"), np.ones((1, 3), "float32")])
    >>> route.gate_values()  # log α = 0: z = sigmoid(0) * 1.2 - 0.1
    array([[0.5, 0.5],
           [0.5, 0.5]], dtype=float32)
    >>> keras.ops.convert_to_numpy(a)
    array([[1., 1., 1.]], dtype=float32)

    References:
        Ma, Zhao, Chen, Li, Hong, Chi, "SNR: Sub-Network Routing for Flexible
        Parameter Sharing in Multi-Task Learning", AAAI 2019. Louizos, Welling,
        Kingma, "Learning Sparse Neural Networks through L0 Regularization",
        ICLR 2018 (arXiv:1712.01312).
    """

    def __init__(
        self,
        num_outputs: int,
        variant: str = "trans",
        units: int | None = None,
        l0_weight: float = 0.0,
        beta: float = 2.0 / 3.0,
        gamma: float = -0.1,
        zeta: float = 1.1,
        initial_log_alpha: float = 0.0,
        kernel_initializer="glorot_uniform",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "SubNetworkRouting"
        self.num_outputs = check_positive_int(owner, "num_outputs", num_outputs)
        if variant not in VARIANTS:
            raise ValueError(
                f"{owner}: variant must be one of {list(VARIANTS)}; got {variant!r}."
            )
        self.variant = variant
        if units is not None and variant == "aver":
            raise ValueError(
                f"{owner}: units={units!r} is for variant='trans'; 'aver' sums the "
                "inputs as they are."
            )
        self.units = check_positive_int(owner, "units", units, allow_none=True)
        self.l0_weight = check_non_negative(owner, "l0_weight", l0_weight)
        self.beta, self.gamma, self.zeta = check_hard_concrete(owner, beta, gamma, zeta)
        self.initial_log_alpha = float(initial_log_alpha)
        if not math.isfinite(self.initial_log_alpha):
            raise ValueError(
                f"{owner}: initial_log_alpha must be finite; got {initial_log_alpha!r}."
            )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        if not (input_shape and isinstance(input_shape[0], (list, tuple))):
            raise ValueError(
                "SubNetworkRouting: inputs must be a list of tensors (batch, d), one "
                f"per lower sub-network; got input shape {input_shape!r}."
            )
        shapes = shape_list(input_shape)
        width = common_width("SubNetworkRouting", shapes)
        self.num_inputs = len(shapes)
        self.log_alpha = self.add_weight(
            name="log_alpha",
            shape=(self.num_inputs, self.num_outputs),
            initializer=keras.initializers.Constant(self.initial_log_alpha),
        )
        self.kernel = None
        if self.variant == "trans":
            self.kernel = self.add_weight(
                name="kernel",
                shape=(self.num_inputs * self.num_outputs, width, self.units or width),
                initializer=stacked_initializer(self.kernel_initializer),
            )

    def _stretch(self, s):
        return ops.clip(s * (self.zeta - self.gamma) + self.gamma, 0.0, 1.0)

    def gates(self, training: bool = False):
        """z `(n, m)`: sampled in training, the deterministic value otherwise."""
        # In float32, the noise's dtype (float16 rounds 1 - 1e-6 to 1, whose
        # log-odds are inf), then in the compute dtype of a mixed policy.
        log_alpha = ops.cast(self.log_alpha, "float32")
        if not training:
            return ops.cast(self._stretch(ops.sigmoid(log_alpha)), self.compute_dtype)
        eps = 1e-6
        u = keras.random.uniform(
            ops.shape(log_alpha), eps, 1.0 - eps, seed=self.seed_generator
        )
        logistic = ops.log(u) - ops.log(1.0 - u)
        z = self._stretch(ops.sigmoid((logistic + log_alpha) / self.beta))
        return ops.cast(z, self.compute_dtype)

    def gate_values(self) -> np.ndarray:
        """The inference z `(n, m)` as numpy; 0 marks a pruned connection."""
        if not self.built:
            raise ValueError("SubNetworkRouting: the layer is not built yet; call it.")
        z = ops.cast(self.gates(training=False), "float32")
        return np.asarray(ops.convert_to_numpy(z))

    def l0_penalty(self):
        """`Σ sigmoid(log α - β log(-γ / ζ))`: the expected number of open
        connections (1 - P(z = 0) each), without the `l0_weight` factor."""
        shift = self.beta * math.log(-self.gamma / self.zeta)
        # In float32, as every added loss: the model sums its losses in float32,
        # also under a mixed policy (where `call` reads log α in float16).
        return ops.sum(ops.sigmoid(ops.cast(self.log_alpha, "float32") - shift))

    def call(self, inputs, training=None):
        stacked = ops.stack(list(inputs), axis=1)  # (batch, n, d)
        z = self.gates(bool(training))
        if self.variant == "aver":
            mixed = ops.einsum("bid,ij->bjd", stacked, z)
        else:
            kernel = ops.reshape(
                self.kernel, (self.num_inputs, self.num_outputs, *self.kernel.shape[1:])
            )
            mixed = ops.einsum("bid,ijdu,ij->bju", stacked, kernel, z)
        if self.l0_weight > 0.0:
            self.add_loss(self.l0_weight * self.l0_penalty())
        return [mixed[:, j, :] for j in range(self.num_outputs)]

    def compute_output_shape(self, input_shape):
        shapes = shape_list(input_shape)
        width = shapes[0][-1] if self.variant == "aver" else self.units or shapes[0][-1]
        return [(shapes[0][0], width)] * self.num_outputs

    def get_config(self):
        return {
            **super().get_config(),
            "num_outputs": self.num_outputs,
            "variant": self.variant,
            "units": self.units,
            "l0_weight": self.l0_weight,
            "beta": self.beta,
            "gamma": self.gamma,
            "zeta": self.zeta,
            "initial_log_alpha": self.initial_log_alpha,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "seed": self.seed,
        }
