"""A layer that adds a weighted label-free loss between two model tensors."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl._checks import check_non_negative


@keras.saving.register_keras_serializable(package="keras_mtl")
class AuxiliaryLoss(keras.layers.Layer):
    """Adds `weight * loss(reference, value)` to the model's losses; returns `value`.

    For terms that tie predictions together rather than to labels, such as the
    KL-divergence bound between p(click) p(convert) and p(order)
    (`keras_mtl.losses.KLDivergenceBound`) or AITM's funnel calibrator
    (`keras_mtl.losses.FunnelCalibration`). Keras adds the term to the training
    loss of `fit` (it appears in the total `loss`, not in a task's loss).

    Args:
        loss: a `keras.losses.Loss` called as `loss(reference, value)`, or the
            name of a Keras loss ("mse", "binary_crossentropy", "Huber", ...:
            what `keras.losses.get` accepts, averaged over the batch) or of a
            keras-mtl loss ("FunnelCalibration", "KLDivergenceBound"). The
            term is computed in float32 whatever the inputs' dtype.
        weight: float >= 0. Multiplier of the term. Defaults to 1.

    Call arguments:
        inputs: list `[reference, value]` of tensors of one shape.

    Returns:
        `value`, unchanged.

    Example:
    >>> from keras_mtl.losses import FunnelCalibration
    >>> p_click = np.array([0.5, 0.2], "float32")
    >>> p_pay = np.array([0.3, 0.4], "float32")  # the second exceeds its click
    >>> layer = AuxiliaryLoss(FunnelCalibration(), weight=0.5)
    >>> keras.ops.convert_to_numpy(layer([p_click, p_pay]))  # p_pay, unchanged
    array([0.3, 0.4], dtype=float32)
    >>> round(float(layer.losses[0]), 4)  # 0.5 * mean(max(p_pay - p_click, 0))
    0.05

    A loss by name, here the mean squared error, (0.2² + 0.2²) / 2:

    >>> layer = AuxiliaryLoss("mse")
    >>> _ = layer([p_click, p_pay])
    >>> round(float(layer.losses[0]), 4)
    0.04
    """

    def __init__(self, loss, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.loss = _get_loss(loss)
        is_function = not isinstance(self.loss, keras.losses.Loss)
        self._loss_name = loss if is_function else None
        self.weight = check_non_negative("AuxiliaryLoss", "weight", weight)

    def call(self, inputs):
        reference, value = inputs
        if isinstance(self.loss, keras.losses.Loss):
            term = self.loss(reference, value)
        else:  # a Keras loss function (a name), per example: its mean, in float32
            term = ops.mean(
                self.loss(ops.cast(reference, "float32"), ops.cast(value, "float32"))
            )
        self.add_loss(self.weight * ops.cast(term, "float32"))
        return value

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        # A Keras loss function, given by its name, keeps the name as config.
        loss = self._loss_name or keras.losses.serialize(self.loss)
        return {**super().get_config(), "loss": loss, "weight": self.weight}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if not isinstance(config["loss"], str):
            config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)


def _get_loss(loss):
    """A `keras.losses.Loss`, or the Keras loss function that `loss` names."""
    if isinstance(loss, keras.losses.Loss):
        return loss
    if isinstance(loss, str):
        own = keras.saving.get_registered_object(f"keras_mtl>{loss}")
        if isinstance(own, type) and issubclass(own, keras.losses.Loss):
            return own()
        try:
            resolved = keras.losses.get(loss)
        except ValueError:
            resolved = None
        if isinstance(resolved, keras.losses.Loss) or callable(resolved):
            return resolved
    raise ValueError(
        "AuxiliaryLoss: loss must be a keras.losses.Loss or the name of a Keras "
        "loss ('mse', 'binary_crossentropy', ...) or of a keras-mtl loss "
        f"('FunnelCalibration', 'KLDivergenceBound'); got {loss!r}."
    )
