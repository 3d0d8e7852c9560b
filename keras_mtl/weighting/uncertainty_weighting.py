"""Uncertainty weighting: a learned homoscedastic noise level per task."""

from __future__ import annotations

import keras
from keras import ops

from keras_mtl.weighting.loss_weighting import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class UncertaintyWeighting(LossWeighting):
    """Weights each task by a trainable log-variance `s_k = log σ_k²`.

    Regression tasks (Gaussian likelihood) contribute `exp(-s_k) L_k / 2 + s_k / 2`,
    classification tasks (a binary cross-entropy loss) `exp(-s_k) L_k + s_k / 2`
    (Kendall et al., eq. 7 and 10, with s = log σ²). The optimizer trains `s_k`
    with the model; for a regression task the optimum is `s_k = log L_k`, so a
    noisier task (larger loss) gets a smaller weight. The logged `{task}_weight`
    is the factor in front of L_k: `exp(-s_k) / 2` or `exp(-s_k)`.

    Args:
        initial_log_variance: float. s_k before training. Defaults to 0.

    Example:
    In use, `model.compile(loss_weighting="uncertainty")`.
    What `compile` and each training step then do:

    >>> from keras_mtl.losses import MaskedBinaryCrossentropy, MaskedMeanSquaredError
    >>> uw = UncertaintyWeighting()
    >>> uw.configure({"ctr": MaskedBinaryCrossentropy(),  # by compile
    ...               "watch_time": MaskedMeanSquaredError()})
    >>> uw.weights_in_force()  # s = 0: exp(0) and, for regression, exp(0) / 2
    {'ctr': 1.0, 'watch_time': 0.5}
    >>> round(float(uw.combine({"ctr": 0.4, "watch_time": 2.0})), 4)  # .4 + 1 + 0
    1.4

    References:
        Kendall, Gal and Cipolla, "Multi-Task Learning Using Uncertainty to Weigh
        Losses for Scene Geometry and Semantics", CVPR 2018 (arXiv:1705.07115).
    """

    def __init__(self, initial_log_variance: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.initial_log_variance = float(initial_log_variance)

    def build(self, input_shape=None):
        super().build(input_shape)
        self.log_variance = self.add_weight(
            name="log_variance",
            shape=(self.num_tasks,),
            initializer=keras.initializers.Constant(self.initial_log_variance),
            trainable=True,
        )

    def _factors(self):
        half = [0.5 if k == "regression" else 1.0 for k in self.task_kinds]
        return ops.convert_to_tensor(half, "float32") * ops.exp(-self.log_variance)

    def combine(self, losses: dict, training: bool = True):
        scaled = ops.stack(self.scaled(losses))
        return ops.sum(self._factors() * scaled + 0.5 * self.log_variance)

    def weights_in_force(self) -> dict[str, float]:
        values = ops.convert_to_numpy(self._factors())
        return {n: float(v) for n, v in zip(self.task_names, values)}

    def get_config(self):
        return {
            **super().get_config(),
            "initial_log_variance": self.initial_log_variance,
        }
