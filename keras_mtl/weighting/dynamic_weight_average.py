"""Dynamic weight average: weight the tasks whose loss falls slowest."""

from __future__ import annotations

import keras
import numpy as np

from keras_mtl._checks import check_positive
from keras_mtl.weighting.loss_weighting import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class DynamicWeightAverage(LossWeighting):
    """`w_k(t) = K · softmax_k(r_k(t−1) / T)`, `r_k(t−1) = L_k(t−1) / L_k(t−2)`.

    L_k(t) is task k's mean training loss in epoch t and K the number of tasks.
    A task whose loss fell less over the last epoch (higher ratio) gets more
    weight; the weights sum to K. The first two epochs use w_k = 1 (there is no
    ratio yet).

    Args:
        temperature: float > 0. T; larger is closer to equal weights.
            Defaults to 2 (the paper's).

    Example:
    In use, `model.compile(loss_weighting="dwa")`. What
    `compile` and `fit` then do:

    >>> from keras_mtl.losses import MaskedBinaryCrossentropy as BCE
    >>> dwa = DynamicWeightAverage(temperature=1.0)
    >>> dwa.configure({"ctr": BCE(), "cvr": BCE()})  # by compile
    >>> dwa.on_epoch_end(0, {"ctr": 0.6, "cvr": 0.4})  # by fit; no ratio yet
    >>> dwa.on_epoch_end(1, {"ctr": 0.3, "cvr": 0.4})  # ctr halved, cvr flat
    >>> {task: round(w, 3) for task, w in dwa.weights_in_force().items()}
    {'ctr': 0.755, 'cvr': 1.245}

    That is `2 · softmax([0.5, 1.0])`: the task that stalled gets more weight.

    References:
        Liu, Johns and Davison, "End-to-End Multi-Task Learning with Attention",
        CVPR 2019 (arXiv:1803.10704).
    """

    def __init__(self, temperature: float = 2.0, **kwargs):
        temperature = check_positive("DynamicWeightAverage", "temperature", temperature)
        super().__init__(**kwargs)
        self.temperature = temperature

    def build(self, input_shape=None):
        super().build(input_shape)
        # Mean loss of the last epoch, and whether there is one yet.
        self.last_losses = self.add_weight(
            name="last_losses",
            shape=(self.num_tasks,),
            initializer="zeros",
            trainable=False,
        )
        self.epochs_seen = self.add_weight(
            name="epochs_seen", shape=(), initializer="zeros", trainable=False
        )

    def on_epoch_end(self, epoch: int, task_losses: dict[str, float]) -> None:
        losses = np.array([task_losses[n] for n in self.task_names], "float64")
        previous = keras.ops.convert_to_numpy(self.last_losses).astype("float64")
        if float(self.epochs_seen.numpy()) >= 1:
            ratio = np.divide(
                losses, previous, out=np.ones_like(losses), where=previous > 0
            )
            z = ratio / self.temperature
            soft = np.exp(z - z.max())
            self.task_weights.assign(
                (self.num_tasks * soft / soft.sum()).astype("float32")
            )
        self.last_losses.assign(losses.astype("float32"))
        self.epochs_seen.assign(self.epochs_seen + 1.0)

    def get_config(self):
        return {**super().get_config(), "temperature": self.temperature}
