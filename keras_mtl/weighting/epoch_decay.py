"""PLE's per-epoch exponential decay of the task weights."""

from __future__ import annotations

import keras
import numpy as np

from keras_mtl._checks import check_positive
from keras_mtl.weighting.loss_weighting import LossWeighting


@keras.saving.register_keras_serializable(package="keras_mtl")
class EpochDecay(LossWeighting):
    """Task weights that decay every epoch: `ω_k(t) = ω_k,0 · γ_k^t`.

    PLE (Tang et al., eq. 10) sets the weight of each task as a function of the
    training epoch t (0 for the first epoch), e.g. to shift effort from an easy
    early task to a later one.

    Args:
        decay: float, or dict of task name to γ_k > 0 (tasks not named keep 1,
            i.e. no decay). Defaults to 0.9.
        weights: dict of task name to ω_k,0 (tasks not named start at 1).
            Defaults to None.

    Example:
    In use, `model.compile(loss_weighting=EpochDecay({"ctr": 0.5}))`. What
    `compile` and `fit` then do:

    >>> from keras_mtl.losses import MaskedBinaryCrossentropy as BCE
    >>> decay = EpochDecay({"ctr": 0.5})
    >>> decay.configure({"ctr": BCE(), "cvr": BCE()})  # by compile
    >>> decay.on_epoch_begin(2)  # by fit, before the third epoch
    >>> decay.weights_in_force()  # ctr: 0.5 ** 2; cvr is not decayed
    {'ctr': 0.25, 'cvr': 1.0}

    References:
        Tang et al., "Progressive Layered Extraction (PLE): A Novel Multi-Task
        Learning (MTL) Model for Personalized Recommendations", RecSys 2020.
    """

    def __init__(
        self, decay: float | dict = 0.9, weights: dict | None = None, **kwargs
    ):
        if isinstance(decay, dict):
            decay = {
                k: check_positive("EpochDecay", f"the decay of task {k!r}", v)
                for k, v in decay.items()
            }
        else:
            decay = check_positive("EpochDecay", "decay", decay)
        super().__init__(weights=weights, **kwargs)
        self.decay = decay

    def _check_tasks(self) -> None:
        if isinstance(self.decay, dict):
            unknown = sorted(set(self.decay) - set(self.task_names))
            if unknown:
                raise ValueError(
                    f"EpochDecay: decay for {unknown}, which are not tasks with a "
                    f"loss; the tasks are {list(self.task_names)}."
                )
        super()._check_tasks()

    def rates(self) -> np.ndarray:
        """γ_k in task order."""
        if isinstance(self.decay, dict):
            return np.array([self.decay.get(n, 1.0) for n in self.task_names])
        return np.full(self.num_tasks, self.decay)

    def on_epoch_begin(self, epoch: int) -> None:
        weights = np.asarray(self.initial_weights()) * self.rates() ** epoch
        self.task_weights.assign(weights.astype("float32"))

    def get_config(self):
        return {**super().get_config(), "decay": self.decay}
