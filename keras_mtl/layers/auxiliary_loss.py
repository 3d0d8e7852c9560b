"""A layer that adds a weighted label-free loss between two model tensors."""

from __future__ import annotations

import keras

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
        loss: a `keras.losses.Loss` called as `loss(reference, value)`.
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
    """

    def __init__(self, loss, weight: float = 1.0, **kwargs):
        super().__init__(**kwargs)
        self.loss = keras.losses.get(loss)
        if not isinstance(self.loss, keras.losses.Loss):
            raise ValueError(
                f"AuxiliaryLoss: loss must be a keras.losses.Loss (or its name); got "
                f"{loss!r}."
            )
        self.weight = check_non_negative("AuxiliaryLoss", "weight", weight)

    def call(self, inputs):
        reference, value = inputs
        self.add_loss(self.weight * self.loss(reference, value))
        return value

    def compute_output_shape(self, input_shape):
        return input_shape[1]

    def get_config(self):
        return {
            **super().get_config(),
            "loss": keras.losses.serialize(self.loss),
            "weight": self.weight,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["loss"] = keras.losses.deserialize(config["loss"])
        return cls(**config)
