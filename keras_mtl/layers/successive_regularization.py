"""Successive regularisation: a layer's weights pulled towards a recent snapshot (JMT)."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_non_negative, check_positive_int


@keras.saving.register_keras_serializable(package="keras_mtl")
class SuccessiveRegularization(keras.layers.Wrapper):
    """Wraps a layer and adds `delta · ‖θ − θ′‖²` over its trainable weights.

    The Joint Many-Task model trains its tasks one after another and, while
    training a higher task, keeps the lower layers near `θ′`, their values
    after the lower task's own training in the current epoch (successive
    regularisation), so the higher task does not make the lower one forget.
    Trained jointly (all tasks in one `fit`), there is no "after the lower
    task's update" per task; here `θ′` is a non-trainable snapshot of the
    wrapped layer's trainable weights that the layer itself refreshes: the
    training call number `c` (0, 1, 2, ...; one per step of a plain `fit`)
    first copies the current weights into the snapshot when `c` is a multiple
    of `refresh_every`, then adds the penalty `delta · Σ ‖w − w′‖²` (the
    snapshot held constant) to the model's losses. So every `refresh_every`
    steps the weights may move freely, and the further they drift from where
    they stood at the last refresh, the harder the penalty pulls them back:
    a proximal term that damps how fast the wrapped layers change. Unlike in
    JMT it damps the changes every task's gradient makes, the lower task's
    own included, since one summed loss trains them all. Calls that are not
    training add the penalty for the stored snapshot and change nothing.

    The snapshot and the call counter are non-trainable weights assigned in
    `call` (as batch normalisation's moving statistics), so they are saved
    and loaded with the model and the layer works on every Keras backend.

    Args:
        layer: a `keras.layers.Layer` to wrap (e.g. an `MLP`).
        delta: float >= 0. The penalty weight δ; 0 adds no penalty and keeps
            no snapshot. Defaults to 1e-3 (the paper's value).
        refresh_every: int >= 1. Training calls between refreshes of the
            snapshot. With 1 the snapshot is always the current weights and
            the penalty's gradient is zero. Defaults to 100.

    Call arguments:
        inputs: what the wrapped layer takes.
        training: bool. Refresh the snapshot on schedule and count the call.

    Returns:
        The wrapped layer's output.

    Example:
    >>> dense = keras.layers.Dense(1, use_bias=False, kernel_initializer="ones")
    >>> layer = SuccessiveRegularization(dense, delta=0.5, refresh_every=10)
    >>> _ = layer(np.ones((1, 2), "float32"), training=True)  # snapshot = 1s
    >>> _ = dense.kernel.assign([[3.0], [1.0]])  # moved by (2, 0)
    >>> _ = layer(np.ones((1, 2), "float32"), training=True)
    >>> float(layer.losses[-1])  # 0.5 · (2² + 0²)
    2.0

    References:
        Hashimoto, Xiong, Tsuruoka, Socher, "A Joint Many-Task Model: Growing a
        Neural Network for Multiple NLP Tasks", EMNLP 2017 (arXiv:1611.01587).
    """

    def __init__(
        self,
        layer: keras.layers.Layer,
        delta: float = 1e-3,
        refresh_every: int = 100,
        **kwargs,
    ):
        # The penalty and the snapshot read the weights at their own (float32)
        # precision, not cast to a mixed policy's compute dtype (inside a
        # mixed model; Keras still autocasts a mixed layer called on its own).
        kwargs.setdefault("autocast", False)
        super().__init__(layer, **kwargs)
        owner = "SuccessiveRegularization"
        self.delta = check_non_negative(owner, "delta", delta)
        self.refresh_every = check_positive_int(owner, "refresh_every", refresh_every)
        self.snapshot = []
        self.calls = None

    def build(self, input_shape=None):
        super().build(input_shape)
        if not self.delta:
            return
        self.snapshot = [
            self.add_weight(
                name=f"snapshot_{i}",
                shape=w.shape,
                dtype=w.dtype,
                trainable=False,
                # Starts at a copy (never the same buffer: JAX donates both,
                # torch updates weights in place) of the weights' initial
                # values, so a model that has not trained adds no penalty.
                initializer=lambda shape, dtype=None, w=w: ops.copy(
                    ops.cast(w.value, dtype)
                ),
                aggregation="only_first_replica",
            )
            for i, w in enumerate(self.layer.trainable_weights)
        ]
        self.calls = self.add_weight(
            name="calls",
            shape=(),
            dtype="int32",
            trainable=False,
            initializer="zeros",
            aggregation="only_first_replica",
        )

    def penalty(self, snapshot=None):
        """`Σ ‖w − w′‖²` over the wrapped layer's trainable weights (without
        `delta`), against `snapshot` (tensors) or the stored snapshot."""
        if snapshot is None:
            snapshot = [anchor.value for anchor in self.snapshot]
        total = 0.0
        for w, anchor in zip(self.layer.trainable_weights, snapshot):
            diff = ops.cast(w.value, "float32") - ops.stop_gradient(
                ops.cast(anchor, "float32")
            )
            total = total + ops.sum(ops.square(diff))
        return total

    def call(self, inputs, training=None, **kwargs):
        outputs = self.layer(inputs, **kwargs)
        if not self.delta:
            return outputs
        snapshot = None
        if training:
            calls = self.calls.value
            refresh = ops.equal(ops.mod(calls, self.refresh_every), 0)
            snapshot = []
            for w, anchor in zip(self.layer.trainable_weights, self.snapshot):
                value = ops.where(
                    refresh,
                    ops.stop_gradient(ops.cast(w.value, anchor.dtype)),
                    anchor.value,
                )
                anchor.assign(value)
                snapshot.append(value)
            self.calls.assign(calls + 1)
        self.add_loss(self.delta * self.penalty(snapshot))
        return outputs

    def compute_output_shape(self, input_shape):
        return self.layer.compute_output_shape(input_shape)

    def compute_output_spec(self, inputs, training=None, **kwargs):
        # The wrapped layer's output, in its compute dtype: the layer given to
        # wrap keeps its own dtype policy (as in Keras's own wrappers).
        return self.layer.compute_output_spec(inputs, **kwargs)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        # `keras.layers.Wrapper.from_config` pops "layer" from the dict it is
        # given; leave the caller's config whole.
        return super().from_config(dict(config), custom_objects=custom_objects)

    def get_config(self):
        return {
            **super().get_config(),
            "delta": self.delta,
            "refresh_every": self.refresh_every,
        }
