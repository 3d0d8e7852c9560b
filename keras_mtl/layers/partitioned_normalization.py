"""STAR's partitioned normalisation: batch normalisation with per-domain parts."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_fraction, check_positive
from keras_mtl.layers._domains import (
    check_domain_inputs,
    check_num_domains,
    domain_selection,
)


@keras.saving.register_keras_serializable(package="keras_mtl")
class PartitionedNormalization(keras.layers.Layer):
    """Batch normalisation with a scale, a shift and statistics per domain.

    STAR's partitioned normalisation (PN): an example `z` of domain `p` becomes

        z' = (γ · γ_p) (z − E) / sqrt(Var + ε) + (β + β_p)

    with `γ`, `β` shared by every domain and `γ_p` (starting at ones), `β_p`
    (zeros) domain `p`'s: the scale is the product of the shared and the
    domain's scale, as the paper writes it, and the shift the sum. Each
    feature (column) is normalised on its own, as batch normalisation does.

    - Training: `E`, `Var` are the statistics of the example's own domain in
      the batch: for the one-hot domain matrix `M` `(batch, num_domains)`,
      the means are `Mᵀ z / n_p` and the (biased) variances `Mᵀ (z − E_p)² /
      n_p`, `n_p` the domain's examples in the batch, so a batch that mixes
      domains normalises each with its own numbers (a batch from one domain,
      as the paper trains, is plain batch normalisation). Each domain's moving
      mean and variance, `E_p ← m E_p + (1 − m) mean_p`, move only on batches
      that hold the domain.
    - Inference: each example is normalised with its domain's moving `E_p`,
      `Var_p`.
    - No known domain (index < 0 or >= `num_domains`, as `DomainIndex` gives
      an out-of-vocabulary or padded domain value): shared `γ`, `β` alone and
      the global statistics, those of the whole batch in training and their
      moving averages (updated on every batch, over every example) at
      inference. Such examples still train the shared parameters.

    A domain with few examples in a batch gets noisy batch statistics (a
    single example has variance 0 and `z − E = 0`, so it normalises to
    `β + β_p`; `ε > 0` keeps that finite): train with batches that hold enough
    examples of every domain, or with one domain per batch. A domain never
    seen in training keeps the starting moving statistics (mean 0, variance 1).
    The moving statistics are `moving_mean` and `moving_variance`, `(num_domains
    + 1, features)`, the last row the global ones.

    Args:
        num_domains: int. Number of known domains.
        momentum: float in [0, 1]. Momentum `m` of the moving statistics.
            Defaults to 0.99 (as `keras.layers.BatchNormalization`).
        epsilon: float > 0. Added to the variance (0 would divide by 0 for a
            domain with one example in the batch). Defaults to 1e-3 (as
            `keras.layers.BatchNormalization`).

    Call arguments:
        inputs: `[z, domain]`: `z` `(batch, features)` and the domain indices,
            integers `(batch,)`.
        training: bool. Batch statistics (and moving updates) when True, the
            moving statistics otherwise.

    Returns:
        Tensor `(batch, features)`.

    Example:
    >>> pn = PartitionedNormalization(num_domains=2, momentum=0.0, epsilon=1.0)
    >>> z = np.array([[1.0], [3.0], [10.0], [30.0]], "float32")
    >>> domain = np.array([0, 0, 1, 1])  # variances 1 and 100, plus ε = 1
    >>> out = keras.ops.convert_to_numpy(pn([z, domain], training=True))[:, 0]
    >>> np.round(out, 3)  # ±1 / sqrt(1 + 1), ±10 / sqrt(100 + 1)
    array([-0.707,  0.707, -0.995,  0.995], dtype=float32)
    >>> keras.ops.convert_to_numpy(pn.moving_mean)[:, 0]  # domains 0, 1, global
    array([ 2., 20., 11.], dtype=float32)

    References:
        Sheng et al., "One Model to Serve All: Star Topology Adaptive
        Recommender for Multi-Domain CTR Prediction", CIKM 2021
        (arXiv:2101.11427).
    """

    def __init__(
        self,
        num_domains: int,
        momentum: float = 0.99,
        epsilon: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        owner = "PartitionedNormalization"
        self.num_domains = check_num_domains(owner, num_domains)
        self.momentum = check_fraction(owner, "momentum", momentum)
        self.epsilon = check_positive(owner, "epsilon", epsilon)

    def build(self, input_shape):
        values, _ = check_domain_inputs("PartitionedNormalization", input_shape)
        width = int(values[-1])
        domains = self.num_domains
        self.gamma = self.add_weight(name="gamma", shape=(width,), initializer="ones")
        self.beta = self.add_weight(name="beta", shape=(width,), initializer="zeros")
        self.domain_gamma = self.add_weight(
            name="domain_gamma", shape=(domains, width), initializer="ones"
        )
        self.domain_beta = self.add_weight(
            name="domain_beta", shape=(domains, width), initializer="zeros"
        )
        self.moving_mean = self.add_weight(
            name="moving_mean",
            shape=(domains + 1, width),
            initializer="zeros",
            trainable=False,
        )
        self.moving_variance = self.add_weight(
            name="moving_variance",
            shape=(domains + 1, width),
            initializer="ones",
            trainable=False,
        )

    def _batch_statistics(self, z, select):
        """Means and variances `(num_domains + 1, features)` of each domain's
        examples in the batch (the last row: of all of them), and whether each
        domain is in the batch."""
        groups = ops.concatenate(
            [select[:, :-1], ops.ones_like(select[:, -1:])], axis=1
        )  # (batch, D + 1): the example's domain, and the global column
        counts = ops.sum(groups, axis=0)
        n = ops.expand_dims(ops.maximum(counts, 1.0), -1)
        mean = ops.matmul(ops.transpose(groups), z) / n
        centred = ops.expand_dims(z, 1) - ops.expand_dims(mean, 0)
        variance = ops.sum(ops.expand_dims(groups, -1) * ops.square(centred), 0) / n
        return mean, variance, ops.expand_dims(ops.greater(counts, 0.0), -1)

    def call(self, inputs, training=None):
        z, domain = inputs
        dtype = z.dtype
        z = ops.cast(z, "float32")
        select = domain_selection(domain, self.num_domains, "float32")
        if training:
            mean, variance, present = self._batch_statistics(z, select)
            m = self.momentum
            for moving, batch in (
                (self.moving_mean, mean),
                (self.moving_variance, variance),
            ):
                old = ops.cast(moving, "float32")
                new = ops.where(present, m * old + (1.0 - m) * batch, old)
                moving.assign(ops.cast(new, moving.dtype))
        else:
            mean = ops.cast(self.moving_mean, "float32")
            variance = ops.cast(self.moving_variance, "float32")
        width = z.shape[-1]
        scales = ops.concatenate(
            [ops.cast(self.domain_gamma, "float32"), ops.ones((1, width))], axis=0
        )
        shifts = ops.concatenate(
            [ops.cast(self.domain_beta, "float32"), ops.zeros((1, width))], axis=0
        )
        scale = ops.cast(self.gamma, "float32") * ops.matmul(select, scales)
        shift = ops.cast(self.beta, "float32") + ops.matmul(select, shifts)
        normalized = (z - ops.matmul(select, mean)) * ops.rsqrt(
            ops.matmul(select, variance) + self.epsilon
        )
        return ops.cast(normalized * scale + shift, dtype)

    def compute_output_shape(self, input_shape):
        values, _ = check_domain_inputs("PartitionedNormalization", input_shape)
        return values

    def get_config(self):
        return {
            **super().get_config(),
            "num_domains": self.num_domains,
            "momentum": self.momentum,
            "epsilon": self.epsilon,
        }
