"""STAR's star-topology dense layer: shared weights times per-domain weights."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_bool, check_positive_int
from keras_mtl.layers._domains import (
    check_domain_inputs,
    check_num_domains,
    domain_selection,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class StarDense(keras.layers.Layer):
    """A dense layer whose weights are the shared ones times the domain's own.

    STAR's star-topology fully connected layer: for an example of domain `p`,

        h = activation(x (W ⊙ W_p) + b + b_p)

    with `W`, `b` shared by every domain (the centre of the star) and `W_p`,
    `b_p` domain `p`'s (element-wise product for the kernel, sum for the bias).
    `W_p` starts at ones and `b_p` at zeros, so the layer starts as the shared
    `Dense` layer in every domain and each domain learns how it differs. An
    example of no known domain (index < 0 or >= `num_domains`: see
    `DomainIndex`) uses the shared `W`, `b` alone.

    All domains cost one matmul of width `(num_domains + 1) · units` (each
    example then keeps its domain's part), cheap for the few domains of a
    multi-domain recommender.

    Args:
        units: int. Output width.
        num_domains: int. Number of known domains.
        activation: activation. Defaults to None (linear).
        use_bias: bool. Whether to add `b + b_p`. Defaults to True.
        kernel_initializer: initializer of the shared kernel `W`. Defaults to
            "glorot_uniform".
        bias_initializer: initializer of the shared bias `b`. Defaults to
            "zeros".

    Call arguments:
        inputs: `[x, domain]`: `x` `(batch, input_dim)` and the domain indices,
            integers `(batch,)`.

    Returns:
        Tensor `(batch, units)`.

    Example:
    >>> layer = StarDense(2, num_domains=3, kernel_initializer="ones")
    >>> x = np.array([[1.0, 2.0], [1.0, 2.0]], "float32")
    >>> keras.ops.convert_to_numpy(layer([x, np.array([0, 2])]))  # W_p = 1: W
    array([[3., 3.],
           [3., 3.]], dtype=float32)
    >>> _ = layer.domain_kernel.assign(np.full((3, 2, 2), 2.0, "float32"))  # W_p = 2
    >>> keras.ops.convert_to_numpy(layer([x, np.array([0, -1])]))  # -1: W alone
    array([[6., 6.],
           [3., 3.]], dtype=float32)

    References:
        Sheng et al., "One Model to Serve All: Star Topology Adaptive
        Recommender for Multi-Domain CTR Prediction", CIKM 2021
        (arXiv:2101.11427).
    """

    def __init__(
        self,
        units: int,
        num_domains: int,
        activation=None,
        use_bias: bool = True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_positive_int("StarDense", "units", units)
        self.num_domains = check_num_domains("StarDense", num_domains)
        self.activation = keras.activations.get(activation)
        self.use_bias = check_bool("StarDense", "use_bias", use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)

    def build(self, input_shape):
        values, _ = check_domain_inputs("StarDense", input_shape)
        width = int(values[-1])
        self.kernel = self.add_weight(
            name="kernel",
            shape=(width, self.units),
            initializer=self.kernel_initializer,
        )
        self.domain_kernel = self.add_weight(
            name="domain_kernel",
            shape=(self.num_domains, width, self.units),
            initializer="ones",
        )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias", shape=(self.units,), initializer=self.bias_initializer
            )
            self.domain_bias = self.add_weight(
                name="domain_bias",
                shape=(self.num_domains, self.units),
                initializer="zeros",
            )

    def call(self, inputs):
        x, domain = inputs
        width = self.kernel.shape[0]
        select = domain_selection(domain, self.num_domains, x.dtype)  # (b, D + 1)
        # Row D is "no known domain": the shared kernel alone (W ⊙ 1).
        stars = ops.concatenate(
            [self.domain_kernel, ops.ones((1, width, self.units), x.dtype)], axis=0
        ) * ops.expand_dims(self.kernel, 0)
        stacked = ops.reshape(
            ops.transpose(stars, (1, 0, 2)),
            (width, (self.num_domains + 1) * self.units),
        )
        every = ops.reshape(
            ops.matmul(x, stacked), (-1, self.num_domains + 1, self.units)
        )
        h = ops.sum(ops.expand_dims(select, -1) * every, axis=1)
        if self.use_bias:
            biases = ops.concatenate(
                [self.domain_bias, ops.zeros((1, self.units), x.dtype)], axis=0
            )
            h = h + ops.matmul(select, biases) + self.bias
        return self.activation(h)

    def compute_output_shape(self, input_shape):
        values, _ = check_domain_inputs("StarDense", input_shape)
        return (values[0], self.units)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "num_domains": self.num_domains,
            "activation": keras.activations.serialize(self.activation),
            "use_bias": self.use_bias,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
            "bias_initializer": keras.initializers.serialize(self.bias_initializer),
        }
